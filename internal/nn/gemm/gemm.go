// Package gemm multiplies row-major float32 matrices in pure Go and Go
// assembly, the way Goto's GEMM and BLIS do: op(B) is packed into
// cache-sized panels of nr = 16 columns (transposes are resolved while
// packing), op(A) is read in micro-panels of mr = 6 rows (straight from A
// when it is stored row-major, packed otherwise), and a register-tile
// micro-kernel (AVX2+FMA assembly on amd64 CPUs that have it, plain Go
// elsewhere) accumulates the 6×16 tiles of C, with a 4-row variant for the
// last rows.
//
// Products of more than about a million multiply-adds are cut into chunks
// that runtime.GOMAXPROCS goroutines take in turn: along n or m, whichever
// is longer (the operand every chunk reads whole is packed once and
// shared), or along k when C is only a few tiles and k is deep (each chunk
// then sums into a buffer of its own, added in order at the end). Chunks
// never change how an element of C is summed, so results are the same to
// the bit whatever the number of goroutines.
package gemm

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Register tile of the micro-kernel: mr rows of C by nr columns.
const (
	mr = 6
	nr = 16
)

// Default cache blocking for a core with 32 KiB L1d and 512 KiB L2 (AMD
// Zen 3): a kc×nr panel of packed B (32 KiB) is about L1-sized and is
// reused by every mr-row micro-panel of an mc×kc block of A (288 KiB, in
// L2); a kc×nc block of packed B is reused by every mc-row block of A.
// Deeper k blocks than the classic 256 measured faster here (fewer passes
// over C, fewer kernel calls); mc and nc mattered little.
const (
	defaultMC = 144
	defaultKC = 512
	defaultNC = 2048
)

// parallelMinWork is the m·n·k under which a product stays on the calling
// goroutine, about 400 µs of work on one core. On the 2-vCPU VM this was
// tuned on, a go statement that has to wake an idle core costs the caller
// some 40 µs and the new goroutine starts some 100 µs later, and products
// of 4–16 million multiply-adds (the 784-256-10 MLP's at batch 64 among
// them) came out anywhere from 20 % slower to 15 % faster on two
// goroutines than on one. On a machine whose cores wake in a few
// microseconds, 2^20 would do.
const parallelMinWork = 1 << 24

// kernelFunc computes the h×nr tile (1 ≤ h ≤ mr)
//
//	C[i][j] = alpha·Σ_p A[i·rsa+p·csa]·B[p·nr+j] + beta·C[i·ldc+j]
//
// for i < h, j < nr, p < kc, where b is a packed panel; beta == 0
// overwrites C without reading it. It reads a only up to index
// (h-1)·rsa+(kc-1)·csa, b up to kc·nr values and c up to index
// (h-1)·ldc+nr-1; kc may be 0.
type kernelFunc func(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32)

// columnFunc computes tiles full tiles down a column of C with one B
// panel: tile t is the kernelFunc tile with h = mr, A at a[t·astep:] and C
// at c[t·mr·ldc:]. Doing a column in one call saves a call per tile, which
// shows when kc is small.
type columnFunc func(tiles, kc int, a []float32, rsa, csa, astep int, b []float32, c []float32, ldc int, alpha, beta float32)

// config is how one product is carried out; defaultConfig is the fastest for
// this CPU, the tests vary it to reach every path with small matrices.
type config struct {
	kernel     kernelFunc
	column     columnFunc
	pack       packer
	mc, kc, nc int // cache blocking; mc a multiple of mr, nc of nr
	maxThreads int // 0: runtime.GOMAXPROCS
	minWork    int // m·n·k from which the product is split among goroutines
	maxShared  int // float32 in a packed operand shared by the goroutines
	kTiles     int // a C of at most kTiles register tiles …
	kDepth     int // … is cut into chunks of k about kDepth deep when k ≥ 2·kDepth
}

func defaultConfig() config {
	return config{
		kernel:    bestKernel(),
		column:    bestColumn(),
		pack:      bestPack(),
		mc:        defaultMC,
		kc:        defaultKC,
		nc:        defaultNC,
		minWork:   parallelMinWork,
		maxShared: 1 << 22, // 16 MiB
		kTiles:    16,
		kDepth:    2048,
	}
}

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, where
// op(A) is m×k and op(B) k×n; with transA, A is stored k×m (op(A) = Aᵀ), and
// with transB, B is stored n×k. lda, ldb and ldc are the row strides of A, B
// and C as stored. beta == 0 overwrites C: whatever C held (NaN included) is
// ignored. Inconsistent sizes panic.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(defaultConfig(), transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Impl names the micro-kernel Sgemm uses on this CPU: "avx2" or "go".
func Impl() string {
	if hasAVX2Kernel() {
		return "avx2"
	}
	return "go"
}

// product is one call's operands, or a block of them given to a goroutine.
type product struct {
	transA, transB bool
	m, n, k        int
	alpha, beta    float32
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
}

func sgemm(cfg config, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("gemm: negative dimension m=%d n=%d k=%d", m, n, k))
	}
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	checkMatrix("A", ar, ac, a, lda)
	checkMatrix("B", br, bc, b, ldb)
	checkMatrix("C", m, n, c, ldc)
	if degenerate(m, n, k, alpha, beta, c, ldc) {
		return
	}
	p := product{transA, transB, m, n, k, alpha, beta, a, lda, b, ldb, c, ldc}

	threads := cfg.maxThreads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if m*n*k < cfg.minWork {
		threads = 1
	}
	// A deep product into a small C is cut along k; the cut depends on the
	// shape alone, so the sums do not change with the number of threads.
	if tiles := ((m + mr - 1) / mr) * ((n + nr - 1) / nr); tiles <= cfg.kTiles && k >= 2*cfg.kDepth {
		splitK(cfg, threads, &p)
		return
	}
	if threads <= 1 {
		ws := workspaces.Get().(*workspace)
		run(cfg, ws, &p, prepacked{})
		workspaces.Put(ws)
		return
	}

	// Split the longer of m and n into chunks of whole register tiles,
	// several per goroutine, which the goroutines take in turn until none
	// is left: a goroutine that starts late (waking an idle core can take
	// longer than a small product) finds less or nothing to do, instead of
	// holding up its share. The operand that every chunk reads whole is
	// packed once beforehand, if it needs packing and is not too big.
	kcb := kcBlock(cfg.kc, k)
	if m*nr < n*mr {
		width := max(roundUp((n+threads*4-1)/(threads*4), nr), 4*nr)
		var pre prepacked
		if size := k * roundUp(m, mr); transA && size <= cfg.maxShared {
			buf := sharedBufs.Get().(*[]float32)
			defer sharedBufs.Put(buf)
			*buf = aligned(*buf, size)
			pre.a = *buf
			packAllA(pre.a, &p, kcb)
		} else if transA {
			width = max(width, roundUp((n+threads-1)/threads, nr))
		}
		chunks := (n + width - 1) / width
		parallel(threads, chunks, func(ws *workspace, i int) {
			q := p
			lo := i * width
			q.n = min(width, n-lo)
			if transB {
				q.b = b[lo*ldb:]
			} else {
				q.b = b[lo:]
			}
			q.c = c[lo:]
			run(cfg, ws, &q, pre)
		})
		return
	}

	height := max(roundUp((m+threads*4-1)/(threads*4), mr), 4*mr)
	var pre prepacked
	if size := k * roundUp(n, nr); size <= cfg.maxShared {
		buf := sharedBufs.Get().(*[]float32)
		defer sharedBufs.Put(buf)
		*buf = aligned(*buf, size)
		pre.b = *buf
		packAllB(cfg, pre.b, &p, kcb)
	} else {
		height = max(height, roundUp((m+threads-1)/threads, mr))
	}
	chunks := (m + height - 1) / height
	parallel(threads, chunks, func(ws *workspace, i int) {
		q := p
		lo := i * height
		q.m = min(height, m-lo)
		if transA {
			q.a = a[lo:]
		} else {
			q.a = a[lo*lda:]
		}
		q.c = c[lo*ldc:]
		run(cfg, ws, &q, pre)
	})
}

// splitK computes a product as the sum of products of k chunks of about
// cfg.kDepth, each into its own buffer, which are then added in order.
func splitK(cfg config, threads int, p *product) {
	chunks := (p.k + cfg.kDepth - 1) / cfg.kDepth
	depth := roundUp((p.k+chunks-1)/chunks, 8)
	chunks = (p.k + depth - 1) / depth
	mn := p.m * p.n
	buf := partials.Get().(*[]float32)
	*buf = aligned(*buf, chunks*mn)
	parts := *buf
	parallel(threads, chunks, func(ws *workspace, i int) {
		q := *p
		lo := i * depth
		q.k = min(depth, p.k-lo)
		if p.transA {
			q.a = p.a[lo*p.lda:]
		} else {
			q.a = p.a[lo:]
		}
		if p.transB {
			q.b = p.b[lo:]
		} else {
			q.b = p.b[lo*p.ldb:]
		}
		q.beta = 0
		q.c, q.ldc = parts[i*mn:(i+1)*mn], p.n
		run(cfg, ws, &q, prepacked{})
	})
	for i := 0; i < p.m; i++ {
		row := p.c[i*p.ldc : i*p.ldc+p.n]
		for j := range row {
			s := parts[i*p.n+j]
			for t := 1; t < chunks; t++ {
				s += parts[t*mn+i*p.n+j]
			}
			if p.beta != 0 {
				s += p.beta * row[j]
			}
			row[j] = s
		}
	}
	partials.Put(buf)
}

var partials = sync.Pool{New: func() any { return new([]float32) }}

// parallel runs do(ws, i) for every i < chunks on up to threads goroutines,
// the caller's included, each taking the next chunk when it is done with
// one. It returns when all chunks are done, without waiting for helpers
// that have not started yet: those find no chunk left and touch nothing.
func parallel(threads, chunks int, do func(ws *workspace, i int)) {
	var (
		next atomic.Int64
		done sync.WaitGroup
	)
	done.Add(chunks)
	work := func() {
		var ws *workspace
		for {
			i := int(next.Add(1)) - 1
			if i >= chunks {
				break
			}
			if ws == nil {
				ws = workspaces.Get().(*workspace)
			}
			do(ws, i)
			done.Done()
		}
		if ws != nil {
			workspaces.Put(ws)
		}
	}
	for t := 1; t < min(threads, chunks); t++ {
		go work()
	}
	work()
	done.Wait()
}

func checkMatrix(name string, rows, cols int, s []float32, ld int) {
	if ld < cols || ld < 1 {
		panic(fmt.Sprintf("gemm: %s is %d×%d but its leading dimension is %d", name, rows, cols, ld))
	}
	if rows == 0 || cols == 0 {
		return
	}
	if need := (rows-1)*ld + cols; len(s) < need {
		panic(fmt.Sprintf("gemm: %s is %d×%d with leading dimension %d, which needs %d values, but has %d", name, rows, cols, ld, need, len(s)))
	}
}

// degenerate carries out a product with nothing to multiply — an empty C,
// or k or alpha 0 (C = beta·C) — and reports whether it was one.
func degenerate(m, n, k int, alpha, beta float32, c []float32, ldc int) bool {
	if m == 0 || n == 0 {
		return true
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return true
	}
	return false
}

// scaleC sets C = beta·C; beta == 0 clears C.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		if beta == 1 {
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// workspace holds one goroutine's packing buffers.
type workspace struct {
	a    []float32 // mc×kc block of op(A) in mr-row micro-panels
	b    []float32 // kc×nc block of op(B) in nr-column micro-panels
	tile []float32 // an mr×nr tile of C for the edges
}

var workspaces = sync.Pool{New: func() any { return new(workspace) }}

// aligned returns a slice of n float32 starting on a 64-byte boundary, so
// that packed panels start on cache lines; it reuses s when big enough.
func aligned(s []float32, n int) []float32 {
	if cap(s) >= n {
		return s[:n]
	}
	buf := make([]float32, n+16)
	off := int(uintptr(unsafe.Pointer(unsafe.SliceData(buf)))%64) / 4
	if off != 0 {
		off = 16 - off
	}
	return buf[off : off+n : off+n]
}

var sharedBufs = sync.Pool{New: func() any { return new([]float32) }}

// kcBlock is the depth of the k blocks: k cut into equal blocks of at most
// kc, a multiple of 8 when possible (for packing), so that 784 is 4×196
// rather than 3×256+16.
func kcBlock(kc, k int) int {
	blocks := (k + kc - 1) / kc
	return min(roundUp((k+blocks-1)/blocks, 8), kc)
}

// prepacked holds operands packed whole before a product is split among
// goroutines (or once for many products: PackedB), or nil where each
// goroutine packs its own.
type prepacked struct {
	a []float32 // op(A) by packAllA
	b []float32 // op(B) by packAllB
	// bStride is the padded column count op(B) was packed with (0: the
	// product's own n), bCol the first of its columns this product uses
	// (a multiple of nr): a column chunk of a B packed whole.
	bStride, bCol int
}

// packAllB packs all of op(B) as one nc block: the k block at pc starts at
// dst[pc·⌈n/nr⌉·nr].
func packAllB(cfg config, dst []float32, p *product, kcb int) {
	stride := roundUp(p.n, nr)
	for pc := 0; pc < p.k; pc += kcb {
		kc := min(kcb, p.k-pc)
		if p.transB {
			packBT(cfg.pack, dst[pc*stride:], p.b, p.ldb, pc, 0, kc, p.n)
		} else {
			packBN(cfg.pack, dst[pc*stride:], p.b, p.ldb, pc, 0, kc, p.n)
		}
	}
}

// packAllA packs all of op(A) = Aᵀ as one mc block: the k block at pc
// starts at dst[pc·⌈m/mr⌉·mr].
func packAllA(dst []float32, p *product, kcb int) {
	stride := roundUp(p.m, mr)
	for pc := 0; pc < p.k; pc += kcb {
		packAT(dst[pc*stride:], p.a, p.lda, 0, pc, p.m, min(kcb, p.k-pc))
	}
}

// run computes one product on the calling goroutine, packing what pre
// does not hold block by block.
func run(cfg config, ws *workspace, p *product, pre prepacked) {
	kcb := kcBlock(cfg.kc, p.k)
	ncb := cfg.nc
	if pre.b != nil {
		ncb = p.n
	} else {
		ws.b = aligned(ws.b, kcb*min(ncb, roundUp(p.n, nr)))
	}
	if p.transA && pre.a == nil {
		ws.a = aligned(ws.a, min(cfg.mc, roundUp(p.m, mr))*kcb)
	}
	ws.tile = aligned(ws.tile, mr*nr)

	for jc := 0; jc < p.n; jc += ncb {
		nc := min(ncb, p.n-jc)
		for pc := 0; pc < p.k; pc += kcb {
			kc := min(kcb, p.k-pc)
			beta := p.beta
			if pc > 0 {
				beta = 1
			}
			bb := ws.b
			switch {
			case pre.b != nil:
				stride := pre.bStride
				if stride == 0 {
					stride = roundUp(p.n, nr)
				}
				bb = pre.b[pc*stride+pre.bCol*kc:]
			case p.transB:
				packBT(cfg.pack, bb, p.b, p.ldb, pc, jc, kc, nc)
			default:
				packBN(cfg.pack, bb, p.b, p.ldb, pc, jc, kc, nc)
			}
			for ic := 0; ic < p.m; ic += cfg.mc {
				mc := min(cfg.mc, p.m-ic)
				var ap []float32 // packed A, or nil to read A in place
				switch {
				case pre.a != nil:
					ap = pre.a[pc*roundUp(p.m, mr)+ic*kc:]
				case p.transA:
					packAT(ws.a, p.a, p.lda, ic, pc, mc, kc)
					ap = ws.a
				}
				block(cfg.kernel, cfg.column, ws, ap, bb, p, ic, jc, pc, mc, nc, kc, beta)
			}
		}
	}
}

// block multiplies the mc×kc block of op(A) at (ic, pc), packed in ap or
// read from A when ap is nil, by the packed kc×nc block bb of op(B) into C
// at (ic, jc).
func block(kern kernelFunc, column columnFunc, ws *workspace, ap, bb []float32, p *product, ic, jc, pc, mc, nc, kc int, beta float32) {
	// Where micro-panel ir of A starts, and its strides.
	a, rsa, csa, panelStep := ap, 1, mr, mr*kc
	if ap == nil {
		a, rsa, csa, panelStep = p.a[ic*p.lda+pc:], p.lda, 1, mr*p.lda
	}
	alpha := p.alpha
	tiles := mc / mr
	for jr := 0; jr < nc; jr += nr {
		w := min(nr, nc-jr)
		bp := bb[jr*kc : (jr+nr)*kc]
		c := p.c[ic*p.ldc+jc+jr:]
		ir := 0
		if w == nr {
			column(tiles, kc, a, rsa, csa, panelStep, bp, c, p.ldc, alpha, beta)
			ir = tiles * mr
		}
		for ; ir < mc; ir += mr {
			h := min(mr, mc-ir)
			if w == nr {
				kern(h, kc, a[ir/mr*panelStep:], rsa, csa, bp, c[ir*p.ldc:], p.ldc, alpha, beta)
				continue
			}
			kern(h, kc, a[ir/mr*panelStep:], rsa, csa, bp, ws.tile, nr, 1, 0)
			mergeTile(ws.tile, h, w, alpha, beta, c[ir*p.ldc:], p.ldc)
		}
	}
}

// mergeTile sets the h×w corner of C to alpha·tile + beta·C.
func mergeTile(tile []float32, h, w int, alpha, beta float32, c []float32, ldc int) {
	for i := 0; i < h; i++ {
		t := tile[i*nr : i*nr+w]
		row := c[i*ldc : i*ldc+w]
		if beta == 0 {
			for j, v := range t {
				row[j] = alpha * v
			}
		} else {
			for j, v := range t {
				row[j] = alpha*v + beta*row[j]
			}
		}
	}
}

func roundUp(x, unit int) int { return (x + unit - 1) / unit * unit }
