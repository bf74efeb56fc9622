package tensor

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels. They use AVX only for plain
// multiplies and adds (no FMA), in Dot's summation order, so their results
// are bitwise identical to the portable Go code.
var useAVX2 = cpu.X86.HasAVX2

// matVecAVX2 sets out[r] (r < rows) to the reduced eight-lane partial sum of
// row r over its first n8 columns (n8 a multiple of 8), in Dot's order.
// The row stride is cols.
//
//go:noescape
func matVecAVX2(out, w, x *float32, rows, cols, n8 int)

// matVec is the serial kernel for one contiguous range of rows.
func matVec(out, w, x []float32, cols int) {
	rows := len(out)
	if !useAVX2 || rows == 0 || cols < 8 {
		matVecGeneric(out, w, x, cols)
		return
	}
	_ = w[rows*cols-1]
	n8 := cols &^ 7
	matVecAVX2(&out[0], &w[0], &x[0], rows, cols, n8)
	if n8 == cols {
		return
	}
	xt := x[n8:]
	for r := range out {
		out[r] = dotTail(out[r], w[r*cols+n8:(r+1)*cols], xt)
	}
}

// dotVec is Dot's kernel on this architecture.
func dotVec(a, b []float32) float32 {
	if !useAVX2 || len(a) < 8 {
		return dot(a, b)
	}
	var out [1]float32
	n8 := len(a) &^ 7
	matVecAVX2(&out[0], &a[0], &b[0], 1, len(a), n8)
	return dotTail(out[0], a[n8:], b[n8:len(a)])
}
