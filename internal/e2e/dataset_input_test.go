package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/client"
	"github.com/hpcml/hpcml/internal/job"
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
