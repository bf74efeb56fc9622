package tensor

import "golang.org/x/sys/cpu"

// useQAVX2 selects the assembly kernels of MatVecQ and MatMulQ. Besides
// AVX2 they convert the binary16 scales with F16C, which x/sys/cpu does
// not report; every x86 processor with FMA (Intel Haswell, AMD Piledriver
// and later) has F16C, so FMA stands in for it (the kernels do not use
// FMA itself).
var useQAVX2 = useAVX2 && cpu.X86.HasFMA

// qRowsQ8AVX2 and qRowsQ4AVX2 are qRowsGeneric for one format: out[r] for
// r < rows, rows rb bytes apart from data, nb full blocks each.
//
//go:noescape
func qRowsQ8AVX2(out *float32, data *byte, x *float32, rows, rb, nb int)

//go:noescape
func qRowsQ8AVX512(out *float32, data *byte, x *float32, rows, rb, nb int)

//go:noescape
func qRowsQ4AVX2(out *float32, data *byte, x *float32, rows, rb, nb int)

// qRows sets out[r] to the reduced lane sums of the first nb blocks of row
// r of data (rows rb bytes apart), in MatVecQ's order. nb must be at least 1.
func qRows(out []float32, f QFormat, data []byte, x []float32, rb, nb int) {
	if !useQAVX2 || len(out) == 0 {
		qRowsGeneric(out, f, data, x, rb, nb)
		return
	}
	// Bounds the assembly relies on.
	_ = data[(len(out)-1)*rb+nb*f.BlockBytes()-1]
	_ = x[nb*QBlockLen-1]
	switch f {
	case Q8_0:
		if useAVX512 {
			qRowsQ8AVX512(&out[0], &data[0], &x[0], len(out), rb, nb)
			return
		}
		qRowsQ8AVX2(&out[0], &data[0], &x[0], len(out), rb, nb)
	case Q4_0:
		qRowsQ4AVX2(&out[0], &data[0], &x[0], len(out), rb, nb)
	default:
		panic("tensor: unknown quantized format " + f.String())
	}
}
