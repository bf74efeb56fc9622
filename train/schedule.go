package train

import (
	"fmt"
	"math"
)

// Schedule is a learning-rate schedule: linear warmup from Base/Warmup to
// Base over the first Warmup steps, then cosine decay (Loshchilov & Hutter
// 2017, SGDR, one cycle without restarts) from Base to Min at step Total,
// and Min after that. Steps count from 0.
type Schedule struct {
	Base   float32 `json:"base"`   // peak learning rate (> 0)
	Min    float32 `json:"min"`    // floor, in [0, Base]
	Warmup int     `json:"warmup"` // warmup steps, in [0, Total]
	Total  int     `json:"total"`  // the training budget in steps (> 0)
}

// Validate reports whether s is a usable schedule; a budget of zero steps
// is an error.
func (s Schedule) Validate() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case s.Total <= 0:
		return fmt.Errorf("%w: schedule: training budget of %d steps; give at least 1", ErrConfig, s.Total)
	case !finite(s.Base) || s.Base <= 0:
		return fmt.Errorf("%w: schedule: base learning rate %g must be finite and > 0", ErrConfig, s.Base)
	case !finite(s.Min) || s.Min < 0 || s.Min > s.Base:
		return fmt.Errorf("%w: schedule: minimum learning rate %g must be in [0, base %g]", ErrConfig, s.Min, s.Base)
	case s.Warmup < 0 || s.Warmup > s.Total:
		return fmt.Errorf("%w: schedule: warmup of %d steps must be in [0, total %d]", ErrConfig, s.Warmup, s.Total)
	}
	return nil
}

// LR returns the learning rate of step (0-based):
//
//	step < Warmup:          Base·(step+1)/Warmup
//	Warmup ≤ step < Total:  Min + ½(Base−Min)(1 + cos(π·(step−Warmup)/(Total−Warmup)))
//	step ≥ Total:           Min
//
// so the first step already moves, the last warmup step and the first
// decay step use Base, and the rate reaches Min at Total. Computed in
// float64, rounded once to float32. A negative step is treated as 0.
func (s Schedule) LR(step int) float32 {
	step = max(step, 0)
	base, lo := float64(s.Base), float64(s.Min)
	switch {
	case step < s.Warmup:
		return float32(base * float64(step+1) / float64(s.Warmup))
	case step >= s.Total:
		return s.Min
	}
	ratio := float64(step-s.Warmup) / float64(s.Total-s.Warmup)
	return float32(lo + 0.5*(base-lo)*(1+math.Cos(math.Pi*ratio)))
}
