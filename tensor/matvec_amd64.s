#include "textflag.h"

// REDUCE folds the eight lanes s0..s7 of Y into lane 0 of X (X is Y's low
// half) as ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)); T is scratch.
#define REDUCE(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VMOVHLPS     X, X, T; \
	VADDPS       T, X, X; \
	VMOVSHDUP    X, T; \
	VADDSS       T, X, X

// func matVecAVX2(out, w, x *float32, rows, cols, n8 int)
TEXT ·matVecAVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ cols+32(FP), R8
	MOVQ n8+40(FP), BX
	SHLQ $2, R8 // row stride in bytes
	SHLQ $2, BX // bytes per row to process

rows4:
	CMPQ CX, $4
	JLT  rows1
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   SI, R10
	LEAQ   (R10)(R8*1), R11
	LEAQ   (R11)(R8*1), R12
	LEAQ   (R12)(R8*1), R13
	XORQ   AX, AX

loop4:
	CMPQ    AX, BX
	JGE     done4
	VMOVUPS (DX)(AX*1), Y4
	VMULPS  (R10)(AX*1), Y4, Y5
	VADDPS  Y5, Y0, Y0
	VMULPS  (R11)(AX*1), Y4, Y6
	VADDPS  Y6, Y1, Y1
	VMULPS  (R12)(AX*1), Y4, Y7
	VADDPS  Y7, Y2, Y2
	VMULPS  (R13)(AX*1), Y4, Y8
	VADDPS  Y8, Y3, Y3
	ADDQ    $32, AX
	JMP     loop4

done4:
	REDUCE(Y0, X0, X5)
	REDUCE(Y1, X1, X6)
	REDUCE(Y2, X2, X7)
	REDUCE(Y3, X3, X8)
	VMOVSS X0, 0(DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	ADDQ   $16, DI
	LEAQ   (R13)(R8*1), SI
	SUBQ   $4, CX
	JMP    rows4

rows1:
	CMPQ   CX, $0
	JLE    end
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

loop1:
	CMPQ    AX, BX
	JGE     done1
	VMOVUPS (DX)(AX*1), Y4
	VMULPS  (SI)(AX*1), Y4, Y5
	VADDPS  Y5, Y0, Y0
	ADDQ    $32, AX
	JMP     loop1

done1:
	REDUCE(Y0, X0, X5)
	VMOVSS X0, 0(DI)
	ADDQ   $4, DI
	ADDQ   R8, SI
	DECQ   CX
	JMP    rows1

end:
	VZEROUPPER
	RET
