package train

import (
	"errors"
	"math"
	"testing"
)

func TestScheduleKeyPoints(t *testing.T) {
	s := Schedule{Base: 1e-3, Min: 1e-4, Warmup: 10, Total: 110}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step int
		want float64
	}{
		{-5, 1e-4},   // treated as step 0: Base·1/10
		{0, 1e-4},    // first warmup step: Base·1/10
		{4, 5e-4},    // Base·5/10
		{9, 1e-3},    // last warmup step reaches Base
		{10, 1e-3},   // decay starts at Base: cos(0) = 1
		{60, 5.5e-4}, // halfway: Min + (Base−Min)/2, cos(π/2) = 0
		{35, 1e-4 + 0.45e-3*(1+math.Cos(math.Pi/4))}, // a quarter of the way
		{110, 1e-4}, // end of budget: Min
		{1000, 1e-4},
	} {
		if got := s.LR(tc.step); math.Abs(float64(got)-tc.want) > 1e-7*tc.want+1e-12 {
			t.Errorf("LR(%d) = %.9g, want %.9g", tc.step, got, tc.want)
		}
	}
	// Monotone: non-decreasing through warmup, non-increasing after.
	for step := 1; step < 120; step++ {
		a, b := s.LR(step-1), s.LR(step)
		if step < 10 && b < a || step > 10 && b > a {
			t.Errorf("LR(%d) = %g after LR(%d) = %g breaks monotonicity", step, b, step-1, a)
		}
	}
	// No warmup: step 0 is Base.
	if got := (Schedule{Base: 2, Total: 4}).LR(0); got != 2 {
		t.Errorf("no warmup: LR(0) = %g, want 2", got)
	}
	// Warmup of the whole budget: only warmup, then Min.
	w := Schedule{Base: 1, Min: 0.5, Warmup: 4, Total: 4}
	for step, want := range []float32{0.25, 0.5, 0.75, 1, 0.5} {
		if got := w.LR(step); got != want {
			t.Errorf("warmup == total: LR(%d) = %g, want %g", step, got, want)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	for _, s := range []Schedule{
		{Base: 1, Total: 0},
		{Base: 1, Total: -3},
		{Base: 0, Total: 10},
		{Base: float32(math.NaN()), Total: 10},
		{Base: 1, Min: 2, Total: 10},
		{Base: 1, Min: -1, Total: 10},
		{Base: 1, Warmup: 11, Total: 10},
		{Base: 1, Warmup: -1, Total: 10},
	} {
		if err := s.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", s, err)
		}
	}
}
