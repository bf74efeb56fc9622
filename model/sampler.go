package model

import (
	"cmp"
	"slices"

	"github.com/strata-mesh/strata/tensor"
)

// Sampler picks the next token from logits exactly as llama2.c's run.c
// sample(): temperature 0 is argmax (first maximum); otherwise the logits
// are divided by the temperature and softmaxed, a coin is drawn from run.c's
// xorshift* generator, and the token is drawn either from the nucleus
// (0 < topP < 1) or from the whole distribution. For the same seed, the
// same logits give the same tokens as run.c.
//
// A Sampler is not safe for concurrent use; give each session its own.
type Sampler struct {
	vocab       int
	temperature float32
	topP        float32
	rng         uint64
	probIndex   []probIndex
}

type probIndex struct {
	prob  float32
	index int
}

// NewSampler returns a Sampler for vocab logits. seed seeds run.c's
// xorshift* state (run.c replaces a seed of 0 with the time; here 0 is used
// as given, which makes the generator emit only zeros — pass a non-zero
// seed).
func NewSampler(vocab int, temperature, topP float32, seed uint64) *Sampler {
	return &Sampler{vocab: vocab, temperature: temperature, topP: topP, rng: seed,
		probIndex: make([]probIndex, vocab)}
}

// randomU32 is run.c's random_u32: xorshift* on 64-bit state.
func (s *Sampler) randomU32() uint32 {
	s.rng ^= s.rng >> 12
	s.rng ^= s.rng << 25
	s.rng ^= s.rng >> 27
	return uint32((s.rng * 0x2545F4914F6CDD1D) >> 32)
}

// randomF32 is run.c's random_f32, a float32 in [0, 1).
func (s *Sampler) randomF32() float32 {
	return float32(s.randomU32()>>8) / 16777216.0
}

// Sample returns the next token for logits[:vocab]. It may modify logits
// in place and does not allocate. It panics if len(logits) < vocab.
func (s *Sampler) Sample(logits []float32) int {
	logits = logits[:s.vocab]
	if s.temperature == 0 {
		return tensor.Argmax(logits)
	}
	for i := range logits {
		logits[i] /= s.temperature
	}
	tensor.Softmax(logits)
	coin := s.randomF32()
	if s.topP <= 0 || s.topP >= 1 {
		return sampleMult(logits, coin)
	}
	return s.sampleTopP(logits, coin)
}

// sampleMult is run.c's sample_mult: the first index whose running CDF
// exceeds coin.
func sampleMult(probs []float32, coin float32) int {
	var cdf float32
	for i, p := range probs {
		cdf += p
		if coin < cdf {
			return i
		}
	}
	return len(probs) - 1
}

// sampleTopP is run.c's sample_topp: keep tokens with probability at least
// (1−topP)/(n−1), sort them by descending probability, truncate where the
// cumulative probability first exceeds topP, and sample within that set.
// Ties keep index order (a stable sort; run.c's qsort leaves it to libc).
func (s *Sampler) sampleTopP(probs []float32, coin float32) int {
	n := len(probs)
	cutoff := (1 - s.topP) / float32(n-1)
	pi := s.probIndex[:0]
	for i, p := range probs {
		if p >= cutoff {
			pi = append(pi, probIndex{prob: p, index: i})
		}
	}
	if len(pi) == 0 { // only with NaN probabilities or a vocabulary of one
		return sampleMult(probs, coin)
	}
	slices.SortStableFunc(pi, func(a, b probIndex) int { return cmp.Compare(b.prob, a.prob) })
	var cum float32
	last := len(pi) - 1
	for i, p := range pi {
		cum += p.prob
		if cum > s.topP {
			last = i
			break
		}
	}
	r := coin * cum
	var cdf float32
	for i := 0; i <= last; i++ {
		cdf += pi[i].prob
		if r < cdf {
			return pi[i].index
		}
	}
	return pi[last].index
}
