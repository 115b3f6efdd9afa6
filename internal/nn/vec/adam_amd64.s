//go:build amd64

#include "textflag.h"

// func adamAVX(blocks int, w, grad, mom, vel *float32, k *AdamCoef)
//
// adamGo's loop body on 8 lanes, operation for operation (separate
// multiplies and adds, no FMA), so results are bit-identical:
//	Y0 w  Y1 g  Y2 m  Y3 v  Y4 g'  Y5–Y7 temporaries
//	Y8 decay  Y9 l2  Y10 β1  Y11 1−β1  Y12 β2  Y13 1−β2  Y14 stepSize
//	Y15 √c2; ε is added from memory.
TEXT ·adamAVX(SB), NOSPLIT, $0-48
	MOVQ blocks+0(FP), CX
	MOVQ w+8(FP), DI
	MOVQ grad+16(FP), SI
	MOVQ mom+24(FP), R8
	MOVQ vel+32(FP), R9
	MOVQ k+40(FP), DX
	VBROADCASTSS 0(DX), Y8
	VBROADCASTSS 4(DX), Y9
	VBROADCASTSS 8(DX), Y10
	VBROADCASTSS 12(DX), Y11
	VBROADCASTSS 16(DX), Y12
	VBROADCASTSS 20(DX), Y13
	VBROADCASTSS 24(DX), Y14
	VBROADCASTSS 28(DX), Y15
	TESTQ CX, CX
	JLE   done

loop:
	VMOVUPS (DI), Y0
	VMOVUPS (SI), Y1
	VMOVUPS (R8), Y2
	VMOVUPS (R9), Y3

	VMULPS Y9, Y0, Y4      // l2·w
	VADDPS Y4, Y1, Y4      // g' = g + l2·w
	VMULPS Y8, Y0, Y0      // wi = w·decay

	VMULPS Y10, Y2, Y2     // β1·m
	VMULPS Y11, Y4, Y5     // (1−β1)·g'
	VADDPS Y5, Y2, Y2      // mi
	VMOVUPS Y2, (R8)

	VMULPS Y12, Y3, Y3     // β2·v
	VMULPS Y13, Y4, Y5     // (1−β2)·g'
	VMULPS Y4, Y5, Y5      // ·g'
	VADDPS Y5, Y3, Y3      // vi
	VMOVUPS Y3, (R9)

	VSQRTPS Y3, Y6         // √vi
	VDIVPS  Y15, Y6, Y6    // /√c2
	VBROADCASTSS 32(DX), Y7
	VADDPS  Y7, Y6, Y6     // + ε
	VMULPS  Y14, Y2, Y7    // stepSize·mi
	VDIVPS  Y6, Y7, Y7     // / d
	VSUBPS  Y7, Y0, Y0     // wi − …
	VMOVUPS Y0, (DI)

	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $32, R9
	DECQ CX
	JNZ  loop

done:
	VZEROUPPER
	RET
