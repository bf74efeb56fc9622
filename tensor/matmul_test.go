package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// withKernels runs f once with the kernels this machine selects and, when
// those are the AVX-512 or AVX2 paths, again with AVX2 only and with the
// portable Go code.
func withKernels(t *testing.T, f func(t *testing.T)) {
	t.Run("native", f)
	if useAVX512 {
		t.Run("avx2", func(t *testing.T) {
			useAVX512 = false
			defer func() { useAVX512 = true }()
			f(t)
		})
	}
	if useAVX2 {
		t.Run("portable", func(t *testing.T) {
			avx512 := useAVX512
			useAVX2, useAVX512 = false, false
			defer func() { useAVX2, useAVX512 = true, avx512 }()
			f(t)
		})
	}
}

// checkMatMul compares every MatMul output with MatVec of that vector alone
// and with Dot's documented order, bit for bit.
func checkMatMul(t *testing.T, r *rand.Rand, rows, cols, n int) {
	t.Helper()
	w, x := randVec(r, rows*cols), randVec(r, n*cols)
	out := make([]float32, n*rows)
	for i := range out {
		out[i] = float32(math.NaN()) // every element must be written
	}
	MatMul(out, w, x, rows, cols, n)
	one := make([]float32, rows)
	for j := range n {
		xj := x[j*cols : (j+1)*cols]
		MatVec(one, w, xj, rows, cols)
		for i := range rows {
			got := out[j*rows+i]
			if math.Float32bits(got) != math.Float32bits(one[i]) {
				t.Fatalf("%dx%d n=%d: out[vector %d, row %d] = %v, MatVec gives %v", rows, cols, n, j, i, got, one[i])
			}
			if want := dotOrder(w[i*cols:(i+1)*cols], xj); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%dx%d n=%d: out[vector %d, row %d] = %v, documented order gives %v", rows, cols, n, j, i, got, want)
			}
		}
	}
}

func TestMatMulBitwiseMatVec(t *testing.T) {
	shapes := [][2]int{
		{1, 1}, {1, 7}, {1, 8}, {2, 9}, {3, 7}, {4, 8}, {5, 9}, {6, 15}, {7, 16}, {9, 17},
		{13, 31}, {64, 64}, {172, 64}, {64, 172}, {65, 33}, {288, 288}, {97, 1001}, {3, 2100},
	}
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, sh := range shapes {
			for n := 0; n <= 9; n++ {
				checkMatMul(t, r, sh[0], sh[1], n)
			}
		}
	})
}

func TestMatMulParallelBitwise(t *testing.T) {
	if workers() < 2 {
		t.Skip("GOMAXPROCS < 2: no pool")
	}
	parallelMulMin = 1 << 12
	defer func() { parallelMulMin = ParallelMatMulThreshold }()
	withKernels(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(13, 14))
		for _, sh := range [][2]int{{1030, 260}, {37, 129}, {8, 512}, {301, 77}} {
			for _, n := range []int{2, 3, 5, 8, 9, 16} {
				checkMatMul(t, r, sh[0], sh[1], n)
			}
		}
	})
}

func TestMatMulConcurrentCallers(t *testing.T) {
	parallelMulMin = 1 << 12
	defer func() { parallelMulMin = ParallelMatMulThreshold }()
	r := rand.New(rand.NewPCG(15, 16))
	const rows, cols, n = 300, 200, 5
	w, x := randVec(r, rows*cols), randVec(r, n*cols)
	want := make([]float32, n*rows)
	matMulGeneric(want, w, x, rows, cols, n, rows)
	done := make(chan error)
	for range 4 {
		go func() {
			out := make([]float32, n*rows)
			for range 20 {
				MatMul(out, w, x, rows, cols, n)
				for i := range out {
					if math.Float32bits(out[i]) != math.Float32bits(want[i]) {
						done <- fmt.Errorf("out[%d]: got %v, want %v", i, out[i], want[i])
						return
					}
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMatMulNoAlloc(t *testing.T) {
	parallelMulMin = 1 << 12
	defer func() { parallelMulMin = ParallelMatMulThreshold }()
	r := rand.New(rand.NewPCG(17, 18))
	for _, sh := range [][3]int{{64, 64, 4}, {512, 256, 7}} {
		rows, cols, n := sh[0], sh[1], sh[2]
		w, x, out := randVec(r, rows*cols), randVec(r, n*cols), make([]float32, n*rows)
		MatMul(out, w, x, rows, cols, n) // start the pool
		if a := testing.AllocsPerRun(50, func() { MatMul(out, w, x, rows, cols, n) }); a != 0 {
			t.Errorf("%dx%d n=%d: %v allocations per MatMul, want 0", rows, cols, n, a)
		}
	}
}

func TestMatMulShapePanics(t *testing.T) {
	f := make([]float32, 64)
	cases := map[string]func(){
		"out":   func() { MatMul(f[:5], f[:8], f[:4], 4, 2, 2) },
		"w":     func() { MatMul(f[:8], f[:7], f[:4], 4, 2, 2) },
		"x":     func() { MatMul(f[:8], f[:8], f[:5], 4, 2, 2) },
		"neg n": func() { MatMul(nil, f[:8], nil, 4, 2, -1) },
		"neg":   func() { MatMul(nil, nil, nil, -1, 0, 1) },
	}
	for name, fn := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("MatMul %s: no panic on shape mismatch", name)
				}
			}()
			fn()
		})
	}
}

// FuzzMatMul checks the batching invariant on shapes and values chosen by
// the fuzzer: every MatMul output equals MatVec of its vector alone.
func FuzzMatMul(f *testing.F) {
	f.Add(uint8(5), uint16(9), uint8(3), uint64(1))
	f.Add(uint8(4), uint16(8), uint8(2), uint64(2))
	f.Add(uint8(1), uint16(1), uint8(1), uint64(3))
	f.Add(uint8(33), uint16(300), uint8(9), uint64(4))
	f.Fuzz(func(t *testing.T, rows uint8, cols uint16, n uint8, seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		checkMatMul(t, r, int(rows)%80, int(cols)%700, int(n)%12)
	})
}
