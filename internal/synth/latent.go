package synth

import (
	"math"
	"slices"
)

// The normal scores of a discrete column (int64, timestamp, string,
// bool) are coarse: all rows with one value share one score, the
// Φ⁻¹ of their average rank. Their correlation with another column is
// therefore smaller in magnitude than that of the latent normals the
// copula samples from — and sampling coarsens it once more. Left alone,
// a binary column's correlations would come out about 20% too weak.
// latentCorrelation undoes this: it finds the latent correlation whose
// sampled (coarsened) normal scores correlate as the source's did.
//
// With g the step function taking a latent z to its value's score,
// s_k on the interval (t_{k-1}, t_k] where t_k = Φ⁻¹(share of values
// up to the k-th):
//   - discrete × continuous: corr(g(Z₁), Z₂) = ρ·a exactly, with
//     a = E[g(Z)·Z]/sd(g(Z)) = Σ s_k (φ(t_{k-1}) − φ(t_k)) / sd; so ρ = S/a;
//   - discrete × discrete: corr(g₁(Z₁), g₂(Z₂)) is computed by
//     quadrature over the bivariate normal and solved for ρ by bisection
//     (it increases with ρ); for two columns of many values (beyond
//     maxExactWork), where the coarsening is slight, ρ = S/(a₁a₂), the
//     first term of its expansion.
//
// Continuous (float64) columns are sampled continuously, so their scores
// are taken as the latent normals themselves.

// maxExactWork bounds min(K, L)·(K + L) for two discrete columns of K
// and L values whose correlation is solved for exactly (the work of one
// evaluation of scoreCorr is about 8 times it).
const maxExactWork = 25000

// steps is a discrete column's score function.
type steps struct {
	c    []float64 // cumulative shares c_1..c_K (c_K = 1)
	t    []float64 // Φ⁻¹(c_k), t_K = +Inf
	s    []float64 // scores
	mean float64   // E[g(Z)]
	sd   float64   // sd(g(Z))
	a    float64   // corr(g(Z), Z)
}

func stepsOf(col *Column) *steps {
	if col.Marginal != Discrete && col.Marginal != Categorical {
		return nil
	}
	n := float64(col.n)
	st := &steps{}
	var prev int64
	for _, cum := range col.cum {
		c := float64(cum) / n
		st.c = append(st.c, c)
		st.t = append(st.t, quantile(c))
		st.s = append(st.s, quantile(float64(prev+1+cum)/2/(n+1)))
		prev = cum
	}
	var m, m2, gz float64
	lo := 0.0 // φ(t_{k-1}), 0 at -Inf
	for k, s := range st.s {
		p := float64(col.Counts[k]) / n
		m += p * s
		m2 += p * s * s
		hi := 0.0
		if k < len(st.s)-1 {
			hi = phi(st.t[k])
		}
		gz += s * (lo - hi)
		lo = hi
	}
	st.mean = m
	st.sd = math.Sqrt(max(0, m2-m*m))
	if st.sd > 0 {
		st.a = gz / st.sd
	}
	return st
}

// Weights of columns in positiveDefinite: a discrete column whose
// correlations were corrected (its scores' correlation with Z below
// 0.99) gives way to the others, whose correlations are as measured.
const (
	weightMeasured  = 1
	weightCorrected = 0.1
)

// latentCorrelation is the latent normals' correlation for the score
// correlation s (not yet positive definite), and the columns' weights
// for making it so.
func latentCorrelation(s [][]float64, cols []Column) ([][]float64, []float64) {
	k := len(cols)
	st := make([]*steps, k)
	w := make([]float64, k)
	for i := range cols {
		st[i] = stepsOf(&cols[i])
		w[i] = weightMeasured
		if st[i] != nil && st[i].a < 0.99 {
			w[i] = weightCorrected
		}
	}
	r := clone(s)
	for i := range k {
		for j := i + 1; j < k; j++ {
			v := s[i][j]
			a, b := st[i], st[j]
			switch {
			case v == 0:
			case a == nil && b == nil:
			case a == nil || b == nil:
				if b == nil {
					a, b = b, a
				}
				if b.sd == 0 || b.a <= 0 {
					v = 0
				} else {
					v /= b.a
				}
			case a.sd == 0 || b.sd == 0 || a.a <= 0 || b.a <= 0:
				v = 0
			case min(len(a.s), len(b.s))*(len(a.s)+len(b.s)) <= maxExactWork:
				if len(a.s) < len(b.s) {
					a, b = b, a // the inner sum over b's values: the shorter
				}
				v = solveLatent(a, b, v)
			default:
				v /= a.a * b.a
			}
			v = max(-1, min(1, v))
			r[i][j], r[j][i] = v, v
		}
	}
	return r, w
}

// solveLatent is the ρ at which corr(g₁(Z₁), g₂(Z₂)) = target.
func solveLatent(a, b *steps, target float64) float64 {
	const edge = 1 - 1e-9
	lo, hi := -edge, edge
	if target <= scoreCorr(a, b, lo) {
		return lo
	}
	if target >= scoreCorr(a, b, hi) {
		return hi
	}
	for range 50 {
		mid := (lo + hi) / 2
		if scoreCorr(a, b, mid) < target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// Gauss–Legendre nodes and weights on [-1, 1], 8 points.
var glx = [8]float64{-0.9602898564975363, -0.7966664774136267, -0.5255324099163290, -0.1834346424956498,
	0.1834346424956498, 0.5255324099163290, 0.7966664774136267, 0.9602898564975363}
var glw = [8]float64{0.1012285362903763, 0.2223810344533745, 0.3137066238177860, 0.3626837833783620,
	0.3626837833783620, 0.3137066238177860, 0.2223810344533745, 0.1012285362903763}

// scoreCorr is corr(g_a(Z₁), g_b(Z₂)) for latent correlation rho:
// E[g_a g_b] = Σ_k s_k ∫ over u in (c_{k-1}, c_k] of h(Φ⁻¹(u)) du, with
// h(z) = E[g_b(Z₂) | Z₁ = z], integrated by Gauss–Legendre on pieces
// cut where h steps as |rho| → 1.
func scoreCorr(a, b *steps, rho float64) float64 {
	sig := math.Sqrt((1 - rho) * (1 + rho))
	h := func(z float64) float64 {
		var v, prev float64 // prev: Φ((t_{l-1} − ρz)/σ), 0 at -Inf
		for l, s := range b.s {
			cur := 1.0
			if l < len(b.s)-1 {
				cur = cdf((b.t[l] - rho*z) / sig)
			}
			v += s * (cur - prev)
			prev = cur
		}
		return v
	}
	// Where h steps: z = t_l/ρ, as shares u.
	var cuts []float64
	if rho != 0 {
		for _, t := range b.t[:len(b.t)-1] {
			cuts = append(cuts, cdf(t/rho))
		}
	}
	var e float64
	u0 := 0.0
	for k, s := range a.s {
		u1 := a.c[k]
		pts := []float64{u0}
		for _, c := range cuts {
			if c > u0 && c < u1 {
				pts = append(pts, c)
			}
		}
		pts = append(pts, u1)
		slices.Sort(pts)
		var in float64
		for p := 1; p < len(pts); p++ {
			x0, x1 := pts[p-1], pts[p]
			half, mid := (x1-x0)/2, (x1+x0)/2
			for q, x := range glx {
				in += glw[q] * half * h(quantile(mid+half*x))
			}
		}
		e += s * in
		u0 = u1
	}
	return (e - a.mean*b.mean) / (a.sd * b.sd)
}
