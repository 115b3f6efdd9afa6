package synth

import (
	"context"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
)

// What a model's correlations between numeric columns reproduce.
const (
	// MatchScores: the correlations of normal scores, which a Gaussian
	// copula keeps exactly; rank (Spearman) correlations follow, and
	// Pearson correlations when the data are like a Gaussian copula's.
	MatchScores = "scores"
	// MatchPearson: the Pearson correlations of the values, by
	// calibration (NORTA): the latent correlations are adjusted until a
	// sample of the model has the source's Pearson correlations. Outliers
	// and mixtures of groups weigh on Pearson correlations far more than
	// on ranks; matching them moves the rank correlations instead.
	MatchPearson = "pearson"
	// MatchSpearman: the Spearman (rank) correlations, by calibration
	// likewise; string and bool columns are ranked by category.
	MatchSpearman = "spearman"
)

// Calibration settings: rounds at most, the error at which to stop, and
// the rows drawn per round (50 per row of the copula, within bounds).
const (
	calibrationRounds  = 10
	calibrationGoal    = 0.002
	calibrationMinRows = 5_000
	calibrationMaxRows = 100_000
)

// Calibration says how the calibration went.
type Calibration struct {
	Rounds int `json:"rounds"`
	// MaxError is the largest difference between a correlation of the
	// source and of a sample of Rows rows of the copula.
	MaxError float64 `json:"max_error"`
	Rows     int     `json:"rows"`
}

// calibrate adjusts the latent correlations until a sample of the
// copula has the correlations target (Pearson or Spearman, as match
// says; NaN where undefined). Each round draws the same rows (a fixed
// stream), so the rounds converge rather than chase noise. The
// correlation of functions of two normals is at most theirs in size and
// moves more slowly; each step is the remaining difference divided by
// the slope seen in the last one (1 at first). A target no positive
// definite matrix reaches is approached as far as positiveDefinite
// allows; the rounds stop when the largest error no longer shrinks.
func (c *Copula) calibrate(ctx context.Context, target [][]float64, match string, seed uint64) error {
	k := len(c.Columns)
	matched := make([]bool, k)
	for i, col := range c.Columns {
		switch col.typ.ID() {
		case arrow.INT64, arrow.FLOAT64, arrow.TIMESTAMP:
			matched[i] = col.Marginal != AllNull
		default:
			matched[i] = col.Marginal != AllNull && match == MatchSpearman
		}
	}
	rows := int(min(max(50*c.Rows, calibrationMinRows), calibrationMaxRows))
	r := clone(c.Correlation)
	var prevR, prevP [][]float64
	best := math.Inf(1)
	cal := &Calibration{Rows: rows}
	for round := 1; ; round++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		got := c.sampleCorrelation(seed, rows, matched, match)
		cal.Rounds, cal.MaxError = round, 0
		next := clone(r)
		for i := range k {
			for j := i + 1; j < k; j++ {
				t, p := target[i][j], got[i][j]
				if !matched[i] || !matched[j] || math.IsNaN(t) || math.IsNaN(p) {
					continue
				}
				d := t - p
				cal.MaxError = max(cal.MaxError, math.Abs(d))
				slope := 1.0
				if prevR != nil {
					if dr, dp := r[i][j]-prevR[i][j], p-prevP[i][j]; math.Abs(dr) > 1e-6 && dp/dr > 0.05 {
						slope = min(1, dp/dr)
					}
				}
				v := max(-0.9999, min(0.9999, r[i][j]+d/slope))
				next[i][j], next[j][i] = v, v
			}
		}
		if cal.MaxError <= calibrationGoal || round == calibrationRounds || cal.MaxError > best-0.001 {
			if cal.MaxError > best && prevR != nil {
				// The last step made things worse: back to the one before.
				c.Correlation, cal.MaxError, cal.Rounds = prevR, best, round-1
				if err := c.prepareChol(); err != nil {
					return err
				}
			}
			break
		}
		best = cal.MaxError
		prevR, prevP = r, got
		r, _ = positiveDefinite(next, c.weights)
		c.Correlation = r
		if err := c.prepareChol(); err != nil {
			return err
		}
	}
	c.Calibration = cal
	return nil
}

// sampleCorrelation is the Pearson (or Spearman) correlation matrix of
// rows rows drawn from the copula (a fixed stream of seed), over the
// matched columns; strings are ranked by category.
func (c *Copula) sampleCorrelation(seed uint64, rows int, matched []bool, match string) [][]float64 {
	g := newGen(nil, len(c.Columns))
	g.reset(rows)
	c.fill(g, stream(seed, -1, 0), nil, rows)
	cols := make([][]float32, len(c.Columns))
	vals := make([]float64, rows)
	for i, col := range c.Columns {
		if !matched[i] {
			continue
		}
		code := make(map[string]int, len(col.Categories))
		for j, s := range col.Categories {
			code[s] = j
		}
		b := &g.bufs[i]
		for r := range vals {
			v := math.NaN()
			if b.valid[r] {
				switch col.typ.ID() {
				case arrow.FLOAT64:
					v = b.f[r]
				case arrow.INT64, arrow.TIMESTAMP:
					v = float64(b.i[r])
				case arrow.BOOL:
					v = 0
					if b.b[r] {
						v = 1
					}
				default:
					v = float64(code[b.s[r]])
				}
			}
			if math.IsInf(v, 0) {
				v = math.NaN()
			}
			vals[r] = v
		}
		if match == MatchSpearman {
			order := orderOf(vals, func(r int) bool { return !math.IsNaN(vals[r]) })
			rs := make([]float32, rows)
			for r := range rs {
				rs[r] = float32(math.NaN())
			}
			ranks(order, func(a, b int32) bool { return vals[a] == vals[b] }, rs)
			cols[i] = standardize32(rs)
		} else {
			cols[i] = standardize(vals)
		}
	}
	return pairwise(cols)
}

// standardize32 is standardize for float32s.
func standardize32(vs []float32) []float32 {
	f := make([]float64, len(vs))
	for i, v := range vs {
		f[i] = float64(v)
	}
	return standardize(f)
}

// standardize is vs (NaN where missing) as (v − mean)/sd in float32.
func standardize(vs []float64) []float32 {
	var n, mean, m2 float64
	for _, v := range vs {
		if !math.IsNaN(v) {
			n++
			d := v - mean
			mean += d / n
			m2 += d * (v - mean)
		}
	}
	sd := math.Sqrt(m2 / max(n, 1))
	if sd == 0 {
		sd = 1
	}
	out := make([]float32, len(vs))
	for i, v := range vs {
		out[i] = float32((v - mean) / sd) // NaN stays NaN
	}
	return out
}
