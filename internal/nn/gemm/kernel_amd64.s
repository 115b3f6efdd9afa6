//go:build amd64

#include "textflag.h"

// Register use in kernel6x16:
//	Y0–Y11	the 6×16 tile of C, row i in Y(2i) (columns 0–7) and Y(2i+1)
//	Y12,Y13	one row of the packed B panel
//	Y14,Y15	an element of A broadcast to all lanes
//	SI	A[0][p]; rows 1–5 at SI+R8, SI+2·R8, SI+R11, SI+4·R8, SI+R12
//	R8	row stride of A in bytes (R11 = 3·R8, R12 = 5·R8)
//	R9	column stride of A in bytes
//	BX	packed B row p
//	CX	steps of p left
//	DX	C row, R10 = ldc in bytes

// STEP does C += A[:, p] ⊗ B[p, :] with B[p] at off(BX), then moves SI to
// column p+1.
#define STEP(off) \
	VMOVUPS      off(BX), Y12           \
	VMOVUPS      off+32(BX), Y13        \
	VBROADCASTSS (SI), Y14              \
	VBROADCASTSS (SI)(R8*1), Y15        \
	VFMADD231PS  Y12, Y14, Y0           \
	VFMADD231PS  Y13, Y14, Y1           \
	VBROADCASTSS (SI)(R8*2), Y14        \
	VFMADD231PS  Y12, Y15, Y2           \
	VFMADD231PS  Y13, Y15, Y3           \
	VBROADCASTSS (SI)(R11*1), Y15       \
	VFMADD231PS  Y12, Y14, Y4           \
	VFMADD231PS  Y13, Y14, Y5           \
	VBROADCASTSS (SI)(R8*4), Y14        \
	VFMADD231PS  Y12, Y15, Y6           \
	VFMADD231PS  Y13, Y15, Y7           \
	VBROADCASTSS (SI)(R12*1), Y15       \
	VFMADD231PS  Y12, Y14, Y8           \
	VFMADD231PS  Y13, Y14, Y9           \
	ADDQ         R9, SI                 \
	VFMADD231PS  Y12, Y15, Y10          \
	VFMADD231PS  Y13, Y15, Y11

// STORE writes alpha·acc (already scaled) rows lo, hi to C at DX.
#define STORE(lo, hi) \
	VMOVUPS lo, (DX)    \
	VMOVUPS hi, 32(DX)  \
	ADDQ    R10, DX

// UPDATE writes acc + beta·C (beta in Y15) to C at DX.
#define UPDATE(lo, hi) \
	VFMADD231PS (DX), Y15, lo   \
	VFMADD231PS 32(DX), Y15, hi \
	VMOVUPS     lo, (DX)        \
	VMOVUPS     hi, 32(DX)      \
	ADDQ        R10, DX

// func kernel6x16(kc int, a *float32, rsa, csa int, b *float32, c *float32, ldc int, alpha, beta float32)
TEXT ·kernel6x16(SB), NOSPLIT, $0-64
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsa+16(FP), R8
	MOVQ csa+24(FP), R9
	MOVQ b+32(FP), BX
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, R9
	SHLQ $2, R10
	LEAQ (R8)(R8*2), R11
	LEAQ (R8)(R8*4), R12

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	CMPQ CX, $4
	JLT  tail

loop4:
	STEP(0)
	STEP(64)
	STEP(128)
	STEP(192)
	ADDQ $256, BX
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  loop4

tail:
	TESTQ CX, CX
	JEQ   done

loop1:
	STEP(0)
	ADDQ $64, BX
	DECQ CX
	JNE  loop1

done:
	VBROADCASTSS alpha+56(FP), Y14
	VMULPS       Y14, Y0, Y0
	VMULPS       Y14, Y1, Y1
	VMULPS       Y14, Y2, Y2
	VMULPS       Y14, Y3, Y3
	VMULPS       Y14, Y4, Y4
	VMULPS       Y14, Y5, Y5
	VMULPS       Y14, Y6, Y6
	VMULPS       Y14, Y7, Y7
	VMULPS       Y14, Y8, Y8
	VMULPS       Y14, Y9, Y9
	VMULPS       Y14, Y10, Y10
	VMULPS       Y14, Y11, Y11

	// beta == ±0: overwrite C without reading it.
	MOVL beta+60(FP), AX
	ANDL $0x7fffffff, AX
	JEQ  overwrite

	VBROADCASTSS beta+60(FP), Y15
	UPDATE(Y0, Y1)
	UPDATE(Y2, Y3)
	UPDATE(Y4, Y5)
	UPDATE(Y6, Y7)
	UPDATE(Y8, Y9)
	UPDATE(Y10, Y11)
	VZEROUPPER
	RET

overwrite:
	STORE(Y0, Y1)
	STORE(Y2, Y3)
	STORE(Y4, Y5)
	STORE(Y6, Y7)
	STORE(Y8, Y9)
	STORE(Y10, Y11)
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
