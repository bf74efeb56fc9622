package tensor

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16RoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			if g := F32ToF16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, g)
			}
			continue
		}
		if g := F32ToF16(f); g != uint16(h) {
			t.Fatalf("F32ToF16(F16ToF32(%#04x) = %v) = %#04x", h, f, g)
		}
	}
}

// TestF16Nearest checks that F32ToF16 picks the nearest binary16 value
// (ties to even) for random float32s across the binary16 range.
func TestF16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 200000 {
		f := float32(math.Ldexp(r.Float64()*2-1, r.IntN(40)-26))
		h := F32ToF16(f)
		got := float64(F16ToF32(h))
		// Neighbours of h toward zero and away from it.
		for _, n := range []uint16{h - 1, h + 1} {
			if n&0x7fff > 0x7c00 || n&0x7fff == 0x7fff {
				continue
			}
			other := float64(F16ToF32(n))
			dg, do := math.Abs(got-float64(f)), math.Abs(other-float64(f))
			if do < dg || do == dg && h&1 == 1 {
				t.Fatalf("F32ToF16(%v) = %v, but %v is nearer (or the even tie)", f, got, other)
			}
		}
	}
}

// qRef is MatVecQ's documented order written out plainly.
func qRef(w *QMatrix, x []float32, r int) float32 {
	rb, bb := w.Format.RowBytes(w.Cols), w.Format.BlockBytes()
	row := w.Data[r*rb : (r+1)*rb]
	var a [8]float32
	nb := w.Cols / QBlockLen
	val := func(b, j int) float32 { return float32(blockQ(w.Format, row[b*bb:], j)) }
	scale := func(b int) float32 { return F16ToF32(uint16(row[b*bb]) | uint16(row[b*bb+1])<<8) }
	for b := range nb {
		xb := x[b*QBlockLen:]
		for k := range 8 {
			m0 := float32(val(b, k) * xb[k])
			m1 := float32(val(b, 8+k) * xb[8+k])
			m2 := float32(val(b, 16+k) * xb[16+k])
			m3 := float32(val(b, 24+k) * xb[24+k])
			a[k] += float32(scale(b) * ((m0 + m2) + (m1 + m3)))
		}
	}
	sum := ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
	if m := w.Cols - nb*QBlockLen; m > 0 {
		var s float32
		for j := range m {
			s += float32(val(nb, j) * x[nb*QBlockLen+j])
		}
		sum += float32(scale(nb) * s)
	}
	return sum
}

func withQKernels(t *testing.T, f func(t *testing.T)) {
	t.Run("native", f)
	if useAVX512 && useQAVX2 {
		t.Run("avx2", func(t *testing.T) {
			useAVX512 = false
			defer func() { useAVX512 = true }()
			f(t)
		})
	}
	if useQAVX2 {
		t.Run("portable", func(t *testing.T) {
			useQAVX2 = false
			defer func() { useQAVX2 = true }()
			f(t)
		})
	}
}

func TestMatVecQOrder(t *testing.T) {
	shapes := [][2]int{{1, 1}, {1, 31}, {1, 32}, {3, 33}, {4, 64}, {5, 172}, {9, 96}, {64, 172}, {172, 64}, {33, 288}}
	for _, f := range []QFormat{Q8_0, Q4_0} {
		for _, par := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/parallel=%v", f, par), func(t *testing.T) {
				if par {
					pm, pmm := parallelMin, parallelMulMin
					parallelMin, parallelMulMin = 4, 4
					defer func() { parallelMin, parallelMulMin = pm, pmm }()
				}
				withQKernels(t, func(t *testing.T) {
					r := rand.New(rand.NewPCG(1, uint64(f)))
					for _, sh := range shapes {
						rows, cols := sh[0], sh[1]
						w, err := Quantize(f, randVec(r, rows*cols), rows, cols)
						if err != nil {
							t.Fatal(err)
						}
						const n = 5
						x := randVec(r, n*cols)
						out := make([]float32, n*rows)
						for i := range out {
							out[i] = float32(math.NaN())
						}
						MatMulQ(out, w, x, n)
						one := make([]float32, rows)
						for j := range n {
							MatVecQ(one, w, x[j*cols:(j+1)*cols])
							for i := range rows {
								want := qRef(w, x[j*cols:(j+1)*cols], i)
								if math.Float32bits(one[i]) != math.Float32bits(want) {
									t.Fatalf("%dx%d: MatVecQ row %d = %v, documented order gives %v", rows, cols, i, one[i], want)
								}
								if got := out[j*rows+i]; math.Float32bits(got) != math.Float32bits(want) {
									t.Fatalf("%dx%d: MatMulQ vector %d row %d = %v, want %v", rows, cols, j, i, got, want)
								}
							}
						}
					}
				})
			})
		}
	}
}

// TestQuantizeError checks the reconstruction error (Q8_0: half a step
// d/2 per value, plus the binary16 rounding of d) and that MatVecQ agrees
// with MatVec of the dequantized matrix up to summation order.
func TestQuantizeError(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const rows, cols = 16, 200
	w := randVec(r, rows*cols)
	for _, f := range []QFormat{Q8_0, Q4_0} {
		q, err := Quantize(f, w, rows, cols)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("%s: Validate: %v", f, err)
		}
		deq := make([]float32, rows*cols)
		q.Dequantize(deq)
		// Q4_0 clamps the side opposite the block's extreme at 7·d, so
		// values there may be off by a whole step d = max/8.
		step := float32(0.51 / 127)
		if f == Q4_0 {
			step = 1.01 / 8
		}
		for i, v := range w {
			lo := i / QBlockLen * QBlockLen
			var amax float32
			for _, u := range w[lo:min(lo+QBlockLen, (i/cols+1)*cols)] {
				amax = max(amax, float32(math.Abs(float64(u))))
			}
			if e := float32(math.Abs(float64(deq[i] - v))); e > amax*step+amax*1e-3 {
				t.Fatalf("%s: value %d: %v became %v (block max %v)", f, i, v, deq[i], amax)
			}
		}
		x := randVec(r, cols)
		got, want := make([]float32, rows), make([]float32, rows)
		MatVecQ(got, q, x)
		MatVec(want, deq, x, rows, cols)
		for i := range got {
			if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%s row %d: MatVecQ %v, MatVec of the dequantized matrix %v", f, i, got[i], want[i])
			}
		}
	}
}

func TestQuantizeRejects(t *testing.T) {
	for _, w := range [][]float32{{float32(math.Inf(1))}, {float32(math.NaN())}, {1e10}} {
		if _, err := Quantize(Q8_0, w, 1, 1); !errors.Is(err, ErrQuant) {
			t.Errorf("Quantize(%v): got %v, want ErrQuant", w, err)
		}
	}
}

func TestValidate(t *testing.T) {
	good, err := Quantize(Q4_0, make([]float32, 2*40), 2, 40)
	if err != nil {
		t.Fatal(err)
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("zeros: %v", err)
	}
	mut := func(f func(q *QMatrix)) *QMatrix {
		q := *good
		q.Data = append([]byte(nil), good.Data...)
		f(&q)
		return &q
	}
	cases := map[string]*QMatrix{
		"short":       mut(func(q *QMatrix) { q.Data = q.Data[:len(q.Data)-1] }),
		"long":        mut(func(q *QMatrix) { q.Data = append(q.Data, 0) }),
		"format":      mut(func(q *QMatrix) { q.Format = 9 }),
		"rows":        mut(func(q *QMatrix) { q.Rows = -1 }),
		"huge":        mut(func(q *QMatrix) { q.Rows = math.MaxInt / 2 }),
		"inf scale":   mut(func(q *QMatrix) { q.Data[18+1] = 0x7c }),
		"nan scale":   mut(func(q *QMatrix) { q.Data[1] = 0x7e }),
		"pad nibble":  mut(func(q *QMatrix) { q.Data[2*18-1] = 0x98 }),
		"pad low":     mut(func(q *QMatrix) { q.Data[18+2+10] = 0x87 }),
		"q8 pad byte": {Format: Q8_0, Rows: 1, Cols: 1, Data: append([]byte{0, 0, 0, 1}, make([]byte, 30)...)},
	}
	for name, q := range cases {
		if err := q.Validate(); !errors.Is(err, ErrQuant) {
			t.Errorf("%s: got %v, want ErrQuant", name, err)
		}
	}
}

func BenchmarkMatVecQ(b *testing.B) {
	for _, f := range []QFormat{0, Q8_0, Q4_0} {
		for _, sh := range [][2]int{{64, 64}, {1024, 1024}, {4096, 4096}, {11008, 4096}, {4096, 11008}} {
			rows, cols := sh[0], sh[1]
			b.Run(fmt.Sprintf("%s/%dx%d", f, rows, cols), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 1))
				w, x, out := randVec(r, rows*cols), randVec(r, cols), make([]float32, rows)
				cpu0 := cpuTime()
				if f == 0 {
					b.SetBytes(int64(4 * rows * cols))
					for b.Loop() {
						MatVec(out, w, x, rows, cols)
					}
					reportCPU(b, cpu0, int64(4*rows*cols))
				} else {
					q, err := Quantize(f, w, rows, cols)
					if err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(len(q.Data)))
					cpu0 = cpuTime()
					for b.Loop() {
						MatVecQ(out, q, x)
					}
					reportCPU(b, cpu0, int64(len(q.Data)))
				}
				b.ReportMetric(MatVecFLOPs(rows, cols)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkMatMulQ(b *testing.B) {
	const rows, cols, n = 4096, 4096, 8
	for _, f := range []QFormat{0, Q8_0} {
		b.Run(f.String(), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 1))
			w, x, out := randVec(r, rows*cols), randVec(r, n*cols), make([]float32, n*rows)
			q, _ := Quantize(Q8_0, w, rows, cols)
			for b.Loop() {
				if f == 0 {
					MatMul(out, w, x, rows, cols, n)
				} else {
					MatMulQ(out, q, x, n)
				}
			}
			b.ReportMetric(MatMulFLOPs(rows, cols, n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkQ8Kernels compares the Q8_0 kernels on one goroutine (serial
// rows), per CPU-second.
func BenchmarkQ8Kernels(b *testing.B) {
	const rows, cols = 4096, 4096
	r := rand.New(rand.NewPCG(1, 1))
	q, _ := Quantize(Q8_0, randVec(r, rows*cols), rows, cols)
	x, out := randVec(r, cols), make([]float32, rows)
	run := func(b *testing.B) {
		b.SetBytes(int64(len(q.Data)))
		cpu0 := cpuTime()
		for b.Loop() {
			matVecQ(out, q, x, 0, rows)
		}
		reportCPU(b, cpu0, int64(len(q.Data)))
	}
	b.Run("native", run)
	if useAVX512 {
		b.Run("avx2", func(b *testing.B) {
			useAVX512 = false
			defer func() { useAVX512 = true }()
			run(b)
		})
	}
}
