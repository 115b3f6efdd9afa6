package slurm

import (
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// newTestBackend is a backend on a fresh jobs dir that never runs a
// Slurm command unless a test points cmd.bin somewhere.
func newTestBackend(t *testing.T, cfg Config) *Backend {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Executable == "" {
		cfg.Executable = "/usr/bin/true"
	}
	b, err := New(cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

func TestGPUs(t *testing.T) {
	tests := []struct {
		gres string
		want int
	}{
		{"", 0},
		{"(null)", 0},
		{"gpu:4", 4},
		{"gpu:0", 0},
		{"gpu:a100:2(S:0-1)", 2},
		{"gpu:a100:4(IDX:0-3)", 4},
		{"gpu:2,gpu:tesla:1", 3},
		{"gpu:tesla:1(S:0),gpu:a100:2(S:1)", 3},
		{"gpu:tesla:2(S:0,2),nic:1", 2},
		{"nic:1", 0},
		{"nic:1,gpu:3", 3},
		{"gpu:4,shard:8", 4},
		{"mps:100", 0},
		{"gpu", 0},
		{"gpu:a100", 0},
	}
	for _, tt := range tests {
		if got := gpus(tt.gres); got != tt.want {
			t.Errorf("gpus(%q) = %d, want %d", tt.gres, got, tt.want)
		}
	}
}

func TestFields(t *testing.T) {
	tests := []struct {
		line string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"   ", map[string]string{}},
		{"NodeName=n1 CPUTot=8 RealMemory=16000 Gres=gpu:a100:2(S:0-1)",
			map[string]string{"NodeName": "n1", "CPUTot": "8", "RealMemory": "16000", "Gres": "gpu:a100:2(S:0-1)"}},
		{"JobId=12 JobState=FAILED Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0\n",
			map[string]string{"JobId": "12", "JobState": "FAILED", "Reason": "NonZeroExitCode", "Dependency": "(null)", "ExitCode": "3:0"}},
		// Only the first '=' splits.
		{"Comment=hpcml:ab:1.1 TRES=cpu=1,mem=1G",
			map[string]string{"Comment": "hpcml:ab:1.1", "TRES": "cpu=1,mem=1G"}},
		// Words without '=' (the tail of a value with spaces) are dropped.
		{"State=DOWN Reason=Not responding [slurm@2025]",
			map[string]string{"State": "DOWN", "Reason": "Not"}},
		{"Empty= Key=v", map[string]string{"Empty": "", "Key": "v"}},
		// A key given twice keeps its last value: a user's job name
		// holding "JobState=COMPLETED" comes before scontrol's own.
		{"JobName=x JobState=COMPLETED JobState=FAILED", map[string]string{"JobName": "x", "JobState": "FAILED"}},
		{"\tPartitionName=debug\tDefault=YES  Nodes=n[1-4]",
			map[string]string{"PartitionName": "debug", "Default": "YES", "Nodes": "n[1-4]"}},
	}
	for _, tt := range tests {
		if got := fields(tt.line); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("fields(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}

func TestNewRejectsPaths(t *testing.T) {
	good := t.TempDir()
	tests := []struct {
		name            string
		dir, executable string
		ok              bool
	}{
		{"good", good, "/usr/bin/true", true},
		{"relative dir", "jobs", "/usr/bin/true", false},
		{"dot-relative dir", "./jobs", "/usr/bin/true", false},
		{"empty dir", "", "/usr/bin/true", false},
		{"dir with quote", filepath.Join(good, "it's"), "/usr/bin/true", false},
		{"dir with newline", filepath.Join(good, "a\nb"), "/usr/bin/true", false},
		{"dir with NUL", filepath.Join(good, "a\x00b"), "/usr/bin/true", false},
		{"relative executable", good, "hpcml", false},
		{"dot-relative executable", good, "./hpcml", false},
		{"empty executable", good, "", false},
		{"executable with quote", good, "/opt/it's/hpcml", false},
		{"executable with newline", good, "/opt/hpcml\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := New(Config{Dir: tt.dir, Executable: tt.executable}, nil, slog.New(slog.DiscardHandler))
			if tt.ok {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if b.instance == "" {
					t.Error("no instance id")
				}
				return
			}
			if err == nil {
				t.Fatalf("New(Dir %q, Executable %q) succeeded, want an error", tt.dir, tt.executable)
			}
			if strings.ContainsRune(tt.dir, '\'') {
				if _, serr := os.Stat(tt.dir); serr == nil {
					t.Errorf("refused Dir %q was created", tt.dir)
				}
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	dir := t.TempDir()
	b := newTestBackend(t, Config{Dir: dir, Bin: "/opt/slurm/bin", Env: []string{"A=1"}})
	if info, err := os.Stat(filepath.Join(dir, arraysDir)); err != nil || !info.IsDir() {
		t.Errorf("arrays dir not created: %v", err)
	}
	if b.cfg.Poll <= 0 || b.cfg.QueuePoll <= 0 {
		t.Errorf("poll intervals not defaulted: %v, %v", b.cfg.Poll, b.cfg.QueuePoll)
	}
	if b.cmd.timeout != 10*time.Second {
		t.Errorf("command timeout = %v, want 10s", b.cmd.timeout)
	}
	if b.cmd.bin != "/opt/slurm/bin" || !reflect.DeepEqual(b.cmd.env, []string{"A=1"}) {
		t.Errorf("commands = %+v, want bin and env from the config", b.cmd)
	}
	b = newTestBackend(t, Config{CommandTimeout: 3 * time.Second})
	if b.cmd.timeout != 3*time.Second {
		t.Errorf("command timeout = %v, want 3s", b.cmd.timeout)
	}
}

func TestInstanceID(t *testing.T) {
	dir1, dir2 := t.TempDir(), t.TempDir()
	a := newTestBackend(t, Config{Dir: dir1})
	b := newTestBackend(t, Config{Dir: dir1})
	c := newTestBackend(t, Config{Dir: dir2})
	if a.instance != b.instance {
		t.Errorf("instance on the same dir changed: %q, then %q", a.instance, b.instance)
	}
	if a.instance == c.instance {
		t.Errorf("two dirs share instance %q", a.instance)
	}
	for _, id := range []string{a.instance, c.instance} {
		if _, err := hex.DecodeString(id); err != nil || len(id) != 12 {
			t.Errorf("instance %q is not 12 hex digits", id)
		}
		// It goes into "hpcml:<instance>:<key>", split on ':'.
		if strings.ContainsAny(id, ": \n") {
			t.Errorf("instance %q holds a separator", id)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir1, "instance"))
	if err != nil || strings.TrimSpace(string(data)) != a.instance {
		t.Errorf("instance file = %q, %v; want %q", data, err, a.instance)
	}

	// An id already kept (by hand, with blanks around it) is read as is;
	// an empty file is replaced by a new id.
	dir3 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir3, "instance"), []byte("  cafe01 \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := newTestBackend(t, Config{Dir: dir3}).instance; got != "cafe01" {
		t.Errorf("instance from file = %q, want cafe01", got)
	}
	dir4 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir4, "instance"), []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := newTestBackend(t, Config{Dir: dir4}).instance
	if len(got) != 12 {
		t.Errorf("instance from empty file = %q, want a new id", got)
	}
	if again := newTestBackend(t, Config{Dir: dir4}).instance; again != got {
		t.Errorf("instance from rewritten file = %q, want %q", again, got)
	}
}

func TestAttemptPaths(t *testing.T) {
	dir := t.TempDir()
	b := newTestBackend(t, Config{Dir: dir})
	if got, want := b.AttemptDir(42, 3), filepath.Join(dir, "42.3"); got != want {
		t.Errorf("AttemptDir = %q, want %q", got, want)
	}
	out, errp := b.LogPath(42, 3, "stdout"), b.LogPath(42, 3, "stderr")
	if filepath.Dir(out) != filepath.Join(dir, "42.3") || filepath.Dir(errp) != filepath.Join(dir, "42.3") {
		t.Errorf("log paths %q, %q are not in the attempt dir", out, errp)
	}
	if out == errp {
		t.Errorf("stdout and stderr share %q", out)
	}
}
