package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkMatVec(b *testing.B) {
	for _, sh := range [][2]int{{64, 64}, {172, 64}, {64, 172}, {512, 64}, {256, 256}, {256, 512}, {512, 512}, {1024, 1024}, {2048, 2048}, {4096, 4096}} {
		rows, cols := sh[0], sh[1]
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			w, x, out := randVec(r, rows*cols), randVec(r, cols), make([]float32, rows)
			b.SetBytes(int64(4 * rows * cols))
			b.ReportAllocs()
			for b.Loop() {
				MatVec(out, w, x, rows, cols)
			}
			b.ReportMetric(MatVecFLOPs(rows, cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkMatVecSerial measures the single-goroutine kernel, to compare
// with BenchmarkMatVec when choosing ParallelThreshold.
func BenchmarkMatVecSerial(b *testing.B) {
	for _, sh := range [][2]int{{64, 64}, {256, 256}, {256, 512}, {512, 512}, {1024, 1024}, {2048, 2048}, {4096, 4096}} {
		rows, cols := sh[0], sh[1]
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			w, x, out := randVec(r, rows*cols), randVec(r, cols), make([]float32, rows)
			b.SetBytes(int64(4 * rows * cols))
			for b.Loop() {
				matVec(out, w, x, cols)
			}
			b.ReportMetric(MatVecFLOPs(rows, cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkMatVecGeneric(b *testing.B) {
	for _, sh := range [][2]int{{64, 64}, {1024, 1024}} {
		rows, cols := sh[0], sh[1]
		b.Run(fmt.Sprintf("%dx%d", rows, cols), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			w, x, out := randVec(r, rows*cols), randVec(r, cols), make([]float32, rows)
			for b.Loop() {
				matVecGeneric(out, w, x, cols)
			}
			b.ReportMetric(MatVecFLOPs(rows, cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkSoftmax(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	x := randVec(r, 512)
	y := make([]float32, len(x))
	b.SetBytes(4 * 512)
	for b.Loop() {
		copy(y, x)
		Softmax(y)
	}
}
