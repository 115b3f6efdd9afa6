package batchtransform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	hblob "github.com/hpcml/hpcml/internal/blob"
	"github.com/hpcml/hpcml/internal/s3test"
)

// TestS3 reads a prefix of CSV files from S3 (versitygw) and writes the
// outputs, the parts and the report to another prefix of it; a worker
// stopped midway resumes there.
func TestS3(t *testing.T) {
	const access, secret = "bttest", "bttestsecret"
	srv := s3test.Start(t, access, secret, "data")
	q := srv.URLEnv(t)
	ctx := context.Background()
	b, err := hblob.Open(ctx, "s3://data"+q)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	local := t.TempDir()
	files := writeCSVFiles(t, local, 2, 6000)
	for f := range files {
		name := fmt.Sprintf("part-%02d.csv", f)
		data, _ := os.ReadFile(filepath.Join(local, name))
		if err := b.WriteAll(ctx, "in/"+name, data, nil); err != nil {
			t.Fatal(err)
		}
	}
	m := testModel(t)
	out := "s3://data/out/" + q
	o := options(m, "s3://data/in/"+q, out)
	o.Features = []string{"a", "b", "c", "d"}
	o.IDColumn, o.Join = "id", JoinID
	o.PartBytes = 16 << 10
	p := plan(t, ctx, o)
	if len(p.Parts) < 6 || p.Files[0].Name != "part-00.csv" {
		t.Fatalf("plan: %d parts, files %+v", len(p.Parts), p.Files)
	}
	kctx, kill := context.WithCancel(ctx)
	_, err = RunWorker(kctx, out, m, WorkerOptions{Worker: 0, Workers: 1, Attempt: 1, Progress: func(pr WorkerProgress) {
		if pr.PartsDone == 2 {
			kill()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped worker: %v", err)
	}
	res, err := RunWorker(ctx, out, m, WorkerOptions{Worker: 0, Workers: 1, Attempt: 2})
	if err != nil || res.PartsSkipped != 2 || res.PartsScored != len(p.Parts)-2 {
		t.Fatalf("resumed worker: %+v %v", res, err)
	}
	rep, err := Commit(ctx, out, CommitOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 6000 || rep.Workers[0].PartsByAttempt["1"] != 2 {
		t.Fatalf("report %+v", rep)
	}
	for f, rows := range files {
		data, err := b.ReadAll(ctx, fmt.Sprintf("out/part-%02d.csv.out", f))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")[1:]
		want := direct(t, m, rows)
		if len(lines) != len(rows) {
			t.Fatalf("file %d: %d rows, want %d", f, len(lines), len(rows))
		}
		for i, r := range rows {
			fields := strings.Split(lines[i], ",")
			if fields[0] != r.id || !close32(t, fields[2], want[i*3+1]) {
				t.Fatalf("file %d row %d: %q, want %s %v", f, i, lines[i], r.id, want[i*3:i*3+3])
			}
		}
	}
	if ok, _ := b.Exists(ctx, "out/_report.json"); !ok {
		t.Fatal("no report")
	}
	it := b.List(nil)
	for {
		o, err := it.Next(ctx)
		if err != nil {
			break
		}
		if strings.HasPrefix(o.Key, "out/_hpcml/") {
			t.Fatalf("%s left after the commit", o.Key)
		}
	}
}
