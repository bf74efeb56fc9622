package node

import (
	"time"

	"github.com/shirou/gopsutil/v4/mem"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// Capacity is what a node measures of itself at start, for its adverts.
type Capacity struct {
	// GFLOPS is the measured speed of the matrix-vector kernel that
	// dominates inference, on one core.
	GFLOPS float64
	// BlockMillis is the measured time to run one of this node's blocks
	// for one token, in milliseconds (0 when it serves none).
	BlockMillis float64
}

// Measure times the real kernels for a short while. It reads the wall
// clock, which is why it lives in node and not in the pure packages.
func Measure(m *model.Model, lo, hi int) Capacity {
	var c Capacity
	const rows, cols = 512, 512
	w := make([]float32, rows*cols)
	x := make([]float32, cols)
	out := make([]float32, rows)
	for i := range w {
		w[i] = float32(i%7) * 0.01
	}
	iters := 0
	start := time.Now()
	for time.Since(start) < 50*time.Millisecond {
		for range 16 {
			tensor.MatVec(out, w, x, rows, cols)
		}
		iters += 16
	}
	c.GFLOPS = float64(iters) * 2 * rows * cols / time.Since(start).Seconds() / 1e9

	if m != nil && hi > lo {
		st := m.NewState(lo, lo+1)
		act := make([]float32, m.Config.Dim)
		positions := min(32, m.Config.SeqLen)
		start = time.Now()
		for pos := range positions {
			m.Forward(st, act, pos)
		}
		c.BlockMillis = float64(time.Since(start).Microseconds()) / 1e3 / float64(positions)
	}
	return c
}

// FreeMemory is the memory available to new work, in bytes, or 0 if the
// system does not say.
func FreeMemory() uint64 {
	v, err := mem.VirtualMemory()
	if err != nil {
		return 0
	}
	return v.Available
}
