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

// ACC4 multiplies the weight chunk broadcast in both halves of Z18 by the
// packed input chunks Z16 (vectors 0|1) and Z17 (vectors 2|3) and adds the
// products to A (vectors 0|1) and B (vectors 2|3).
#define ACC4(A, B) \
	VMULPS Z18, Z16, Z19; \
	VADDPS Z19, A, A; \
	VMULPS Z18, Z17, Z20; \
	VADDPS Z20, B, B

// func matMul4AVX512(out, w, x *float32, rows, cols, n8, ostride int)
//
// matMul2AVX2 for four input vectors x[k*cols:(k+1)*cols], k < 4, writing
// out[k*ostride+r]. A 512-bit register holds two independent eight-lane
// accumulators, (row r, vector 2p) in its low half and (row r, vector 2p+1)
// in its high half; each lane sees exactly the multiplies and adds of
// matVecAVX2, in the same order, so the results are bitwise the same.
TEXT ·matMul4AVX512(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ x+16(FP), R9
	MOVQ rows+24(FP), CX
	MOVQ cols+32(FP), R8
	MOVQ n8+40(FP), BX
	MOVQ ostride+48(FP), R12
	SHLQ $2, R8              // row (and input vector) stride in bytes
	SHLQ $2, BX              // bytes per row to process
	SHLQ $2, R12             // output vector stride in bytes

rows4:
	CMPQ   CX, $4
	JLT    rows1
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ   SI, R10               // rows 0 and 1: (R10), (R10)(R8*1)
	LEAQ   (SI)(R8*2), R11       // rows 2 and 3: (R11), (R11)(R8*1)
	MOVQ   R9, DX                // vectors 0 and 1
	LEAQ   (R9)(R8*2), R13       // vectors 2 and 3
	MOVQ   BX, AX                // bytes left

loop4:
	CMPQ            AX, $0
	JLE             done4
	VMOVUPS         (DX), Y16
	VINSERTF32X8    $1, (DX)(R8*1), Z16, Z16
	VMOVUPS         (R13), Y17
	VINSERTF32X8    $1, (R13)(R8*1), Z17, Z17
	VBROADCASTF32X8 (R10), Z18
	ACC4(Z0, Z4)
	VBROADCASTF32X8 (R10)(R8*1), Z18
	ACC4(Z1, Z5)
	VBROADCASTF32X8 (R11), Z18
	ACC4(Z2, Z6)
	VBROADCASTF32X8 (R11)(R8*1), Z18
	ACC4(Z3, Z7)
	ADDQ            $32, DX
	ADDQ            $32, R13
	ADDQ            $32, R10
	ADDQ            $32, R11
	SUBQ            $32, AX
	JMP             loop4

done4:
	// Vectors 0 (low halves of Z0..Z3) and 1 (high halves).
	VEXTRACTF32X8 $1, Z0, Y8
	VEXTRACTF32X8 $1, Z1, Y9
	VEXTRACTF32X8 $1, Z2, Y10
	VEXTRACTF32X8 $1, Z3, Y11
	REDUCE(Y0, X0, X12)
	REDUCE(Y1, X1, X12)
	REDUCE(Y2, X2, X12)
	REDUCE(Y3, X3, X12)
	REDUCE(Y8, X8, X12)
	REDUCE(Y9, X9, X12)
	REDUCE(Y10, X10, X12)
	REDUCE(Y11, X11, X12)
	VMOVSS        X0, 0(DI)
	VMOVSS        X1, 4(DI)
	VMOVSS        X2, 8(DI)
	VMOVSS        X3, 12(DI)
	VMOVSS        X8, 0(DI)(R12*1)
	VMOVSS        X9, 4(DI)(R12*1)
	VMOVSS        X10, 8(DI)(R12*1)
	VMOVSS        X11, 12(DI)(R12*1)

	// Vectors 2 (low halves of Z4..Z7) and 3 (high halves).
	VEXTRACTF32X8 $1, Z4, Y8
	VEXTRACTF32X8 $1, Z5, Y9
	VEXTRACTF32X8 $1, Z6, Y10
	VEXTRACTF32X8 $1, Z7, Y11
	REDUCE(Y4, X4, X12)
	REDUCE(Y5, X5, X12)
	REDUCE(Y6, X6, X12)
	REDUCE(Y7, X7, X12)
	REDUCE(Y8, X8, X12)
	REDUCE(Y9, X9, X12)
	REDUCE(Y10, X10, X12)
	REDUCE(Y11, X11, X12)
	LEAQ          (DI)(R12*2), AX
	VMOVSS        X4, 0(AX)
	VMOVSS        X5, 4(AX)
	VMOVSS        X6, 8(AX)
	VMOVSS        X7, 12(AX)
	VMOVSS        X8, 0(AX)(R12*1)
	VMOVSS        X9, 4(AX)(R12*1)
	VMOVSS        X10, 8(AX)(R12*1)
	VMOVSS        X11, 12(AX)(R12*1)

	ADDQ $16, DI
	LEAQ (SI)(R8*4), SI
	SUBQ $4, CX
	JMP  rows4

rows1:
	CMPQ   CX, $0
	JLE    end
	VPXORD Z0, Z0, Z0
	VPXORD Z4, Z4, Z4
	MOVQ   SI, R10
	MOVQ   R9, DX
	LEAQ   (R9)(R8*2), R13
	MOVQ   BX, AX

loop1:
	CMPQ            AX, $0
	JLE             done1
	VMOVUPS         (DX), Y16
	VINSERTF32X8    $1, (DX)(R8*1), Z16, Z16
	VMOVUPS         (R13), Y17
	VINSERTF32X8    $1, (R13)(R8*1), Z17, Z17
	VBROADCASTF32X8 (R10), Z18
	ACC4(Z0, Z4)
	ADDQ            $32, DX
	ADDQ            $32, R13
	ADDQ            $32, R10
	SUBQ            $32, AX
	JMP             loop1

done1:
	VEXTRACTF32X8 $1, Z0, Y8
	VEXTRACTF32X8 $1, Z4, Y9
	REDUCE(Y0, X0, X12)
	REDUCE(Y8, X8, X12)
	REDUCE(Y4, X4, X12)
	REDUCE(Y9, X9, X12)
	VMOVSS        X0, 0(DI)
	VMOVSS        X8, 0(DI)(R12*1)
	LEAQ          (DI)(R12*2), AX
	VMOVSS        X4, 0(AX)
	VMOVSS        X9, 0(AX)(R12*1)
	ADDQ          $4, DI
	ADDQ          R8, SI
	DECQ          CX
	JMP           rows1

end:
	VZEROUPPER
	RET
