package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// matMulShapes are stories15M's attention and FFN matrices and two large
// memory-bound matrices.
var matMulShapes = [][2]int{{288, 288}, {768, 288}, {2048, 2048}, {4096, 4096}}

// benchMatMul reports GFLOP/s and vectors per second (tokens a server
// would push through this matrix) for each shape and batch size.
func benchMatMul(b *testing.B, mul func(out, w, x []float32, rows, cols, n int)) {
	for _, sh := range matMulShapes {
		rows, cols := sh[0], sh[1]
		r := rand.New(rand.NewPCG(1, 1))
		w := randVec(r, rows*cols)
		for _, n := range []int{1, 2, 4, 8, 16, 32} {
			b.Run(fmt.Sprintf("%dx%d/n%d", rows, cols, n), func(b *testing.B) {
				x, out := randVec(r, n*cols), make([]float32, n*rows)
				b.ReportAllocs()
				for b.Loop() {
					mul(out, w, x, rows, cols, n)
				}
				s := b.Elapsed().Seconds()
				b.ReportMetric(MatMulFLOPs(rows, cols, n)*float64(b.N)/s/1e9, "GFLOP/s")
				b.ReportMetric(float64(n*b.N)/s, "vec/s")
			})
		}
	}
}

func BenchmarkMatMul(b *testing.B) { benchMatMul(b, MatMul) }

// BenchmarkMatMulSerial is MatMul on the calling goroutine only, to compare
// with BenchmarkMatMul when choosing ParallelMatMulThreshold.
func BenchmarkMatMulSerial(b *testing.B) {
	benchMatMul(b, func(out, w, x []float32, rows, cols, n int) { matMul(out, w, x, rows, cols, n, rows) })
}

// BenchmarkMatVecLoop is the unbatched baseline: n separate MatVec calls.
func BenchmarkMatVecLoop(b *testing.B) {
	benchMatMul(b, func(out, w, x []float32, rows, cols, n int) {
		for j := range n {
			MatVec(out[j*rows:(j+1)*rows], w, x[j*cols:(j+1)*cols], rows, cols)
		}
	})
}
