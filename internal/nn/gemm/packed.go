package gemm

import (
	"fmt"
	"runtime"
)

// PackedB is op(B) packed once into the panels Sgemm packs it into on
// every call, for products that reuse one B with many A: a layer's
// weights at inference, where packing them was a third of a small
// batch's time. SgemmPacked computes exactly what Sgemm computes, to the
// bit: the same blocks of k, the same kernel, the same order of sums.
type PackedB struct {
	k, n   int
	kcb    int       // depth of the k blocks it was packed with
	data   []float32 // the k blocks, each ⌈n/nr⌉ panels of nr columns
	transB bool      // the original, for the shapes Sgemm cuts along k
	b      []float32
	ldb    int
}

// PackB packs op(B) (k×n; with transB, B is stored n×k) with row stride
// ldb. It keeps a reference to b: b must not change while the PackedB
// is in use.
func PackB(transB bool, k, n int, b []float32, ldb int) *PackedB {
	return packB(defaultConfig(), transB, k, n, b, ldb)
}

func packB(cfg config, transB bool, k, n int, b []float32, ldb int) *PackedB {
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if k < 0 || n < 0 {
		panic(fmt.Sprintf("gemm: negative dimension n=%d k=%d", n, k))
	}
	checkMatrix("B", br, bc, b, ldb)
	pb := &PackedB{k: k, n: n, transB: transB, b: b, ldb: ldb}
	if k == 0 || n == 0 {
		return pb
	}
	pb.kcb = kcBlock(cfg.kc, k)
	pb.data = aligned(nil, k*roundUp(n, nr))
	p := product{transB: transB, n: n, k: k, b: b, ldb: ldb}
	packAllB(cfg, pb.data, &p, pb.kcb)
	return pb
}

// Bytes is the memory of the packed copy (not of the B it refers to).
func (pb *PackedB) Bytes() int64 { return 4 * int64(len(pb.data)) }

// K and N are op(B)'s dimensions.
func (pb *PackedB) K() int { return pb.k }
func (pb *PackedB) N() int { return pb.n }

// SgemmPacked computes C = alpha·A·op(B) + beta·C with op(B) packed by
// PackB: A is m×k row-major with stride lda, C m×n with stride ldc.
func SgemmPacked(m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	sgemmPacked(defaultConfig(), m, alpha, a, lda, pb, beta, c, ldc)
}

func sgemmPacked(cfg config, m int, alpha float32, a []float32, lda int, pb *PackedB, beta float32, c []float32, ldc int) {
	n, k := pb.n, pb.k
	if m < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d", m))
	}
	checkMatrix("A", m, k, a, lda)
	checkMatrix("C", m, n, c, ldc)
	if degenerate(m, n, k, alpha, beta, c, ldc) {
		return
	}
	threads := cfg.maxThreads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if m*n*k < cfg.minWork {
		threads = 1
	}
	if tiles := ((m + mr - 1) / mr) * ((n + nr - 1) / nr); tiles <= cfg.kTiles && k >= 2*cfg.kDepth ||
		pb.kcb != kcBlock(cfg.kc, k) {
		// Cut along k (or blocked otherwise): Sgemm's own way, so that
		// the sums are its sums.
		sgemm(cfg, false, pb.transB, m, n, k, alpha, a, lda, pb.b, pb.ldb, beta, c, ldc)
		return
	}
	p := product{false, pb.transB, m, n, k, alpha, beta, a, lda, pb.b, pb.ldb, c, ldc}
	stride := roundUp(n, nr)
	if threads <= 1 {
		ws := workspaces.Get().(*workspace)
		run(cfg, ws, &p, prepacked{b: pb.data, bStride: stride})
		workspaces.Put(ws)
		return
	}
	if m*nr < n*mr {
		width := max(roundUp((n+threads*4-1)/(threads*4), nr), 4*nr)
		chunks := (n + width - 1) / width
		parallel(threads, chunks, func(ws *workspace, i int) {
			q := p
			lo := i * width
			q.n = min(width, n-lo)
			q.c = c[lo:]
			run(cfg, ws, &q, prepacked{b: pb.data, bStride: stride, bCol: lo})
		})
		return
	}
	height := max(roundUp((m+threads*4-1)/(threads*4), mr), 4*mr)
	chunks := (m + height - 1) / height
	parallel(threads, chunks, func(ws *workspace, i int) {
		q := p
		lo := i * height
		q.m = min(height, m-lo)
		q.a = a[lo*lda:]
		q.c = c[lo*ldc:]
		run(cfg, ws, &q, prepacked{b: pb.data, bStride: stride})
	})
}
