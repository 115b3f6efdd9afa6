package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// TestJobOutputs: `hpcml job output` and GET /api/v1/jobs/{id}/outputs/...
// read what a job stored in the server's storage — a file under an output
// directory, a file output sent to a prefix — only once the job has ended,
// and only what this job wrote there.
func TestJobOutputs(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	spec := sh(`mkdir -p out/sub && echo deep > out/sub/a.txt && echo note > note.txt && sleep 1`)
	spec.Outputs = []job.Output{{Path: "out", URL: "results/r1/"}, {Path: "note.txt", URL: "results/notes/"}}
	j := s.submit(spec)
	s.waitRunning(j)
	if code, _, body := s.raw("GET", "/api/v1/jobs/"+id(j)+"/outputs/note.txt", s.Token, nil); code != http.StatusConflict {
		t.Errorf("while it runs: %d %s, want 409", code, body)
	}
	expectState(t, s.wait(j, 30*time.Second), job.Succeeded)

	if got := s.cli("job", "output", id(j), "out/sub/a.txt"); got != "deep\n" {
		t.Errorf("out/sub/a.txt: %q", got)
	}
	if got := s.cli("job", "output", id(j), "note.txt"); got != "note\n" {
		t.Errorf("note.txt: %q", got)
	}
	for path, status := range map[string]int{
		"out/..%2F..%2Fnotes%2Fnote.txt": http.StatusBadRequest, // a way out of the directory
		"out/missing.txt":                http.StatusNotFound,
		"elsewhere.txt":                  http.StatusNotFound,
	} {
		if code, _, body := s.raw("GET", "/api/v1/jobs/"+id(j)+"/outputs/"+path, s.Token, nil); code != status {
			t.Errorf("%s: %d %s, want %d", path, code, body, status)
		}
	}

	// An object older than the job's run at its output's place is not
	// its output (here: made to look a day old).
	stored := filepath.Join(s.DataDir, "objects", "results", "notes", "note.txt")
	old := time.Now().Add(-24 * time.Hour)
	if err := os.Chtimes(stored, old, old); err != nil {
		t.Fatal(err)
	}
	code, _, body := s.raw("GET", "/api/v1/jobs/"+id(j)+"/outputs/note.txt", s.Token, nil)
	if code != http.StatusNotFound || !strings.Contains(string(body), "older than the job") {
		t.Errorf("an older object: %d %s, want 404", code, body)
	}

	// An output URL that is the whole storage is refused at submission.
	bad := sh("true")
	bad.Outputs = []job.Output{{Path: "x", URL: "./"}}
	raw, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	code, _, body = s.raw("POST", "/api/v1/jobs", s.Token, raw)
	if code != http.StatusBadRequest || !strings.Contains(string(body), "whole of the server's storage") {
		t.Errorf("an output to the whole storage: %d %s, want 400", code, body)
	}
}
