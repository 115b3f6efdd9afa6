package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcml/hpcml/internal/analysis"
	"github.com/hpcml/hpcml/internal/profile"
)

// profileTable writes a CSV of n rows: x a permutation of 1..n, y = 2x+1,
// z every third value missing, k one of a few labels. It returns what an
// independent computation says of it.
func profileTable(t *testing.T, n int) (path string, sumX float64, labels map[string]int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 4))
	perm := rng.Perm(n)
	var b strings.Builder
	b.WriteString("x,y,z,k\n")
	labels = map[string]int64{}
	for i, p := range perm {
		x := p + 1
		sumX += float64(x)
		z := ""
		if i%3 != 0 {
			z = fmt.Sprintf("%.3f", float64(x)/7)
		}
		k := []string{"red", "green", "blue", "red"}[x%4]
		labels[k]++
		fmt.Fprintf(&b, "%d,%d,%s,%s\n", x, 2*x+1, z, k)
	}
	path = filepath.Join(t.TempDir(), "table.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, sumX, labels
}

// runProfile runs `hpcml data profile` with args and decodes its -o json.
func runProfile(t *testing.T, s *server, args ...string) *analysis.ProfileReport {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"data", "profile", "-o", "json"}, args...)...)
	if s != nil {
		cmd.Env = append(os.Environ(), "HPCML_SERVER="+s.URL, "HPCML_TOKEN="+s.Token)
	}
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("data profile %v: %v: %s", args, err, stderr)
	}
	var rep analysis.ProfileReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("data profile -o json: %v", err)
	}
	return &rep
}

func column(t *testing.T, rep *analysis.ProfileReport, name string) profile.Column {
	t.Helper()
	for _, c := range rep.Profile.Columns {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no column %q in the report", name)
	return profile.Column{}
}

// TestDataProfile profiles one table three ways — here in one partition,
// here in seven, and as jobs (five partitions and a merge) — and checks
// the exact statistics against a straightforward computation and against
// each other; the submitted report is stored and listed on the server.
func TestDataProfile(t *testing.T) {
	t.Parallel()
	const n = 30000
	path, sumX, labels := profileTable(t, n)
	s := startServer(t)

	one := runProfile(t, nil, path, "--partitions", "1")
	seven := runProfile(t, nil, path, "--partitions", "7", "--workers", "3")
	jobs := runProfile(t, s, path, "--partitions", "5", "--submit")
	if seven.Partitions != 7 || jobs.Partitions != 5 || len(jobs.Jobs) != 5 {
		t.Fatalf("partitions %d and %d (jobs %v), want 7 and 5", seven.Partitions, jobs.Partitions, jobs.Jobs)
	}

	for _, rep := range []*analysis.ProfileReport{one, seven, jobs} {
		if rep.Profile.Table.Rows != n || rep.Profile.Table.Columns != 4 {
			t.Fatalf("%d partitions: table %+v", rep.Partitions, rep.Profile.Table)
		}
		x := column(t, rep, "x")
		// Past the exact limit, distinct is a HyperLogLog estimate.
		if x.DistinctExact || math.Abs(float64(x.Distinct-n)) > 4*rep.Profile.Accuracy.DistinctStdErr*n {
			t.Fatalf("%d partitions: x distinct %d (exact %v), want %d ± 4σ", rep.Partitions, x.Distinct, x.DistinctExact, n)
		}
		if x.Count != n || x.Missing != 0 || *x.Numeric.Min != 1 || *x.Numeric.Max != n ||
			*x.Numeric.Sum != sumX || *x.Numeric.Mean != sumX/n {
			t.Fatalf("%d partitions: x %+v %+v", rep.Partitions, x, *x.Numeric)
		}
		// Quantiles are sketched: within the stated rank error of 1..n.
		eps := rep.Profile.Accuracy.QuantileRankError
		if eps <= 0 || eps > 0.05 {
			t.Fatalf("stated rank error %v", eps)
		}
		if med := *x.Numeric.P50; math.Abs(med-n/2) > eps*n {
			t.Fatalf("%d partitions: median %v, want %v ± %v", rep.Partitions, med, n/2, eps*n)
		}
		if z := column(t, rep, "z"); z.Missing != n/3 || z.Count != n-n/3 {
			t.Fatalf("%d partitions: z count %d missing %d", rep.Partitions, z.Count, z.Missing)
		}
		k := column(t, rep, "k")
		if k.Distinct != 3 || len(k.TopValues) != 3 || k.TopValues[0].Value != "red" || k.TopValues[0].Count != labels["red"] {
			t.Fatalf("%d partitions: k %+v", rep.Partitions, k)
		}
		corr := rep.Profile.Correlations
		if corr == nil || len(corr.Columns) < 2 || corr.Pearson[0][1] == nil || math.Abs(*corr.Pearson[0][1]-1) > 1e-12 {
			t.Fatalf("%d partitions: pearson(x, y) %+v", rep.Partitions, corr)
		}
		var correlated bool
		for _, a := range rep.Profile.Alerts {
			correlated = correlated || a.Type == profile.AlertHighCorrelation
		}
		if !correlated {
			t.Fatalf("%d partitions: no HIGH_CORRELATION alert for y = 2x+1: %+v", rep.Partitions, rep.Profile.Alerts)
		}
	}
	// Exact statistics do not depend on the partitioning, to the bit.
	for _, name := range []string{"x", "y", "z"} {
		a, b, c := column(t, one, name).Numeric, column(t, seven, name).Numeric, column(t, jobs, name).Numeric
		for _, pair := range [][2]*profile.Numeric{{a, b}, {a, c}} {
			if *pair[0].Sum != *pair[1].Sum || *pair[0].Mean != *pair[1].Mean || *pair[0].Min != *pair[1].Min ||
				*pair[0].Max != *pair[1].Max || pair[0].Zeros != pair[1].Zeros {
				t.Fatalf("column %s differs across partitionings: %+v vs %+v", name, *pair[0], *pair[1])
			}
			if math.Abs(*pair[0].Stddev-*pair[1].Stddev) > 1e-12**pair[0].Stddev {
				t.Fatalf("column %s stddev %v vs %v", name, *pair[0].Stddev, *pair[1].Stddev)
			}
		}
	}

	// The distinct estimate too: the same registers whatever the split.
	if column(t, one, "x").Distinct != column(t, jobs, "x").Distinct {
		t.Fatalf("x distinct %d vs %d", column(t, one, "x").Distinct, column(t, jobs, "x").Distinct)
	}

	// A dataset version names the table as well (read at its source).
	s.cli("dataset", "create", "profiled", filepath.Dir(path))
	byName := runProfile(t, s, "dataset://profiled@1")
	if byName.Profile.Table.Rows != n || *column(t, byName, "x").Numeric.Sum != sumX {
		t.Fatalf("profile of dataset://profiled@1: %d rows", byName.Profile.Table.Rows)
	}

	// The submitted report is stored: listed, and read back whole; a
	// local one joins it with --save.
	saved := runProfile(t, s, path, "--save")
	list, err := s.Client.ListReports(ctxFor(t, 5*time.Second))
	if err != nil || len(list) != 2 || list[0].ID != saved.ID || list[1].ID != jobs.ID || list[1].Rows != n {
		t.Fatalf("reports %+v (%v), want the saved then the submitted", list, err)
	}
	back, err := s.Client.GetProfileReport(ctxFor(t, 5*time.Second), jobs.ID)
	if err != nil || back.Profile.Table.Rows != n || *column(t, back, "x").Numeric.Sum != sumX {
		t.Fatalf("report %s read back: %v", jobs.ID, err)
	}
}

// TestDataProfileBadInput: a ragged row fails the profile with the file
// and line, here and as jobs (naming the partition job), and stores no
// report.
func TestDataProfileBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 20000 { // the bad line past the rows types are inferred from
		fmt.Fprintf(&b, "%d,%d\n", i, i)
	}
	b.WriteString("1,2,3\n") // line 20002
	os.WriteFile(bad, []byte(b.String()), 0o644)

	for _, args := range [][]string{{bad}, {bad, "--partitions", "3", "--submit"}} {
		cmd := exec.Command(binary, append([]string{"data", "profile"}, args...)...)
		cmd.Env = append(os.Environ(), "HPCML_SERVER="+s.URL, "HPCML_TOKEN="+s.Token)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "bad.csv:line 20002") {
			t.Fatalf("profile %v: %v: %s", args, err, out)
		}
		if args[len(args)-1] == "--submit" && !strings.Contains(string(out), "partition job") {
			t.Fatalf("submitted profile does not name the failed job: %s", out)
		}
	}
	for _, args := range [][]string{{filepath.Join(dir, "missing.csv")}, {bad, "--type", "a=complex"}, {bad, "--partitions", "-1"}} {
		out, err := exec.Command(binary, append([]string{"data", "profile"}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "error:") {
			t.Fatalf("profile %v: %v: %s", args, err, out)
		}
	}
	if list, err := s.Client.ListReports(ctxFor(t, 5*time.Second)); err != nil || len(list) != 0 {
		t.Fatalf("reports after failures: %+v %v", list, err)
	}
}

// TestDataProfileFlags: --out writes the report that -o json prints, and
// --exact-duplicates counts duplicate rows exactly.
func TestDataProfileFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "dups.csv")
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := range 300 {
		fmt.Fprintf(&b, "%d,%d\n", i%100, i%100) // every row three times
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	out := filepath.Join(dir, "report.json")
	rep := runProfile(t, nil, path, "--exact-duplicates", "--out", out)
	if tb := rep.Profile.Table; !tb.DuplicateRowsExact || tb.DuplicateRows != 200 {
		t.Fatalf("duplicate rows %d (exact %v), want exactly 200", tb.DuplicateRows, tb.DuplicateRowsExact)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	saved, err := analysis.DecodeProfileReport(data)
	if err != nil || saved.ID != rep.ID || saved.Profile.Table.DuplicateRows != 200 {
		t.Fatalf("--out holds %v (%v), want report %s", saved, err, rep.ID)
	}
}
