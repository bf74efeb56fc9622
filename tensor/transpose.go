package tensor

import "fmt"

// Transpose sets dst to the transpose of the rows×cols matrix src:
// dst[c*rows+r] = src[r*cols+c]. len(src) and len(dst) must be rows*cols;
// dst must not overlap src. It panics on a shape mismatch.
//
// With Transpose, MatMul also computes the two products the backward pass
// of y = W·x needs over a batch of n vectors (see the package doc, Backward
// products): the input gradient dX = dY·W is MatMul with Wᵀ as the matrix,
// and the weight gradient dW = dYᵀ·X is MatMul with Xᵀ as the matrix and
// the rows of dYᵀ as the vectors, so both run on the same fast, parallel
// kernel as the forward pass. Transpose works in 32×32 tiles so both
// matrices are walked through the cache a tile at a time. It does not
// allocate.
func Transpose(dst, src []float32, rows, cols int) {
	if rows < 0 || cols < 0 || len(src) != rows*cols || len(dst) != rows*cols {
		panic(fmt.Sprintf("tensor: Transpose shape mismatch: rows=%d cols=%d len(dst)=%d len(src)=%d",
			rows, cols, len(dst), len(src)))
	}
	const tile = 32
	for r0 := 0; r0 < rows; r0 += tile {
		r1 := min(r0+tile, rows)
		for c0 := 0; c0 < cols; c0 += tile {
			c1 := min(c0+tile, cols)
			for r := r0; r < r1; r++ {
				row := src[r*cols+c0 : r*cols+c1]
				for i, v := range row {
					dst[(c0+i)*rows+r] = v
				}
			}
		}
	}
}
