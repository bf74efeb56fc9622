package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestExpMatchesMath(t *testing.T) {
	check := func(x float32) {
		t.Helper()
		got, want := Exp(x), float32(math.Exp(float64(x)))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("Exp(%v) = %v (%#x), want %v (%#x)", x, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	for _, x := range []float32{0, -0, 1, -1, 88.7, 88.72, 89, 89.5, -87.3, -103.9, -103.97, -104, -104.5, -200, 200,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		math.MaxFloat32, -math.MaxFloat32} {
		check(x)
	}
	if x := Exp(float32(math.NaN())); x == x {
		t.Errorf("Exp(NaN) = %v, want NaN", x)
	}
	// A sweep over the float32 bit patterns of [-110, 90] with a stride,
	// plus random values.
	for _, sign := range []uint32{0, 1 << 31} {
		for bits := uint32(0); ; bits += 613 {
			x := math.Float32frombits(sign | bits)
			if x > 90 || x < -110 {
				break
			}
			check(x)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2_000_000 {
		check(float32(r.Float64()*200 - 110))
	}
}

func BenchmarkExp(b *testing.B) {
	xs := make([]float32, 1024)
	for i := range xs {
		xs[i] = -float32(i) / 64
	}
	var s float32
	b.Run("tensor", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				s += Exp(x)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(xs)), "ns/exp")
	})
	b.Run("math", func(b *testing.B) {
		for b.Loop() {
			for _, x := range xs {
				s += float32(math.Exp(float64(x)))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(xs)), "ns/exp")
	})
	_ = s
}

// TestInlinedExp checks that the copies of expCore inside Softmax and
// SiLUMul agree bit for bit with Exp (and so with math.Exp).
func TestInlinedExp(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	x := make([]float32, 4096)
	for i := range x {
		x[i] = float32(r.Float64() * -115) // max is pinned to 0 below
	}
	x[0], x[1] = 0, float32(math.Inf(-1))
	want := make([]float32, len(x))
	var sum float32
	for i, v := range x {
		want[i] = float32(math.Exp(float64(v - 0)))
		sum += want[i]
	}
	// With the maximum pinned at 0, Softmax exponentiates x unchanged.
	y := append([]float32(nil), x...)
	y[2] = 0
	want[2] = 1
	sum = 0
	for _, w := range want {
		sum += w
	}
	Softmax(y)
	for i := range y {
		if w := want[i] / sum; math.Float32bits(y[i]) != math.Float32bits(w) {
			t.Fatalf("Softmax element %d (x=%v) = %v, want %v", i, x[i], y[i], w)
		}
	}
	h := append([]float32(nil), x...)
	g := make([]float32, len(x))
	for i := range g {
		g[i] = 1
	}
	SiLUMul(h, g)
	for i, v := range x {
		e := float32(math.Exp(float64(-v)))
		w := v * (1 / (1 + e))
		if math.Float32bits(h[i]) != math.Float32bits(w) && !(h[i] != h[i] && w != w) {
			t.Fatalf("SiLUMul(%v) = %v, want %v", v, h[i], w)
		}
	}
}

// refSoftmax is llama2.c's softmax with expf taken as float32(math.Exp).
func refSoftmax(x []float32) {
	maxV := x[0]
	for _, v := range x[1:] {
		if v > maxV {
			maxV = v
		}
	}
	var sum float32
	for i, v := range x {
		x[i] = float32(math.Exp(float64(v - maxV)))
		sum += x[i]
	}
	for i := range x {
		x[i] /= sum
	}
}

// TestSoftmaxKernelBitwise compares Softmax (vector exp kernel where
// available) with the reference on many lengths and value ranges.
func TestSoftmaxKernelBitwise(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for iter := range 3000 {
		n := 1 + r.IntN(70)
		scale := []float64{1, 10, 50, 300}[iter%4]
		x := make([]float32, n)
		for i := range x {
			x[i] = float32((r.Float64()*2 - 1) * scale)
		}
		if iter%7 == 0 {
			x[r.IntN(n)] = float32(math.Inf(-1))
		}
		want := append([]float32(nil), x...)
		refSoftmax(want)
		got := append([]float32(nil), x...)
		Softmax(got)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("n=%d scale=%v element %d (x=%v): got %v, want %v", n, scale, i, x[i], got[i], want[i])
			}
		}
	}
	// Non-finite inputs take the scalar path and behave like the reference.
	for _, x := range [][]float32{
		{1, float32(math.NaN()), 2, 3, 4},
		{float32(math.Inf(1)), 1, 2, 3, 4},
		{float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1)), float32(math.Inf(-1))},
	} {
		want := append([]float32(nil), x...)
		refSoftmax(want)
		got := append([]float32(nil), x...)
		Softmax(got)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) && !(got[i] != got[i] && want[i] != want[i]) {
				t.Errorf("Softmax(%v)[%d] = %v, want %v", x, i, got[i], want[i])
			}
		}
	}
}

// TestExpShiftSweep checks the vector kernel against Exp over a sweep of
// every 97th float32 in [-110, 0] and shifted inputs.
func TestExpShiftSweep(t *testing.T) {
	var xs []float32
	for bits := uint32(0); ; bits += 97 {
		x := -math.Float32frombits(bits)
		if x < -110 {
			break
		}
		xs = append(xs, x)
	}
	for _, shift := range []float32{0, 3.25, -7.5} {
		in := make([]float32, len(xs))
		for i, x := range xs {
			in[i] = x + shift // in - shift ≈ x ≤ 0 (rounding aside)
		}
		got := append([]float32(nil), in...)
		expShift(got, shift)
		for i, v := range in {
			if want := Exp(v - shift); math.Float32bits(got[i]) != math.Float32bits(want) {
				t.Fatalf("shift %v: e^(%v-%v) = %v, want %v", shift, v, shift, got[i], want)
			}
		}
	}
}
