package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/transfer"
)

// TestDataSyncSubmit runs `hpcml data sync --submit` as a job on the
// server: the job calls the node's own hpcml, reads a local tree, writes
// to a real S3 server with the server's credentials, logs its progress
// and stores its report in the server's storage.
func TestDataSyncSubmit(t *testing.T) {
	t.Parallel()
	const access, secret, bucket = "hpcmlsub", "hpcmlsubsecret", "hpcml-submit"
	endpoint := startS3(t, access, secret, bucket)
	s := startServerEnv(t, []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret})

	src := t.TempDir()
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d.txt", i)), []byte(strings.Repeat("x", i*100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dst := fmt.Sprintf("s3://%s/copy/?endpoint=%s&region=us-east-1&use_path_style=true", bucket, endpoint)
	cmd := exec.Command(binary, "data", "sync", src, dst, "--submit", "--wait", "--exclude", "f1*", "--server", s.URL)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("data sync --submit: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "SUCCEEDED") {
		t.Fatalf("output %q", out)
	}
	jobs, err := s.Client.ListJobs(ctxFor(t, 5*time.Second), client.ListOptions{})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs %v, %v", jobs, err)
	}
	j := jobs[0]
	expectState(t, j, job.Succeeded)
	if logs := s.logs(id(j), client.LogOptions{}); !strings.Contains(logs, "Transferred 10 files") {
		t.Fatalf("job log %q", logs)
	}

	// The destination holds the 10 files not excluded, and verifies.
	ls := exec.Command(binary, "data", "ls", dst, "-o", "json")
	ls.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	lsOut, err := ls.Output()
	var objs []transfer.Object
	if err != nil || json.Unmarshal(lsOut, &objs) != nil || len(objs) != 10 {
		t.Fatalf("destination listing %s (%v), want 10 objects", lsOut, err)
	}
	// The report went to the server's storage with the job's output.
	var reports []string
	filepath.Walk(filepath.Join(s.DataDir, "objects", "transfers"), func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "report.json" {
			reports = append(reports, p)
		}
		return nil
	})
	if len(reports) != 1 {
		t.Fatalf("reports in storage: %v", reports)
	}
	var rep transfer.Report
	b, _ := os.ReadFile(reports[0])
	if err := json.Unmarshal(b, &rep); err != nil || rep.Result != "SUCCESS" || rep.Totals.FilesTransferred != 10 {
		t.Fatalf("report %+v (%v)", rep.Totals, err)
	}

	// `hpcml job output` reads it through the API, to stdout or whole
	// into a file; what the job did not declare is not served.
	if got := s.cli("job", "output", id(j), "report.json"); got != string(b) {
		t.Fatalf("job output report.json printed %q, want the stored report", got)
	}
	saved := filepath.Join(t.TempDir(), "report.json")
	s.cli("job", "output", id(j), "report.json", "--to", saved)
	if got, err := os.ReadFile(saved); err != nil || string(got) != string(b) {
		t.Fatalf("job output --to wrote %q (%v)", got, err)
	}
	for path, status := range map[string]int{"other.json": http.StatusNotFound, "report.json/x": http.StatusNotFound, "..%2Fobjects%2Fx": http.StatusBadRequest} {
		code, _, body := s.raw("GET", "/api/v1/jobs/"+id(j)+"/outputs/"+path, s.Token, nil)
		if code != status {
			t.Errorf("output %s: %d %s, want %d", path, code, body, status)
		}
	}
	if code, _, _ := s.raw("GET", "/api/v1/jobs/"+id(j)+"/outputs/report.json", "", nil); code != http.StatusUnauthorized {
		t.Errorf("output without the token: %d, want 401", code)
	}
}
