package tensor

import "math"

// exp table: expTab[j] = 2^(j/64), j in [0, 64).
var expTab = func() (t [64]float64) {
	for j := range t {
		t[j] = math.Exp2(float64(j) / 64)
	}
	return t
}()

const (
	expScale = 64 / math.Ln2
	// ln2/64 split into a high part with trailing zero bits (so k·ln2Hi is
	// exact for |k| < 2^20) and the remainder.
	ln2Hi64 = 0x1.62e42fefa38p-7
	ln2Lo64 = math.Ln2/64 - ln2Hi64
)

// Exp returns e^x rounded to float32, matching float32(math.Exp(float64(x)))
// (and C's correctly rounded expf) bit for bit except, in theory, when
// e^x lies within about 1e-15 relative of a float32 rounding boundary;
// TestExpMatchesMath finds no such input among millions, swept over the
// whole range.
//
// It evaluates e^x in float64 as 2^(k/64)·p(r) with x = k·ln2/64 + r,
// |r| ≤ ln2/128, and p a degree-5 Taylor polynomial (error < 4e-17). As a
// call it is only a little faster than math.Exp (BenchmarkExp); the gain is
// that its body has no calls, so Softmax and SiLUMul inline it into their
// loops, where independent iterations overlap.
func Exp(x float32) float32 {
	switch {
	case x != x:
		return x
	case x > 89:
		return float32(math.Inf(1))
	case x < -104:
		return 0 // below half the smallest float32 subnormal
	}
	return float32(expCore(float64(x)))
}

// expCore is e^x in float64 for x in [-104, 89] (see Exp). It is small
// enough to be inlined into the loops of Softmax and SiLUMul.
func expCore(xd float64) float64 {
	kf := xd * expScale
	ki := int64(kf + math.Copysign(0.5, kf)) // round to nearest
	k := float64(ki)
	r := float64(xd-float64(k*ln2Hi64)) - float64(k*ln2Lo64)
	p := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120)))))
	// ki>>6 is a floor division, so ki&63 is non-negative; the exponent
	// ki>>6 lies in [-151, 128], a normal float64 power of two.
	return expTab[ki&63] * p * math.Float64frombits(uint64(ki>>6+1023)<<52)
}
