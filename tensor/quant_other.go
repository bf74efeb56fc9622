//go:build !amd64

package tensor

// qRows is qRowsGeneric on this architecture.
func qRows(out []float32, f QFormat, data []byte, x []float32, rb, nb int) {
	qRowsGeneric(out, f, data, x, rb, nb)
}
