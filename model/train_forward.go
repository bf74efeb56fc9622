package model

import (
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// ForwardSpan runs positions 0..T-1 of a sequence through the Tape's
// blocks: x holds the T input activations (T×Dim, position-major) and out
// receives the T outputs; out may be x. Every activation the backward
// needs is recorded in t, replacing the previous forward's. The result is
// bitwise what Model.Forward gives position by position (same kernels, same
// order). It panics if T is outside [1, t.SeqLen()], a length is wrong, or
// t was made for another model. It does not allocate.
func (m *Model) ForwardSpan(t *Tape, x []float32, T int, out []float32) {
	c := m.Config
	if t.m != m {
		panic("model: ForwardSpan with a Tape made for another model")
	}
	if T < 1 || T > t.seqLen {
		panic(fmt.Sprintf("model: ForwardSpan of %d positions, tape holds 1..%d", T, t.seqLen))
	}
	if len(x) != T*c.Dim || len(out) != T*c.Dim {
		panic(fmt.Sprintf("model: ForwardSpan activations of %d and %d floats, want %d positions × dim %d", len(x), len(out), T, c.Dim))
	}
	t.n = T
	t.attn.T = T
	copy(t.layers[0].xIn[:T*c.Dim], x)
	for l := t.lo; l < t.hi; l++ {
		li := l - t.lo
		dst := out
		if li+1 < len(t.layers) {
			dst = t.layers[li+1].xIn[:T*c.Dim]
		}
		m.trainBlock(t, m.Blocks[l], &t.layers[li], dst)
	}
}

// trainBlock is Model.block over the t.n positions of a sequence, writing
// the block output to out and recording its activations in r.
func (m *Model) trainBlock(t *Tape, b *Block, r *tapeLayer, out []float32) {
	c := m.Config
	T := t.n
	dim, kvDim, hid, hh := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()/2
	xIn, xn1, q, k, v := r.xIn[:T*dim], r.xn1[:T*dim], r.q[:T*dim], r.k[:T*kvDim], r.v[:T*kvDim]
	ao, xMid, xn2 := r.ao[:T*dim], r.xMid[:T*dim], r.xn2[:T*dim]
	h1, h3, g := r.h1[:T*hid], r.h3[:T*hid], r.g[:T*hid]

	for p := range T {
		tensor.RMSNorm(xn1[p*dim:(p+1)*dim], xIn[p*dim:(p+1)*dim], b.AttNorm, c.NormEps)
	}
	tensor.MatMul(q, b.Wq, xn1, dim, dim, T)
	tensor.MatMul(k, b.Wk, xn1, kvDim, dim, T)
	tensor.MatMul(v, b.Wv, xn1, kvDim, dim, T)
	if b.Bq != nil {
		for p := range T {
			tensor.Add(q[p*dim:(p+1)*dim], b.Bq)
			tensor.Add(k[p*kvDim:(p+1)*kvDim], b.Bk)
			tensor.Add(v[p*kvDim:(p+1)*kvDim], b.Bv)
		}
	}
	for p := range T {
		cos, sin := t.cos[p*hh:(p+1)*hh], t.sin[p*hh:(p+1)*hh]
		tensor.RoPE(q[p*dim:(p+1)*dim], cos, sin)
		tensor.RoPE(k[p*kvDim:(p+1)*kvDim], cos, sin)
	}
	t.cur = r
	tensor.ParallelFor(c.NKVHeads, t.fwdGroup)
	t.cur = nil
	tensor.MatMul(xMid, b.Wo, ao, dim, dim, T)
	tensor.Add(xMid, xIn)

	for p := range T {
		tensor.RMSNorm(xn2[p*dim:(p+1)*dim], xMid[p*dim:(p+1)*dim], b.FFNNorm, c.NormEps)
	}
	tensor.MatMul(h1, b.W1, xn2, hid, dim, T)
	tensor.MatMul(h3, b.W3, xn2, hid, dim, T)
	copy(g, h1)
	tensor.SiLUMul(g, h3)
	tensor.MatMul(out, b.W2, g, dim, hid, T)
	tensor.Add(out, xMid)
}

// Loss runs the whole model over tokens (inputs) and returns the mean
// cross-entropy in nats of predicting targets[p] after tokens[0..p], over
// the positions whose target is not -1 (0 if there are none). It is the
// forward of LossAndGrad, for evaluation; the activations stay on t. It
// panics if t does not cover [0, NLayers) with the head, if the lengths
// differ or exceed t.SeqLen(), or if a token or target is outside the
// vocabulary. It does not allocate.
func (m *Model) Loss(t *Tape, tokens, targets []int) float32 {
	sum, count := m.headForward(t, tokens, targets, false)
	if count == 0 {
		return 0
	}
	return float32(sum / float64(count))
}

// headForward embeds tokens, runs every block, the final norm and the
// classifier, and turns the logits into loss (and, if grad, the loss
// gradient in t.logits).
func (m *Model) headForward(t *Tape, tokens, targets []int, grad bool) (float64, int) {
	c := m.Config
	if t.m != m {
		panic("model: Loss with a Tape made for another model")
	}
	if !t.head || t.lo != 0 || t.hi != c.NLayers {
		panic(fmt.Sprintf("model: Loss needs a Tape for [0,%d) with the head, got [%d,%d) head=%v", c.NLayers, t.lo, t.hi, t.head))
	}
	T := len(tokens)
	if len(targets) != T || T < 1 || T > t.seqLen {
		panic(fmt.Sprintf("model: Loss of %d tokens and %d targets, tape holds 1..%d", T, len(targets), t.seqLen))
	}
	for p, tok := range tokens {
		if tok < 0 || tok >= c.VocabSize {
			panic(fmt.Sprintf("model: Loss token %d at %d outside [0,%d)", tok, p, c.VocabSize))
		}
		if tg := targets[p]; tg < -1 || tg >= c.VocabSize {
			panic(fmt.Sprintf("model: Loss target %d at %d outside [-1,%d)", tg, p, c.VocabSize))
		}
		t.tokens[p] = tok
	}
	dim, vocab := c.Dim, c.VocabSize
	x, xf, xnf, logits := t.x[:T*dim], t.xf[:T*dim], t.xnf[:T*dim], t.logits[:T*vocab]
	for p, tok := range tokens {
		copy(x[p*dim:(p+1)*dim], m.Head.Embedding[tok*dim:(tok+1)*dim])
	}
	m.ForwardSpan(t, x, T, xf)
	for p := range T {
		tensor.RMSNorm(xnf[p*dim:(p+1)*dim], xf[p*dim:(p+1)*dim], m.Head.FinalNorm, c.NormEps)
	}
	tensor.MatMul(logits, m.classifier(), xnf, vocab, dim, T)
	return crossEntropy(logits, targets, vocab, grad)
}

// classifier returns the classifier matrix (the embedding when shared).
func (m *Model) classifier() []float32 {
	if m.Config.SharedClassifier {
		return m.Head.Embedding
	}
	return m.Head.Classifier
}
