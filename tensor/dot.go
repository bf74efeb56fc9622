package tensor

import "fmt"

// Dot returns Σ a[i]·b[i]. It panics if len(a) != len(b).
//
// Summation order (part of the contract, see the package doc): the first
// len&^7 elements are accumulated into eight partial sums s[k] over indices
// ≡ k (mod 8), in increasing index order; these are reduced as
// ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)); the remaining len%8 products are
// then added one by one.
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Sprintf("tensor: Dot length mismatch: %d != %d", len(a), len(b)))
	}
	return dotVec(a, b)
}

// dot is Dot without the length check; len(b) must be >= len(a).
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3, s4, s5, s6, s7 float32
	i := 0
	for ; i+8 <= n; i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		// The explicit float32 conversions forbid fusing into FMA
		// (the Go spec allows fusion otherwise, and arm64 does it), which
		// keeps results bitwise identical across architectures.
		s0 += float32(aa[0] * bb[0])
		s1 += float32(aa[1] * bb[1])
		s2 += float32(aa[2] * bb[2])
		s3 += float32(aa[3] * bb[3])
		s4 += float32(aa[4] * bb[4])
		s5 += float32(aa[5] * bb[5])
		s6 += float32(aa[6] * bb[6])
		s7 += float32(aa[7] * bb[7])
	}
	sum := ((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))
	return dotTail(sum, a[i:], b[i:])
}

// dotTail returns sum plus the products of a and b added one by one.
func dotTail(sum float32, a, b []float32) float32 {
	b = b[:len(a)]
	for i := range a {
		sum += float32(a[i] * b[i])
	}
	return sum
}

// MatVecFLOPs is the floating-point operation count of one MatVec of the
// given shape (one multiply and one add per weight).
func MatVecFLOPs(rows, cols int) float64 { return 2 * float64(rows) * float64(cols) }

// MatVec sets out[i] = Σ_j w[i*cols+j]·x[j] for i in [0, rows).
// len(out) must be rows, len(w) rows*cols and len(x) cols; out must not
// overlap w or x. Each out[i] is computed exactly as Dot(w[i*cols:(i+1)*cols], x),
// so the result does not depend on whether the rows were split across
// goroutines.
//
// Matrices with at least ParallelThreshold weights are split into row
// ranges processed concurrently by the package's worker pool; smaller ones
// run on the calling goroutine. MatVec does not allocate.
func MatVec(out, w, x []float32, rows, cols int) {
	if rows < 0 || cols < 0 || len(out) != rows || len(x) != cols || len(w) != rows*cols {
		panic(fmt.Sprintf("tensor: MatVec shape mismatch: rows=%d cols=%d len(out)=%d len(w)=%d len(x)=%d",
			rows, cols, len(out), len(w), len(x)))
	}
	if rows*cols >= parallelMin && rows >= 2 && workers() > 1 {
		parallelMatVec(out, w, x, cols)
		return
	}
	matVec(out, w, x, cols)
}

// matVecGeneric is the portable serial kernel: one Dot per row.
func matVecGeneric(out, w, x []float32, cols int) {
	for r := range out {
		out[r] = dot(w[r*cols:(r+1)*cols], x)
	}
}
