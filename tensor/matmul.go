package tensor

import "fmt"

// MatMulFLOPs is the floating-point operation count of one MatMul of the
// given shape (one multiply and one add per weight and input vector).
func MatMulFLOPs(rows, cols, n int) float64 { return 2 * float64(rows) * float64(cols) * float64(n) }

// MatMul applies the rows×cols matrix w to n input vectors at once: for
// j in [0, n) and i in [0, rows),
//
//	out[j*rows+i] = Σ_k w[i*cols+k]·x[j*cols+k]
//
// len(out) must be n*rows, len(w) rows*cols and len(x) n*cols; out must not
// overlap w or x. It panics on a shape mismatch.
//
// Every out value is bitwise identical to what MatVec computes for that
// input vector alone (Dot's summation order, no FMA), whatever n is and
// however the rows are split across goroutines: a result never depends on
// which other vectors shared the call. This is what lets a server batch
// the steps of unrelated sessions without changing any session's output.
//
// The point of MatMul is memory traffic: decoding one token is bound by
// reading the weights, and MatMul reads each weight once from memory for
// all n vectors (the rows are processed in cache-sized tiles, and the
// amd64 kernel applies each loaded weight chunk to two vectors at once).
// Calls with at least ParallelMatMulThreshold multiply-adds are split into
// row ranges across the worker pool. MatMul does not allocate.
func MatMul(out, w, x []float32, rows, cols, n int) {
	if rows < 0 || cols < 0 || n < 0 || len(out) != n*rows || len(w) != rows*cols || len(x) != n*cols {
		panic(fmt.Sprintf("tensor: MatMul shape mismatch: rows=%d cols=%d n=%d len(out)=%d len(w)=%d len(x)=%d",
			rows, cols, n, len(out), len(w), len(x)))
	}
	if n == 1 {
		MatVec(out, w, x, rows, cols)
		return
	}
	if rows == 0 || n == 0 {
		return
	}
	if rows*cols*n >= parallelMulMin && rows >= 8 && workers() > 1 {
		parallelMatMul(out, w, x, rows, cols, n)
		return
	}
	matMul(out, w, x, rows, cols, n, rows)
}

// tileFloats is the number of weights a row tile of matMul holds: the tile
// is read from memory once and then stays in the L1/L2 cache while every
// input vector is applied to it.
const tileFloats = 8192

// tileRows is the number of rows per tile for rows of cols weights: a
// multiple of 4 (the kernels' row block), at least 4.
func tileRows(cols int) int {
	return max(4, (tileFloats/max(cols, 1))&^3)
}

// matMulGeneric is the portable serial kernel over rows [0, rows) of w:
// out[j*ostride+r] = dot(row r, x_j). Rows are taken a tile at a time so the
// tile is reused from cache for every vector.
func matMulGeneric(out, w, x []float32, rows, cols, n, ostride int) {
	tr := tileRows(cols)
	for lo := 0; lo < rows; lo += tr {
		hi := min(lo+tr, rows)
		for j := range n {
			xj := x[j*cols : (j+1)*cols]
			o := out[j*ostride:]
			for r := lo; r < hi; r++ {
				o[r] = dot(w[r*cols:(r+1)*cols], xj)
			}
		}
	}
}
