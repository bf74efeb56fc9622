package model

import (
	"errors"
	"hash/fnv"
	"math"
	"slices"
	"testing"
)

func TestBlockTensorsRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		cfg := tinyConfig(shared)
		m := Synth(cfg, 3)
		for l, b := range m.Blocks {
			ts := b.Tensors(cfg)
			names := make([]string, len(ts))
			for i, x := range ts {
				names[i] = x.Name
			}
			if want := []string{"attn_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3"}; !slices.Equal(names, want) {
				t.Fatalf("block tensor names %v, want %v", names, want)
			}
			slices.Reverse(ts) // any order is accepted
			got, err := BlockFromTensors(cfg, ts)
			if err != nil {
				t.Fatalf("block %d: %v", l, err)
			}
			m2 := *m
			m2.Blocks = slices.Clone(m.Blocks)
			m2.Blocks[l] = got
			equalModels(t, m, &m2)
			if cap(got.Wq) != len(got.Wq) {
				t.Errorf("BlockFromTensors does not clip capacity")
			}
		}
		hs := m.Head.Tensors(cfg)
		if shared != (len(hs) == 2) {
			t.Fatalf("shared=%v: head has %d tensors", shared, len(hs))
		}
		h, err := HeadFromTensors(cfg, hs)
		if err != nil {
			t.Fatal(err)
		}
		m2 := *m
		m2.Head = h
		equalModels(t, m, &m2)
	}
}

func TestFromTensorsErrors(t *testing.T) {
	cfg := tinyConfig(true)
	b := Synth(cfg, 1).Blocks[0]
	h := Synth(cfg, 1).Head
	mod := func(f func(ts []Tensor) []Tensor) []Tensor {
		ts := b.Tensors(cfg)
		for i := range ts {
			ts[i].Shape = slices.Clone(ts[i].Shape)
		}
		return f(ts)
	}
	nan := slices.Clone(b.Wq)
	nan[3] = float32(math.Inf(1))
	cases := map[string][]Tensor{
		"missing":    mod(func(ts []Tensor) []Tensor { return ts[1:] }),
		"extra":      mod(func(ts []Tensor) []Tensor { return append(ts, Tensor{"bias", []int{1}, []float32{0}}) }),
		"duplicate":  mod(func(ts []Tensor) []Tensor { ts[2] = ts[1]; return ts }),
		"unknown":    mod(func(ts []Tensor) []Tensor { ts[0].Name = "attn_nrm"; return ts }),
		"shape":      mod(func(ts []Tensor) []Tensor { ts[1].Shape = []int{cfg.Dim * cfg.Dim}; return ts }),
		"transposed": mod(func(ts []Tensor) []Tensor { ts[6].Shape = []int{cfg.Dim, cfg.HiddenDim}; return ts }),
		"short data": mod(func(ts []Tensor) []Tensor { ts[1].Data = ts[1].Data[:5]; return ts }),
		"non-finite": mod(func(ts []Tensor) []Tensor { ts[1].Data = nan; return ts }),
		"nil":        nil,
	}
	for name, ts := range cases {
		if _, err := BlockFromTensors(cfg, ts); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	if _, err := BlockFromTensors(Config{}, b.Tensors(cfg)); !errors.Is(err, ErrConfig) {
		t.Errorf("invalid config: err = %v, want ErrConfig", err)
	}
	// A classifier is an error for a shared head; its absence is an error otherwise.
	withCls := append(h.Tensors(cfg), Tensor{"classifier", []int{cfg.VocabSize, cfg.Dim}, h.Embedding})
	if _, err := HeadFromTensors(cfg, withCls); !errors.Is(err, ErrFormat) {
		t.Errorf("classifier on shared head: err = %v, want ErrFormat", err)
	}
	unshared := cfg
	unshared.SharedClassifier = false
	if _, err := HeadFromTensors(unshared, h.Tensors(cfg)); !errors.Is(err, ErrFormat) {
		t.Errorf("missing classifier: err = %v, want ErrFormat", err)
	}
}

// synthDigest hashes every weight of Synth(cfg, seed) in Tensors order.
func synthDigest(m *Model) uint64 {
	h := fnv.New64a()
	var buf [4]byte
	add := func(ts []Tensor) {
		for _, x := range ts {
			for _, v := range x.Data {
				u := math.Float32bits(v)
				buf[0], buf[1], buf[2], buf[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
				h.Write(buf[:])
			}
		}
	}
	add(m.Head.Tensors(m.Config))
	for _, b := range m.Blocks {
		add(b.Tensors(m.Config))
	}
	return h.Sum64()
}

func TestSynthDeterministic(t *testing.T) {
	cfg := Config{Dim: 64, HiddenDim: 172, NLayers: 5, NHeads: 8, NKVHeads: 4, VocabSize: 512, SeqLen: 512,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	a, b := Synth(cfg, 42), Synth(cfg, 42)
	if synthDigest(a) != synthDigest(b) {
		t.Fatal("Synth with the same seed differs")
	}
	if synthDigest(a) == synthDigest(Synth(cfg, 43)) {
		t.Fatal("Synth ignores the seed")
	}
	// Golden digest: the weights must be the same on every machine and Go
	// version, or peers of a test network would disagree.
	const golden = 0x4c387e6abbcce836
	if got := synthDigest(a); got != golden {
		t.Errorf("Synth(stories260K config, 42) digest = %#x, want %#x", got, uint64(golden))
	}
	var sum, sq float64
	for _, v := range a.Blocks[0].Wq {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(a.Blocks[0].Wq))
	if mean, std := sum/n, math.Sqrt(sq/n); math.Abs(mean) > 0.002 || math.Abs(std-0.02) > 0.002 {
		t.Errorf("Wq mean %v std %v, want about 0 and 0.02", mean, std)
	}
	for _, v := range a.Head.FinalNorm {
		if v < 0.9 || v > 1.1 {
			t.Fatalf("final norm weight %v outside [0.9, 1.1]", v)
		}
	}
	// A synthetic model runs and its greedy output is deterministic.
	s := a.NewState(0, cfg.NLayers)
	logits := make([]float32, cfg.VocabSize)
	a.Step(s, BOS, 0, logits)
	for _, v := range logits {
		if math.IsNaN(float64(v)) {
			t.Fatal("NaN logit from a synthetic model")
		}
	}
}

func TestCheckSpan(t *testing.T) {
	m := Synth(tinyConfig(true), 1)
	for _, sp := range [][2]int{{0, 2}, {0, 1}, {1, 2}} {
		if err := m.CheckSpan(sp[0], sp[1]); err != nil {
			t.Errorf("CheckSpan%v: %v", sp, err)
		}
	}
	for _, sp := range [][2]int{{-1, 1}, {0, 3}, {1, 1}, {2, 1}} {
		if err := m.CheckSpan(sp[0], sp[1]); !errors.Is(err, ErrSpan) {
			t.Errorf("CheckSpan%v = %v, want ErrSpan", sp, err)
		}
	}
	m.Blocks[1] = nil
	if err := m.CheckSpan(0, 2); !errors.Is(err, ErrSpan) {
		t.Errorf("CheckSpan over an unloaded block = %v, want ErrSpan", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("NewState over an unloaded block did not panic")
			}
		}()
		m.NewState(1, 2)
	}()
	if got, want := m.StateBytes(0, 2), int64(4*(2*2*4*4+5*8+2*12+4+3*2/2)); got != want {
		t.Errorf("StateBytes(0,2) = %d, want %d", got, want)
	}
	s := m.NewState(0, 1)
	if s.Lo() != 0 || s.Hi() != 1 {
		t.Errorf("State span [%d,%d), want [0,1)", s.Lo(), s.Hi())
	}
}

func TestResetReplay(t *testing.T) {
	m := Synth(tinyConfig(false), 5)
	s := m.NewState(0, 2)
	run := func() []float32 {
		logits := make([]float32, m.Config.VocabSize)
		for pos, tok := range []int{1, 4, 3, 5} {
			m.Step(s, tok, pos, logits)
		}
		return logits
	}
	a := run()
	s.Reset()
	b := run()
	if !slices.Equal(a, b) {
		t.Errorf("replay after Reset: %v, want %v", b, a)
	}
}
