package gemm

import (
	"fmt"
	"math"
)

// kernelGo is the portable micro-kernel (see kernelFunc). It keeps a 2×4
// block of the tile in locals at a time, which the compiler can hold in
// registers.
func kernelGo(h, kc int, a []float32, rsa, csa int, b []float32, c []float32, ldc int, alpha, beta float32) {
	if h < 1 || h > mr {
		panic("gemm: micro-kernel for a tile of no rows or too many")
	}
	if kc > 0 {
		_ = a[(h-1)*rsa+(kc-1)*csa]
	}
	b = b[:kc*nr]
	_ = c[(h-1)*ldc+nr-1]
	for i := 0; i < h; i += 2 {
		if i+1 == h {
			row1Go(kc, a[i*rsa:], csa, b, c[i*ldc:i*ldc+nr], alpha, beta)
			break
		}
		for j := 0; j < nr; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			a0s, a1s := a[i*rsa:], a[(i+1)*rsa:]
			bs := b[j:]
			for p := 0; p < kc; p++ {
				a0, a1 := a0s[p*csa], a1s[p*csa]
				bp := bs[p*nr : p*nr+4 : p*nr+4]
				b0 := bp[0]
				c00 += a0 * b0
				c10 += a1 * b0
				b1 := bp[1]
				c01 += a0 * b1
				c11 += a1 * b1
				b2 := bp[2]
				c02 += a0 * b2
				c12 += a1 * b2
				b3 := bp[3]
				c03 += a0 * b3
				c13 += a1 * b3
			}
			update4(c[i*ldc+j:i*ldc+j+4:i*ldc+j+4], c00, c01, c02, c03, alpha, beta)
			update4(c[(i+1)*ldc+j:(i+1)*ldc+j+4:(i+1)*ldc+j+4], c10, c11, c12, c13, alpha, beta)
		}
	}
}

// columnGo is the portable columnFunc.
func columnGo(tiles, kc int, a []float32, rsa, csa, astep int, b []float32, c []float32, ldc int, alpha, beta float32) {
	for t := 0; t < tiles; t++ {
		kernelGo(mr, kc, a[t*astep:], rsa, csa, b, c[t*mr*ldc:], ldc, alpha, beta)
	}
}

// checkColumn runs column on three tiles of small integers, A read in
// place with a gap between the tiles' rows, beta 0 (C holding NaN) and
// not, and compares the result, a row and columns past it included, with
// columnGo's, to the bit; a panic in column becomes the error.
func checkColumn(column columnFunc) (err error) {
	const tiles, kc, rsa, ldc = 3, 9, 11, nr + 2
	const astep = mr*rsa + 5
	beta := float32(0)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("a column of %d tiles (kc %d, beta %g): %v", tiles, kc, beta, r)
		}
	}()
	ints := func(n, mod, off int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(i*7%mod - off)
		}
		return s
	}
	a := ints((tiles-1)*astep+(mr-1)*rsa+kc, 5, 2)
	b := ints(kc*nr, 7, 3)
	for _, beta = range []float32{0, -1} {
		c0 := ints((tiles*mr+1)*ldc, 3, 1)
		if beta == 0 {
			for i := 0; i < tiles*mr; i++ {
				for j := 0; j < nr; j++ {
					c0[i*ldc+j] = float32(math.NaN())
				}
			}
		}
		got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
		column(tiles, kc, a, rsa, 1, astep, b, got, ldc, 2, beta)
		columnGo(tiles, kc, a, rsa, 1, astep, b, want, ldc, 2, beta)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				return fmt.Errorf("a column of %d tiles (kc %d, beta %g): C[%d][%d] = %g, want %g", tiles, kc, beta, i/ldc, i%ldc, got[i], want[i])
			}
		}
	}
	return nil
}

// row1Go is kernelGo for one row.
func row1Go(kc int, a []float32, csa int, b []float32, c []float32, alpha, beta float32) {
	for j := 0; j < nr; j += 4 {
		var c0, c1, c2, c3 float32
		ai := 0
		for p := 0; p < kc; p++ {
			a0 := a[ai]
			bp := b[p*nr+j : p*nr+j+4 : p*nr+j+4]
			c0 += a0 * bp[0]
			c1 += a0 * bp[1]
			c2 += a0 * bp[2]
			c3 += a0 * bp[3]
			ai += csa
		}
		update4(c[j:j+4:j+4], c0, c1, c2, c3, alpha, beta)
	}
}

// update4 sets r = alpha·(v0…v3) + beta·r, overwriting r when beta == 0.
func update4(r []float32, v0, v1, v2, v3, alpha, beta float32) {
	r = r[:4]
	if beta == 0 {
		r[0], r[1], r[2], r[3] = alpha*v0, alpha*v1, alpha*v2, alpha*v3
		return
	}
	r[0] = alpha*v0 + beta*r[0]
	r[1] = alpha*v1 + beta*r[1]
	r[2] = alpha*v2 + beta*r[2]
	r[3] = alpha*v3 + beta*r[3]
}
