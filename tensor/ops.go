package tensor

import (
	"fmt"
	"math"
)

func mustLen(op string, want int, got ...[]float32) {
	for _, s := range got {
		if len(s) != want {
			panic(fmt.Sprintf("tensor: %s length mismatch: got %d, want %d", op, len(s), want))
		}
	}
}

// Sqrt returns √x rounded to float32 (C's sqrtf).
func Sqrt(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// RMSNorm sets out[i] = w[i] · (x[i] / √(mean(x²) + eps)), exactly as
// llama2.c's rmsnorm: ss = Σx² sequentially, ss/n + eps, 1/sqrtf, then
// w[i]·(inv·x[i]). out may be x (in place). All three lengths must match.
func RMSNorm(out, x, w []float32, eps float32) {
	n := len(x)
	mustLen("RMSNorm", n, out, w)
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	ss /= float32(n)
	ss += eps
	inv := 1 / Sqrt(ss)
	for i := range out {
		out[i] = w[i] * float32(inv*x[i])
	}
}

// Softmax replaces x with softmax(x), as llama2.c: subtract the maximum,
// exponentiate, sum sequentially, divide each element by the sum.
// An empty x is left as is.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	maxV, nan := x[0], x[0] != x[0]
	for _, v := range x[1:] {
		if v > maxV {
			maxV = v
		}
		nan = nan || v != v
	}
	var sum float32
	if !nan && !math.IsInf(float64(maxV), 0) {
		// Every x[i]-maxV is in [-Inf, 0]: the vector kernel applies.
		expShift(x, maxV)
		for _, e := range x {
			sum += e
		}
	} else {
		for i, v := range x {
			e := Exp(v - maxV)
			x[i] = e
			sum += e
		}
	}
	for i := range x {
		x[i] /= sum
	}
}

// SiLUMul sets h[i] = silu(h[i]) · g[i] where silu(v) = v · 1/(1+e^-v),
// the SwiGLU gate of llama2.c's FFN. len(g) must equal len(h).
func SiLUMul(h, g []float32) {
	mustLen("SiLUMul", len(h), g)
	g = g[:len(h)]
	for i, v := range h {
		var e float32
		if d := -v; d >= -104 && d <= 89 {
			// expCore, inlined by hand (the compiler will not).
			xd := float64(d)
			kf := xd * expScale
			ki := int64(kf + math.Copysign(0.5, kf))
			k := float64(ki)
			r := float64(xd-float64(k*ln2Hi64)) - float64(k*ln2Lo64)
			p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120)))))
			e = float32(expTab[ki&63] * p * math.Float64frombits(uint64(ki>>6+1023)<<52))
		} else {
			e = Exp(-v)
		}
		v *= 1 / (1 + e)
		h[i] = v * g[i]
	}
}

// Add sets dst[i] += src[i]. len(src) must equal len(dst); they may be the
// same slice.
func Add(dst, src []float32) {
	mustLen("Add", len(dst), src)
	for i, v := range src {
		dst[i] += v
	}
}

// Scale sets x[i] /= d, elementwise division (not multiplication by the
// reciprocal, which rounds differently).
func Scale(x []float32, d float32) {
	for i := range x {
		x[i] /= d
	}
}

// Argmax returns the index of the first maximum of x (llama2.c's
// sample_argmax: NaNs are never chosen unless x[0] is NaN). It panics if x
// is empty.
func Argmax(x []float32) int {
	if len(x) == 0 {
		panic("tensor: Argmax of empty slice")
	}
	best, bestV := 0, x[0]
	for i, v := range x[1:] {
		if v > bestV {
			best, bestV = i+1, v
		}
	}
	return best
}
