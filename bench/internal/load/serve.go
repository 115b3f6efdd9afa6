package load

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// StartServe starts cmd and returns the address it logs: hpcml serve's
// "msg=serving addr=HOST:PORT" line on stderr, or the peer's "addr=" line.
func StartServe(cmd *exec.Cmd) (string, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "addr="); i >= 0 && !sent {
				f := strings.Fields(line[i+len("addr="):])
				if len(f) > 0 {
					found <- f[0]
					sent = true
				}
			} else if strings.Contains(line, "level=ERROR") || strings.HasPrefix(line, "error") {
				fmt.Fprintln(os.Stderr, "  server:", line)
			}
		}
		if !sent {
			close(found)
		}
	}()
	select {
	case addr, ok := <-found:
		if !ok {
			cmd.Wait()
			return "", fmt.Errorf("%s exited without serving", cmd.Path)
		}
		return addr, nil
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return "", fmt.Errorf("%s did not start serving within 30 s", cmd.Path)
	}
}
