//go:build !amd64

package tensor

// matVec is the serial kernel for one contiguous range of rows.
func matVec(out, w, x []float32, cols int) { matVecGeneric(out, w, x, cols) }

// dotVec is Dot's kernel on this architecture.
func dotVec(a, b []float32) float32 { return dot(a, b) }
