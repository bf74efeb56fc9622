package tensor

import (
	"math/rand/v2"
	"testing"
)

func TestTranspose(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, sh := range [][2]int{{0, 0}, {1, 1}, {1, 7}, {7, 1}, {33, 65}, {64, 32}, {100, 3}} {
		rows, cols := sh[0], sh[1]
		src := make([]float32, rows*cols)
		for i := range src {
			src[i] = r.Float32()
		}
		dst := make([]float32, rows*cols)
		Transpose(dst, src, rows, cols)
		for i := range rows {
			for j := range cols {
				if got, want := dst[j*rows+i], src[i*cols+j]; got != want {
					t.Fatalf("%dx%d: dst[%d,%d] = %v, want %v", rows, cols, j, i, got, want)
				}
			}
		}
		back := make([]float32, rows*cols)
		Transpose(back, dst, cols, rows)
		for i := range src {
			if back[i] != src[i] {
				t.Fatalf("%dx%d: transpose twice differs at %d", rows, cols, i)
			}
		}
	}
}

// TestMatMulBackwardProducts checks the two backward products built from
// Transpose and MatMul (dX = dY·W and dW = dYᵀ·X) against naive float64 sums.
func TestMatMulBackwardProducts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	rows, cols, n := 13, 21, 11
	fill := func(k int) []float32 {
		s := make([]float32, k)
		for i := range s {
			s[i] = 2*r.Float32() - 1
		}
		return s
	}
	w, x, dy := fill(rows*cols), fill(n*cols), fill(n*rows)
	wT := make([]float32, rows*cols)
	Transpose(wT, w, rows, cols)
	dx := make([]float32, n*cols)
	MatMul(dx, wT, dy, cols, rows, n)
	xT, dyT := make([]float32, n*cols), make([]float32, n*rows)
	Transpose(xT, x, n, cols)
	Transpose(dyT, dy, n, rows)
	dw := make([]float32, rows*cols)
	MatMul(dw, xT, dyT, cols, n, rows)
	for j := range n {
		for k := range cols {
			var s float64
			for i := range rows {
				s += float64(dy[j*rows+i]) * float64(w[i*cols+k])
			}
			if d := float64(dx[j*cols+k]) - s; d > 1e-5 || d < -1e-5 {
				t.Fatalf("dX[%d,%d] = %v, want %v", j, k, dx[j*cols+k], s)
			}
		}
	}
	for i := range rows {
		for k := range cols {
			var s float64
			for j := range n {
				s += float64(dy[j*rows+i]) * float64(x[j*cols+k])
			}
			if d := float64(dw[i*cols+k]) - s; d > 1e-5 || d < -1e-5 {
				t.Fatalf("dW[%d,%d] = %v, want %v", i, k, dw[i*cols+k], s)
			}
		}
	}
}
