//go:build amd64

#include "textflag.h"

// keep/neutral masks for the last, partial block of a row: loading 8
// lanes from keep+4·r gives r trailing lanes of all ones; from
// neutral+4·r, −0.0 in the 8−r leading lanes and 0 in the r others.
DATA keep<>+0(SB)/8, $0x0000000000000000
DATA keep<>+8(SB)/8, $0x0000000000000000
DATA keep<>+16(SB)/8, $0x0000000000000000
DATA keep<>+24(SB)/8, $0x0000000000000000
DATA keep<>+32(SB)/8, $0xffffffffffffffff
DATA keep<>+40(SB)/8, $0xffffffffffffffff
DATA keep<>+48(SB)/8, $0xffffffffffffffff
DATA keep<>+56(SB)/8, $0xffffffffffffffff
GLOBL keep<>(SB), RODATA|NOPTR, $64

DATA neutral<>+0(SB)/8, $0x8000000080000000
DATA neutral<>+8(SB)/8, $0x8000000080000000
DATA neutral<>+16(SB)/8, $0x8000000080000000
DATA neutral<>+24(SB)/8, $0x8000000080000000
DATA neutral<>+32(SB)/8, $0x0000000000000000
DATA neutral<>+40(SB)/8, $0x0000000000000000
DATA neutral<>+48(SB)/8, $0x0000000000000000
DATA neutral<>+56(SB)/8, $0x0000000000000000
GLOBL neutral<>(SB), RODATA|NOPTR, $64

// func copyRowsAVX(dst *float32, dstStride int, src *float32, srcStride, rows, width int)
//
// width ≥ 8. Whole blocks of 8, then the row's last 8 floats again
// (overlapping what was copied: the same values).
TEXT ·copyRowsAVX(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ width+40(FP), DX
	SHLQ $2, R8
	SHLQ $2, R9
	MOVQ DX, R10
	SHRQ $3, R10         // whole blocks
	LEAQ -32(DX*4), R11  // byte offset of the last 8 floats

crow:
	XORQ AX, AX          // byte offset in the row
	MOVQ R10, BX

cblock:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    BX
	JNZ     cblock

	VMOVUPS (SI)(R11*1), Y0
	VMOVUPS Y0, (DI)(R11*1)

	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ  crow
	VZEROUPPER
	RET

// func addRowsAVX(dst *float32, dstStride int, src *float32, srcStride, rows, width int)
//
// width ≥ 8. Whole blocks of 8; a partial last block of r floats adds
// the row's last 8 floats of src with the 8−r already added replaced by
// −0.0, which adds nothing to any value (−0 + −0 = −0, +0 + −0 = +0).
TEXT ·addRowsAVX(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ dstStride+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ srcStride+24(FP), R9
	MOVQ rows+32(FP), CX
	MOVQ width+40(FP), DX
	SHLQ $2, R8
	SHLQ $2, R9
	MOVQ DX, R10
	SHRQ $3, R10         // whole blocks
	LEAQ -32(DX*4), R11  // byte offset of the last 8 floats
	MOVQ DX, R12
	ANDQ $7, R12         // r, the partial block's floats
	LEAQ (R12*4), R13    // 4·r
	LEAQ keep<>(SB), R14
	VMOVUPS (R14)(R13*1), Y14
	LEAQ neutral<>(SB), R14
	VMOVUPS (R14)(R13*1), Y15

arow:
	XORQ AX, AX
	MOVQ R10, BX

ablock:
	VMOVUPS (SI)(AX*1), Y0
	VADDPS  (DI)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    BX
	JNZ     ablock

	TESTQ R12, R12
	JZ    anext
	VMOVUPS (SI)(R11*1), Y0
	VANDPS  Y14, Y0, Y0
	VORPS   Y15, Y0, Y0
	VADDPS  (DI)(R11*1), Y0, Y0
	VMOVUPS Y0, (DI)(R11*1)

anext:
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ  arow
	VZEROUPPER
	RET
