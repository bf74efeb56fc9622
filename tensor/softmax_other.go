//go:build !amd64

package tensor

// expShift sets x[i] = Exp(x[i]-shift) for every i.
func expShift(x []float32, shift float32) {
	for i := range x {
		x[i] = Exp(x[i] - shift)
	}
}
