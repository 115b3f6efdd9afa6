package synth

import (
	"math"
	"runtime"
	"slices"
	"sync"

	"gonum.org/v1/gonum/mat"
)

// scoreCorrelation is the Pearson correlation of the columns' normal
// scores (NaN where a row has none), each pair over the rows where both
// have one; 0 where undefined (a constant column, fewer than 3 common
// rows).
func scoreCorrelation(z [][]float32) [][]float64 {
	r := pairwise(z)
	for _, row := range r {
		for j, v := range row {
			if math.IsNaN(v) {
				row[j] = 0
			}
		}
	}
	return r
}

// pairwise is the Pearson correlation of the columns z (NaN where a row
// has no value; a nil column has none), each pair over the rows where
// both have a value; NaN where undefined.
func pairwise(z [][]float32) [][]float64 {
	k := len(z)
	r := make([][]float64, k)
	for i := range r {
		r[i] = make([]float64, k)
		r[i][i] = 1
	}
	// Columns without gaps: their sums once.
	full := make([]bool, k)
	sum, sq := make([]float64, k), make([]float64, k)
	for i, c := range z {
		full[i] = c != nil
		for _, v := range c {
			if v != v {
				full[i] = false
				break
			}
			sum[i] += float64(v)
			sq[i] += float64(v) * float64(v)
		}
	}
	var wg sync.WaitGroup
	next := make(chan int, k)
	for i := range k {
		next <- i
	}
	close(next)
	for range min(runtime.GOMAXPROCS(0), k) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				for j := i + 1; j < k; j++ {
					v := math.NaN()
					switch {
					case z[i] == nil || z[j] == nil:
					case full[i] && full[j]:
						v = pearsonFull(z[i], z[j], sum[i], sq[i], sum[j], sq[j])
					default:
						v = pearsonPairwise(z[i], z[j])
					}
					r[i][j], r[j][i] = v, v
				}
			}
		}()
	}
	wg.Wait()
	return r
}

func pearson(n, sx, sxx, sy, syy, sxy float64) float64 {
	if n < 3 {
		return math.NaN()
	}
	vx, vy := n*sxx-sx*sx, n*syy-sy*sy
	if vx <= 1e-12*n*sxx || vy <= 1e-12*n*syy {
		return math.NaN() // constant
	}
	return max(-1, min(1, (n*sxy-sx*sy)/math.Sqrt(vx*vy)))
}

func pearsonFull(x, y []float32, sx, sxx, sy, syy float64) float64 {
	var sxy float64
	for i, v := range x {
		sxy += float64(v) * float64(y[i])
	}
	return pearson(float64(len(x)), sx, sxx, sy, syy, sxy)
}

func pearsonPairwise(x, y []float32) float64 {
	var n, sx, sxx, sy, syy, sxy float64
	for i, a := range x {
		b := y[i]
		if a != a || b != b {
			continue
		}
		fa, fb := float64(a), float64(b)
		n++
		sx += fa
		sy += fb
		sxx += fa * fa
		syy += fb * fb
		sxy += fa * fb
	}
	return pearson(n, sx, sxx, sy, syy, sxy)
}

// minEigenvalue is the least eigenvalue a correlation matrix keeps.
const minEigenvalue = 1e-6

// Nearest-correlation iterations at most, and the change at which they
// stop.
const (
	nearestIterations = 500
	nearestTolerance  = 1e-9
)

// positiveDefinite is a, a symmetric matrix with a unit diagonal, made a
// correlation matrix a Cholesky factor exists for. If a's least
// eigenvalue is below minEigenvalue it is replaced by the nearest
// correlation matrix in the weighted norm ‖W^½(a − X)W^½‖ (Higham's
// alternating projections with Dykstra's correction, W = diag(w)): an
// entry between columns of large weights changes less than one between
// columns of small weights. The result's eigenvalues below
// minEigenvalue are then raised to it and the matrix rescaled to a unit
// diagonal; should rounding still leave it without a Cholesky factor,
// it is blended with the identity by a growing ridge.
func positiveDefinite(a [][]float64, w []float64) ([][]float64, Repair) {
	k := len(a)
	rep := Repair{MinAllowed: minEigenvalue}
	vals, _ := eigen(a)
	rep.MinEigenvalue = slices.Min(vals)
	out := clone(a)
	if rep.MinEigenvalue < minEigenvalue {
		sw := make([]float64, k)
		for i := range k {
			sw[i] = math.Sqrt(w[i])
		}
		y := clone(a)
		ds := make([][]float64, k)
		for i := range ds {
			ds[i] = make([]float64, k)
		}
		r := make([][]float64, k)
		for i := range r {
			r[i] = make([]float64, k)
		}
		for rep.Iterations < nearestIterations {
			rep.Iterations++
			for i := range k {
				for j := range k {
					r[i][j] = y[i][j] - ds[i][j]
					out[i][j] = sw[i] * r[i][j] * sw[j]
				}
			}
			out = clipEigenvalues(out, minEigenvalue)
			var diff float64
			for i := range k {
				for j := range k {
					x := out[i][j] / (sw[i] * sw[j])
					ds[i][j] = x - r[i][j]
					if i == j {
						x = 1
					}
					diff = max(diff, math.Abs(x-y[i][j]))
					y[i][j] = x
				}
			}
			if diff < nearestTolerance {
				break
			}
		}
		out = y
	}
	if vals, _ := eigen(out); slices.Min(vals) < minEigenvalue {
		out = clipEigenvalues(out, minEigenvalue)
		for _, v := range vals {
			if v < minEigenvalue {
				rep.Clipped++
			}
		}
		d := make([]float64, k)
		for i := range k {
			d[i] = math.Sqrt(out[i][i])
		}
		for i := range k {
			out[i][i] = 1
			for j := i + 1; j < k; j++ {
				v := max(-1, min(1, out[i][j]/(d[i]*d[j])))
				out[i][j], out[j][i] = v, v
			}
		}
	}
	for ridge := 1e-10; ; ridge *= 10 {
		if _, ok := cholesky(flatten(out), k); ok || ridge > 1 {
			break
		}
		for i := range k {
			for j := i + 1; j < k; j++ {
				v := out[i][j] / (1 + ridge)
				out[i][j], out[j][i] = v, v
			}
		}
	}
	for i := range k {
		for j := i + 1; j < k; j++ {
			rep.MaxChange = max(rep.MaxChange, math.Abs(out[i][j]-a[i][j]))
		}
	}
	return out, rep
}

// clipEigenvalues is V·max(Λ, floor)·Vᵀ for r = V·Λ·Vᵀ (symmetric).
func clipEigenvalues(r [][]float64, floor float64) [][]float64 {
	k := len(r)
	vals, vec := eigen(r)
	if vec == nil {
		return r
	}
	out := make([][]float64, k)
	for i := range out {
		out[i] = make([]float64, k)
	}
	for l := range vals {
		vals[l] = max(vals[l], floor)
	}
	for i := range k {
		for j := i; j < k; j++ {
			var v float64
			for l := range k {
				v += vec.At(i, l) * vals[l] * vec.At(j, l)
			}
			out[i][j], out[j][i] = v, v
		}
	}
	return out
}

// eigen is the eigenvalues and eigenvectors of the symmetric r.
func eigen(r [][]float64) ([]float64, *mat.Dense) {
	k := len(r)
	sym := mat.NewSymDense(k, nil)
	for i := range k {
		for j := i; j < k; j++ {
			sym.SetSym(i, j, r[i][j])
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(sym, true) {
		return []float64{math.Inf(-1)}, nil
	}
	var vec mat.Dense
	eig.VectorsTo(&vec)
	return eig.Values(nil), &vec
}

func clone(r [][]float64) [][]float64 {
	out := make([][]float64, len(r))
	for i := range r {
		out[i] = append([]float64(nil), r[i]...)
	}
	return out
}

func flatten(r [][]float64) []float64 {
	var out []float64
	for _, row := range r {
		out = append(out, row...)
	}
	return out
}

// cholesky is L with a = L·Lᵀ (row-major k×k), or false when a is not
// positive definite.
func cholesky(a []float64, k int) ([]float64, bool) {
	l := make([]float64, k*k)
	for i := range k {
		for j := 0; j <= i; j++ {
			s := a[i*k+j]
			for p := range j {
				s -= l[i*k+p] * l[j*k+p]
			}
			if i == j {
				if s <= 0 || math.IsNaN(s) {
					return nil, false
				}
				l[i*k+i] = math.Sqrt(s)
			} else {
				l[i*k+j] = s / l[j*k+j]
			}
		}
	}
	return l, true
}
