package slurm

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hpcml/hpcml/internal/task"
)

func TestArrayTaskDir(t *testing.T) {
	root := t.TempDir()
	sub := filepath.Join(root, arraysDir, "a7.8.1")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]string{
		"0":  "8.1",
		"5":  "13.1",
		"9":  "../x",
		"10": "a/b",
		"11": "..",
		"12": "/etc",
		"13": "x\x00y",
		"14": "../../../../etc/passwd",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, tasksFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, index string
		want        string // "" = an error
		errHas      string
	}{
		{"first task", "0", filepath.Join(root, "8.1"), ""},
		{"other task", "5", filepath.Join(root, "13.1"), ""},
		{"no task id", "", "", "SLURM_ARRAY_TASK_ID"},
		{"index not in the map", "3", "", "array task 3 is not in"},
		{"index not a number", "x", "", "not in"},
		{"parent escape", "9", "", "not in"},
		{"subdir", "10", "", "not in"},
		{"dot-dot", "11", "", "not in"},
		{"absolute", "12", "", "not in"},
		{"NUL", "13", "", "not in"},
		{"deep escape", "14", "", "not in"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := arrayTaskDir(sub, tt.index)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("arrayTaskDir(%q) = %q, want an error", tt.index, got)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("error %q does not say %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("arrayTaskDir(%q): %v", tt.index, err)
			}
			if got != tt.want {
				t.Errorf("arrayTaskDir(%q) = %q, want %q", tt.index, got, tt.want)
			}
			// A sibling of the arrays dir, right under the jobs dir.
			if filepath.Dir(got) != filepath.Dir(filepath.Join(root, arraysDir)) {
				t.Errorf("%q is not a sibling of the arrays dir", got)
			}
		})
	}
}

func TestArrayTaskDirBadMap(t *testing.T) {
	root := t.TempDir()
	missing := filepath.Join(root, arraysDir, "none")
	if _, err := arrayTaskDir(missing, "0"); err == nil || !strings.Contains(err.Error(), "read array task map") {
		t.Errorf("missing task map: err = %v, want a read error", err)
	}
	bad := filepath.Join(root, arraysDir, "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, tasksFile), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := arrayTaskDir(bad, "0"); err == nil || !strings.Contains(err.Error(), "read array task map") {
		t.Errorf("malformed task map: err = %v, want a read error", err)
	}
}

func TestNodeEnv(t *testing.T) {
	in := []string{"PATH=/bin", "HPCML_TOKEN=secret", "SLURM_JOB_ID=12", "HPCML_RANK=0", "XHPCML_KEEP=1", "HOME=/h"}
	want := []string{"PATH=/bin", "SLURM_JOB_ID=12", "XHPCML_KEEP=1", "HOME=/h"}
	if got := nodeEnv(in); !reflect.DeepEqual(got, want) {
		t.Errorf("nodeEnv = %q, want %q", got, want)
	}
	if got := nodeEnv(nil); len(got) != 0 {
		t.Errorf("nodeEnv(nil) = %q", got)
	}
}

func TestRunWrapperUsage(t *testing.T) {
	// A lone "--array" is left out: RunWrapper reads it as the DIR.
	for _, args := range [][]string{nil, {"a", "b"}, {"--array", "a", "b"}, {"--arr", "a"}} {
		if code := RunWrapper(args, nil); code != 2 {
			t.Errorf("RunWrapper(%q) = %d, want 2 (usage)", args, code)
		}
	}
}

// The batch script ends with the command's status — Slurm's afterok and
// afternotok read it — whatever hpcml's journal says beside it.
func TestRunWrapperExitStatus(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"kill -KILL $$", 128 + 9},
	} {
		dir := t.TempDir()
		work := filepath.Join(dir, task.WorkDir)
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		l := task.Launch{Argv: []string{"/bin/sh", "-c", c.script}, Env: []string{"PATH=/usr/bin:/bin"}, WorkDir: work}
		data, _ := json.Marshal(l)
		if err := os.WriteFile(filepath.Join(dir, launchFile), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := RunWrapper([]string{dir}, log); got != c.want {
			t.Errorf("%q: wrapper exit status %d, want %d", c.script, got, c.want)
		}
	}
}
