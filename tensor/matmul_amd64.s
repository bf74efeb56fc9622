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

// ACC2 multiplies the weight chunk in Y10 by both input chunks (Y8, Y9)
// and adds the products to accumulators A (vector a) and B (vector b).
#define ACC2(A, B) \
	VMULPS Y10, Y8, Y11; \
	VADDPS Y11, A, A; \
	VMULPS Y10, Y9, Y12; \
	VADDPS Y12, B, B

// func matMul2AVX2(out, w, x *float32, rows, cols, n8, ostride int)
//
// For the two input vectors a = x[0:cols] and b = x[cols:2*cols] and each
// row r < rows of w (row stride cols), sets out[r] and out[ostride+r] to
// the reduced eight-lane partial sums of row r with a and b over the first
// n8 columns. Each weight chunk is loaded once and used for both vectors;
// each (row, vector) pair has its own accumulator, updated in the same
// order as matVecAVX2, so the results are bitwise the same.
TEXT ·matMul2AVX2(SB), NOSPLIT, $0-56
	MOVQ out+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ x+16(FP), DX
	MOVQ rows+24(FP), CX
	MOVQ cols+32(FP), R8
	MOVQ n8+40(FP), BX
	SHLQ $2, R8              // row stride in bytes
	SHLQ $2, BX              // bytes per row to process
	LEAQ (DX)(R8*1), R9      // second input vector

rows4:
	CMPQ   CX, $4
	JLT    rows1
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ   SI, R10
	LEAQ   (R10)(R8*1), R11
	LEAQ   (R11)(R8*1), R12
	LEAQ   (R12)(R8*1), R13
	XORQ   AX, AX

loop4:
	CMPQ    AX, BX
	JGE     done4
	VMOVUPS (DX)(AX*1), Y8
	VMOVUPS (R9)(AX*1), Y9
	VMOVUPS (R10)(AX*1), Y10
	ACC2(Y0, Y4)
	VMOVUPS (R11)(AX*1), Y10
	ACC2(Y1, Y5)
	VMOVUPS (R12)(AX*1), Y10
	ACC2(Y2, Y6)
	VMOVUPS (R13)(AX*1), Y10
	ACC2(Y3, Y7)
	ADDQ    $32, AX
	JMP     loop4

done4:
	REDUCE(Y0, X0, X8)
	REDUCE(Y1, X1, X9)
	REDUCE(Y2, X2, X10)
	REDUCE(Y3, X3, X11)
	REDUCE(Y4, X4, X12)
	REDUCE(Y5, X5, X13)
	REDUCE(Y6, X6, X14)
	REDUCE(Y7, X7, X15)
	VMOVSS X0, 0(DI)
	VMOVSS X1, 4(DI)
	VMOVSS X2, 8(DI)
	VMOVSS X3, 12(DI)
	MOVQ   ostride+48(FP), AX
	SHLQ   $2, AX
	VMOVSS X4, 0(DI)(AX*1)
	VMOVSS X5, 4(DI)(AX*1)
	VMOVSS X6, 8(DI)(AX*1)
	VMOVSS X7, 12(DI)(AX*1)
	ADDQ   $16, DI
	LEAQ   (R13)(R8*1), SI
	SUBQ   $4, CX
	JMP    rows4

rows1:
	CMPQ   CX, $0
	JLE    end
	VXORPS Y0, Y0, Y0
	VXORPS Y4, Y4, Y4
	XORQ   AX, AX

loop1:
	CMPQ    AX, BX
	JGE     done1
	VMOVUPS (DX)(AX*1), Y8
	VMOVUPS (R9)(AX*1), Y9
	VMOVUPS (SI)(AX*1), Y10
	ACC2(Y0, Y4)
	ADDQ    $32, AX
	JMP     loop1

done1:
	REDUCE(Y0, X0, X8)
	REDUCE(Y4, X4, X12)
	VMOVSS X0, 0(DI)
	MOVQ   ostride+48(FP), AX
	SHLQ   $2, AX
	VMOVSS X4, 0(DI)(AX*1)
	ADDQ   $4, DI
	ADDQ   R8, SI
	DECQ   CX
	JMP    rows1

end:
	VZEROUPPER
	RET
