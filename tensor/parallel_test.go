package tensor

import (
	"sync/atomic"
	"testing"
)

func TestParallelFor(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		hits := make([]atomic.Int32, n)
		ParallelFor(n, func(i int) { hits[i].Add(1) })
		for i := range hits {
			if h := hits[i].Load(); h != 1 {
				t.Fatalf("n=%d: f(%d) called %d times, want 1", n, i, h)
			}
		}
	}
}

func TestParallelForNoAlloc(t *testing.T) {
	var sum atomic.Int64
	f := func(i int) { sum.Add(int64(i)) }
	ParallelFor(8, f)
	if a := testing.AllocsPerRun(20, func() { ParallelFor(8, f) }); a != 0 {
		t.Errorf("ParallelFor allocates %v times per call, want 0", a)
	}
}
