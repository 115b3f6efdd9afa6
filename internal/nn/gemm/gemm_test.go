package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// impl is a micro-kernel with its packing of B.
type impl struct {
	kernel kernelFunc
	column columnFunc
	pack   packer
}

// kernels are the implementations this CPU can run.
func kernels() map[string]impl {
	ks := map[string]impl{"go": {kernelGo, columnGo, packer{rowsGo, panelGo}}}
	if hasAVX2Kernel() {
		ks["avx2"] = impl{bestKernel(), bestColumn(), bestPack()}
	}
	return ks
}

// configs are the default blocking and tiny ones that cross every block
// boundary (mc, kc, nc) and split among three goroutines at small sizes,
// with and without operands packed once and shared.
func configs(kern impl) map[string]config {
	def := defaultConfig()
	def.kernel, def.column, def.pack = kern.kernel, kern.column, kern.pack
	tiny := config{kernel: kern.kernel, column: kern.column, pack: kern.pack, mc: 12, kc: 11, nc: 32, maxThreads: 3, minWork: 1, maxShared: 1 << 20, kTiles: 16, kDepth: 24}
	unshared := tiny
	unshared.maxShared = 0
	return map[string]config{"default": def, "tiny": tiny, "unshared": unshared}
}

type testCase struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra columns in every leading dimension
}

func (tc testCase) String() string {
	t := func(b bool) string {
		if b {
			return "T"
		}
		return "N"
	}
	return fmt.Sprintf("%s%s_%dx%dx%d_a%g_b%g_pad%d", t(tc.transA), t(tc.transB), tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad)
}

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// check runs one product through cfg and compares it with a float64
// reference; it also checks that C's padding is untouched and that beta == 0
// ignores NaNs in C.
func check(t *testing.T, cfg config, tc testCase, rng *rand.Rand) {
	t.Helper()
	m, n, k := tc.m, tc.n, tc.k
	ar, ac := m, k
	if tc.transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if tc.transB {
		br, bc = n, k
	}
	lda, ldb, ldc := max(ac, 1)+tc.pad, max(bc, 1)+tc.pad, max(n, 1)+tc.pad
	a := randSlice(rng, ar*lda)
	b := randSlice(rng, br*ldb)
	// C has one more row than the product, which like the columns past n
	// must stay as it was.
	c := randSlice(rng, (m+1)*ldc)
	const sentinel = float32(-12345)
	for j := range ldc {
		c[m*ldc+j] = sentinel
	}
	for i := 0; i < m; i++ {
		for j := n; j < ldc; j++ {
			c[i*ldc+j] = sentinel
		}
		if tc.beta == 0 {
			for j := 0; j < n; j++ {
				c[i*ldc+j] = float32(math.NaN())
			}
		}
	}
	c0 := append([]float32(nil), c...)
	at := func(i, p int) float64 {
		if tc.transA {
			return float64(a[p*lda+i])
		}
		return float64(a[i*lda+p])
	}
	bt := func(p, j int) float64 {
		if tc.transB {
			return float64(b[j*ldb+p])
		}
		return float64(b[p*ldb+j])
	}

	sgemm(cfg, tc.transA, tc.transB, m, n, k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)

	eps := float64(4*(k+4)) / (1 << 23)
	for j := range ldc {
		if got := c[m*ldc+j]; got != sentinel {
			t.Fatalf("%v: C[%d][%d] past the last row changed to %g", tc, m, j, got)
		}
	}
	bad := 0
	for i := 0; i < m; i++ {
		for j := 0; j < ldc; j++ {
			got := c[i*ldc+j]
			if j >= n {
				if got != sentinel {
					t.Fatalf("%v: C[%d][%d] outside the product changed to %g", tc, i, j, got)
				}
				continue
			}
			var sum, abs float64
			for p := 0; p < k; p++ {
				v := at(i, p) * bt(p, j)
				sum += v
				abs += math.Abs(v)
			}
			want := float64(tc.alpha) * sum
			scale := math.Abs(float64(tc.alpha)) * abs
			if tc.beta != 0 {
				old := float64(c0[i*ldc+j])
				want += float64(tc.beta) * old
				scale += math.Abs(float64(tc.beta) * old)
			}
			if d := math.Abs(float64(got) - want); !(d <= eps*scale+1e-30) {
				if bad++; bad <= 3 {
					t.Errorf("%v: C[%d][%d] = %g, want %g (diff %g, allowed %g)", tc, i, j, got, want, d, eps*scale)
				}
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%v: %d wrong elements", tc, bad)
	}
}

func TestSgemmSizes(t *testing.T) {
	sizes := []int{1, 2, 7, 17, 33, 100, 257}
	ks := []int{0, 1, 2, 7, 17, 33, 100, 257}
	if testing.Short() {
		sizes = []int{1, 7, 17, 33}
		ks = []int{0, 1, 7, 33}
	}
	betas := []float32{0, 1, 0.5}
	alphas := []float32{1, -0.75, 2}
	for kname, kern := range kernels() {
		for cname, cfg := range configs(kern) {
			t.Run(kname+"/"+cname, func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(1, 2))
				i := 0
				for _, transA := range []bool{false, true} {
					for _, transB := range []bool{false, true} {
						for _, m := range sizes {
							for _, n := range sizes {
								for _, k := range ks {
									if cname != "default" && m*n*k > 100*100*100 {
										continue
									}
									tc := testCase{transA, transB, m, n, k, alphas[i%3], betas[(i/3)%3], (i / 9) % 2 * 3}
									i++
									check(t, cfg, tc, rng)
								}
							}
						}
					}
				}
			})
		}
	}
}

// TestSgemmAlphaBeta tries every alpha/beta pair on shapes with edge tiles.
func TestSgemmAlphaBeta(t *testing.T) {
	for kname, kern := range kernels() {
		for cname, cfg := range configs(kern) {
			rng := rand.New(rand.NewPCG(3, 4))
			for _, alpha := range []float32{1, 0.5, -2, 0} {
				for _, beta := range []float32{0, 1, 0.5, -1} {
					for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
						tc := testCase{tr[0], tr[1], 13, 35, 19, alpha, beta, 1}
						t.Run(kname+"/"+cname+"/"+tc.String(), func(t *testing.T) { check(t, cfg, tc, rng) })
					}
				}
			}
		}
	}
}

// TestSgemmLarge runs shapes that split among goroutines with the default
// blocking, crossing kc and mc blocks.
func TestSgemmLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("large products")
	}
	shapes := [][3]int{{300, 200, 520}, {64, 784, 256}, {777, 45, 300}, {20, 3100, 40}, {200, 3300, 17}, {32, 25, 9000}}
	for kname, kern := range kernels() {
		cfg := defaultConfig()
		cfg.kernel, cfg.column, cfg.pack = kern.kernel, kern.column, kern.pack
		cfg.minWork = 1 << 16 // every shape on several goroutines
		rng := rand.New(rand.NewPCG(5, 6))
		for i, s := range shapes {
			for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				tc := testCase{tr[0], tr[1], s[0], s[1], s[2], 1, []float32{0, 1, 0.5}[i%3], i % 2 * 5}
				t.Run(kname+"/"+tc.String(), func(t *testing.T) { check(t, cfg, tc, rng) })
			}
		}
	}
}

// TestSgemmPublic checks the exported entry point once.
func TestSgemmPublic(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6}   // 2×3
	b := []float32{1, 0, 0, 1, 1, 1}   // 3×2
	c := []float32{100, 100, 100, 100} // 2×2
	Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0.5, c, 2)
	want := []float32{54, 55, 60, 61}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("C = %v, want %v", c, want)
		}
	}
	// op(A) = Aᵀ (3×2) times op(B) = Bᵀ (2×3).
	c9 := make([]float32, 9)
	Sgemm(true, true, 3, 3, 2, 1, a, 3, b, 2, 0, c9, 3)
	// Aᵀ = [[1 4] [2 5] [3 6]], Bᵀ = [[1 0 1] [0 1 1]]
	want9 := []float32{1, 4, 5, 2, 5, 7, 3, 6, 9}
	for i := range want9 {
		if c9[i] != want9[i] {
			t.Fatalf("C = %v, want %v", c9, want9)
		}
	}
	if s := Impl(); s != "avx2" && s != "go" {
		t.Fatalf("Impl() = %q", s)
	}
}

func TestSgemmPanics(t *testing.T) {
	a := make([]float32, 6)
	b := make([]float32, 6)
	c := make([]float32, 4)
	cases := []struct {
		name string
		f    func()
		msg  string
	}{
		{"negative", func() { Sgemm(false, false, -1, 2, 3, 1, a, 3, b, 2, 0, c, 2) }, "negative dimension"},
		{"lda", func() { Sgemm(false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2) }, "A is 2×3 but its leading dimension is 2"},
		{"ldb trans", func() { Sgemm(false, true, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2) }, "B is 2×3 but its leading dimension is 2"},
		{"ldc", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 1) }, "C is 2×2 but its leading dimension is 1"},
		{"short A", func() { Sgemm(false, false, 2, 2, 3, 1, a[:5], 3, b, 2, 0, c, 2) }, "A is 2×3 with leading dimension 3, which needs 6 values, but has 5"},
		{"short C", func() { Sgemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 3) }, "C is 2×2 with leading dimension 3, which needs 5 values, but has 4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.msg) {
					t.Fatalf("panic %v, want one containing %q", r, tc.msg)
				}
			}()
			tc.f()
		})
	}
	// Empty products need no storage.
	Sgemm(false, false, 0, 0, 0, 1, nil, 1, nil, 1, 0, nil, 1)
	Sgemm(true, true, 0, 5, 3, 1, nil, 1, make([]float32, 15), 3, 0, nil, 5)
}

// TestPack checks the packing functions against their definitions.
func TestPack(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for kname, k := range kernels() {
		for _, kc := range []int{1, 7, 8, 9, 16, 31, 256} {
			for _, w := range []int{0, 1, 7, 8, 9, 15, 16} {
				ldb := kc + 5
				src := randSlice(rng, max(w, 1)*ldb)
				got := randSlice(rng, kc*nr)
				k.pack.panel(kc, w, src, ldb, got)
				for p := 0; p < kc; p++ {
					for j := 0; j < nr; j++ {
						want := float32(0)
						if j < w {
							want = src[j*ldb+p]
						}
						if got[p*nr+j] != want {
							t.Fatalf("%s panel kc=%d w=%d: dst[%d·16+%d] = %g, want %g", kname, kc, w, p, j, got[p*nr+j], want)
						}
					}
				}
			}
			for _, panels := range []int{0, 1, 3} {
				ldb := panels*nr + 3
				src := randSlice(rng, kc*ldb)
				got := randSlice(rng, panels*kc*nr)
				k.pack.rows(kc, panels, src, ldb, got)
				for q := 0; q < panels; q++ {
					for p := 0; p < kc; p++ {
						for j := 0; j < nr; j++ {
							if g, want := got[q*kc*nr+p*nr+j], src[p*ldb+q*nr+j]; g != want {
								t.Fatalf("%s rows kc=%d panels=%d: dst[%d][%d][%d] = %g, want %g", kname, kc, panels, q, p, j, g, want)
							}
						}
					}
				}
			}
		}
	}
}

// TestSgemmThreadsIdentical checks that the result does not depend on how
// many goroutines compute it, to the bit.
func TestSgemmThreadsIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	shapes := [][3]int{{300, 200, 520}, {64, 784, 256}, {777, 45, 300}, {32, 25, 9000}, {13, 7, 5000}}
	for _, s := range shapes {
		for _, tr := range [4][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			m, n, k := s[0], s[1], s[2]
			a, b, c0 := randSlice(rng, m*k), randSlice(rng, k*n), randSlice(rng, m*n)
			lda, ldb := k, n
			if tr[0] {
				lda = m
			}
			if tr[1] {
				ldb = k
			}
			var first []float32
			for threads := 1; threads <= 4; threads++ {
				cfg := defaultConfig()
				cfg.maxThreads = threads
				cfg.minWork = 1 << 16
				c := append([]float32(nil), c0...)
				sgemm(cfg, tr[0], tr[1], m, n, k, 1.5, a, lda, b, ldb, 0.5, c, n)
				if first == nil {
					first = c
					continue
				}
				for i := range c {
					if c[i] != first[i] {
						t.Fatalf("%v %v: C[%d] = %g with %d goroutines, %g with one", s, tr, i, c[i], threads, first[i])
					}
				}
			}
		}
	}
}

// TestCheckColumn checks the column kernels' start-up check: it passes the
// ones this CPU runs and names a column kernel that faults or writes a
// tile too many.
func TestCheckColumn(t *testing.T) {
	for name, k := range kernels() {
		if err := checkColumn(k.column); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	faults := func(tiles, kc int, a []float32, rsa, csa, astep int, b []float32, c []float32, ldc int, alpha, beta float32) {
		var p *float32
		c[0] = *p
	}
	extra := func(tiles, kc int, a []float32, rsa, csa, astep int, b []float32, c []float32, ldc int, alpha, beta float32) {
		columnGo(tiles, kc, a, rsa, csa, astep, b, c, ldc, alpha, beta)
		c[tiles*mr*ldc] = 1e9
	}
	for name, col := range map[string]columnFunc{"fault": faults, "extra": extra} {
		if err := checkColumn(col); err == nil || !strings.Contains(err.Error(), "a column of 3 tiles") {
			t.Errorf("%s: got %v, want an error naming the column", name, err)
		}
	}
}
