package gemm

// Packed B: the kc×nc block of op(B) at (pc, jc) as ⌈nc/nr⌉ micro-panels of
// kc×nr values, row p of panel q at dst[q·kc·nr + p·nr], the columns past nc
// zero. Packed A: the mc×kc block of op(A) at (ic, pc) as ⌈mc/mr⌉
// micro-panels of kc×mr values (column p of panel q at dst[q·kc·mr + p·mr]),
// the rows past mc zero.

// packer is how B is packed: rows for B stored k×n, panel for B stored n×k.
type packer struct {
	rows  rowsFunc
	panel panelFunc
}

// rowsFunc packs kc rows of B stored k×n into panels full panels: for
// p < kc, q < panels and j < nr, dst[q·kc·nr+p·nr+j] = src[p·ldb+q·nr+j].
type rowsFunc func(kc, panels int, src []float32, ldb int, dst []float32)

// panelFunc packs w ≤ nr rows of B stored n×k into one panel, zero past
// column w: for p < kc and j < w, dst[p·nr+j] = src[j·ldb+p].
type panelFunc func(kc, w int, src []float32, ldb int, dst []float32)

// packBN packs a block of B stored k×n (op(B) = B).
func packBN(pk packer, dst, b []float32, ldb, pc, jc, kc, nc int) {
	full := nc / nr
	src := b[pc*ldb+jc:]
	pk.rows(kc, full, src, ldb, dst)
	if w := nc - full*nr; w > 0 {
		panel := dst[full*nr*kc : (full+1)*nr*kc]
		src = src[full*nr:]
		for p := 0; p < kc; p++ {
			row := panel[p*nr : p*nr+nr]
			copy(row, src[p*ldb:p*ldb+w])
			clear(row[w:])
		}
	}
}

// rowsGo is the portable rowsFunc.
func rowsGo(kc, panels int, src []float32, ldb int, dst []float32) {
	for p := 0; p < kc; p++ {
		row := src[p*ldb : p*ldb+panels*nr]
		for q := 0; q < panels; q++ {
			*(*[nr]float32)(dst[q*kc*nr+p*nr:]) = *(*[nr]float32)(row[q*nr:])
		}
	}
}

// packBT packs a block of B stored n×k (op(B) = Bᵀ).
func packBT(pk packer, dst, b []float32, ldb, pc, jc, kc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		pk.panel(kc, min(nr, nc-jr), b[(jc+jr)*ldb+pc:], ldb, dst[jr*kc:(jr+nr)*kc])
	}
}

// panelGo is the portable panelFunc.
func panelGo(kc, w int, src []float32, ldb int, dst []float32) {
	dst = dst[:kc*nr]
	for j := 0; j < w; j++ {
		row := src[j*ldb : j*ldb+kc]
		for p, v := range row {
			dst[p*nr+j] = v
		}
	}
	if w < nr {
		for p := 0; p < kc; p++ {
			clear(dst[p*nr+w : p*nr+nr])
		}
	}
}

// packAT packs a block of A stored k×m (op(A) = Aᵀ).
func packAT(dst, a []float32, lda, ic, pc, mc, kc int) {
	for ir := 0; ir < mc; ir += mr {
		panel := dst[ir*kc : (ir+mr)*kc]
		h := min(mr, mc-ir)
		src := a[pc*lda+ic+ir:]
		if h == mr {
			for p := 0; p < kc; p++ {
				*(*[mr]float32)(panel[p*mr:]) = *(*[mr]float32)(src[p*lda:])
			}
			continue
		}
		for p := 0; p < kc; p++ {
			col := panel[p*mr : p*mr+mr]
			copy(col, src[p*lda:p*lda+h])
			clear(col[h:])
		}
	}
}
