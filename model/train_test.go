package model

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestTrainLossMatchesInference: the training forward computes the same
// function as serving. The loss from Tape equals the cross-entropy of Step's
// logits (float64 log-softmax) within 1e-5 on stories260K over 32 positions.
func TestTrainLossMatchesInference(t *testing.T) {
	m, tok := loadStories(t)
	c := m.Config
	tokens := tok.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.", true, false)
	if len(tokens) < 33 {
		t.Fatalf("encoded %d tokens, want at least 33", len(tokens))
	}
	const T = 32
	inputs, targets := tokens[:T], tokens[1:T+1]
	s := m.NewState(0, c.NLayers)
	logits := make([]float32, c.VocabSize)
	var want float64
	for p, tk := range inputs {
		m.Step(s, tk, p, logits)
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = math.Max(mx, float64(v))
		}
		var z float64
		for _, v := range logits {
			z += math.Exp(float64(v) - mx)
		}
		want += math.Log(z) + mx - float64(logits[targets[p]])
	}
	want /= T
	tp := m.NewTape(0, c.NLayers, T, true)
	got := m.Loss(tp, inputs, targets)
	if d := math.Abs(float64(got) - want); d > 1e-5 {
		t.Errorf("training loss %.7f, inference loss %.7f (diff %.2g), want within 1e-5", got, want, d)
	}
	g := NewGrads(m, 0, c.NLayers, true)
	if lg := m.LossAndGrad(tp, inputs, targets, g); lg != got {
		t.Errorf("LossAndGrad loss %v, Loss %v", lg, got)
	}
	t.Logf("loss %.6f nats (inference %.6f)", got, want)
}

// TestTrainForwardBitwise: the last block output of ForwardSpan is bitwise
// what Forward gives position by position.
func TestTrainForwardBitwise(t *testing.T) {
	m := gradModel(false)
	c := m.Config
	rng := rand.New(rand.NewPCG(9, 9))
	x, _ := randVec(rng, c.SeqLen*c.Dim, 1)
	tp := m.NewTape(0, c.NLayers, c.SeqLen, false)
	out := make([]float32, len(x))
	m.ForwardSpan(tp, x, c.SeqLen, out)
	s := m.NewState(0, c.NLayers)
	for p := range c.SeqLen {
		xp := append([]float32(nil), x[p*c.Dim:(p+1)*c.Dim]...)
		m.Forward(s, xp, p)
		sameBits(t, "ForwardSpan output", out[p*c.Dim:(p+1)*c.Dim], xp)
	}
}

// TestBackwardSpanComposes: gradients of blocks [0,2) in one span equal
// those of span [1,2) then span [0,1) with dIn passed down, and the final
// dIn agrees.
func TestBackwardSpanComposes(t *testing.T) {
	m := gradModel(true)
	c := m.Config
	T := c.SeqLen
	rng := rand.New(rand.NewPCG(10, 1))
	x, _ := randVec(rng, T*c.Dim, 1)
	dOut, _ := randVec(rng, T*c.Dim, 1)

	whole := m.NewTape(0, 2, T, false)
	gw := NewGrads(m, 0, 2, false)
	out := make([]float32, T*c.Dim)
	m.ForwardSpan(whole, x, T, out)
	dInWhole := m.BackwardSpan(whole, dOut, gw)

	t0, t1 := m.NewTape(0, 1, T, false), m.NewTape(1, 2, T, false)
	gs := NewGrads(m, 0, 2, false)
	mid, out2 := make([]float32, T*c.Dim), make([]float32, T*c.Dim)
	m.ForwardSpan(t0, x, T, mid)
	m.ForwardSpan(t1, mid, T, out2)
	sameBits(t, "span output", out2, out)
	dMid := m.BackwardSpan(t1, dOut, gs)
	dIn := m.BackwardSpan(t0, dMid, gs)
	sameBits(t, "dIn", dIn, dInWhole)
	pw, ps := m.Params(gw), m.Params(gs)
	if len(pw) != len(ps) || len(pw) != 18 {
		t.Fatalf("%d and %d params, want 18", len(pw), len(ps))
	}
	for i := range pw {
		sameBits(t, pw[i].Name, ps[i].G, pw[i].G)
	}
}

// TestFrozenBlocks: a nil block or head in Grads stores no gradient but
// the others are unchanged.
func TestFrozenBlocks(t *testing.T) {
	m := gradModel(false)
	c := m.Config
	tokens, targets := []int{1, 2, 3, 4, 5, 6, 7, 8}, []int{2, 3, 4, 5, 6, 7, 8, 9}
	tp := m.NewTape(0, c.NLayers, c.SeqLen, true)
	all := NewGrads(m, 0, c.NLayers, true)
	m.LossAndGrad(tp, tokens, targets, all)
	part := NewGrads(m, 0, 1, false)
	m.LossAndGrad(tp, tokens, targets, part)
	if part.Head != nil || part.Blocks[1] != nil {
		t.Fatal("frozen gradients were allocated")
	}
	for i, g := range part.Blocks[0].slices() {
		sameBits(t, blockTensorNames[i], g, all.Blocks[0].slices()[i])
	}
	if ps := m.Params(part); len(ps) != 9 || ps[0].Name != "blocks.0.attn_norm" {
		t.Errorf("Params of block 0 only: %d params, first %q", len(ps), ps[0].Name)
	}
}

// TestOverfit trains a tiny model on one sequence with Adam (written here)
// and expects the loss to approach zero.
func TestOverfit(t *testing.T) {
	cfg := Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: 40, SeqLen: 16,
		NormEps: 1e-5, RopeTheta: 10000}
	m := Synth(cfg, 3)
	rng := rand.New(rand.NewPCG(11, 1))
	seq := make([]int, cfg.SeqLen+1)
	for i := range seq {
		seq[i] = rng.IntN(cfg.VocabSize)
	}
	tokens, targets := seq[:cfg.SeqLen], seq[1:]
	tp := m.NewTape(0, cfg.NLayers, cfg.SeqLen, true)
	g := NewGrads(m, 0, cfg.NLayers, true)
	ps := m.Params(g)
	mom, vel := make([][]float32, len(ps)), make([][]float32, len(ps))
	for i, p := range ps {
		mom[i], vel[i] = make([]float32, len(p.W)), make([]float32, len(p.W))
	}
	const lr, b1, b2 = 3e-3, 0.9, 0.999
	first := m.Loss(tp, tokens, targets)

	for step := 1; step <= 300; step++ {
		g.Zero()
		m.LossAndGrad(tp, tokens, targets, g)
		c1, c2 := 1-math.Pow(b1, float64(step)), 1-math.Pow(b2, float64(step))
		for i, p := range ps {
			for j, gr := range p.G {
				mom[i][j] = b1*mom[i][j] + (1-b1)*gr
				vel[i][j] = b2*vel[i][j] + (1-b2)*gr*gr
				mh, vh := float64(mom[i][j])/c1, float64(vel[i][j])/c2
				p.W[j] -= float32(lr * mh / (math.Sqrt(vh) + 1e-8))
			}
		}
	}
	final := m.Loss(tp, tokens, targets)
	t.Logf("loss %.3f → %.4f after 300 Adam steps", first, final)
	if !(final < 0.05) {
		t.Errorf("loss after 300 steps %.4f (from %.3f), want < 0.05", final, first)
	}
}

// TestLossAndGradNoAlloc: a training step allocates nothing after warm-up.
func TestLossAndGradNoAlloc(t *testing.T) {
	cfg := Config{Dim: 64, HiddenDim: 172, NLayers: 2, NHeads: 8, NKVHeads: 4, VocabSize: 256, SeqLen: 64,
		NormEps: 1e-5, RopeTheta: 10000}
	m := Synth(cfg, 5)
	tokens, targets := make([]int, 64), make([]int, 64)
	for i := range tokens {
		tokens[i], targets[i] = i%256, (i+1)%256
	}
	tp := m.NewTape(0, cfg.NLayers, 64, true)
	g := NewGrads(m, 0, cfg.NLayers, true)
	m.LossAndGrad(tp, tokens, targets, g)
	if n := testing.AllocsPerRun(5, func() { m.LossAndGrad(tp, tokens, targets, g) }); n != 0 {
		t.Errorf("LossAndGrad allocates %v times per call, want 0", n)
	}
}

// TestLossIgnoredTargets: positions with target -1 do not count; all
// ignored gives 0 and no gradient.
func TestLossIgnoredTargets(t *testing.T) {
	m := gradModel(true)
	c := m.Config
	tp := m.NewTape(0, c.NLayers, 4, true)
	g := NewGrads(m, 0, c.NLayers, true)
	if l := m.LossAndGrad(tp, []int{1, 2, 3, 4}, []int{-1, -1, -1, -1}, g); l != 0 {
		t.Errorf("loss with every target ignored = %v, want 0", l)
	}
	for _, p := range m.Params(g) {
		for _, v := range p.G {
			if v != 0 {
				t.Fatalf("%s has gradient %v with every target ignored", p.Name, v)
			}
		}
	}
	a := m.Loss(tp, []int{1, 2, 3, 4}, []int{-1, 5, -1, 7})
	b := m.Loss(tp, []int{1, 2, 3, 4}, []int{9, 5, 11, 7})
	if a == b || a <= 0 {
		t.Errorf("ignored positions seem counted: %v vs %v", a, b)
	}
}
