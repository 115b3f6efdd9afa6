package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/batchtransform"
	"github.com/hpcml/hpcml/internal/job"
	"github.com/hpcml/hpcml/internal/nn"
	"github.com/hpcml/hpcml/internal/serve"
	"github.com/hpcml/hpcml/internal/serve/servetest"
)

// scoringModel exports an MLP of 4 features → 3 probabilities with
// seeded weights; hidden sets its width (wider is slower).
func scoringModel(t *testing.T, hidden int) []byte {
	t.Helper()
	data, err := servetest.MLP(1, 0.3, "softmax", 4, hidden, hidden, 3)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// registerScoring registers the model's bytes as the next version of name.
func registerScoring(t *testing.T, s *server, name string, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.cli("model", "register", name, "--artifact", path)
}

// scoringRows writes files CSV files of rows each (id,a,b,c,d) under a
// new directory; bad maps a global row number to a broken line for it.
// It returns the directory and each file's rows (nil for a broken one).
func scoringRows(t *testing.T, files, rows int, bad map[int]string) (string, [][][]float32) {
	t.Helper()
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, 8))
	all := make([][][]float32, files)
	k := 0
	for f := range files {
		var b strings.Builder
		b.WriteString("id,a,b,c,d\n")
		for i := range rows {
			feats := make([]float32, 4)
			for j := range feats {
				feats[j] = float32(math.Round(rng.NormFloat64()*1000) / 1000)
			}
			if line, ok := bad[k]; ok {
				b.WriteString(line + "\n")
				all[f] = append(all[f], nil)
			} else {
				fmt.Fprintf(&b, "f%d-%d,%g,%g,%g,%g\n", f, i, feats[0], feats[1], feats[2], feats[3])
				all[f] = append(all[f], feats)
			}
			k++
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("rows-%d.csv", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, all
}

// checkScored checks every output file row by row against the model run
// in this process on the same rows.
func checkScored(t *testing.T, model []byte, out string, rows [][][]float32) {
	t.Helper()
	m, err := serve.LoadONNX(model, "direct", "1")
	if err != nil {
		t.Fatal(err)
	}
	in, outName := m.Info().Inputs[0].Name, m.Info().Outputs[0].Name
	for f, fileRows := range rows {
		lines := readFile(t, filepath.Join(out, fmt.Sprintf("rows-%d.csv.out", f)))
		got := strings.Split(strings.TrimSuffix(lines, "\n"), "\n")
		if got[0] != "id,output_0,output_1,output_2" {
			t.Fatalf("file %d: header %q", f, got[0])
		}
		got = got[1:]
		// The file's rows through the model directly, 1,000 at a time.
		var flat []float32
		direct := func(i int) []float32 {
			for len(flat) < 3*(i+1) {
				x := &nn.Tensor{Shape: []int{0, 4}}
				for _, feats := range fileRows[len(flat)/3 : min(len(flat)/3+1000, len(fileRows))] {
					if feats == nil {
						feats = make([]float32, 4) // a broken row: a placeholder
					}
					x.Data = append(x.Data, feats...)
					x.Shape[0]++
				}
				outs, err := m.Infer(context.Background(), map[string]*nn.Tensor{in: x})
				if err != nil {
					t.Fatal(err)
				}
				flat = append(flat, outs[outName].Data...)
			}
			return flat[3*i:]
		}
		n := 0
		for i, feats := range fileRows {
			if feats == nil {
				continue
			}
			if n >= len(got) {
				t.Fatalf("file %d: %d output rows, fewer than the good input rows", f, len(got))
			}
			fields := strings.Split(got[n], ",")
			if fields[0] != fmt.Sprintf("f%d-%d", f, i) || len(fields) != 4 {
				t.Fatalf("file %d output row %d: %q, want the row of id f%d-%d", f, n, got[n], f, i)
			}
			for k, want := range direct(i)[:3] {
				v, err := strconv.ParseFloat(fields[1+k], 32)
				if err != nil || math.Abs(v-float64(want)) > 1e-5 {
					t.Fatalf("file %d row %s value %d: %s, direct inference %v", f, fields[0], k, fields[1+k], want)
				}
			}
			n++
		}
		if n != len(got) {
			t.Fatalf("file %d: %d output rows, %d good input rows", f, len(got), n)
		}
	}
}

// TestBatchTransform runs `hpcml transform` through a real server: the
// model by alias from the registry, two worker jobs and a commit job on
// the local backend, 30,000 rows in three files with broken records;
// every output row checked against direct inference, the broken records
// in the error file with their lines; a rerun is "already complete"; a
// missing input and another plan at the same output are refused before
// any job is submitted.
func TestBatchTransform(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	model := scoringModel(t, 16)
	registerScoring(t, s, "scorer", model)
	if _, err := s.Client.SetModelAlias(t.Context(), "scorer", "production", 1); err != nil {
		t.Fatal(err)
	}
	bad := map[int]string{5: "f0-5,1,2,x,4", 12_345: "f1-2345,1,2,3", 29_999: "f2-9999,,1,2,3"}
	in, rows := scoringRows(t, 3, 10_000, bad)
	out := filepath.Join(t.TempDir(), "scored")
	args := []string{"transform", "--model", "scorer:production", "--input", in, "--output", out, "--workers", "2",
		"--id-column", "id", "--join", "id", "--part-size", "64KB", "--batch-size", "100", "-o", "json"}
	stdout, stderr, err := hpcml(s, args...)
	if err != nil {
		t.Fatalf("transform: %v\n%s", err, stderr)
	}
	var rep batchtransform.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("transform -o json: %v\n%s", err, stdout)
	}
	if rep.Model != "scorer:1" || rep.Records != 30_000-3 || rep.Failures != 3 || rep.Files != 3 || rep.Parts < 6 || len(rep.Workers) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if rep.Workers[0].Records == 0 || rep.Workers[1].Records == 0 || rep.Workers[0].Job == "" || rep.RowsPerSecond <= 0 {
		t.Fatalf("workers: %+v", rep.Workers)
	}
	if !strings.Contains(stderr, "Transform ") {
		t.Fatalf("no submission line on stderr: %q", stderr)
	}
	checkScored(t, model, out, rows)
	var errs []batchtransform.ErrorRecord
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(out, batchtransform.ErrorsFile))), "\n") {
		var e batchtransform.ErrorRecord
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		errs = append(errs, e)
	}
	want := []batchtransform.ErrorRecord{{File: "rows-0.csv", Record: 7}, {File: "rows-1.csv", Record: 2347}, {File: "rows-2.csv", Record: 10_001}}
	if len(errs) != 3 {
		t.Fatalf("errors file: %+v", errs)
	}
	for i, w := range want {
		if errs[i].File != w.File || errs[i].Record != w.Record || errs[i].Reason == "" {
			t.Fatalf("error %d: %+v, want %s line %d", i, errs[i], w.File, w.Record)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "_hpcml")); !os.IsNotExist(err) {
		t.Fatalf("_hpcml/ left after the commit: %v", err)
	}
	var listed []struct {
		ID      int64  `json:"id"`
		State   string `json:"state"`
		Model   string `json:"model"`
		Workers int    `json:"workers"`
	}
	if err := json.Unmarshal([]byte(s.cli("transform", "list", "-o", "json")), &listed); err != nil || len(listed) != 1 ||
		listed[0].Model != "scorer:1" || listed[0].Workers != 2 || listed[0].State != "SUCCEEDED" {
		t.Fatalf("transform list: %+v %v", listed, err)
	}
	if got := s.cli("transform", "get", strconv.FormatInt(listed[0].ID, 10)); !strings.Contains(got, "29,997 scored, 3 failed") {
		t.Fatalf("transform get:\n%s", got)
	}
	jobs := s.jobCount()

	// The same command again: already complete, nothing submitted.
	stdout, stderr, err = hpcml(s, args...)
	if err != nil || !strings.Contains(stderr, "already complete") || s.jobCount() != jobs {
		t.Fatalf("rerun: %v\n%s\n%s", err, stderr, stdout)
	}
	// Another plan at the same output: refused, naming --overwrite.
	_, stderr, err = hpcml(s, "transform", "--model", "scorer:1", "--input", in, "--output", out, "--id-column", "id", "--join", "none")
	if err == nil || !strings.Contains(stderr, "--overwrite") || s.jobCount() != jobs {
		t.Fatalf("another plan: %v\n%s", err, stderr)
	}
	// A missing input: a non-zero exit naming it, nothing submitted.
	missing := filepath.Join(t.TempDir(), "nope")
	_, stderr, err = hpcml(s, "transform", "--model", "scorer", "--input", missing, "--output", t.TempDir())
	if err == nil || !strings.Contains(stderr, missing) || s.jobCount() != jobs {
		t.Fatalf("missing input: %v\n%s", err, stderr)
	}
	// An unknown queue: refused at submission, the plan removed.
	qout := filepath.Join(t.TempDir(), "q")
	_, stderr, err = hpcml(s, "transform", "--model", "scorer", "--input", in, "--output", qout, "--id-column", "id", "--queue", "nosuch")
	if _, serr := os.Stat(qout); err == nil || !strings.Contains(stderr, "nosuch") || !os.IsNotExist(serr) || s.jobCount() != jobs {
		t.Fatalf("unknown queue: %v (output: %v)\n%s", err, serr, stderr)
	}
	// An unknown model: the same.
	_, stderr, err = hpcml(s, "transform", "--model", "nosuch", "--input", in, "--output", t.TempDir())
	if err == nil || !strings.Contains(stderr, "nosuch") || s.jobCount() != jobs {
		t.Fatalf("unknown model: %v\n%s", err, stderr)
	}
}

// TestBatchTransformWorkerKilled kill -9s the worker once it has scored
// a few parts: the job's retry reruns it, the rerun skips the parts the
// killed attempt finished (the report counts parts by the attempt that
// scored them), and the output is complete and right.
func TestBatchTransformWorkerKilled(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	model := scoringModel(t, 512) // slow enough to be caught mid-run
	registerScoring(t, s, "slow", model)
	in, rows := scoringRows(t, 2, 20_000, nil)
	out := filepath.Join(t.TempDir(), "scored")
	stdout, stderr, err := hpcml(s, "transform", "--model", "slow", "--input", in, "--output", out,
		"--id-column", "id", "--join", "id", "--part-size", "32KB", "--detach")
	if err != nil {
		t.Fatalf("transform --detach: %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(stdout)
	parts := filepath.Join(out, "_hpcml", "parts")
	var killed []string
	waitFor(t, 60*time.Second, "the worker's third part", func() bool {
		ents, _ := os.ReadDir(parts)
		n := 0
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), ".") && !strings.HasSuffix(e.Name(), ".tmp") {
				n++
			}
		}
		if n < 3 {
			return false
		}
		for _, pid := range s.jobPIDs() {
			cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if strings.Contains(string(cmdline), "__worker") {
				syscall.Kill(pid, syscall.SIGKILL)
				killed = append(killed, strconv.Itoa(pid))
			}
		}
		return len(killed) > 0
	})
	done := s.waitID(id, 3*time.Minute)
	if done.State != job.Succeeded {
		t.Fatalf("transform %s: %s %s\n%s", id, done.State, done.Reason, s.cli("job", "list"))
	}
	stdout = s.cli("transform", "get", id, "-o", "json")
	var rep batchtransform.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("transform get: %v\n%s", err, stdout)
	}
	w := rep.Workers[0]
	first, second := w.PartsByAttempt["1"], w.PartsByAttempt["2"]
	if first < 3 || second < 1 || first+second != rep.Parts || w.LastAttempt != 2 || w.PartsSkipped != first {
		t.Fatalf("after the kill of pid %v: worker %+v over %d parts; want attempt 1's parts skipped by attempt 2, none scored twice", killed, w, rep.Parts)
	}
	t.Logf("killed worker pid %v; parts by attempt %v, attempt 2 skipped %d of %d", killed, w.PartsByAttempt, w.PartsSkipped, rep.Parts)
	if rep.Records != 40_000 || rep.Failures != 0 {
		t.Fatalf("report: %d records, %d failures", rep.Records, rep.Failures)
	}
	checkScored(t, model, out, rows)
}

// TestBatchTransformFailsThenResumes: a worker that cannot run (its
// model's artefact is gone from storage) fails all its attempts; the
// command exits 1 with the worker's error and says how to resume; with
// the artefact back, the same command resumes the stored plan.
func TestBatchTransformFailsThenResumes(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--cpus", "2")
	model := scoringModel(t, 16)
	registerScoring(t, s, "scorer", model)
	artefact := filepath.Join(s.DataDir, "objects", "models", "scorer", "1", "model.onnx")
	if err := os.Remove(artefact); err != nil {
		t.Fatal(err)
	}
	in, rows := scoringRows(t, 1, 3000, nil)
	out := filepath.Join(t.TempDir(), "scored")
	args := []string{"transform", "--model", "scorer:1", "--input", in, "--output", out, "--id-column", "id", "--join", "id", "--part-size", "16KB"}
	_, stderr, err := hpcml(s, args...)
	if err == nil || !strings.Contains(stderr, "model.onnx") || !strings.Contains(stderr, "rerun the same command to resume") {
		t.Fatalf("a worker without its model: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "_hpcml", "plan.json")); err != nil {
		t.Fatalf("the plan is gone after the failure: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, batchtransform.ReportFile)); !os.IsNotExist(err) {
		t.Fatalf("a report after the failure: %v", err)
	}
	if err := os.WriteFile(artefact, model, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := hpcml(s, append(args, "-o", "json")...)
	if err != nil || !strings.Contains(stderr, "Resuming the transform") {
		t.Fatalf("resume: %v\n%s", err, stderr)
	}
	var rep batchtransform.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.Records != 3000 {
		t.Fatalf("report: %v %+v", err, rep)
	}
	checkScored(t, model, out, rows)
}
