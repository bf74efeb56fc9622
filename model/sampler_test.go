package model

import (
	"math"
	"slices"
	"testing"
)

// TestXorshiftStar checks run.c's random_u32 against values computed by
// hand from its definition (xorshift 12/25/27, multiplier 0x2545F4914F6CDD1D).
func TestXorshiftStar(t *testing.T) {
	s := NewSampler(4, 1, 0, 1)
	state := uint64(1)
	for i := range 5 {
		state ^= state >> 12
		state ^= state << 25
		state ^= state >> 27
		want := uint32((state * 0x2545F4914F6CDD1D) >> 32)
		if got := s.randomU32(); got != want {
			t.Fatalf("draw %d = %#x, want %#x", i, got, want)
		}
	}
	// After one xorshift step from 1 the state is 1 ^ 1<<25 = 0x2000001.
	s = NewSampler(4, 1, 0, 1)
	s.randomU32()
	if s.rng != 0x2000001 {
		t.Errorf("state after one step = %#x, want 0x2000001", s.rng)
	}
	for range 1000 {
		if f := s.randomF32(); f < 0 || f >= 1 {
			t.Fatalf("random_f32 = %v outside [0,1)", f)
		}
	}
}

func TestSampleArgmax(t *testing.T) {
	s := NewSampler(5, 0, 0.9, 7)
	if got := s.Sample([]float32{1, 5, 2, 5, 0}); got != 1 {
		t.Errorf("temperature 0 sample = %d, want first max 1", got)
	}
}

// TestSampleDistribution: multinomial draws follow softmax(logits/T), and
// top-p never draws outside the nucleus.
func TestSampleDistribution(t *testing.T) {
	logits := []float32{2, 1, 0, -1, 0.5}
	probs := slices.Clone(logits)
	for i := range probs {
		probs[i] /= 0.8
	}
	var z float64
	for _, v := range probs {
		z += math.Exp(float64(v))
	}
	const draws = 200000
	for _, topP := range []float32{0, 1} { // both mean plain multinomial
		s := NewSampler(len(logits), 0.8, topP, 12345)
		counts := make([]int, len(logits))
		buf := make([]float32, len(logits))
		for range draws {
			copy(buf, logits)
			counts[s.Sample(buf)]++
		}
		for i, c := range counts {
			p := math.Exp(float64(probs[i])) / z
			sd := math.Sqrt(p * (1 - p) / draws)
			if got := float64(c) / draws; math.Abs(got-p) > 5*sd {
				t.Errorf("topP=%v token %d frequency %.4f, want %.4f ± %.4f", topP, i, got, p, 5*sd)
			}
		}
	}
	// Nucleus at 0.6: sorted probs of softmax(logits) are about
	// 0.48 (0), 0.18 (1), 0.11 (4), ... — the set is {0, 1}.
	s := NewSampler(len(logits), 1, 0.6, 99)
	buf := make([]float32, len(logits))
	seen := map[int]int{}
	for range 20000 {
		copy(buf, logits)
		seen[s.Sample(buf)]++
	}
	for tok := range seen {
		if tok != 0 && tok != 1 {
			t.Errorf("top-p 0.6 drew token %d outside the nucleus {0, 1}", tok)
		}
	}
	if seen[0] == 0 || seen[1] == 0 {
		t.Errorf("top-p 0.6 draws %v, want both nucleus tokens", seen)
	}
}

func TestSampleDeterministic(t *testing.T) {
	a, b := NewSampler(8, 1, 0.9, 5), NewSampler(8, 1, 0.9, 5)
	for i := range 100 {
		la := []float32{1, 2, 3, 4, 4, 3, 2, float32(i % 3)}
		lb := slices.Clone(la)
		if x, y := a.Sample(la), b.Sample(lb); x != y {
			t.Fatalf("draw %d: %d vs %d with the same seed", i, x, y)
		}
	}
}

func TestSampleDegenerate(t *testing.T) {
	nan := float32(math.NaN())
	for _, topP := range []float32{0, 0.9} {
		s := NewSampler(3, 1, topP, 1)
		if got := s.Sample([]float32{nan, nan, nan}); got < 0 || got > 2 {
			t.Errorf("NaN logits: token %d", got)
		}
	}
	if got := NewSampler(1, 1, 0.9, 1).Sample([]float32{3}); got != 0 {
		t.Errorf("vocabulary of one: token %d, want 0", got)
	}
}
