// Package tensor holds the float32 kernels of the transformer forward pass:
// matrix–vector product, batched matrix product (several vectors through one
// matrix, for serving several sessions at once), dot product, RMSNorm, softmax, SiLU gating,
// residual add and rotary position embedding (RoPE).
//
// MatVecQ and MatMulQ are the same products for a QMatrix, a matrix kept
// in a block-quantized format (Q8_0: int8 values, Q4_0: 4-bit values, 32
// values per binary16 scale; see QFormat). They read the quantized bytes
// directly (dequantizing 32 values at a time in registers), with their own
// fixed summation order documented on MatVecQ, so they are deterministic
// in the same ways as MatVec and MatMul.
//
// The package is pure: no I/O, no clock, no randomness. Its only state is a
// lazily started pool of worker goroutines that MatVec and MatMul use
// for large products; the workers are parked on a channel when idle and are shared by
// every caller in the process.
//
// # Shapes
//
// Matrices are dense, row-major []float32: element (i, j) of a rows×cols
// matrix w is w[i*cols+j]. Vectors are []float32 of the documented length.
// Slices may be longer than needed only where a function says so; otherwise
// lengths must match exactly.
//
// A shape mismatch is a programmer bug, never a consequence of remote input
// (callers validate remote data before it reaches a kernel), so kernels
// panic on it rather than return an error.
//
// The AVX2 kernels (amd64, chosen at run time: MatVec, MatMul, and the
// exponential inside Softmax) perform the same operations in the same order with plain
// multiplies and adds, so they are bitwise identical to the portable Go
// code; tests compare the two.
//
// # Aliasing
//
// Unless a function documents otherwise, an output slice must not overlap an
// input slice. RMSNorm, Softmax, SiLUMul, Add and RoPE explicitly allow (or
// are defined as) in-place operation; MatVec's and MatMul's out must not overlap w or x.
//
// # Numerics
//
// Kernels follow llama2.c's run.c: float32 arithmetic, sqrt/cos/sin/pow
// evaluated in float64 and rounded to float32 (which agrees with C's sqrtf,
// cosf, sinf, powf to the last bit in nearly every case), exp by a table
// and polynomial kernel tested to equal float32(math.Exp(x)) bit for bit
// (see Exp), products rounded to float32 before they are added (never
// fused into FMA, on any architecture), RMSNorm as
// 1/sqrt(mean(x²)+eps), softmax with the maximum subtracted and a sequential
// sum. Dot products use a fixed summation order (eight interleaved partial
// sums, a fixed reduction tree, then the tail), so results are
// deterministic: the same inputs give the same bits on every machine, at
// every degree of parallelism, and whether a vector goes through MatVec
// alone or through MatMul with any number of other vectors. They differ from a naive sequential sum by
// normal float32 rounding (about 1e-7 relative).
package tensor
