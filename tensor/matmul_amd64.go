package tensor

import "golang.org/x/sys/cpu"

// useAVX512 selects matMul4AVX512, which packs two eight-lane
// accumulators into each 512-bit register (same lanes, same order, so the
// same bits as the AVX2 kernels). It needs AVX2 as well: the other kernels
// and the reductions use it.
var useAVX512 = useAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL

// matMul4AVX512 is matMul2AVX2 for the four vectors x[k*cols:(k+1)*cols],
// writing out[k*ostride+r].
//
//go:noescape
func matMul4AVX512(out, w, x *float32, rows, cols, n8, ostride int)

// matMul2AVX2 sets out[r] and out[ostride+r] (r < rows) to the reduced
// eight-lane partial sums of row r of w with the vectors x[0:cols] and
// x[cols:2*cols] over their first n8 columns, in Dot's order. Each loaded
// weight chunk serves both vectors.
//
//go:noescape
func matMul2AVX2(out, w, x *float32, rows, cols, n8, ostride int)

// matMul is the serial kernel over rows [0, rows) of w for n vectors,
// writing out[j*ostride+r].
func matMul(out, w, x []float32, rows, cols, n, ostride int) {
	if !useAVX2 || rows == 0 || n == 0 || cols < 8 {
		matMulGeneric(out, w, x, rows, cols, n, ostride)
		return
	}
	// Bounds the assembly relies on.
	_ = w[rows*cols-1]
	_ = x[n*cols-1]
	_ = out[(n-1)*ostride+rows-1]
	n8 := cols &^ 7
	tr := tileRows(cols)
	for lo := 0; lo < rows; lo += tr {
		hi := min(lo+tr, rows)
		wt := &w[lo*cols]
		j := 0
		if useAVX512 {
			for ; j+4 <= n; j += 4 {
				matMul4AVX512(&out[j*ostride+lo], wt, &x[j*cols], hi-lo, cols, n8, ostride)
			}
		}
		for ; j+2 <= n; j += 2 {
			matMul2AVX2(&out[j*ostride+lo], wt, &x[j*cols], hi-lo, cols, n8, ostride)
		}
		if j < n {
			matVecAVX2(&out[j*ostride+lo], wt, &x[j*cols], hi-lo, cols, n8)
		}
		if n8 == cols {
			continue
		}
		for j := range n {
			xt := x[j*cols+n8 : (j+1)*cols]
			o := out[j*ostride:]
			for r := lo; r < hi; r++ {
				o[r] = dotTail(o[r], w[r*cols+n8:(r+1)*cols], xt)
			}
		}
	}
}
