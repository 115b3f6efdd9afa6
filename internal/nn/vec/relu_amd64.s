//go:build amd64

#include "textflag.h"

// func reluAVX(blocks int, x, y *float32)
//
// MAXPS returns its second source when the operands compare equal or
// either is NaN, so max(0, x) keeps a NaN x and turns neither −0 nor +0
// into the other; adding +0 then maps −0 to +0 and leaves every other
// value alone: exactly Go's max(x, 0).
TEXT ·reluAVX(SB), NOSPLIT, $0-24
	MOVQ   blocks+0(FP), CX
	MOVQ   x+8(FP), SI
	MOVQ   y+16(FP), DI
	VXORPS Y1, Y1, Y1
	TESTQ  CX, CX
	JLE    done

loop:
	VMOVUPS (SI), Y0
	VMAXPS  Y0, Y1, Y2 // Intel: max(src1 = 0, src2 = x)
	VADDPS  Y1, Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func reluBackwardAVX(blocks int, x, dy, dx *float32)
//
// dx = dy AND (x > 0): the ordered greater-than compare (predicate 0x1E,
// GT_OQ) is false for NaN.
TEXT ·reluBackwardAVX(SB), NOSPLIT, $0-32
	MOVQ   blocks+0(FP), CX
	MOVQ   x+8(FP), SI
	MOVQ   dy+16(FP), DX
	MOVQ   dx+24(FP), DI
	VXORPS Y1, Y1, Y1
	TESTQ  CX, CX
	JLE    bdone

bloop:
	VMOVUPS (SI), Y0
	VCMPPS  $0x1E, Y1, Y0, Y2 // Intel: x > 0
	VANDPS  (DX), Y2, Y2
	VMOVUPS Y2, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     bloop

bdone:
	VZEROUPPER
	RET
