package tensor

import "math"

// expConsts are the constants of expCore, in the layout expShiftAVX2 reads.
const expConstLen = 14

var expConsts = [expConstLen]float64{
	expScale, 0.5, math.Float64frombits(1 << 63), ln2Hi64, ln2Lo64, -104, 1.0 / 64, 64,
	0x1.8p52, 1.0 / 120, 1.0 / 24, 1.0 / 6, 1, math.Float64frombits(1023),
}

//go:noescape
func expShiftAVX2(x *float32, n int, shift float32, c *[expConstLen]float64, tab *[64]float64)

// expShift sets x[i] = Exp(x[i]-shift) for every i. The caller guarantees
// no x[i]-shift is NaN or above 89.
func expShift(x []float32, shift float32) {
	n4 := len(x) &^ 3
	if useAVX2 && n4 > 0 {
		expShiftAVX2(&x[0], n4, shift, &expConsts, &expTab)
	} else {
		n4 = 0
	}
	for i := n4; i < len(x); i++ {
		x[i] = Exp(x[i] - shift)
	}
}
