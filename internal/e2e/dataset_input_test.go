package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/lazyfs"
)

// TestDatasetInput stages a dataset version into jobs through the node's
// content-addressed cache: the first job fetches (misses), the next one is
// served from the cache (hits, in /metrics), the version is pinned at
// submission, and an object whose source changed is refused.
func TestDatasetInput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	src := t.TempDir()
	for name, content := range map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta\n"} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.cli("dataset", "create", "corpus", src)

	spec := sh("cat data/a.txt data/sub/b.txt")
	spec.Inputs = []job.Input{{URL: "dataset://corpus", Path: "data"}}
	first := s.wait(s.submit(spec), 30*time.Second)
	expectState(t, first, job.Succeeded)
	if got := s.logs(id(first), client.LogOptions{}); got != "alpha\nbeta\n" {
		t.Fatalf("job read %q", got)
	}
	// Pinned: the spec names the version it was given.
	if u := first.Spec.Inputs[0].URL; u != "dataset://corpus@1" || first.Spec.Inputs[0].ManifestKey == "" {
		t.Fatalf("input after submission %+v, want dataset://corpus@1 with its manifest", first.Spec.Inputs[0])
	}
	second := s.wait(s.submit(spec), 30*time.Second)
	expectState(t, second, job.Succeeded)
	if hits, misses := cacheMetrics(t, s); hits < 2 || misses != 2 {
		t.Fatalf("cache hits %d misses %d; want the second job's 2 objects from the cache, 2 fetched once", hits, misses)
	}

	// A source changed behind the manifest (same size, other bytes) is
	// caught when fetched.
	tamper := t.TempDir()
	os.WriteFile(filepath.Join(tamper, "x.txt"), []byte("original\n"), 0o644)
	s.cli("dataset", "create", "tamper", tamper)
	os.WriteFile(filepath.Join(tamper, "x.txt"), []byte("ORIGINAL\n"), 0o644)
	bad := sh("cat data/x.txt")
	bad.Inputs = []job.Input{{URL: "dataset://tamper@1", Path: "data"}}
	got := s.wait(s.submit(bad), 30*time.Second)
	expectState(t, got, job.Failed)
	if !strings.Contains(got.Reason, "does not match its manifest") {
		t.Fatalf("reason %q", got.Reason)
	}

	// Bad references are refused at submission.
	for _, u := range []string{"dataset://nope", "dataset://corpus@7", "dataset://bad name"} {
		sp := sh("true")
		sp.Inputs = []job.Input{{URL: u, Path: "d"}}
		_, err := s.Client.SubmitJob(ctxFor(t, 5*time.Second), &sp)
		if ae := apiError(t, err, 400); ae.Field != "inputs[0].url" {
			t.Fatalf("%s: field %q", u, ae.Field)
		}
	}
}

func cacheMetrics(t *testing.T, s *server) (hits, misses int) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	read := func(name string) int {
		m := regexp.MustCompile(`(?m)^` + name + ` (\d+)`).FindSubmatch(b)
		if m == nil {
			t.Fatalf("no %s in /metrics", name)
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	return read("hpcml_dataset_cache_hits_total"), read("hpcml_dataset_cache_misses_total")
}

// TestDatasetLazyInput mounts a dataset version for a job (--lazy-input):
// the job lists and stats every file at once, reads one, and only that
// one is fetched into the node's cache; the mount is read-only and gone
// when the job ends.
func TestDatasetLazyInput(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("lazy inputs need root (mount(2)) and /dev/fuse in CI")
		}
		t.Skip("needs root and /dev/fuse")
	}
	t.Parallel()
	s := startServer(t)
	src := t.TempDir()
	for name, size := range map[string]int{"big.bin": 3 << 20, "a.txt": 6, "sub/b.txt": 5} {
		p := filepath.Join(src, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat("x", size-1)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.cli("dataset", "create", "lazyset", src)

	script := `find data -type f | sort; stat -c %s data/big.bin; cat data/sub/b.txt; ` +
		`if echo y > data/sub/b.txt 2>/dev/null; then echo WROTE; fi`
	cmd := exec.Command(binary, "job", "submit", "--server", s.URL, "--wait", "-o", "json",
		"--lazy-input", "dataset://lazyset=data", "--shell", "--", script)
	cmd.Env = append(os.Environ(), "HPCML_TOKEN="+s.Token)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("job submit: %v: %s", err, out)
	}
	var j *job.Job
	if err := json.Unmarshal(out, &j); err != nil {
		t.Fatalf("job submit -o json: %v: %s", err, out)
	}
	expectState(t, j, job.Succeeded)
	if in := j.Spec.Inputs[0]; in.Mode != job.InputLazy || in.URL != "dataset://lazyset@1" {
		t.Fatalf("input %+v", in)
	}
	want := "data/a.txt\ndata/big.bin\ndata/sub/b.txt\n3145728\nxxxx\n"
	if got := s.logs(id(j), client.LogOptions{}); got != want {
		t.Fatalf("job printed %q, want %q", got, want)
	}
	// Listing and the size came from the manifest; only b.txt was read.
	if hits, misses := cacheMetrics(t, s); hits != 0 || misses != 1 {
		t.Fatalf("cache hits %d misses %d; want the one file read fetched, nothing else", hits, misses)
	}
	if mounts, err := lazyfs.MountsUnder(s.DataDir); err != nil || len(mounts) != 0 {
		t.Fatalf("mounts left under the data dir: %v %v", mounts, err)
	}

	// Lazy loading needs a manifest: a plain URL is refused.
	sp := sh("true")
	sp.Inputs = []job.Input{{URL: "s3://bucket/x/", Path: "d", Mode: job.InputLazy}}
	_, err = s.Client.SubmitJob(ctxFor(t, 5*time.Second), &sp)
	if ae := apiError(t, err, 400); ae.Field != "inputs[0].mode" {
		t.Fatalf("field %q", ae.Field)
	}
}
