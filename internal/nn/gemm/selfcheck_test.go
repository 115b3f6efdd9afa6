package gemm

import (
	"strings"
	"testing"
)

// TestCheckKernels checks the start-up check: it passes the routines this
// CPU runs, and turns routines that fault or compute something else into
// an error naming them, rather than a crash or silence. The faulting kernel
// stands for the build that once paired kernel_amd64.s with an older
// kernel_amd64.go: its kernel read a stride as A's address and faulted on
// a near-zero address, reported as a nil pointer dereference.
func TestCheckKernels(t *testing.T) {
	for name, k := range kernels() {
		if err := checkKernels(k.kernel, k.pack); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	good := kernels()["go"]
	if hasAVX2Kernel() {
		good = kernels()["avx2"]
	}
	faults := func(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
		var p *float32
		c[0] = *p
	}
	// The tile rows computed with A's strides swapped.
	swapped := func(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
		kernelGo(h, kc, a, csa, rsa, b, c, ldc, alpha, beta)
	}
	// The old contract: mr rows whatever h, into the row past the tile.
	allRows := func(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
		kernelGo(mr, kc, a, rsa, csa, b, c, ldc, alpha, beta)
	}
	// Reads C although beta is 0.
	readsC := func(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
		kernelGo(h, kc, a, rsa, csa, b, c, ldc, alpha, max(beta, 1e-30))
	}
	rowsOff := func(kc, panels int, src []float32, ldb int, dst []float32) {
		good.pack.rows(kc, panels, src[1:], ldb, dst)
	}
	panelShort := func(kc, w int, src []float32, ldb int, dst []float32) {
		good.pack.panel(kc, w-1, src, ldb, dst)
	}
	for _, c := range []struct {
		name string
		kern kernelFunc
		pk   packer
		want string
	}{
		{"fault", faults, good.pack, "the micro-kernel for 1×16 (kc 9, A in place, beta 0): runtime error: invalid memory address or nil pointer dereference"},
		{"swapped strides", swapped, good.pack, "the micro-kernel for 1×16"},
		{"all rows", allRows, good.pack, "the micro-kernel for 1×16"},
		{"reads C", readsC, good.pack, "beta 0): C[0][0] = NaN"},
		{"rows", good.kernel, packer{rowsOff, good.pack.panel}, "packing 2 panels of B (kc 3): dst[0]"},
		{"panel", good.kernel, packer{good.pack.rows, panelShort}, "packing a panel of Bᵀ (16 columns, kc 19): dst["},
	} {
		err := checkKernels(c.kern, c.pk)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
}
