package model

import (
	"fmt"
	"math"

	"github.com/strata-mesh/strata/tensor"
)

// RoPEFreqs fills freq (len HeadSize/2) with the rotation frequency of
// each pair of a head: tensor.RoPEFreqs with RopeTheta, then RopeScaling.
// Forward, Batch and Tape all take their frequencies from here.
//
// Linear scaling divides each frequency by Factor. Llama 3 scaling
// (transformers' _compute_llama3_parameters) works on the wavelength
// λ = 2π/f: with L = OriginalMaxPos, λ < L/HighFreqFactor keeps f,
// λ > L/LowFreqFactor gives f/Factor, and in between
// s = (L/λ − LowFreqFactor)/(HighFreqFactor − LowFreqFactor) gives
// (1−s)·f/Factor + s·f. The scaling is computed in float64 from the
// float32 base frequency and rounded once.
func (c Config) RoPEFreqs(freq []float32) {
	if len(freq) != c.HeadSize()/2 {
		panic(fmt.Sprintf("model: RoPEFreqs length %d, want %d", len(freq), c.HeadSize()/2))
	}
	tensor.RoPEFreqs(freq, c.HeadSize(), c.RopeTheta)
	r := c.RopeScaling
	switch r.Type {
	case RopeLinear:
		for p, f := range freq {
			freq[p] = float32(float64(f) / float64(r.Factor))
		}
	case RopeLlama3:
		for p, f := range freq {
			freq[p] = float32(llama3Freq(float64(f), r))
		}
	}
}

// llama3Freq is Llama 3 scaling of one frequency (see RoPEFreqs).
func llama3Freq(f float64, r RopeScaling) float64 {
	L, lo, hi, factor := float64(r.OriginalMaxPos), float64(r.LowFreqFactor), float64(r.HighFreqFactor), float64(r.Factor)
	wavelen := 2 * math.Pi / f
	switch {
	case wavelen < L/hi:
		return f
	case wavelen > L/lo:
		return f / factor
	}
	s := (L/wavelen - lo) / (hi - lo)
	return (1-s)*f/factor + s*f
}
