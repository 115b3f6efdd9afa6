package gemm

import (
	"fmt"
	"math"
)

// The assembly routines (kernel_amd64.s) read their arguments at frame
// offsets that the build never compares with their Go declarations
// (kernel_amd64.go): go vet's asmdecl does, the compiler and linker do not.
// A binary built while the two files disagree — a build that ran after
// one had been saved and before the other was — links without a word and
// passes arguments in the wrong slots. That happened once: this package,
// compiled between the saves of the change that gave the micro-kernel its
// row count h, made the old 9-argument call to the new 10-argument kernel,
// which took a stride for A's address and faulted on a near-zero address;
// an ONNX model's trial run reported "invalid memory address or nil
// pointer dereference", with no stack, and no later build reproduced it.
// So the package checks its assembly once at start-up, on small products
// with exact answers, against the portable Go routines (well under a
// millisecond), and refuses to run on a mismatch, naming the likely cause.

func init() {
	if !hasAVX2Kernel() {
		return
	}
	if err := checkKernels(bestKernel(), bestPack()); err != nil {
		panic(fmt.Sprintf("gemm: the assembly routines failed their start-up check: %v; "+
			"kernel_amd64.s and the declarations in kernel_amd64.go probably disagree "+
			"(a build from a half-saved tree? go vet ./internal/nn/gemm compares them)", err))
	}
}

// checkKernels runs kern and pk on small operands with integer entries, so
// that every sum is exact in float32 whatever the order and fusing, and
// compares the results, sentinels around them included, with kernelGo,
// rowsGo and panelGo. A panic in them (the fault of a misread argument)
// becomes the error.
func checkKernels(kern kernelFunc, pk packer) (err error) {
	what := func() string { return "setting up" } // the step under way, described on failure
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%s: %v", what(), r)
		}
	}()
	ints := func(n, mod, off int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i*7%mod - off)
		}
		return s
	}
	same := func(got, want []float32) int {
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				return i
			}
		}
		return -1
	}

	// The micro-kernel: every tile height (kernel4x16 and kernel6x16), A
	// read in place (row-major) and packed, beta 0 (C holds NaN, which must
	// not be read) and not; kc = 9 runs the 4-step loop and the tail. C has
	// a row past the tile and columns past nr, which must stay as they are.
	const kc = 9
	b := ints(kc*nr, 7, 3)
	for h := 1; h <= mr; h++ {
		for _, packed := range []bool{false, true} {
			rsa, csa, layout := kc+2, 1, "in place"
			if packed {
				rsa, csa, layout = 1, mr, "packed"
			}
			a := ints((h-1)*rsa+(kc-1)*csa+1, 5, 2)
			for _, beta := range []float32{0, -1} {
				const ldc = nr + 3
				c0 := ints((h+1)*ldc, 3, 1)
				if beta == 0 {
					for i := 0; i < h; i++ {
						for j := 0; j < nr; j++ {
							c0[i*ldc+j] = float32(math.NaN())
						}
					}
				}
				got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
				what = func() string {
					return fmt.Sprintf("the micro-kernel for %d×%d (kc %d, A %s, beta %g)", h, nr, kc, layout, beta)
				}
				kern(h, kc, a, rsa, csa, b, got, ldc, 2, beta)
				kernelGo(h, kc, a, rsa, csa, b, want, ldc, 2, beta)
				if i := same(got, want); i >= 0 {
					return fmt.Errorf("%s: C[%d][%d] = %g, want %g", what(), i/ldc, i%ldc, got[i], want[i])
				}
			}
		}
	}

	// Packing B stored k×n: two full panels of three rows.
	{
		const kc, panels, ldb = 3, 2, 2*nr + 3
		src := ints(kc*ldb, 11, 5)
		got, want := ints(panels*kc*nr+nr, 13, 20), ints(panels*kc*nr+nr, 13, 20)
		what = func() string { return fmt.Sprintf("packing %d panels of B (kc %d)", panels, kc) }
		pk.rows(kc, panels, src, ldb, got)
		rowsGo(kc, panels, src, ldb, want)
		if i := same(got, want); i >= 0 {
			return fmt.Errorf("%s: dst[%d] = %g, want %g", what(), i, got[i], want[i])
		}
	}

	// Packing B stored n×k: 16 columns (two 8-row transposes) and 11 (one
	// and a remainder), kc = 19 (two 8-deep blocks and a remainder).
	for _, w := range []int{nr, 11} {
		const kc, ldb = 19, 19 + 2
		src := ints(w*ldb, 11, 5)
		got, want := ints(kc*nr, 13, 20), ints(kc*nr, 13, 20)
		what = func() string { return fmt.Sprintf("packing a panel of Bᵀ (%d columns, kc %d)", w, kc) }
		pk.panel(kc, w, src, ldb, got)
		panelGo(kc, w, src, ldb, want)
		if i := same(got, want); i >= 0 {
			return fmt.Errorf("%s: dst[%d] = %g, want %g", what(), i, got[i], want[i])
		}
	}
	return nil
}
