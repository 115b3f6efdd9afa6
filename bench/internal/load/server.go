package load

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hpcml/hpcml/internal/client"
)

// Server is an `hpcml server` a benchmark started.
type Server struct {
	Client *client.Client
	Token  string // the API token it generated
	cmd    *exec.Cmd
}

// StartServer starts `exe server` on dataDir, listening on addr, with
// extra flags, and waits until it answers. Its stderr (warnings) goes to
// stderr; its start-up banner to banner (nil: dropped).
func StartServer(ctx context.Context, exe, dataDir, addr string, banner io.Writer, extra ...string) (*Server, error) {
	args := append([]string{"server", "--data-dir", dataDir, "--listen", addr, "--log-level", "warn"}, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = banner, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{cmd: cmd}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if tok, err := os.ReadFile(filepath.Join(dataDir, "token")); err == nil {
			s.Token = strings.TrimSpace(string(tok))
			c := client.New("http://"+addr, s.Token)
			if c.Health(ctx) == nil {
				s.Client = c
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("server on %s did not start", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the server process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Stop interrupts the server and waits for it to exit.
func (s *Server) Stop() {
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()
}

// FreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
