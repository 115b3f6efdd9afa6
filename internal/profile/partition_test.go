package profile

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// exactView is the part of a report that must be identical whatever the
// partitioning: counts, missing, min, max, sum, mean, distinct counts (exact
// or HyperLogLog: both depend only on the set of values), exact top values,
// string, boolean and timestamp statistics, the duplicate count, and the
// Spearman matrix and the report's row sample (both functions of the data).
func exactView(r *Report) string {
	type num struct {
		Nulls, NaN, Infinite, Zeros, Negatives int64
		Mean, Min, Max, Sum                    *float64
	}
	type colv struct {
		Name, Type               string
		Count, Missing, Distinct int64
		DistinctExact            bool
		Num                      *num
		String                   *Strings
		Boolean                  *Boolean
		DateTime                 *DateTime
		Top                      []TopValue
	}
	v := struct {
		Table    Table
		Cols     []colv
		Spearman [][]*float64
		Sampled  int64
		Sample   *Sample
	}{Table: r.Table, Spearman: r.Correlations.Spearman, Sampled: r.Correlations.SpearmanSampleRows, Sample: r.Sample}
	for _, c := range r.Columns {
		cv := colv{Name: c.Name, Type: c.Type, Count: c.Count, Missing: c.Missing, Distinct: c.Distinct,
			DistinctExact: c.DistinctExact, String: c.String, Boolean: c.Boolean, DateTime: c.DateTime}
		if n := c.Numeric; n != nil {
			cv.Num = &num{n.Nulls, n.NaN, n.Infinite, n.Zeros, n.Negatives, n.Mean, n.Min, n.Max, n.Sum}
		}
		if c.TopValuesErrorBound == 0 {
			cv.Top = c.TopValues
		}
		v.Cols = append(v.Cols, cv)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// mergeAll decodes the encoded partial states and merges them in the given
// order.
func mergeAll(t *testing.T, blobs [][]byte, order []int) *State {
	t.Helper()
	var acc *State
	for _, i := range order {
		s, err := DecodeState(blobs[i])
		if err != nil {
			t.Fatal(err)
		}
		if acc == nil {
			acc = s
		} else if err := acc.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	return acc
}

// mergeTree merges pairwise, level by level.
func mergeTree(t *testing.T, blobs [][]byte) *State {
	t.Helper()
	var states []*State
	for _, b := range blobs {
		s, err := DecodeState(b)
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, s)
	}
	for len(states) > 1 {
		var next []*State
		for i := 0; i < len(states); i += 2 {
			if i+1 < len(states) {
				if err := states[i].Merge(states[i+1]); err != nil {
					t.Fatal(err)
				}
			}
			next = append(next, states[i])
		}
		states = next
	}
	return states[0]
}

func TestPartitionInvariance(t *testing.T) {
	d := genData(30000, 11)
	// Small limits so that every sketch is exercised: HyperLogLog distinct
	// counts and duplicates, Misra–Gries top values, a sampled Spearman.
	opts := Options{DistinctLimit: 500, TopCounters: 100, DuplicateLimit: 2000, SampleRows: 2000}
	r := rand.New(rand.NewPCG(12, 13))
	var ref *Report
	for _, parts := range []int{1, 3, 7} {
		cuts := []int{0, d.n}
		for len(cuts) < parts+1 {
			c := r.IntN(d.n)
			if !slices.Contains(cuts, c) {
				cuts = append(cuts, c)
			}
		}
		slices.Sort(cuts)
		blobs := make([][]byte, parts)
		for p := range parts {
			s := profileOf(t, d, cuts[p], cuts[p+1], opts, r)
			b, err := s.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			blobs[p] = b
		}
		fwd := make([]int, parts)
		for i := range fwd {
			fwd[i] = i
		}
		rev := slices.Clone(fwd)
		slices.Reverse(rev)
		shuffled := slices.Clone(fwd)
		r.Shuffle(parts, func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		for name, st := range map[string]*State{
			"forward":  mergeAll(t, blobs, fwd),
			"reverse":  mergeAll(t, blobs, rev),
			"shuffled": mergeAll(t, blobs, shuffled),
			"tree":     mergeTree(t, blobs),
		} {
			rep := st.Report()
			// Sketched statistics within their stated errors, everything
			// else against the straightforward computation.
			checkReport(t, d, rep, opts)
			if ref == nil {
				ref = rep
				continue
			}
			tag := func(s string) string { return s + " (" + name + ", " + string(rune('0'+parts)) + " parts)" }
			if a, b := exactView(ref), exactView(rep); a != b {
				t.Errorf("%s", tag("exact statistics differ"))
			}
			for i, c := range rep.Columns {
				n, n0 := c.Numeric, ref.Columns[i].Numeric
				if n == nil {
					continue
				}
				for _, p := range [][2]*float64{{n.Variance, n0.Variance}, {n.Stddev, n0.Stddev}} {
					if !closeRel(f(p[0]), f(p[1]), MomentRelTolerance) {
						t.Errorf("%s: %v vs %v", tag(c.Name+" moment"), f(p[0]), f(p[1]))
					}
				}
				for _, p := range [][2]*float64{{n.Skewness, n0.Skewness}, {n.Kurtosis, n0.Kurtosis}} {
					if !closeAbs(f(p[0]), f(p[1]), MomentRelTolerance) {
						t.Errorf("%s: %v vs %v", tag(c.Name+" standardised moment"), f(p[0]), f(p[1]))
					}
				}
			}
			for a := range rep.Correlations.Pearson {
				for b := range rep.Correlations.Pearson[a] {
					if !closeAbs(f(rep.Correlations.Pearson[a][b]), f(ref.Correlations.Pearson[a][b]), MomentRelTolerance) {
						t.Errorf("%s", tag("pearson differs"))
					}
				}
			}
		}
	}
	if ref.Table.DuplicateRowsExact || ref.Correlations.SpearmanExact {
		t.Error("test does not exercise the sketched duplicates / Spearman")
	}
	if c := col(ref, "s_zipf"); c.DistinctExact || c.TopValuesErrorBound == 0 {
		t.Error("test does not exercise the string sketches")
	}
	if c := col(ref, "i2"); c.DistinctExact || col(ref, "i1").DistinctExact == false {
		t.Error("test does not exercise both distinct modes")
	}
}

// sortRanks are average ranks by sorting (the test's own, for data too big
// for the O(n²) definition).
func sortRanks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	out := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && v[idx[j]] == v[idx[i]] {
			j++
		}
		for k := i; k < j; k++ {
			out[idx[k]] = float64(i+j-1)/2 + 1
		}
		i = j
	}
	return out
}

// TestSpearmanSampledWithinError: from a 2,000-row sample of 40,000 rows,
// each Spearman coefficient is within 4 stated standard errors of the
// exact one.
func TestSpearmanSampledWithinError(t *testing.T) {
	d := genData(40000, 21)
	s := profileOf(t, d, 0, d.n, Options{SampleRows: 2000}, rand.New(rand.NewPCG(5, 5)))
	cr := s.Report().Correlations
	if cr.SpearmanExact || cr.SpearmanSampleRows != 2000 {
		t.Fatalf("sample %d exact %v", cr.SpearmanSampleRows, cr.SpearmanExact)
	}
	byName := map[string]*tcol{}
	for _, c := range d.cols {
		byName[c.name] = c
	}
	checked := 0
	for a, na := range cr.Columns {
		for b, nb := range cr.Columns {
			x, y := pairValues(byName[na], byName[nb])
			want := naivePearson(sortRanks(x), sortRanks(y))
			got := f(cr.Spearman[a][b])
			if math.IsNaN(want) || math.IsNaN(got) {
				if math.IsNaN(want) != math.IsNaN(got) {
					t.Errorf("%s,%s: %v, want %v", na, nb, got, want)
				}
				continue
			}
			checked++
			if math.Abs(got-want) > 4*cr.SpearmanStdErr {
				t.Errorf("%s,%s: %.4f, exact %.4f, > 4×%.4f", na, nb, got, want, cr.SpearmanStdErr)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d coefficients checked", checked)
	}
	// f1 and f2 are correlated by construction: the sample sees it.
	if v := f(cr.Spearman[0][1]); v < 0.8 {
		t.Errorf("spearman f1,f2 = %v", v)
	}
}

// TestExactDuplicatesAcrossPartitions: the exact row-hash sets merge to the
// exact duplicate count.
func TestExactDuplicatesAcrossPartitions(t *testing.T) {
	d := genData(9000, 31)
	opts := Options{ExactDuplicates: true}
	r := rand.New(rand.NewPCG(3, 3))
	var blobs [][]byte
	for _, c := range [][2]int{{0, 1000}, {1000, 6500}, {6500, 9000}} {
		b, err := profileOf(t, d, c[0], c[1], opts, r).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	rep := mergeAll(t, blobs, []int{2, 0, 1}).Report()
	if !rep.Table.DuplicateRowsExact || rep.Table.DuplicateRows != naiveDuplicates(d) || rep.Table.DuplicateRows == 0 {
		t.Fatalf("duplicates %d (exact %v), want %d", rep.Table.DuplicateRows, rep.Table.DuplicateRowsExact, naiveDuplicates(d))
	}
}
