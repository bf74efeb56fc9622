//go:build !amd64

package tensor

// matMul is the serial kernel over rows [0, rows) of w for n vectors,
// writing out[j*ostride+r].
func matMul(out, w, x []float32, rows, cols, n, ostride int) {
	matMulGeneric(out, w, x, rows, cols, n, ostride)
}
