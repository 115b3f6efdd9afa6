//go:build amd64

#include "textflag.h"

// The micro-kernels compute an h×16 tile of C (h ≤ 6 or h ≤ 4) as
// alpha·A·B + beta·C over kc steps of p. Register use:
//	Y0–Y11	the tile, row i in Y(2i) (columns 0–7) and Y(2i+1) (8–15)
//	Y12,Y13	row p of the packed B panel
//	Y14,Y15	an element of A broadcast to all lanes
//	SI	A[0][p]; row i at SI + Ri, Ri = i·(row stride) in bytes:
//	R8, R11, R12, R13, R14 for rows 1–5, 0 for rows ≥ h (which are
//	computed from row 0 and not stored, so that A is never read past
//	row h-1)
//	R9	column stride of A in bytes
//	BX	packed B row p
//	CX	steps of p left
//	DX	C row, R10 = ldc in bytes
//	DI	h

// ARGS loads the arguments and sets the row offsets, 0 for rows ≥ h.
#define ARGS \
	MOVQ h+0(FP), DI     \
	MOVQ kc+8(FP), CX    \
	MOVQ a+16(FP), SI    \
	MOVQ rsa+24(FP), R8  \
	MOVQ csa+32(FP), R9  \
	MOVQ b+40(FP), BX    \
	MOVQ c+48(FP), DX    \
	MOVQ ldc+56(FP), R10 \
	SHLQ $2, R8          \
	SHLQ $2, R9          \
	SHLQ $2, R10         \
	LEAQ (R8)(R8*1), R11 \
	LEAQ (R8)(R8*2), R12 \
	MOVQ R8, R13         \
	SHLQ $2, R13         \
	LEAQ (R8)(R8*4), R14 \
	XORQ AX, AX          \
	CMPQ DI, $2          \
	CMOVQLT AX, R8       \
	CMPQ DI, $3          \
	CMOVQLT AX, R11      \
	CMPQ DI, $4          \
	CMOVQLT AX, R12      \
	CMPQ DI, $5          \
	CMOVQLT AX, R13      \
	CMPQ DI, $6          \
	CMOVQLT AX, R14

// PREFETCHROW fetches the C row at AX, to be there when the sums are.
#define PREFETCHROW \
	PREFETCHT0 (AX)   \
	PREFETCHT0 60(AX) \
	ADDQ       R10, AX

// STEP6 does C += A[:, p] ⊗ B[p, :] for 6 rows with B[p] at off(BX), then
// moves SI to column p+1.
#define STEP6(off) \
	VMOVUPS      off(BX), Y12     \
	VMOVUPS      off+32(BX), Y13  \
	VBROADCASTSS (SI), Y14        \
	VBROADCASTSS (SI)(R8*1), Y15  \
	VFMADD231PS  Y12, Y14, Y0     \
	VFMADD231PS  Y13, Y14, Y1     \
	VBROADCASTSS (SI)(R11*1), Y14 \
	VFMADD231PS  Y12, Y15, Y2     \
	VFMADD231PS  Y13, Y15, Y3     \
	VBROADCASTSS (SI)(R12*1), Y15 \
	VFMADD231PS  Y12, Y14, Y4     \
	VFMADD231PS  Y13, Y14, Y5     \
	VBROADCASTSS (SI)(R13*1), Y14 \
	VFMADD231PS  Y12, Y15, Y6     \
	VFMADD231PS  Y13, Y15, Y7     \
	VBROADCASTSS (SI)(R14*1), Y15 \
	VFMADD231PS  Y12, Y14, Y8     \
	VFMADD231PS  Y13, Y14, Y9     \
	ADDQ         R9, SI           \
	VFMADD231PS  Y12, Y15, Y10    \
	VFMADD231PS  Y13, Y15, Y11

// STEP4 is STEP6 for 4 rows.
#define STEP4(off) \
	VMOVUPS      off(BX), Y12     \
	VMOVUPS      off+32(BX), Y13  \
	VBROADCASTSS (SI), Y14        \
	VBROADCASTSS (SI)(R8*1), Y15  \
	VFMADD231PS  Y12, Y14, Y0     \
	VFMADD231PS  Y13, Y14, Y1     \
	VBROADCASTSS (SI)(R11*1), Y14 \
	VFMADD231PS  Y12, Y15, Y2     \
	VFMADD231PS  Y13, Y15, Y3     \
	VBROADCASTSS (SI)(R12*1), Y15 \
	VFMADD231PS  Y12, Y14, Y4     \
	VFMADD231PS  Y13, Y14, Y5     \
	ADDQ         R9, SI           \
	VFMADD231PS  Y12, Y15, Y6     \
	VFMADD231PS  Y13, Y15, Y7

// SCALE multiplies rows lo, hi by alpha in Y14.
#define SCALE(lo, hi) \
	VMULPS Y14, lo, lo \
	VMULPS Y14, hi, hi

// STORE writes rows lo, hi (already scaled) to C at DX.
#define STORE(lo, hi) \
	VMOVUPS lo, (DX)   \
	VMOVUPS hi, 32(DX) \
	ADDQ    R10, DX

// UPDATE writes rows lo, hi + beta·C (beta in Y15) to C at DX.
#define UPDATE(lo, hi) \
	VFMADD231PS (DX), Y15, lo   \
	VFMADD231PS 32(DX), Y15, hi \
	VMOVUPS     lo, (DX)        \
	VMOVUPS     hi, 32(DX)      \
	ADDQ        R10, DX

// ZERO clears the accumulators of rows lo, hi.
#define ZERO(lo, hi) \
	VXORPS lo, lo, lo \
	VXORPS hi, hi, hi

// func kernel6x16(h, kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel6x16(SB), NOSPLIT, $0-72
	ARGS
	MOVQ DX, AX
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	ZERO(Y0, Y1)
	ZERO(Y2, Y3)
	ZERO(Y4, Y5)
	ZERO(Y6, Y7)
	ZERO(Y8, Y9)
	ZERO(Y10, Y11)

	CMPQ CX, $4
	JLT  tail6

loop6:
	STEP6(0)
	STEP6(64)
	STEP6(128)
	STEP6(192)
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop6

tail6:
	TESTQ CX, CX
	JEQ   sum6

step6:
	STEP6(0)
	ADDQ $64, BX
	DECQ CX
	JNE  step6

sum6:
	VBROADCASTSS alpha+64(FP), Y14
	SCALE(Y0, Y1)
	SCALE(Y2, Y3)
	SCALE(Y4, Y5)
	SCALE(Y6, Y7)
	SCALE(Y8, Y9)
	SCALE(Y10, Y11)

	// beta == ±0: overwrite C without reading it.
	MOVL beta+68(FP), AX
	ANDL $0x7fffffff, AX
	JEQ  overwrite6

	VBROADCASTSS beta+68(FP), Y15
	UPDATE(Y0, Y1)
	CMPQ DI, $1
	JEQ  done6
	UPDATE(Y2, Y3)
	CMPQ DI, $2
	JEQ  done6
	UPDATE(Y4, Y5)
	CMPQ DI, $3
	JEQ  done6
	UPDATE(Y6, Y7)
	CMPQ DI, $4
	JEQ  done6
	UPDATE(Y8, Y9)
	CMPQ DI, $5
	JEQ  done6
	UPDATE(Y10, Y11)
	VZEROUPPER
	RET

overwrite6:
	STORE(Y0, Y1)
	CMPQ DI, $1
	JEQ  done6
	STORE(Y2, Y3)
	CMPQ DI, $2
	JEQ  done6
	STORE(Y4, Y5)
	CMPQ DI, $3
	JEQ  done6
	STORE(Y6, Y7)
	CMPQ DI, $4
	JEQ  done6
	STORE(Y8, Y9)
	CMPQ DI, $5
	JEQ  done6
	STORE(Y10, Y11)

done6:
	VZEROUPPER
	RET

// func kernel6x16n(tiles, kc int, a *float32, rsa, csa, astep int, b *float32, c *float32, ldc int, alpha, beta float32)
//
// kernel6x16 for tiles ≥ 1 full tiles down a column of C, one call for all:
// tile t reads A from a + t·astep and writes the 6 rows of C from
// c + 6·t·ldc, with the same B panel.
TEXT ·kernel6x16n(SB), NOSPLIT, $8-80
	MOVQ tiles+0(FP), DI
	MOVQ a+16(FP), SI
	MOVQ SI, abase-8(SP)
	MOVQ rsa+24(FP), R8
	MOVQ csa+32(FP), R9
	MOVQ c+56(FP), DX
	MOVQ ldc+64(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10
	LEAQ (R8)(R8*1), R11
	LEAQ (R8)(R8*2), R12
	MOVQ R8, R13
	SHLQ $2, R13
	LEAQ (R8)(R8*4), R14
	TESTQ DI, DI
	JEQ   endn

tilen:
	MOVQ kc+8(FP), CX
	MOVQ b+48(FP), BX
	MOVQ abase-8(SP), SI
	MOVQ DX, AX
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	ZERO(Y0, Y1)
	ZERO(Y2, Y3)
	ZERO(Y4, Y5)
	ZERO(Y6, Y7)
	ZERO(Y8, Y9)
	ZERO(Y10, Y11)

	CMPQ CX, $4
	JLT  tailn

loopn:
	STEP6(0)
	STEP6(64)
	STEP6(128)
	STEP6(192)
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loopn

tailn:
	TESTQ CX, CX
	JEQ   sumn

stepn:
	STEP6(0)
	ADDQ $64, BX
	DECQ CX
	JNE  stepn

sumn:
	VBROADCASTSS alpha+72(FP), Y14
	SCALE(Y0, Y1)
	SCALE(Y2, Y3)
	SCALE(Y4, Y5)
	SCALE(Y6, Y7)
	SCALE(Y8, Y9)
	SCALE(Y10, Y11)

	MOVL beta+76(FP), AX
	ANDL $0x7fffffff, AX
	JEQ  overwriten

	VBROADCASTSS beta+76(FP), Y15
	UPDATE(Y0, Y1)
	UPDATE(Y2, Y3)
	UPDATE(Y4, Y5)
	UPDATE(Y6, Y7)
	UPDATE(Y8, Y9)
	UPDATE(Y10, Y11)
	JMP  nextn

overwriten:
	STORE(Y0, Y1)
	STORE(Y2, Y3)
	STORE(Y4, Y5)
	STORE(Y6, Y7)
	STORE(Y8, Y9)
	STORE(Y10, Y11)

nextn:
	// DX is at the next tile's C already; move A on by astep.
	MOVQ astep+40(FP), AX
	SHLQ $2, AX
	ADDQ AX, abase-8(SP)
	DECQ DI
	JNE  tilen

endn:
	VZEROUPPER
	RET

// func kernel4x16(h, kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)
//
// kernel6x16 for h ≤ 4: 8 accumulators still keep both FMA units busy, so
// 4 rows take 4 cycles a step where kernel6x16 takes 6.
TEXT ·kernel4x16(SB), NOSPLIT, $0-72
	ARGS
	MOVQ DX, AX
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	PREFETCHROW
	ZERO(Y0, Y1)
	ZERO(Y2, Y3)
	ZERO(Y4, Y5)
	ZERO(Y6, Y7)

	CMPQ CX, $4
	JLT  tail4

loop4:
	STEP4(0)
	STEP4(64)
	STEP4(128)
	STEP4(192)
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail4:
	TESTQ CX, CX
	JEQ   sum4

step4:
	STEP4(0)
	ADDQ $64, BX
	DECQ CX
	JNE  step4

sum4:
	VBROADCASTSS alpha+64(FP), Y14
	SCALE(Y0, Y1)
	SCALE(Y2, Y3)
	SCALE(Y4, Y5)
	SCALE(Y6, Y7)

	MOVL beta+68(FP), AX
	ANDL $0x7fffffff, AX
	JEQ  overwrite4

	VBROADCASTSS beta+68(FP), Y15
	UPDATE(Y0, Y1)
	CMPQ DI, $1
	JEQ  done4
	UPDATE(Y2, Y3)
	CMPQ DI, $2
	JEQ  done4
	UPDATE(Y4, Y5)
	CMPQ DI, $3
	JEQ  done4
	UPDATE(Y6, Y7)
	VZEROUPPER
	RET

overwrite4:
	STORE(Y0, Y1)
	CMPQ DI, $1
	JEQ  done4
	STORE(Y2, Y3)
	CMPQ DI, $2
	JEQ  done4
	STORE(Y4, Y5)
	CMPQ DI, $3
	JEQ  done4
	STORE(Y6, Y7)

done4:
	VZEROUPPER
	RET

// TRANSPOSE4 transposes within each 128-bit lane the 4×4 blocks held in
// Y0–Y3 (row r in lane 0 of Yr, row r+4 in lane 1) and stores column q of
// the 8 rows at off+q·64(DI), q < 4: one half of packed row q.
#define TRANSPOSE4(off) \
	VUNPCKLPS Y1, Y0, Y8          \
	VUNPCKHPS Y1, Y0, Y9          \
	VUNPCKLPS Y3, Y2, Y10         \
	VUNPCKHPS Y3, Y2, Y11         \
	VSHUFPS   $0x44, Y10, Y8, Y12 \
	VSHUFPS   $0xEE, Y10, Y8, Y13 \
	VSHUFPS   $0x44, Y11, Y9, Y14 \
	VSHUFPS   $0xEE, Y11, Y9, Y15 \
	VMOVUPS   Y12, off(DI)        \
	VMOVUPS   Y13, off+64(DI)     \
	VMOVUPS   Y14, off+128(DI)    \
	VMOVUPS   Y15, off+192(DI)

// LOAD8 loads columns col…col+3 of rows 0–7 at base (row stride R8) into
// Y0–Y3: Yr holds row r in its low lane and row r+4 in its high lane.
#define LOAD8(base, col) \
	VMOVUPS     col(base), X0                   \
	VINSERTF128 $1, col(base)(R8*4), Y0, Y0     \
	VMOVUPS     col(base)(R8*1), X1             \
	VINSERTF128 $1, col(base)(R12*1), Y1, Y1    \
	VMOVUPS     col(base)(R8*2), X2             \
	VINSERTF128 $1, col(base)(R13*1), Y2, Y2    \
	VMOVUPS     col(base)(R11*1), X3            \
	VINSERTF128 $1, col(base)(R14*1), Y3, Y3

// func packBT8(blocks int, src *float32, ldb int, dst *float32)
//
// Transposes 8 rows of B (row stride ldb) into columns 0–7 of a packed
// panel: for p < 8·blocks and j < 8, dst[p·16+j] = src[j·ldb+p].
TEXT ·packBT8(SB), NOSPLIT, $0-32
	MOVQ  blocks+0(FP), CX
	MOVQ  src+8(FP), SI
	MOVQ  ldb+16(FP), R8
	MOVQ  dst+24(FP), DI
	SHLQ  $2, R8
	LEAQ  (R8)(R8*2), R11  // 3 rows
	LEAQ  (R8)(R8*4), R12  // 5 rows
	LEAQ  (R11)(R11*1), R13 // 6 rows
	LEAQ  (R13)(R8*1), R14 // 7 rows
	TESTQ CX, CX
	JEQ   tdone

tloop:
	LOAD8(SI, 0)
	TRANSPOSE4(0)
	LOAD8(SI, 16)
	TRANSPOSE4(256)
	ADDQ $32, SI
	ADDQ $512, DI
	DECQ CX
	JNE  tloop

tdone:
	VZEROUPPER
	RET

// func packBN16(kc, panels int, src *float32, ldb int, dst *float32)
//
// Copies kc rows of B (row stride ldb) into panels full packed panels, row
// by row so that B is read in order: for p < kc, q < panels and j < 16,
// dst[q·kc·16+p·16+j] = src[p·ldb+q·16+j]. kc and panels are at least 1.
TEXT ·packBN16(SB), NOSPLIT, $0-40
	MOVQ kc+0(FP), CX
	MOVQ panels+8(FP), R9
	MOVQ src+16(FP), SI
	MOVQ ldb+24(FP), R8
	MOVQ dst+32(FP), DI
	SHLQ $2, R8
	MOVQ CX, R10
	SHLQ $6, R10 // bytes between panels

nrow:
	MOVQ SI, AX
	MOVQ DI, BX
	MOVQ R9, DX

npanel:
	PREFETCHT0 (AX)(R8*4) // the same columns 4 rows on
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVUPS Y0, (BX)
	VMOVUPS Y1, 32(BX)
	ADDQ    $64, AX
	ADDQ    R10, BX
	DECQ    DX
	JNE     npanel
	ADDQ    R8, SI
	ADDQ    $64, DI
	DECQ    CX
	JNE     nrow
	VZEROUPPER
	RET
