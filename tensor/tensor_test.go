package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.Float64()*2 - 1)
	}
	return v
}

// dotOrder is Dot's documented summation order written out plainly.
func dotOrder(a, b []float32) float32 {
	var s [8]float32
	n8 := len(a) &^ 7
	for i := 0; i < n8; i++ {
		s[i%8] += float32(a[i] * b[i])
	}
	sum := ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))
	for i := n8; i < len(a); i++ {
		sum += float32(a[i] * b[i])
	}
	return sum
}

func TestDotOrderAndAccuracy(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 130; n++ {
		a, b := randVec(r, n), randVec(r, n)
		got := Dot(a, b)
		if want := dotOrder(a, b); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("n=%d: Dot = %v, documented order gives %v", n, got, want)
		}
		if want := dot(a, b); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("n=%d: Dot = %v, portable kernel gives %v", n, got, want)
		}
		var exact float64
		for i := range a {
			exact += float64(a[i]) * float64(b[i])
		}
		if d := math.Abs(float64(got) - exact); d > 1e-5*float64(n+1) {
			t.Fatalf("n=%d: Dot = %v, float64 sum %v (diff %g)", n, got, exact, d)
		}
	}
}

func TestMatVecMatchesDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	shapes := [][2]int{{1, 1}, {1, 8}, {3, 7}, {4, 8}, {5, 9}, {7, 64}, {64, 64}, {172, 64}, {64, 172}, {513, 300}, {1024, 256}, {333, 1001}}
	for _, sh := range shapes {
		rows, cols := sh[0], sh[1]
		t.Run(fmt.Sprintf("%dx%d", rows, cols), func(t *testing.T) {
			w, x := randVec(r, rows*cols), randVec(r, cols)
			out := make([]float32, rows)
			MatVec(out, w, x, rows, cols)
			gen := make([]float32, rows)
			matVecGeneric(gen, w, x, cols)
			for i := range out {
				want := dotOrder(w[i*cols:(i+1)*cols], x)
				if math.Float32bits(out[i]) != math.Float32bits(want) {
					t.Fatalf("row %d: got %v, want %v", i, out[i], want)
				}
				if math.Float32bits(gen[i]) != math.Float32bits(want) {
					t.Fatalf("portable row %d: got %v, want %v", i, gen[i], want)
				}
			}
		})
	}
}

// lowerParallelMin makes matrices of 1<<16 weights and more take the
// parallel path; the returned function restores the threshold.
func lowerParallelMin() func() {
	parallelMin = 1 << 16
	return func() { parallelMin = ParallelThreshold }
}

func TestMatVecParallelBitwise(t *testing.T) {
	if workers() < 2 {
		t.Skip("GOMAXPROCS < 2: no pool")
	}
	r := rand.New(rand.NewPCG(5, 6))
	defer lowerParallelMin()()
	rows, cols := 1030, 260 // rows not a multiple of the chunk
	w, x := randVec(r, rows*cols), randVec(r, cols)
	par, ser := make([]float32, rows), make([]float32, rows)
	MatVec(par, w, x, rows, cols)
	matVec(ser, w, x, cols)
	for i := range par {
		if math.Float32bits(par[i]) != math.Float32bits(ser[i]) {
			t.Fatalf("row %d: parallel %v, serial %v", i, par[i], ser[i])
		}
	}
}

func TestMatVecConcurrentCallers(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	defer lowerParallelMin()()
	rows, cols := 600, 300
	w, x := randVec(r, rows*cols), randVec(r, cols)
	want := make([]float32, rows)
	matVec(want, w, x, cols)
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			out := make([]float32, rows)
			for range 20 {
				MatVec(out, w, x, rows, cols)
				for i := range out {
					if out[i] != want[i] {
						done <- fmt.Errorf("row %d: got %v, want %v", i, out[i], want[i])
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

func TestMatVecNoAlloc(t *testing.T) {
	defer lowerParallelMin()()
	r := rand.New(rand.NewPCG(9, 10))
	for _, sh := range [][2]int{{64, 64}, {1024, 512}} {
		rows, cols := sh[0], sh[1]
		w, x, out := randVec(r, rows*cols), randVec(r, cols), make([]float32, rows)
		MatVec(out, w, x, rows, cols) // start the pool
		if n := testing.AllocsPerRun(50, func() { MatVec(out, w, x, rows, cols) }); n != 0 {
			t.Errorf("%dx%d: %v allocations per MatVec, want 0", rows, cols, n)
		}
	}
}

func TestShapePanics(t *testing.T) {
	cases := map[string]func(){
		"Dot":        func() { Dot(make([]float32, 3), make([]float32, 4)) },
		"MatVec out": func() { MatVec(make([]float32, 3), make([]float32, 8), make([]float32, 2), 4, 2) },
		"MatVec w":   func() { MatVec(make([]float32, 4), make([]float32, 7), make([]float32, 2), 4, 2) },
		"MatVec neg": func() { MatVec(nil, nil, nil, -1, 0) },
		"RMSNorm":    func() { RMSNorm(make([]float32, 3), make([]float32, 3), make([]float32, 2), 1e-5) },
		"SiLUMul":    func() { SiLUMul(make([]float32, 3), make([]float32, 2)) },
		"Add":        func() { Add(make([]float32, 3), make([]float32, 2)) },
		"RoPE":       func() { RoPE(make([]float32, 6), make([]float32, 2), make([]float32, 2)) },
		"Argmax":     func() { Argmax(nil) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic on shape mismatch", name)
				}
			}()
			f()
		})
	}
}

func TestRMSNorm(t *testing.T) {
	x := []float32{1, 2, 3, 4}
	w := []float32{1, 0.5, 2, -1}
	out := make([]float32, 4)
	RMSNorm(out, x, w, 1e-5)
	inv := 1 / math.Sqrt((1+4+9+16)/4.0+1e-5)
	for i := range x {
		want := float64(w[i]) * float64(x[i]) * inv
		if math.Abs(float64(out[i])-want) > 1e-6 {
			t.Errorf("out[%d] = %v, want %v", i, out[i], want)
		}
	}
	RMSNorm(x, x, w, 1e-5) // in place
	for i := range x {
		if x[i] != out[i] {
			t.Errorf("in place out[%d] = %v, want %v", i, x[i], out[i])
		}
	}
}

func TestSoftmax(t *testing.T) {
	x := []float32{1, 2, 3, 1000}
	Softmax(x)
	if x[3] != 1 || x[0] != 0 {
		t.Errorf("softmax with a dominant value = %v, want [0 0 0 1]", x)
	}
	y := []float32{0, float32(math.Log(3))}
	Softmax(y)
	if math.Abs(float64(y[0])-0.25) > 1e-7 || math.Abs(float64(y[1])-0.75) > 1e-7 {
		t.Errorf("softmax(0, ln 3) = %v, want [0.25 0.75]", y)
	}
	Softmax(nil)
}

func TestSiLUMulAddScaleArgmax(t *testing.T) {
	h := []float32{0, 1, -2}
	g := []float32{5, 2, 3}
	SiLUMul(h, g)
	for i, v := range []float64{0, 1, -2} {
		want := v / (1 + math.Exp(-v)) * float64(g[i])
		if math.Abs(float64(h[i])-want) > 1e-6 {
			t.Errorf("SiLUMul[%d] = %v, want %v", i, h[i], want)
		}
	}
	a := []float32{1, 2}
	Add(a, []float32{0.5, -2})
	if a[0] != 1.5 || a[1] != 0 {
		t.Errorf("Add = %v, want [1.5 0]", a)
	}
	Scale(a, 3)
	if a[0] != float32(1.5)/3 {
		t.Errorf("Scale = %v, want %v", a[0], float32(1.5)/3)
	}
	if got := Argmax([]float32{1, 3, 3, 2}); got != 1 {
		t.Errorf("Argmax first max = %d, want 1", got)
	}
}

func TestRoPE(t *testing.T) {
	const hs, theta = 8, 10000
	freq := make([]float32, hs/2)
	RoPEFreqs(freq, hs, theta)
	for p, f := range freq {
		want := 1 / math.Pow(theta, float64(2*p)/hs)
		if math.Abs(float64(f)-want) > 1e-7*want {
			t.Errorf("freq[%d] = %v, want %v", p, f, want)
		}
	}
	cos, sin := make([]float32, hs/2), make([]float32, hs/2)
	RoPEAngles(cos, sin, freq, 0)
	vec := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	orig := append([]float32(nil), vec...)
	RoPE(vec, cos, sin)
	for i := range vec {
		if vec[i] != orig[i] {
			t.Fatalf("rotation at pos 0 changed element %d: %v → %v", i, orig[i], vec[i])
		}
	}
	const pos = 7
	RoPEAngles(cos, sin, freq, pos)
	RoPE(vec, cos, sin)
	for i := 0; i < len(vec); i += 2 {
		p := (i % hs) / 2
		a := pos * float64(freq[p])
		v0, v1 := float64(orig[i]), float64(orig[i+1])
		w0, w1 := v0*math.Cos(a)-v1*math.Sin(a), v0*math.Sin(a)+v1*math.Cos(a)
		if math.Abs(float64(vec[i])-w0) > 1e-5 || math.Abs(float64(vec[i+1])-w1) > 1e-5 {
			t.Errorf("pair %d = (%v, %v), want (%v, %v)", i, vec[i], vec[i+1], w0, w1)
		}
		// Rotation preserves the norm of each pair.
		n0 := v0*v0 + v1*v1
		n1 := float64(vec[i])*float64(vec[i]) + float64(vec[i+1])*float64(vec[i+1])
		if math.Abs(n0-n1) > 1e-4*n0 {
			t.Errorf("pair %d norm %v → %v", i, n0, n1)
		}
	}
}
