package gemm

// Packed B: the kc×nc block of op(B) at (pc, jc) as ⌈nc/nr⌉ micro-panels of
// kc×nr values, row p of panel q at dst[q·kc·nr + p·nr], the columns past nc
// zero. Packed A: the mc×kc block of op(A) at (ic, pc) as ⌈mc/mr⌉
// micro-panels of kc×mr values (column p of panel q at dst[q·kc·mr + p·mr]),
// the rows past mc zero.

// packBN packs a block of B stored k×n (op(B) = B).
func packBN(dst, b []float32, ldb, pc, jc, kc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		panel := dst[jr*kc : (jr+nr)*kc]
		w := min(nr, nc-jr)
		src := b[pc*ldb+jc+jr:]
		if w == nr {
			for p := 0; p < kc; p++ {
				*(*[nr]float32)(panel[p*nr:]) = *(*[nr]float32)(src[p*ldb:])
			}
			continue
		}
		for p := 0; p < kc; p++ {
			row := panel[p*nr : p*nr+nr]
			copy(row, src[p*ldb:p*ldb+w])
			clear(row[w:])
		}
	}
}

// panelFunc packs a full nr-wide panel of B stored n×k: for p < kc and
// j < nr, dst[p·nr+j] = src[j·ldb+p].
type panelFunc func(kc int, src []float32, ldb int, dst []float32)

// packBT packs a block of B stored n×k (op(B) = Bᵀ), full panels through
// panel.
func packBT(panel panelFunc, dst, b []float32, ldb, pc, jc, kc, nc int) {
	for jr := 0; jr < nc; jr += nr {
		out := dst[jr*kc : (jr+nr)*kc]
		w := min(nr, nc-jr)
		if w == nr {
			panel(kc, b[(jc+jr)*ldb+pc:], ldb, out)
			continue
		}
		for j := 0; j < w; j++ {
			src := b[(jc+jr+j)*ldb+pc:]
			src = src[:kc]
			for p, v := range src {
				out[p*nr+j] = v
			}
		}
		for p := 0; p < kc; p++ {
			clear(out[p*nr+w : p*nr+nr])
		}
	}
}

// panelGo is the portable panelFunc.
func panelGo(kc int, src []float32, ldb int, dst []float32) {
	dst = dst[:kc*nr]
	for j := 0; j < nr; j++ {
		row := src[j*ldb : j*ldb+kc]
		for p, v := range row {
			dst[p*nr+j] = v
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

// packAN packs h < mr rows of A stored m×k (op(A) = A) from (i, pc) into
// one zero-padded micro-panel.
func packAN(dst, a []float32, lda, i, pc, h, kc int) {
	panel := dst[:mr*kc]
	clear(panel)
	for r := 0; r < h; r++ {
		src := a[(i+r)*lda+pc:]
		src = src[:kc]
		for p, v := range src {
			panel[p*mr+r] = v
		}
	}
}
