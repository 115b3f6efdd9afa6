package batchtransform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/table"
)

// TestCSVManyFilesRowByRow scores 100,000 rows in four CSV files with
// two workers and checks every output row, in order, against the model
// run directly on the same rows.
func TestCSVManyFilesRowByRow(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	files := writeCSVFiles(t, in, 4, 100_000)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.IDColumn, o.Join = "id", JoinID
	o.PartBytes = 128 << 10
	p := plan(t, ctx, o)
	if len(p.Files) != 4 || len(p.Parts) < 12 {
		t.Fatalf("plan: %d files, %d parts; want 4 files cut into many parts", len(p.Files), len(p.Parts))
	}
	rep := runAll(t, ctx, out, m, 2)
	if rep.Records != 100_000 || rep.Failures != 0 || len(rep.Outputs) != 4 {
		t.Fatalf("report: %d records, %d failures, %d outputs", rep.Records, rep.Failures, len(rep.Outputs))
	}
	if len(rep.Workers) != 2 || rep.Workers[0].Records+rep.Workers[1].Records != 100_000 || rep.Workers[0].Records == 0 || rep.Workers[1].Records == 0 {
		t.Fatalf("workers: %+v", rep.Workers)
	}
	for f, rows := range files {
		want := direct(t, m, rows)
		lines := readLines(t, filepath.Join(out, fmt.Sprintf("part-%02d.csv.out", f)))
		if lines[0] != "id,output_0,output_1,output_2" && !strings.HasPrefix(lines[0], "id,") {
			t.Fatalf("header %q", lines[0])
		}
		if len(lines)-1 != len(rows) {
			t.Fatalf("file %d: %d output rows, want %d", f, len(lines)-1, len(rows))
		}
		for i, r := range rows {
			fields := strings.Split(lines[i+1], ",")
			if len(fields) != 4 || fields[0] != r.id {
				t.Fatalf("file %d row %d: %q, want id %s and 3 values", f, i, lines[i+1], r.id)
			}
			for k := range 3 {
				if !close32(t, fields[1+k], want[i*3+k]) {
					t.Fatalf("file %d row %d (%s) value %d: %s, direct inference %v", f, i, r.id, k, fields[1+k], want[i*3+k])
				}
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "_hpcml")); !os.IsNotExist(err) {
		t.Fatalf("_hpcml/ left after the commit: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(out, ErrorsFile)); err != nil || len(data) != 0 {
		t.Fatalf("errors file: %q %v", data, err)
	}
	// The same plan again is done, not redone.
	p2, err := NewPlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	st, err := Prepare(ctx, p2, false)
	if err != nil || !st.Done || st.Report.Records != 100_000 {
		t.Fatalf("rerun of a finished transform: %+v %v", st, err)
	}
}

// TestResumeAfterKill cancels a worker after three parts (as a kill
// would stop it), reruns it, and proves the finished parts were not
// scored again: their objects are unchanged (bytes and modification
// times), the second attempt skipped exactly them, and the report counts
// them under attempt 1.
func TestResumeAfterKill(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	files := writeCSVFiles(t, in, 2, 20_000)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.IDColumn, o.Join = "id", JoinID
	o.PartBytes = 32 << 10
	p := plan(t, ctx, o)
	owned := 0
	for _, part := range p.Parts {
		if owns(0, 2, part.Index) {
			owned++
		}
	}
	if owned < 6 {
		t.Fatalf("worker 0 owns %d parts; the test needs more", owned)
	}
	// Worker 1 finishes; worker 0 is stopped after its third part.
	if _, err := RunWorker(ctx, out, m, WorkerOptions{Worker: 1, Workers: 2, Job: "11", Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	kctx, kill := context.WithCancel(ctx)
	_, err := RunWorker(kctx, out, m, WorkerOptions{Worker: 0, Workers: 2, Job: "10", Attempt: 1, Progress: func(pr WorkerProgress) {
		if pr.PartsDone == 3 {
			kill()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the killed worker: %v", err)
	}
	type stamp struct {
		data []byte
		mod  time.Time
	}
	before := map[string]stamp{}
	partDir := filepath.Join(out, "_hpcml", "parts")
	ents, err := os.ReadDir(partDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, _ := e.Info()
		data, _ := os.ReadFile(filepath.Join(partDir, e.Name()))
		before[e.Name()] = stamp{data, fi.ModTime()}
	}
	if want := 3 + (len(p.Parts) - owned); len(before) != want {
		t.Fatalf("%d part objects after the kill, want %d (3 of worker 0, all of worker 1)", len(before), want)
	}
	// A commit now names the part that is missing.
	if _, err := Commit(ctx, out, CommitOptions{Workers: 2}); err == nil || !strings.Contains(err.Error(), "was not scored") {
		t.Fatalf("commit with parts missing: %v", err)
	}
	// The rerun of the same transform resumes.
	p2, err := NewPlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := Prepare(ctx, p2, false); err != nil || !st.Resume {
		t.Fatalf("rerun: %+v %v", st, err)
	}
	time.Sleep(20 * time.Millisecond) // a rewrite would show in the modification time
	res, err := RunWorker(ctx, out, m, WorkerOptions{Worker: 0, Workers: 2, Job: "10", Attempt: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.PartsSkipped != 3 || res.PartsScored != owned-3 {
		t.Fatalf("second attempt: skipped %d, scored %d; want 3 and %d", res.PartsSkipped, res.PartsScored, owned-3)
	}
	for name, b := range before {
		path := filepath.Join(partDir, name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		if !fi.ModTime().Equal(b.mod) || !bytes.Equal(data, b.data) {
			t.Fatalf("part %s was rewritten by the resumed run", name)
		}
	}
	rep, err := Commit(ctx, out, CommitOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	w0 := rep.Workers[0]
	if w0.PartsByAttempt["1"] != 3 || w0.PartsByAttempt["2"] != owned-3 || w0.PartsSkipped != 3 || w0.LastAttempt != 2 {
		t.Fatalf("worker 0 in the report: %+v", w0)
	}
	if rep.Records != 20_000 {
		t.Fatalf("%d records, want 20000", rep.Records)
	}
	for f, rows := range files {
		want := direct(t, m, rows)
		lines := readLines(t, filepath.Join(out, fmt.Sprintf("part-%02d.csv.out", f)))[1:]
		if len(lines) != len(rows) {
			t.Fatalf("file %d: %d rows, want %d", f, len(lines), len(rows))
		}
		for i, r := range rows {
			fields := strings.Split(lines[i], ",")
			if fields[0] != r.id || !close32(t, fields[1], want[i*3]) || !close32(t, fields[3], want[i*3+2]) {
				t.Fatalf("file %d row %d: %q, want %s %v", f, i, lines[i], r.id, want[i*3:i*3+3])
			}
		}
	}
}

// TestBadRecords sends records that cannot be scored to the error file,
// with their line in the file, and scores the rest.
func TestBadRecords(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	var b strings.Builder
	b.WriteString("id,a,b,c,d\n")
	bad := map[int]string{}
	for i := range 3000 {
		line := fmt.Sprintf("r%d,%d,1.5,-2,0.25", i, i%7)
		switch {
		case i == 10:
			line, bad[i+2] = fmt.Sprintf("r%d,abc,1,2,3", i), `column "a": "abc" is not a number`
		case i == 1500:
			line, bad[i+2] = fmt.Sprintf("r%d,1,2,3", i), "4 fields, the header has 5"
		case i == 2999:
			line, bad[i+2] = fmt.Sprintf("r%d,1,,3,4", i), `column "b": empty`
		case i == 700:
			line, bad[i+2] = fmt.Sprintf(`r%d,"1,2,3,4`, i), "malformed CSV"
		}
		b.WriteString(line + "\n")
	}
	if err := os.WriteFile(filepath.Join(in, "data.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	jl := "{\"id\":1,\"x\":[1,2,3,4]}\n{\"id\":2,\"x\":[1,2]}\n\n{\"id\":3,\"x\":[1,2,3,\"4\"]}\nnot json\n{\"id\":5,\"y\":1}\n{\"id\":6,\"x\":[0,0,0,1]}\n"
	jin := t.TempDir()
	if err := os.WriteFile(filepath.Join(jin, "data.jsonl"), []byte(jl), 0o644); err != nil {
		t.Fatal(err)
	}
	m := testModel(t)
	o := options(m, in, out)
	o.IDColumn, o.Join = "id", JoinID
	o.PartBytes = 4 << 10 // the bad lines land in different parts
	p := plan(t, ctx, o)
	if len(p.Parts) < 5 {
		t.Fatalf("%d parts", len(p.Parts))
	}
	rep := runAll(t, ctx, out, m, 3)
	if rep.Records != 3000-4 || rep.Failures != 4 {
		t.Fatalf("report: %d records, %d failures", rep.Records, rep.Failures)
	}
	lines := readLines(t, filepath.Join(out, ErrorsFile))
	if len(lines) != 4 {
		t.Fatalf("errors file: %q", lines)
	}
	for _, l := range lines {
		var e ErrorRecord
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		want, ok := bad[int(e.Record)]
		if !ok || e.File != "data.csv" || !strings.Contains(e.Reason, want) {
			t.Fatalf("error %+v: not a bad line (%v)", e, bad)
		}
		delete(bad, int(e.Record))
	}
	outLines := readLines(t, filepath.Join(out, "data.csv.out"))
	if len(outLines) != 1+3000-4 || !strings.HasPrefix(outLines[11], "r11,") || !strings.HasPrefix(outLines[1], "r0,") {
		t.Fatalf("output: %d lines; line 11 %q", len(outLines), outLines[11])
	}

	// JSON Lines: malformed JSON, a short array, a string, a missing key.
	jout := t.TempDir()
	o = options(m, jin, jout)
	o.IDColumn, o.Join = "id", JoinID
	plan(t, ctx, o)
	rep = runAll(t, ctx, jout, m, 1)
	if rep.Records != 2 || rep.Failures != 4 {
		t.Fatalf("jsonl report: %d records, %d failures", rep.Records, rep.Failures)
	}
	errs := readLines(t, filepath.Join(jout, ErrorsFile))
	wantErr := []string{`"record":2,"reason":"2 values`, `"record":4,"reason":"key \"x\": \"4\" is not a number"`, `"record":5,"reason":"malformed JSON`, `"record":6,"reason":"key \"x\" is missing"`}
	for i, w := range wantErr {
		if i >= len(errs) || !strings.Contains(errs[i], w) {
			t.Fatalf("jsonl errors %q; want %d to hold %s", errs, i, w)
		}
	}
	got := readLines(t, filepath.Join(jout, "data.jsonl.out"))
	if len(got) != 2 || !strings.HasPrefix(got[0], `{"id":1,"output":[`) || !strings.HasPrefix(got[1], `{"id":6,"output":[`) {
		t.Fatalf("jsonl output %q", got)
	}
}

// TestMissingInput fails at planning, naming the input, and writes
// nothing to the output.
func TestMissingInput(t *testing.T) {
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "out")
	m := testModel(t)
	missing := filepath.Join(t.TempDir(), "nope", "data.csv")
	_, err := NewPlan(ctx, options(m, missing, out))
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing input: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("the output was created: %v", err)
	}
}

// TestOtherPlanRefused: an output holding another transform is refused,
// naming --overwrite, which then replaces it.
func TestOtherPlanRefused(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	writeCSVFiles(t, in, 1, 100)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	plan(t, ctx, o)
	o.Join, o.IDColumn = JoinID, "id"
	p2, err := NewPlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(ctx, p2, false); err == nil || !strings.Contains(err.Error(), "--overwrite") {
		t.Fatalf("another plan at the same output: %v", err)
	}
	if st, err := Prepare(ctx, p2, true); err != nil || st.Resume || st.Done {
		t.Fatalf("--overwrite: %+v %v", st, err)
	}
	rep := runAll(t, ctx, out, m, 1)
	if rep.Records != 100 || rep.Join != JoinID {
		t.Fatalf("report %+v", rep)
	}
	// A feature count the model does not take is refused at planning.
	o.Features = []string{"a", "b"}
	if _, err := NewPlan(ctx, o); err == nil || !strings.Contains(err.Error(), "takes 4 values") {
		t.Fatalf("two features for a model of four: %v", err)
	}
}

// TestParquetJoinInput reads a Parquet file of several row groups and
// joins every input column to the predictions in JSON Lines.
func TestParquetJoinInput(t *testing.T) {
	ctx := context.Background()
	csvDir, pqDir, out := t.TempDir(), t.TempDir(), t.TempDir()
	files := writeCSVFiles(t, csvDir, 1, 5000)
	r, err := table.Open(ctx, filepath.Join(csvDir, "part-00.csv"), table.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pq := filepath.Join(pqDir, "data.parquet")
	if _, err := table.WriteParquet(ctx, pq, r, table.WriteOptions{RowGroupRows: 1000}); err != nil {
		t.Fatal(err)
	}
	r.Close()
	m := testModel(t)
	o := options(m, pq, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.Join = JoinInput
	o.PartBytes = 4 << 10 // a part per row group
	p := plan(t, ctx, o)
	if p.Format != FormatJSONL || len(p.Parts) != 5 {
		t.Fatalf("plan: format %s, %d parts; want jsonl and one part per row group", p.Format, len(p.Parts))
	}
	rep := runAll(t, ctx, out, m, 2)
	if rep.Records != 5000 {
		t.Fatalf("%d records", rep.Records)
	}
	want := direct(t, m, files[0])
	lines := readLines(t, filepath.Join(out, "data.parquet.out"))
	for i, row := range files[0] {
		var got struct {
			ID     string    `json:"id"`
			A      float64   `json:"a"`
			Note   *string   `json:"note"`
			Output []float64 `json:"output"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatalf("line %d %q: %v", i, lines[i], err)
		}
		if got.ID != row.id || float32(got.A) != row.feats[0] || len(got.Output) != 3 {
			t.Fatalf("line %d: %q, want id %s", i, lines[i], row.id)
		}
		for k := range 3 {
			if !close32(t, fmt.Sprint(got.Output[k]), want[i*3+k]) {
				t.Fatalf("line %d value %d: %v, want %v", i, k, got.Output[k], want[i*3+k])
			}
		}
	}
}

// TestSplitNone scores each file as one sample: JSON Lines of arrays
// whose numbers together are the sample.
func TestSplitNone(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(in, "a.jsonl"), []byte("[1, 2]\n[3, 4]\n"), 0o644)
	os.WriteFile(filepath.Join(in, "b.jsonl"), []byte("[0.5, 0.5, 0.5, 0.5]\n"), 0o644)
	os.WriteFile(filepath.Join(in, "c.jsonl"), []byte("[1, 2, 3]\n"), 0o644)
	m := testModel(t)
	o := options(m, in, out)
	o.Split = SplitNone
	plan(t, ctx, o)
	rep := runAll(t, ctx, out, m, 2)
	if rep.Records != 2 || rep.Failures != 1 {
		t.Fatalf("report: %d records, %d failures", rep.Records, rep.Failures)
	}
	want := direct(t, m, []row{{feats: [4]float32{1, 2, 3, 4}}, {feats: [4]float32{0.5, 0.5, 0.5, 0.5}}})
	for f, name := range []string{"a.jsonl.out", "b.jsonl.out"} {
		lines := readLines(t, filepath.Join(out, name))
		var got struct{ Output []float64 }
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &got) != nil || len(got.Output) != 3 || !close32(t, fmt.Sprint(got.Output[1]), want[f*3+1]) {
			t.Fatalf("%s: %q", name, lines)
		}
	}
	errs := readLines(t, filepath.Join(out, ErrorsFile))
	if len(errs) != 1 || !strings.Contains(errs[0], `"file":"c.jsonl"`) || !strings.Contains(errs[0], "holds 3 values") {
		t.Fatalf("errors %q", errs)
	}
}

// TestSplitRecordQuotedNewlines: with --split record a CSV record whose
// quoted field spans lines is one record (the file is read whole), its
// error lines are the file's; JSON Lines input joined into CSV output.
func TestSplitRecordQuotedNewlines(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	csv := "id,note,a,b,c,d\n1,\"two\nlines\",1,2,3,4\n2,plain,x,2,3,4\n3,\"a \"\"quote\"\"\",1,1,1,1\n"
	os.WriteFile(filepath.Join(in, "notes.csv"), []byte(csv), 0o644)
	m := testModel(t)
	o := options(m, in, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.Split, o.Join = SplitRecord, JoinInput
	plan(t, ctx, o)
	rep := runAll(t, ctx, out, m, 1)
	if rep.Records != 2 || rep.Failures != 1 {
		t.Fatalf("report: %d records, %d failures", rep.Records, rep.Failures)
	}
	got := string(must(os.ReadFile(filepath.Join(out, "notes.csv.out"))))
	if !strings.HasPrefix(got, "id,note,a,b,c,d,output_0,output_1,output_2\n1,\"two\nlines\",1,2,3,4,") || !strings.Contains(got, "\n3,\"a \"\"quote\"\"\",1,1,1,1,") {
		t.Fatalf("output:\n%s", got)
	}
	if errs := string(must(os.ReadFile(filepath.Join(out, ErrorsFile)))); !strings.Contains(errs, `"record":4,`) {
		t.Fatalf("errors: %s", errs)
	}

	jin, jout := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(jin, "rows.jsonl"), []byte("{\"k\":\"a,b\",\"x\":[1,2,3,4]}\n{\"k\":null,\"x\":[4,3,2,1],\"extra\":true}\n"), 0o644)
	o = options(m, jin, jout)
	o.Features, o.Join, o.Format = []string{"x"}, JoinInput, FormatCSV
	plan(t, ctx, o)
	runAll(t, ctx, jout, m, 1)
	lines := readLines(t, filepath.Join(jout, "rows.jsonl.out"))
	if len(lines) != 3 || lines[0] != "k,x,output_0,output_1,output_2" || !strings.HasPrefix(lines[1], `"a,b","[1,2,3,4]",`) || !strings.HasPrefix(lines[2], `,"[4,3,2,1]",`) {
		t.Fatalf("jsonl → csv: %q", lines)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestHeaderless reads a CSV whose first line is numbers as data, its
// columns column_1, column_2, ... (repeated values that would be a bad
// header included).
func TestHeaderless(t *testing.T) {
	ctx := context.Background()
	in, out := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(in, "x.csv"), []byte("0,0,1,2,7\n0,1,1,1,8\n"), 0o644)
	m := testModel(t)
	o := options(m, in, out)
	o.IDColumn, o.Join = "column_5", JoinID
	p := plan(t, ctx, o)
	if p.Spec.Header || strings.Join(p.Features, ",") != "column_1,column_2,column_3,column_4" {
		t.Fatalf("plan: header %v, features %v", p.Spec.Header, p.Features)
	}
	rep := runAll(t, ctx, out, m, 1)
	lines := readLines(t, filepath.Join(out, "x.csv.out"))
	if rep.Records != 2 || len(lines) != 3 || !strings.HasPrefix(lines[1], "7,") || !strings.HasPrefix(lines[2], "8,") {
		t.Fatalf("%d records: %q", rep.Records, lines)
	}
}

// TestSpellingsResume: the same input and output spelled differently
// ("dir" or "dir/", relative or absolute) are the same plan.
func TestSpellingsResume(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	in := filepath.Join(root, "in")
	os.Mkdir(in, 0o755)
	writeCSVFiles(t, in, 1, 50)
	m := testModel(t)
	o := options(m, in, filepath.Join(root, "out"))
	o.IDColumn = "id"
	o.Features = []string{"a", "b", "c", "d"}
	plan(t, ctx, o)
	t.Chdir(root)
	o.Input, o.Output = "in/", "./out/"
	p, err := NewPlan(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := Prepare(ctx, p, false); err != nil || !st.Resume {
		t.Fatalf("the same transform spelled otherwise: %+v %v", st, err)
	}
}
