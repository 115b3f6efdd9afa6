//go:build amd64

#include "textflag.h"

// lanes<> is 2·lane for lanes 0–7: each output's column in the block.
DATA lanes<>+0(SB)/4, $0
DATA lanes<>+4(SB)/4, $2
DATA lanes<>+8(SB)/4, $4
DATA lanes<>+12(SB)/4, $6
DATA lanes<>+16(SB)/4, $8
DATA lanes<>+20(SB)/4, $10
DATA lanes<>+24(SB)/4, $12
DATA lanes<>+28(SB)/4, $14
GLOBL lanes<>(SB), RODATA|NOPTR, $32

// EVENODD splits the 16 floats at (ptr) into the even ones (even) and the
// odd ones (odd), in order: SHUFPS picks them within 128-bit lanes,
// PERMPD puts the lanes' halves in order.
#define EVENODD(ptr, even, odd) \
	VMOVUPS (ptr), Y0            \
	VMOVUPS 32(ptr), Y1          \
	VSHUFPS $0x88, Y1, Y0, even  \
	VSHUFPS $0xDD, Y1, Y0, odd   \
	VPERMPD $0xD8, even, even    \
	VPERMPD $0xD8, odd, odd

// TAKE makes cand the maximum where it is greater than best or is a NaN
// while best is not (ordered compares are false on NaN), and its place
// candAt the argmax there: Y6 is the condition.
#define TAKE(cand, candAt) \
	VCMPPS    $0x1E, Y8, cand, Y6 \ // cand > best
	VCMPPS    $0x03, cand, cand, Y7 \ // cand is NaN
	VCMPPS    $0x07, Y8, Y8, Y5   \ // best is not NaN
	VANDPS    Y5, Y7, Y7          \
	VORPS     Y7, Y6, Y6          \
	VBLENDVPS Y6, cand, Y8, Y8    \
	VBLENDVPS Y6, candAt, Y9, Y9

// func maxPool2x2AVX2(blocks int, r0, r1, dst *float32, am *int32, base, w int)
//
//	Y8 best  Y9 its place  Y10 place of r0[2j] (base + c + 2·lane)
//	Y11 = 1, Y12 = w, Y13 = w+1 (int32)  Y14 = 16 (int32), the step
TEXT ·maxPool2x2AVX2(SB), NOSPLIT, $0-56
	MOVQ blocks+0(FP), CX
	MOVQ r0+8(FP), SI
	MOVQ r1+16(FP), DX
	MOVQ dst+24(FP), DI
	MOVQ am+32(FP), R8
	MOVQ base+40(FP), AX
	MOVQ w+48(FP), BX
	VMOVD        AX, X10
	VPBROADCASTD X10, Y10
	VPADDD       lanes<>(SB), Y10, Y10
	MOVL         $1, AX
	VMOVD        AX, X11
	VPBROADCASTD X11, Y11
	VMOVD        BX, X12
	VPBROADCASTD X12, Y12
	VPADDD       Y11, Y12, Y13
	MOVL         $16, AX
	VMOVD        AX, X14
	VPBROADCASTD X14, Y14
	TESTQ CX, CX
	JLE   done

loop:
	EVENODD(SI, Y8, Y2)
	EVENODD(DX, Y3, Y4)
	VMOVDQU Y10, Y9
	VPADDD  Y11, Y10, Y15
	TAKE(Y2, Y15)
	VPADDD  Y12, Y10, Y15
	TAKE(Y3, Y15)
	VPADDD  Y13, Y10, Y15
	TAKE(Y4, Y15)
	VMOVUPS Y8, (DI)
	TESTQ   R8, R8
	JZ      next
	VMOVDQU Y9, (R8)
	ADDQ    $32, R8

next:
	VPADDD Y14, Y10, Y10
	ADDQ   $64, SI
	ADDQ   $64, DX
	ADDQ   $32, DI
	DECQ   CX
	JNZ    loop

done:
	VZEROUPPER
	RET
