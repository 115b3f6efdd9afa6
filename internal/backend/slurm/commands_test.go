package slurm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/backend"
)

func TestUnreachable(t *testing.T) {
	tests := []struct {
		msg  string
		want bool
	}{
		{"Batch job submission failed: Unable to contact slurm controller (connect failure)", true},
		{"sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)", true},
		{"slurm_load_jobs error: Unable to contact slurm controller (connect failure)", true},
		{"Socket timed out on send/recv operation", true},
		{"squeue: error: slurm_receive_msg: Socket timed out on send/recv operation", true},
		{"error: Connection refused", true},
		{"Transport endpoint is not connected", true},
		{"slurm_load_partitions: Zero Bytes were transmitted or received", true},
		{"Communication connection failure", true},
		{"Invalid partition name specified", false},
		{"sbatch: error: Batch job submission failed: Invalid partition name specified", false},
		{"Batch job submission failed: Invalid account or account/partition combination specified", false},
		{"Batch job submission failed: Requested node configuration is not available", false},
		{"Invalid job id specified", false},
		{"Partition gpu not found", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := unreachable(tt.msg); got != tt.want {
			t.Errorf("unreachable(%q) = %v, want %v", tt.msg, got, tt.want)
		}
	}
}

func TestLastLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified",
			"Batch job submission failed: Invalid partition name specified"},
		{"sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n",
			"Batch job submission failed: Invalid partition name specified"},
		{"Invalid partition name specified", "Invalid partition name specified"},
		{"scancel: error: Invalid job id specified", "Invalid job id specified"},
		{"squeue: error: Invalid job id specified", "Invalid job id specified"},
		{"scontrol: error: Invalid job id specified", "Invalid job id specified"},
		{"error: Invalid account", "Invalid account"},
		{"Partition nope not found", "Partition nope not found"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := lastLine(tt.in); got != tt.want {
			t.Errorf("lastLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFirstLine(t *testing.T) {
	for in, want := range map[string]string{
		"":                  "",
		"one":               "one",
		"one\ntwo":          "one",
		"JobId=1 A=b\nnext": "JobId=1 A=b",
	} {
		if got := firstLine(in); got != want {
			t.Errorf("firstLine(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeCommand writes an executable shell script named name into dir.
func fakeCommand(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestRunMissingProgram(t *testing.T) {
	c := &commands{timeout: 5 * time.Second}
	_, err := c.run(context.Background(), nil, "hpcml-test-no-such-slurm-command")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("run of a program not on PATH: err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "not installed") {
		t.Errorf("err = %q, want it to say the command is not installed", err)
	}
}

func TestRun(t *testing.T) {
	bin := t.TempDir()
	fakeCommand(t, bin, "sbatch", `case "$1" in
down) echo "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)" >&2; exit 1;;
timeout) echo "sbatch: error: Socket timed out on send/recv operation" >&2; exit 1;;
refuse) echo "sbatch: error: Invalid partition name specified" >&2; exit 1;;
refuse2) printf 'sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n' >&2; exit 1;;
stdout) echo "some complaint on stdout"; exit 3;;
silent) exit 4;;
ok) echo "4242;cluster";;
stdin) cat;;
args) printf '%s|' "$@";;
env) printf '%s' "$HPCML_TEST_VAR";;
esac
`)
	c := &commands{bin: bin, timeout: 10 * time.Second, env: []string{"HPCML_TEST_VAR=from-env"}}
	ctx := context.Background()

	t.Run("controller down", func(t *testing.T) {
		_, err := c.run(ctx, nil, "sbatch", "down")
		if !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		var ce *commandError
		if errors.As(err, &ce) {
			t.Errorf("err %v is also a commandError", err)
		}
		if !strings.Contains(err.Error(), "Unable to contact slurm controller (connect failure)") {
			t.Errorf("err = %q, want Slurm's message in it", err)
		}
	})
	t.Run("socket timeout", func(t *testing.T) {
		if _, err := c.run(ctx, nil, "sbatch", "timeout"); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	refusals := []struct{ arg, want string }{
		{"refuse", "sbatch: Invalid partition name specified"},
		{"refuse2", "sbatch: Batch job submission failed: Invalid partition name specified"},
		{"stdout", "sbatch: some complaint on stdout"},
		{"silent", "sbatch: exit status 4"},
	}
	for _, tt := range refusals {
		t.Run("refusal "+tt.arg, func(t *testing.T) {
			_, err := c.run(ctx, nil, "sbatch", tt.arg)
			if errors.Is(err, backend.ErrUnavailable) {
				t.Fatalf("err = %v is ErrUnavailable, want a refusal", err)
			}
			var ce *commandError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %#v, want a *commandError", err)
			}
			if got := ce.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() == 0 {
				t.Errorf("err does not unwrap to the command's exit status: %v", err)
			}
		})
	}
	t.Run("refusal keeps the whole message", func(t *testing.T) {
		_, err := c.run(ctx, nil, "sbatch", "refuse2")
		var ce *commandError
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(ce.msg, "invalid partition specified: nope") {
			t.Errorf("msg = %q, want both lines", ce.msg)
		}
	})
	t.Run("stdout", func(t *testing.T) {
		out, err := c.run(ctx, nil, "sbatch", "ok")
		if err != nil || string(out) != "4242;cluster\n" {
			t.Errorf("run = %q, %v", out, err)
		}
	})
	t.Run("stdin", func(t *testing.T) {
		script := batchScript("/usr/bin/true", "/x/1.1", false)
		out, err := c.run(ctx, script, "sbatch", "stdin")
		if err != nil || string(out) != string(script) {
			t.Errorf("run = %q, %v; want the script back", out, err)
		}
	})
	t.Run("arguments are argv, not shell", func(t *testing.T) {
		out, err := c.run(ctx, nil, "sbatch", "args", "--job-name=a b; $(id) 'q'", "--comment=x")
		if want := "args|--job-name=a b; $(id) 'q'|--comment=x|"; err != nil || string(out) != want {
			t.Errorf("run = %q, %v; want %q", out, err, want)
		}
	})
	t.Run("environment", func(t *testing.T) {
		out, err := c.run(ctx, nil, "sbatch", "env")
		if err != nil || string(out) != "from-env" {
			t.Errorf("run = %q, %v; want the configured environment", out, err)
		}
	})
}

func TestRunTimeout(t *testing.T) {
	bin := t.TempDir()
	// exec: the shell is replaced, so the kill reaches the sleeper.
	fakeCommand(t, bin, "squeue", "exec sleep 30\n")
	c := &commands{bin: bin, timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.run(context.Background(), nil, "squeue")
	if !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "did not answer within") {
		t.Errorf("err = %q, want it to say the command timed out", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("run took %v for a 200ms timeout", d)
	}
}

func TestSbatchParsesJobID(t *testing.T) {
	bin := t.TempDir()
	fakeCommand(t, bin, "sbatch", `case "$HPCML_TEST_ANSWER" in
plain) echo 4242;;
cluster) echo "4243;cluster1";;
words) echo "Submitted batch job 12";;
empty) ;;
esac
`)
	for _, tt := range []struct {
		answer, want string
		ok           bool
	}{
		{"plain", "4242", true},
		{"cluster", "4243", true},
		{"words", "", false},
		{"empty", "", false},
	} {
		b := newTestBackend(t, Config{Bin: bin, Env: []string{"HPCML_TEST_ANSWER=" + tt.answer}})
		id, err := b.sbatch(context.Background(), []byte("#!/bin/sh\n"), []string{"--parsable"})
		if tt.ok && (err != nil || id != tt.want) {
			t.Errorf("%s: sbatch = %q, %v; want %q", tt.answer, id, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("%s: sbatch = %q, want an error", tt.answer, id)
		}
	}
}
