package train

import (
	"math"
	"math/rand/v2"

	"github.com/strata-mesh/strata/model"
)

// Init returns a new model of shape cfg for training from scratch, seeded:
// norms at 1, embedding and projections drawn from N(0, 0.02²), and the
// projections that write into the residual stream (wo, w2) scaled down by
// 1/√(2·layers) so the residual does not grow with depth (the GPT-2
// initialisation, Radford et al. 2019). The same seed and shape give the
// same weights on every machine.
func Init(cfg model.Config, seed uint64) *model.Model {
	r := rand.New(rand.NewPCG(seed, 0x696e6974))
	normal := func(n int, std float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(r.NormFloat64() * std)
		}
		return out
	}
	ones := func(n int) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	const std = 0.02
	resid := std / math.Sqrt(2*float64(cfg.NLayers))
	dim, hid, kv := cfg.Dim, cfg.HiddenDim, cfg.KVDim()
	m := &model.Model{Config: cfg, Head: &model.Head{Embedding: normal(cfg.VocabSize*dim, std), FinalNorm: ones(dim)}}
	if !cfg.SharedClassifier {
		m.Head.Classifier = normal(cfg.VocabSize*dim, std)
	}
	for range cfg.NLayers {
		m.Blocks = append(m.Blocks, &model.Block{
			AttNorm: ones(dim), Wq: normal(dim*dim, std), Wk: normal(kv*dim, std), Wv: normal(kv*dim, std),
			Wo: normal(dim*dim, resid), FFNNorm: ones(dim), W1: normal(hid*dim, std), W2: normal(dim*hid, resid),
			W3: normal(hid*dim, std),
		})
	}
	return m
}
