package model

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/strata-mesh/strata/tensor"
)

// quantCfg has stories260K's shapes: hidden 172 is not a multiple of the
// 32-value block, so w2's rows end in a partial block.
var quantCfg = Config{Dim: 64, HiddenDim: 172, NLayers: 3, NHeads: 8, NKVHeads: 4, VocabSize: 300,
	SeqLen: 32, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}

func quantized(t testing.TB, m *Model, f tensor.QFormat) *Model {
	t.Helper()
	q, err := m.Quantize(f)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestQuantizedBatchBitwise checks the invariants of the package doc for
// quantized blocks: ForwardSeq and Batch.Forward give bitwise what Forward
// gives, and a split into spans gives what the whole gives.
func TestQuantizedBatchBitwise(t *testing.T) {
	for _, f := range []tensor.QFormat{tensor.Q8_0, tensor.Q4_0} {
		t.Run(f.String(), func(t *testing.T) {
			m := quantized(t, Synth(quantCfg, 7), f)
			c := m.Config
			const n = 6
			toks := []int{1, 200, 17, 5, 299, 42}
			// One position at a time, whole model.
			s := m.NewState(0, c.NLayers)
			want := make([]float32, n*c.Dim)
			for p, tok := range toks {
				x := want[p*c.Dim : (p+1)*c.Dim]
				m.Embed(tok, x)
				m.Forward(s, x, p)
			}
			// All positions at once, split into spans [0,1) and [1,3).
			got := make([]float32, n*c.Dim)
			for p, tok := range toks {
				m.Embed(tok, got[p*c.Dim:(p+1)*c.Dim])
			}
			m.ForwardSeq(m.NewState(0, 1), got, 0, n)
			m.ForwardSeq(m.NewState(1, 3), got, 0, n)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("value %d: ForwardSeq over spans %v, Forward %v", i, got[i], want[i])
				}
			}
			// Two sessions in one Batch.Forward step.
			b := m.NewBatch(0, c.NLayers, 2)
			s1, s2 := m.NewState(0, c.NLayers), m.NewState(0, c.NLayers)
			for p := range n - 1 {
				x1, x2 := make([]float32, c.Dim), make([]float32, c.Dim)
				m.Embed(toks[p], x1)
				m.Embed(toks[p+1], x2)
				b.Forward([]*State{s1, s2}, [][]float32{x1, x2}, []int{p, p})
				if p == 0 {
					continue
				}
				if !slices.Equal(x1, want[p*c.Dim:(p+1)*c.Dim]) {
					// x1 follows toks[0..p], as want does.
					t.Fatalf("position %d: Batch.Forward differs from Forward", p)
				}
			}
		})
	}
}

// TestQuantizedCloseToFloat compares logits of the quantized models with
// the float32 model's on a random-weight model.
func TestQuantizedCloseToFloat(t *testing.T) {
	m := Synth(quantCfg, 3)
	c := m.Config
	for _, tc := range []struct {
		f   tensor.QFormat
		tol float64 // max |Δlogit| relative to the logits' spread
	}{{tensor.Q8_0, 0.01}, {tensor.Q4_0, 0.15}} {
		q := quantized(t, m, tc.f)
		sf, sq := m.NewState(0, c.NLayers), q.NewState(0, c.NLayers)
		lf, lq := make([]float32, c.VocabSize), make([]float32, c.VocabSize)
		var worst float64
		for p, tok := range []int{1, 80, 90, 100} {
			m.Step(sf, tok, p, lf)
			q.Step(sq, tok, p, lq)
			spread := float64(slices.Max(lf) - slices.Min(lf))
			for i := range lf {
				worst = max(worst, math.Abs(float64(lf[i]-lq[i]))/spread)
			}
		}
		t.Logf("%s: max |Δlogit| / spread = %.4f", tc.f, worst)
		if worst > tc.tol {
			t.Errorf("%s: max |Δlogit| / spread = %.4f, want ≤ %g", tc.f, worst, tc.tol)
		}
	}
}

func TestQuantTensorsRoundTrip(t *testing.T) {
	m := quantized(t, Synth(quantCfg, 1), tensor.Q4_0)
	b := m.Blocks[1]
	norms, mats := b.QuantTensors(m.Config)
	slices.Reverse(mats)
	got, err := BlockFromQuantTensors(m.Config, norms, mats)
	if err != nil {
		t.Fatal(err)
	}
	if got.Format() != tensor.Q4_0 || !slices.Equal(got.Quant.W2.Data, b.Quant.W2.Data) || !slices.Equal(got.AttNorm, b.AttNorm) {
		t.Fatal("round trip changed the block")
	}
	if n, m := b.Bytes(), int64(4*2*64+tensor.Q4_0.RowBytes(64)*(2*64+2*32+2*172)+tensor.Q4_0.RowBytes(172)*64); n != m {
		t.Errorf("Bytes() = %d, want %d", n, m)
	}

	other := quantized(t, Synth(quantCfg, 1), tensor.Q8_0).Blocks[1].Quant
	bad := func(f func(ms []QTensor) []QTensor) []QTensor {
		return f(slices.Clone(mats))
	}
	short := *mats[0].Matrix
	short.Data = short.Data[:len(short.Data)-1]
	wide := *mats[0].Matrix
	wide.Cols, wide.Rows = wide.Rows, wide.Cols
	for name, ms := range map[string][]QTensor{
		"missing":   bad(func(ms []QTensor) []QTensor { return ms[1:] }),
		"twice":     bad(func(ms []QTensor) []QTensor { ms[1] = ms[0]; return ms }),
		"unknown":   bad(func(ms []QTensor) []QTensor { ms[0].Name = "wx"; return ms }),
		"norm name": bad(func(ms []QTensor) []QTensor { ms[0].Name = TensorAttNorm; return ms }),
		"mixed":     bad(func(ms []QTensor) []QTensor { ms[0].Matrix = other.W3; return ms }),
		"short":     bad(func(ms []QTensor) []QTensor { ms[0].Matrix = &short; return ms }),
		"shape":     bad(func(ms []QTensor) []QTensor { ms[0].Matrix = &wide; return ms }),
		"nil":       bad(func(ms []QTensor) []QTensor { ms[0].Matrix = nil; return ms }),
	} {
		if _, err := BlockFromQuantTensors(m.Config, norms, ms); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

func TestTrainingRefusesQuantized(t *testing.T) {
	m := quantized(t, Synth(quantCfg, 1), tensor.Q8_0)
	if err := m.CheckTrainable(0, 3); !errors.Is(err, ErrQuantized) {
		t.Fatalf("CheckTrainable: got %v, want ErrQuantized", err)
	}
	defer func() {
		if err, _ := recover().(error); !errors.Is(err, ErrQuantized) {
			t.Fatalf("NewTape panicked with %v, want ErrQuantized", err)
		}
	}()
	m.NewTape(0, 3, 8, true)
}

// heldOut is a short story in the style of TinyStories, written for
// these tests (not from the training data).
const heldOut = "Once upon a time, there was a little fox named Pip. Pip lived near a big river. " +
	"Every day he went to the water to look at the fish. One day, a duck came to the river. " +
	"\"Can I play with you?\" asked the duck. Pip was happy. They played by the river all day. " +
	"When the sun went down, Pip said, \"See you tomorrow, friend!\" The duck smiled and flew home."

// stepLoss is the mean cross-entropy (nats per token) of m predicting
// each token of ids from the ones before it, through Step.
func stepLoss(m *Model, ids []int) float64 {
	s := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	var sum float64
	for p := range len(ids) - 1 {
		m.Step(s, ids[p], p, logits)
		mx := float64(slices.Max(logits))
		var z float64
		for _, l := range logits {
			z += math.Exp(float64(l) - mx)
		}
		sum += mx + math.Log(z) - float64(logits[ids[p+1]])
	}
	return sum / float64(len(ids)-1)
}

// TestStories260KQuantized measures what quantizing stories260K costs:
// greedy agreement with float32 over REFERENCE.md Case 2 (empty prompt,
// temperature 0, 200 steps) and the held-out loss.
func TestStories260KQuantized(t *testing.T) {
	m, tok := loadStories(t)
	ref := loadReference(t)
	ids := tok.Encode(heldOut, true, false)
	base := stepLoss(m, ids)
	t.Logf("float32: held-out loss %.4f nats/token over %d tokens, %d bytes/block", base, len(ids)-1, m.Blocks[0].Bytes())
	for _, tc := range []struct {
		f        tensor.QFormat
		minAgree int // tokens of Case 2 that must match before the first difference
	}{{tensor.Q8_0, 100}, {tensor.Q4_0, 0}} {
		q := quantized(t, m, tc.f)
		got, _ := generate(q, tok, NewSampler(q.Config.VocabSize, 0, 0.9, 1), "", 200)
		prefix, same := 0, 0
		for i := range min(len(got), len(ref.case2IDs)) {
			if got[i] == ref.case2IDs[i] {
				same++
				if prefix == i {
					prefix++
				}
			}
		}
		loss := stepLoss(q, ids)
		t.Logf("%s: Case 2 first %d of %d tokens identical (%d positions equal), held-out loss %.4f (%+.4f), %d bytes/block",
			tc.f, prefix, len(ref.case2IDs), same, loss, loss-base, q.Blocks[0].Bytes())
		if prefix < tc.minAgree {
			t.Errorf("%s: greedy output agrees with float32 for %d tokens, want ≥ %d", tc.f, prefix, tc.minAgree)
		}
	}
}

// BenchmarkGenerateQuantized is BenchmarkGenerate for the quantized
// formats of stories260K.
func BenchmarkGenerateQuantized(b *testing.B) {
	m, _ := loadStories(b)
	for _, f := range []tensor.QFormat{0, tensor.Q8_0, tensor.Q4_0} {
		b.Run(f.String(), func(b *testing.B) {
			q := m
			if f != 0 {
				q = quantized(b, m, f)
			}
			s := q.NewState(0, q.Config.NLayers)
			smp := NewSampler(q.Config.VocabSize, 0, 0, 1)
			logits := make([]float32, q.Config.VocabSize)
			const steps = 200
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				tok := BOS
				for pos := range steps {
					q.Step(s, tok, pos, logits)
					tok = smp.Sample(logits)
				}
			}
			b.ReportMetric(float64(steps*b.N)/b.Elapsed().Seconds(), "tok/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(steps*b.N)/cpu.Seconds(), "tok/cpu-s")
			}
			b.ReportMetric(float64(q.Blocks[0].Bytes()), "B/block")
		})
	}
}

// BenchmarkLlama7BBlocks runs one token through two blocks of Llama-2-7B's
// shape (dim 4096, hidden 11008, 32 heads; the shape of strata synth
// --preset llama7b) at position 64, in float32 and quantized: decoding is
// bound by reading the weights, so bytes/s here is to be compared with
// tensor's BenchmarkMemoryBandwidth. The head is left out (a small vocab).
func BenchmarkLlama7BBlocks(b *testing.B) {
	if testing.Short() {
		b.Skip("needs about 2.5 GB of memory")
	}
	cfg := Config{Dim: 4096, HiddenDim: 11008, NLayers: 2, NHeads: 32, NKVHeads: 32, VocabSize: 256, SeqLen: 128,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	m := Synth(cfg, 1)
	for _, f := range []tensor.QFormat{0, tensor.Q8_0, tensor.Q4_0} {
		b.Run(f.String(), func(b *testing.B) {
			q := m
			if f != 0 {
				q = quantized(b, m, f)
			}
			s := q.NewState(0, cfg.NLayers)
			x := make([]float32, cfg.Dim)
			const pos = 64
			for p := range pos {
				q.Embed(p, x)
				q.Forward(s, x, p)
			}
			var bytes int64
			for _, blk := range q.Blocks {
				bytes += blk.Bytes()
			}
			b.SetBytes(bytes)
			cpu0 := cpuTime()
			for b.Loop() {
				q.Embed(3, x)
				q.Forward(s, x, pos)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
			if cpu := cpuTime() - cpu0; cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "tok/cpu-s")
			}
			b.ReportMetric(float64(bytes/int64(cfg.NLayers))/(1<<20), "MiB/block")
		})
	}
}

func ExampleModel_Quantize() {
	m := Synth(quantCfg, 1)
	q, err := m.Quantize(tensor.Q8_0)
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Blocks[0].Format(), m.Blocks[0].Bytes(), q.Blocks[0].Bytes())
	// Output: q8_0 181760 50016
}
