package model

import (
	"fmt"
	"testing"
)

// BenchmarkTrainStep measures one forward+backward (LossAndGrad) over a
// sequence of T = 256 positions, reported as tokens/s (and tokens per
// CPU-second): (a) dim 128, hidden 384, 4 layers, 8 heads, byte vocabulary
// 259; (b) the stories260K shape.
func BenchmarkTrainStep(b *testing.B) {
	cfgs := []struct {
		name string
		cfg  Config
	}{
		// The strata train presets "tiny" and "small".
		{"tiny_d128_l4_v259", Config{Dim: 128, HiddenDim: 384, NLayers: 4, NHeads: 8, NKVHeads: 8, VocabSize: 259, SeqLen: 256,
			SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
		{"small_d256_l6_v259", Config{Dim: 256, HiddenDim: 768, NLayers: 6, NHeads: 8, NKVHeads: 8, VocabSize: 259, SeqLen: 256,
			SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
		{"stories260K", Config{Dim: 64, HiddenDim: 172, NLayers: 5, NHeads: 8, NKVHeads: 4, VocabSize: 512, SeqLen: 512,
			SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
	}
	for _, tc := range cfgs {
		b.Run(fmt.Sprintf("%s_T256", tc.name), func(b *testing.B) {
			const T = 256
			m := Synth(tc.cfg, 1)
			tokens, targets := make([]int, T), make([]int, T)
			for i := range tokens {
				tokens[i], targets[i] = (i*7)%tc.cfg.VocabSize, (i*7+7)%tc.cfg.VocabSize
			}
			tp := m.NewTape(0, tc.cfg.NLayers, T, true)
			g := NewGrads(m, 0, tc.cfg.NLayers, true)
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				m.LossAndGrad(tp, tokens, targets, g)
			}
			b.ReportMetric(float64(T*b.N)/b.Elapsed().Seconds(), "tok/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(T*b.N)/cpu.Seconds(), "tok/cpu-s")
			}
		})
	}
}
