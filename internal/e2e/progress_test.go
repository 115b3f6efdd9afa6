package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/job"
)

// getJSON is `hpcml job get ID -o json`.
func (s *server) getJSON(jid string) *job.Job {
	s.t.Helper()
	out := s.cli("job", "get", jid, "-o", "json")
	var j job.Job
	if err := json.Unmarshal([]byte(out), &j); err != nil {
		s.t.Fatalf("job get -o json: %v\n%s", err, out)
	}
	return &j
}

// TestJobProgress: a job reports its progress by replacing the file
// HPCML_PROGRESS_FILE names; while it runs, job get (table and JSON),
// the API and the dashboard show it. A report gone bad is left out
// without failing anything, and an ended job shows none.
func TestJobProgress(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	j := s.submit(sh(`printf '{"done":3,"total":10,"unit":"steps","message":"step 3"}' > "$HPCML_PROGRESS_FILE.tmp" && mv "$HPCML_PROGRESS_FILE.tmp" "$HPCML_PROGRESS_FILE"; exec sleep 60`))
	s.waitFor(id(j), 15*time.Second, "RUNNING and reporting progress", func(j *job.Job) bool {
		return j.State == job.Running && j.Progress != nil
	})

	got := s.getJSON(id(j))
	if got.State != job.Running || got.Progress == nil {
		t.Fatalf("job get -o json: %s, progress %+v", got.State, got.Progress)
	}
	if p := got.Progress; p.Done != 3 || p.Total != 10 || p.Unit != "steps" || p.Message != "step 3" || p.UpdatedAt.IsZero() {
		t.Errorf("progress %+v", *p)
	}
	if out := s.cli("job", "get", id(j)); !strings.Contains(out, "30% · 3 of 10 steps · step 3") {
		t.Errorf("job get shows no progress line:\n%s", out)
	}
	// The dashboard's job page draws the bar.
	code, _, page := s.raw("GET", "/jobs/"+id(j), s.Token, nil)
	if code != http.StatusOK || !bytes.Contains(page, []byte(`role="progressbar"`)) || !bytes.Contains(page, []byte(`aria-valuenow="30"`)) {
		t.Errorf("job page (%d) has no progress bar at 30%%", code)
	}

	// A bad report (here, over the size limit) is left out; job get still works.
	path := filepath.Join(s.jobsDir(), fmt.Sprintf("%d.%d", j.ID, got.Attempt), "progress.json")
	if err := os.WriteFile(path+".tmp", bytes.Repeat([]byte(" "), job.MaxProgressBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
	if got := s.getJSON(id(j)); got.State != job.Running || got.Progress != nil {
		t.Errorf("with a bad report: %s, progress %+v", got.State, got.Progress)
	}
	code, _, body := s.raw("GET", "/api/v1/jobs/"+id(j), s.Token, nil)
	if code != http.StatusOK || bytes.Contains(body, []byte(`"progress"`)) {
		t.Errorf("GET /api/v1/jobs/%s with a bad report: %d %s", id(j), code, body)
	}

	// An ended job reports nothing, even with its file still there.
	os.WriteFile(path, []byte(`{"done":5,"total":10}`), 0o644)
	if _, err := s.Client.CancelJob(ctxFor(t, 5*time.Second), id(j)); err != nil {
		t.Fatal(err)
	}
	s.wait(j, 20*time.Second)
	if got := s.getJSON(id(j)); got.State != job.Cancelled || got.Progress != nil {
		t.Errorf("after the end: %s, progress %+v", got.State, got.Progress)
	}
}

// TestDataSyncSubmitProgress: `data sync --submit` held back by
// --bwlimit shows, while it runs, how far it has come in job get.
func TestDataSyncSubmitProgress(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	const files, size = 6, 1 << 20
	src, dst := t.TempDir(), t.TempDir()
	for i := range files {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("part-%d.bin", i)), bytes.Repeat([]byte{byte(i)}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var sub job.Job
	if out := s.cli("data", "sync", src+"/", dst+"/", "--submit", "--bwlimit", "1M", "-o", "json"); json.Unmarshal([]byte(out), &sub) != nil || sub.ID == 0 {
		t.Fatalf("data sync --submit -o json: %s", out)
	}

	// Poll job get until it shows bytes moved, or the job ends first.
	var seen *job.Progress
	deadline := time.Now().Add(60 * time.Second)
	for seen == nil && time.Now().Before(deadline) {
		j := s.getJSON(id(&sub))
		if j.State.Terminal() {
			t.Fatalf("job %s ended %s (%s) before job get showed its progress", id(&sub), j.State, j.Reason)
		}
		if p := j.Progress; j.State == job.Running && p != nil && p.Done > 0 {
			seen = p
		}
		time.Sleep(100 * time.Millisecond)
	}
	if seen == nil {
		t.Fatalf("job get never showed progress of job %s", id(&sub))
	}
	if seen.Unit != job.UnitBytes || seen.Total != files*size || seen.FilesTotal != files || seen.Done > seen.Total || seen.FilesDone > files {
		t.Errorf("progress %+v, want bytes of %d in %d files", *seen, files*size, files)
	}
	// The dashboard's job page draws the transfer's bar and amounts (the
	// bar's live refresh in a browser: dashboard's TestBrowser).
	code, _, page := s.raw("GET", "/jobs/"+id(&sub), s.Token, nil)
	for _, want := range []string{`role="progressbar"`, "of 6 MiB", "of 6 files"} {
		if code != http.StatusOK || !bytes.Contains(page, []byte(want)) {
			t.Errorf("the transfer job's page (%d) lacks %q", code, want)
		}
	}

	final := s.waitID(id(&sub), 2*time.Minute)
	expectState(t, final, job.Succeeded)
	if final.Progress != nil {
		t.Errorf("the ended job shows progress %+v", final.Progress)
	}
	entries, _ := os.ReadDir(dst)
	if len(entries) != files {
		t.Errorf("destination holds %d files, want %d", len(entries), files)
	}
}
