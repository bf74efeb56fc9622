package model

import (
	"fmt"
	"math/rand/v2"
)

// Synth returns a complete model with seeded random weights, for tests and
// local test networks (nothing is downloaded). The same cfg and seed give
// bitwise the same weights on every machine: a PCG generator seeded with
// (seed, 0x5374726174612121) fills, in order, the embedding, then for each
// block AttNorm, Wq, Wk, Wv, Wo, FFNNorm, W1, W2, W3, then the final norm
// and (when not shared) the classifier; a config with QKVBias then fills
// bq, bk, bv of each block, before the final norm. Values are uniform, so only
// integer and float64 arithmetic is involved: matrices have standard
// deviation 0.02, the embedding 1, norm weights are 1 ± 0.1.
// It panics if cfg is invalid.
func Synth(cfg Config, seed int64) *Model {
	if err := cfg.Validate(); err != nil {
		panic(fmt.Sprintf("model: Synth: %v", err))
	}
	r := rand.New(rand.NewPCG(uint64(seed), 0x5374726174612121))
	// uniform on [-a, a] has standard deviation a/√3.
	const sqrt3 = 1.7320508075688772
	fill := func(n int, center, std float64) []float32 {
		a := std * sqrt3
		out := make([]float32, n)
		for i := range out {
			// Explicit conversions forbid FMA fusion (arm64 would fuse),
			// keeping the values identical on every architecture.
			u := float64(2*r.Float64()) - 1
			out[i] = float32(center + float64(u*a))
		}
		return out
	}
	d, kv, hid := cfg.Dim, cfg.KVDim(), cfg.HiddenDim
	m := &Model{Config: cfg, Head: &Head{}, Blocks: make([]*Block, cfg.NLayers)}
	m.Head.Embedding = fill(cfg.VocabSize*d, 0, 1)
	for l := range m.Blocks {
		m.Blocks[l] = &Block{
			AttNorm: fill(d, 1, 0.1/sqrt3),
			Wq:      fill(d*d, 0, 0.02),
			Wk:      fill(kv*d, 0, 0.02),
			Wv:      fill(kv*d, 0, 0.02),
			Wo:      fill(d*d, 0, 0.02),
			FFNNorm: fill(d, 1, 0.1/sqrt3),
			W1:      fill(hid*d, 0, 0.02),
			W2:      fill(d*hid, 0, 0.02),
			W3:      fill(hid*d, 0, 0.02),
		}
	}
	if cfg.QKVBias { // after all the blocks, so models without biases are unchanged
		for _, b := range m.Blocks {
			b.Bq, b.Bk, b.Bv = fill(d, 0, 0.5), fill(kv, 0, 0.5), fill(kv, 0, 0.5)
		}
	}
	m.Head.FinalNorm = fill(d, 1, 0.1/sqrt3)
	if !cfg.SharedClassifier {
		m.Head.Classifier = fill(cfg.VocabSize*d, 0, 0.02)
	}
	return m
}
