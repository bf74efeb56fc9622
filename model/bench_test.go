package model

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// cpuTime is this process's user+system CPU time. On a shared, loaded
// machine wall-clock tok/s understates the kernel's speed; tokens per
// CPU-second is reported alongside.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGenerate measures greedy generation on stories260K: 200 tokens
// from BOS per iteration (positions 0..199, as REFERENCE.md Case 2),
// reported as tok/s.
func BenchmarkGenerate(b *testing.B) {
	m, _ := loadStories(b)
	s := m.NewState(0, m.Config.NLayers)
	smp := NewSampler(m.Config.VocabSize, 0, 0, 1)
	logits := make([]float32, m.Config.VocabSize)
	const steps = 200 // as the run.c reference speed (-n 200)
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		tok := BOS
		for pos := range steps {
			m.Step(s, tok, pos, logits)
			tok = smp.Sample(logits)
		}
	}
	b.ReportMetric(float64(steps*b.N)/b.Elapsed().Seconds(), "tok/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(steps*b.N)/cpu.Seconds(), "tok/cpu-s")
	}
}

// BenchmarkForwardBlock measures one block at a mid-sequence position.
func BenchmarkForwardBlock(b *testing.B) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"stories260K", Config{Dim: 64, HiddenDim: 172, NLayers: 1, NHeads: 8, NKVHeads: 4, VocabSize: 512, SeqLen: 512, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
		{"dim512", Config{Dim: 512, HiddenDim: 1376, NLayers: 1, NHeads: 8, NKVHeads: 8, VocabSize: 512, SeqLen: 256, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
		{"dim2048", Config{Dim: 2048, HiddenDim: 5632, NLayers: 1, NHeads: 32, NKVHeads: 4, VocabSize: 512, SeqLen: 256, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
	}
	for _, c := range cases {
		for _, pos := range []int{0, 128} {
			b.Run(fmt.Sprintf("%s/pos%d", c.name, pos), func(b *testing.B) {
				m := Synth(c.cfg, 1)
				s := m.NewState(0, 1)
				x := make([]float32, c.cfg.Dim)
				for p := 0; p < pos; p++ {
					m.Embed(p%c.cfg.VocabSize, x)
					m.Forward(s, x, p)
				}
				m.Embed(3, x)
				b.ReportAllocs()
				for b.Loop() {
					m.Forward(s, x, pos)
				}
				flops := float64(2 * (m.ParamCount() - 2*c.cfg.VocabSize*c.cfg.Dim))
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	tk := ByteTokenizer(4096)
	text := ""
	for len(text) < 100000 {
		text += "Once upon a time, there was a little girl named Lily. She loved to play outside. "
	}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Encode(text, true, false)
	}
}
