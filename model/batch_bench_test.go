package model

import (
	"fmt"
	"testing"
	"time"
)

// dim512 is the synthetic model of the batching benchmarks: 8 blocks of
// width 512 (about 25M block weights, 100 MB: memory-bound on one token).
var dim512 = Config{Dim: 512, HiddenDim: 1376, NLayers: 8, NHeads: 8, NKVHeads: 8, VocabSize: 512, SeqLen: 128, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}

// benchModels returns the models the batching benchmarks run on.
func benchModels(b *testing.B) []struct {
	name string
	m    *Model
} {
	out := []struct {
		name string
		m    *Model
	}{{"dim512x8", Synth(dim512, 1)}}
	if _, ok := refPath(); ok {
		m, _ := loadStories(b)
		out = append(out, struct {
			name string
			m    *Model
		}{"stories260K", m})
	}
	return out
}

// BenchmarkForwardBatch measures decoding throughput of n concurrent
// sessions, each one token per iteration at positions 32+j, through every
// block: "batch" runs them with one Batch.Forward, "loop" with n
// Model.Forward calls (the unbatched server). tok/s counts session steps.
func BenchmarkForwardBatch(b *testing.B) {
	for _, bm := range benchModels(b) {
		m, c := bm.m, bm.m.Config
		for _, n := range []int{1, 4, 16, 32} {
			states, xs, pos := make([]*State, n), make([][]float32, n), make([]int, n)
			for j := range n {
				states[j], xs[j], pos[j] = m.NewState(0, c.NLayers), make([]float32, c.Dim), 32+j
				for p := 0; p < pos[j]; p++ { // fill the cache the step attends to
					m.Embed((p+j)%c.VocabSize, xs[j])
					m.Forward(states[j], xs[j], p)
				}
			}
			reset := func() {
				for j := range n {
					m.Embed(j%c.VocabSize, xs[j])
				}
			}
			bat := m.NewBatch(0, c.NLayers, n)
			b.Run(fmt.Sprintf("%s/batch/n%d", bm.name, n), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					reset()
					bat.Forward(states, xs, pos)
				}
				reportTok(b, n, cpu0)
			})
			b.Run(fmt.Sprintf("%s/loop/n%d", bm.name, n), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					reset()
					for j := range n {
						m.Forward(states[j], xs[j], pos[j])
					}
				}
				reportTok(b, n, cpu0)
			})
		}
	}
}

// BenchmarkPrefill measures prompt prefill of 64 positions from 0 of one
// session: "seq" with Batch.ForwardSeq, "loop" with 64 Forward calls.
func BenchmarkPrefill(b *testing.B) {
	const n = 64
	for _, bm := range benchModels(b) {
		m, c := bm.m, bm.m.Config
		s := m.NewState(0, c.NLayers)
		xs := make([]float32, n*c.Dim)
		reset := func() {
			for p := range n {
				m.Embed(p%c.VocabSize, xs[p*c.Dim:(p+1)*c.Dim])
			}
		}
		bat := m.NewBatch(0, c.NLayers, n)
		b.Run(bm.name+"/seq", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				reset()
				bat.ForwardSeq(s, xs, 0)
			}
			reportTok(b, n, cpu0)
		})
		b.Run(bm.name+"/loop", func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				reset()
				for p := range n {
					m.Forward(s, xs[p*c.Dim:(p+1)*c.Dim], p)
				}
			}
			reportTok(b, n, cpu0)
		})
	}
}

// reportTok reports n tokens per iteration as tok/s of wall-clock time and
// tok/cpu-s of this process's CPU time since cpu0 (batched runs use the
// worker pool, so with spare cores tok/s exceeds tok/cpu-s; on a loaded
// machine tok/cpu-s is the steadier figure).
func reportTok(b *testing.B, n int, cpu0 time.Duration) {
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tok/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(float64(n*b.N)/cpu.Seconds(), "tok/cpu-s")
	}
}
