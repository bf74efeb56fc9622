#include "textflag.h"

// REDUCE folds the eight lanes s0..s7 of Y into lane 0 of X (X is Y's low
// half) as ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)); T is scratch. It is the
// same sequence as in matvec_amd64.s.
#define REDUCE(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VMOVHLPS     X, X, T; \
	VADDPS       T, X, X; \
	VMOVSHDUP    X, T; \
	VADDSS       T, X, X

// BLOCKSUM takes the block's values, converted to float32 in Y0..Y3
// (values 0-7, 8-15, 16-23, 24-31), multiplies them by the x chunk at R11,
// sums the lanes as (m0+m2)+(m1+m3), scales by the broadcast scale in Y10
// and adds the result to the accumulator Y8.
#define BLOCKSUM \
	VMULPS (R11), Y0, Y0; \
	VMULPS 32(R11), Y1, Y1; \
	VMULPS 64(R11), Y2, Y2; \
	VMULPS 96(R11), Y3, Y3; \
	VADDPS Y2, Y0, Y0; \
	VADDPS Y3, Y1, Y1; \
	VADDPS Y1, Y0, Y0; \
	VMULPS Y10, Y0, Y0; \
	VADDPS Y0, Y8, Y8

// func qRowsQ8AVX2(out *float32, data *byte, x *float32, rows, rb, nb int)
TEXT ·qRowsQ8AVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ data+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ rb+32(FP), R8
	MOVQ nb+40(FP), R9

q8row:
	TESTQ  CX, CX
	JZ     q8end
	VXORPS Y8, Y8, Y8
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   R9, BX

q8blk:
	VPBROADCASTW (R10), X10
	VCVTPH2PS    X10, Y10
	VPMOVSXBD    2(R10), Y0
	VPMOVSXBD    10(R10), Y1
	VPMOVSXBD    18(R10), Y2
	VPMOVSXBD    26(R10), Y3
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	BLOCKSUM
	ADDQ         $34, R10
	ADDQ         $128, R11
	DECQ         BX
	JNZ          q8blk

	REDUCE(Y8, X8, X9)
	VMOVSS X8, (DI)
	ADDQ   $4, DI
	ADDQ   R8, SI
	DECQ   CX
	JMP    q8row

q8end:
	VZEROUPPER
	RET

// func qRowsQ4AVX2(out *float32, data *byte, x *float32, rows, rb, nb int)
TEXT ·qRowsQ4AVX2(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ data+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ rb+32(FP), R8
	MOVQ nb+40(FP), R9
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X15
	VPBROADCASTD X15, X15
	MOVL $0x08080808, AX
	VMOVD AX, X14
	VPBROADCASTD X14, X14

q4row:
	TESTQ  CX, CX
	JZ     q4end
	VXORPS Y8, Y8, Y8
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   R9, BX

q4blk:
	VPBROADCASTW (R10), X10
	VCVTPH2PS    X10, Y10
	VMOVDQU      2(R10), X4
	VPSRLW       $4, X4, X5
	VPAND        X15, X4, X4
	VPAND        X15, X5, X5
	VPSUBB       X14, X4, X4
	VPSUBB       X14, X5, X5
	VPMOVSXBD    X4, Y0
	VPSRLDQ      $8, X4, X4
	VPMOVSXBD    X4, Y1
	VPMOVSXBD    X5, Y2
	VPSRLDQ      $8, X5, X5
	VPMOVSXBD    X5, Y3
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	BLOCKSUM
	ADDQ         $18, R10
	ADDQ         $128, R11
	DECQ         BX
	JNZ          q4blk

	REDUCE(Y8, X8, X9)
	VMOVSS X8, (DI)
	ADDQ   $4, DI
	ADDQ   R8, SI
	DECQ   CX
	JMP    q4row

q4end:
	VZEROUPPER
	RET

// func qRowsQ8AVX512(out *float32, data *byte, x *float32, rows, rb, nb int)
//
// qRowsQ8AVX2 with 16-lane registers: values 0-15 and 16-31 of a block
// are multiplied in one register each, their sum holds m0+m2 in the low
// eight lanes and m1+m3 in the high eight, which are then added: the same
// operations on the same values as the AVX2 kernel, so the same bits.
TEXT ·qRowsQ8AVX512(SB), NOSPLIT, $0-48
	MOVQ out+0(FP), DI
	MOVQ data+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ rb+32(FP), R8
	MOVQ nb+40(FP), R9

z8row:
	TESTQ  CX, CX
	JZ     z8end
	VXORPS Y8, Y8, Y8
	MOVQ   SI, R10
	MOVQ   DX, R11
	MOVQ   R9, BX

z8blk:
	VPBROADCASTW  (R10), X10
	VCVTPH2PS     X10, Y10
	VPMOVSXBD     2(R10), Z0
	VPMOVSXBD     18(R10), Z1
	VCVTDQ2PS     Z0, Z0
	VCVTDQ2PS     Z1, Z1
	VMULPS        (R11), Z0, Z0
	VMULPS        64(R11), Z1, Z1
	VADDPS        Z1, Z0, Z0
	VEXTRACTF64X4 $1, Z0, Y1
	VADDPS        Y1, Y0, Y0
	VMULPS        Y10, Y0, Y0
	VADDPS        Y0, Y8, Y8
	ADDQ          $34, R10
	ADDQ          $128, R11
	DECQ          BX
	JNZ           z8blk

	REDUCE(Y8, X8, X9)
	VMOVSS X8, (DI)
	ADDQ   $4, DI
	ADDQ   R8, SI
	DECQ   CX
	JMP    z8row

z8end:
	VZEROUPPER
	RET
