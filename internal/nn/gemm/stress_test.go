package gemm

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSgemmUnderGC runs, from several goroutines at once while the GC runs
// back to back (which empties the workspace and buffer pools at every
// cycle), the products of a small MLP's layers as nn.Dense makes them —
// C preloaded with the bias, beta 1, B stored transposed — for one and a
// few rows, next to products big enough to be split among goroutines, and
// checks every result to the bit. Every product runs both through Sgemm
// and with the split forced whatever its size. Entries are small integers,
// so the float64 reference is exact. It takes about a second.
func TestSgemmUnderGC(t *testing.T) {
	type job struct {
		transA, transB bool
		m, n, k        int
		alpha, beta    float32
		a, b, c0, want []float32
	}
	ints := func(n, mod, off int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i*7%mod - off)
		}
		return s
	}
	var jobs []job
	add := func(transA, transB bool, m, n, k int, alpha, beta float32) {
		j := job{transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
			a: ints(m*k, 5, 2), b: ints(k*n, 7, 3), c0: ints(m*n, 3, 1)}
		j.want = make([]float32, m*n)
		for i := 0; i < m; i++ {
			for l := 0; l < n; l++ {
				s := 0.0
				for p := 0; p < k; p++ {
					ai, bi := i*k+p, p*n+l
					if transA {
						ai = p*m + i
					}
					if transB {
						bi = l*k + p
					}
					s += float64(j.a[ai]) * float64(j.b[bi])
				}
				j.want[i*n+l] = float32(float64(alpha)*s + float64(beta)*float64(j.c0[i*n+l]))
			}
		}
		jobs = append(jobs, j)
	}
	for _, m := range []int{1, 2, 5, 7} {
		// Dense forward 2→32→32→1: y = x·Wᵀ + b.
		add(false, true, m, 32, 2, 1, 1)
		add(false, true, m, 32, 32, 1, 1)
		add(false, true, m, 1, 32, 1, 1)
		add(false, false, m, 16, 1, 1, 0)
		add(true, false, m, 3, 2, 0.5, 0)
	}
	// Split along m, along n with Aᵀ packed once, and along k.
	add(false, true, 200, 64, 96, 1, 1)
	add(true, false, 24, 1000, 64, 1, 0)
	add(false, false, 8, 8, 20000, 1, 1)

	split := defaultConfig()
	split.maxThreads, split.minWork = 4, 1
	run := func(j *job, forceSplit bool) error {
		c := append([]float32(nil), j.c0...)
		lda, ldb := j.k, j.n
		if j.transA {
			lda = j.m
		}
		if j.transB {
			ldb = j.k
		}
		if forceSplit {
			sgemm(split, j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.a, lda, j.b, ldb, j.beta, c, j.n)
		} else {
			Sgemm(j.transA, j.transB, j.m, j.n, j.k, j.alpha, j.a, lda, j.b, ldb, j.beta, c, j.n)
		}
		for i := range c {
			if math.Float32bits(c[i]) != math.Float32bits(j.want[i]) {
				return fmt.Errorf("transA %v transB %v %d×%d×%d (split forced: %v): C[%d] = %g, want %g",
					j.transA, j.transB, j.m, j.n, j.k, forceSplit, i, c[i], j.want[i])
			}
		}
		return nil
	}

	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, procs := range []int{1, 2, 8} {
		runtime.GOMAXPROCS(procs)
		stop := make(chan struct{})
		var gcs sync.WaitGroup
		gcs.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					runtime.GC()
				}
			}
		})
		var (
			products atomic.Int64
			failed   atomic.Bool
			wg       sync.WaitGroup
		)
		deadline := time.Now().Add(300 * time.Millisecond)
		for w := 0; w < 4; w++ {
			wg.Go(func() {
				for i := w; time.Now().Before(deadline) && !failed.Load(); i++ {
					if err := run(&jobs[i%len(jobs)], i/len(jobs)%2 == 1); err != nil {
						failed.Store(true)
						t.Errorf("GOMAXPROCS %d: %v", procs, err)
						return
					}
					products.Add(1)
				}
			})
		}
		wg.Wait()
		close(stop)
		gcs.Wait()
		t.Logf("GOMAXPROCS %d: %d products", procs, products.Load())
	}
}
