package gemm

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
