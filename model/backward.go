package model

import (
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// LossAndGrad is Loss followed by the backward pass: it returns the mean
// cross-entropy over the positions whose target is not -1 and ADDS the
// gradient of that mean to g (the caller zeroes g between steps). Blocks
// with g.Blocks[l] == nil and the head when g.Head == nil are treated as
// frozen: the gradient flows through them but none is stored. With a
// shared classifier the embedding receives the gradient of both the lookup
// and the classifier. If no position is counted the loss is 0 and g is left
// unchanged. It panics as Loss does, or if g was made for another
// configuration. It does not allocate.
func (m *Model) LossAndGrad(t *Tape, tokens, targets []int, g *Grads) float32 {
	c := m.Config
	if len(g.Blocks) != c.NLayers {
		panic(fmt.Sprintf("model: LossAndGrad with %d gradient blocks for n_layers %d", len(g.Blocks), c.NLayers))
	}
	sum, count := m.headForward(t, tokens, targets, true)
	if count == 0 {
		return 0
	}
	T, dim, vocab := len(tokens), c.Dim, c.VocabSize
	dlogits := t.logits[:T*vocab]
	dxnf := t.dxn[:T*dim]
	var gh *Head
	if g.Head != nil {
		gh = g.Head
	}
	// Classifier: logits = xnf·Clsᵀ.
	var dcls []float32
	if gh != nil {
		dcls = gh.Classifier
		if c.SharedClassifier {
			dcls = gh.Embedding
		}
	}
	t.linearBack(dxnf, dcls, m.classifier(), t.xnf[:T*dim], dlogits, vocab, dim, T, false)
	// Final norm.
	dxf := t.dx[:T*dim]
	clear(dxf)
	var dfn []float32
	if gh != nil {
		dfn = gh.FinalNorm
	}
	for p := range T {
		r := p * dim
		rmsNormBack(dxf[r:r+dim], dfn, t.xf[r:r+dim], m.Head.FinalNorm, dxnf[r:r+dim], c.NormEps)
	}
	dx0 := m.BackwardSpan(t, dxf, g)
	if gh != nil {
		for p, tok := range t.tokens[:T] {
			tensor.Add(gh.Embedding[tok*dim:(tok+1)*dim], dx0[p*dim:(p+1)*dim])
		}
	}
	return float32(sum / float64(count))
}

// BackwardSpan is the backward pass of the last ForwardSpan (or Loss) on
// t: given dOut, the gradient of the loss with respect to the span's T
// outputs (T×Dim), it adds the gradients of the span's blocks to g (blocks
// with g.Blocks[l] == nil are frozen: skipped) and returns the gradient
// with respect to the span's inputs, T×Dim in a buffer owned by t that the
// next call overwrites. dOut may be that buffer. Running a model span by
// span, passing each dIn down as the next lower span's dOut, gives the same
// gradients as one span over the whole. It panics if no forward was
// recorded, dOut has the wrong length, or g was made for another
// configuration. It does not allocate.
func (m *Model) BackwardSpan(t *Tape, dOut []float32, g *Grads) []float32 {
	c := m.Config
	T := t.n
	if t.m != m {
		panic("model: BackwardSpan with a Tape made for another model")
	}
	if T == 0 {
		panic("model: BackwardSpan before any forward on the Tape")
	}
	if len(dOut) != T*c.Dim {
		panic(fmt.Sprintf("model: BackwardSpan gradient of %d floats, want %d positions × dim %d", len(dOut), T, c.Dim))
	}
	if len(g.Blocks) != c.NLayers {
		panic(fmt.Sprintf("model: BackwardSpan with %d gradient blocks for n_layers %d", len(g.Blocks), c.NLayers))
	}
	d := t.dx[:T*c.Dim]
	copy(d, dOut)
	for l := t.hi - 1; l >= t.lo; l-- {
		m.blockBack(t, m.Blocks[l], g.Blocks[l], &t.layers[l-t.lo], d)
	}
	return d
}

// blockBack turns d, the gradient with respect to a block's outputs, into
// the gradient with respect to its inputs, in place, adding the weight
// gradients to gb unless it is nil.
func (m *Model) blockBack(t *Tape, b, gb *Block, r *tapeLayer, d []float32) {
	c := m.Config
	T := t.n
	dim, kvDim, hid, hh := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()/2
	var gW1, gW2, gW3, gFN, gWq, gWk, gWv, gWo, gAN []float32
	if gb != nil {
		gW1, gW2, gW3, gFN, gWq, gWk, gWv, gWo, gAN = gb.W1, gb.W2, gb.W3, gb.FFNNorm, gb.Wq, gb.Wk, gb.Wv, gb.Wo, gb.AttNorm
	}
	dxn, dg, dh1, dh3 := t.dxn[:T*dim], t.dg[:T*hid], t.dh1[:T*hid], t.dh3[:T*hid]

	// FFN: out = xMid + W2·(silu(W1·xn2) ⊙ W3·xn2), xn2 = RMSNorm(xMid).
	t.linearBack(dg, gW2, b.W2, r.g[:T*hid], d, dim, hid, T, false)
	swigluBack(dh1, dh3, dg, r.h1[:T*hid], r.h3[:T*hid])
	xn2 := r.xn2[:T*dim]
	t.transpose(xn2, T, dim)
	t.linearBackT(dxn, gW1, b.W1, dh1, hid, dim, T, false)
	t.linearBackT(dxn, gW3, b.W3, dh3, hid, dim, T, true)
	for p := range T {
		o := p * dim
		rmsNormBack(d[o:o+dim], gFN, r.xMid[o:o+dim], b.FFNNorm, dxn[o:o+dim], c.NormEps)
	}

	// Attention: xMid = xIn + Wo·attn(RoPE(Wq·xn1), RoPE(Wk·xn1), Wv·xn1).
	dao, dq, dk, dv := t.dao[:T*dim], t.dq[:T*dim], t.dk[:T*kvDim], t.dv[:T*kvDim]
	t.linearBack(dao, gWo, b.Wo, r.ao[:T*dim], d, dim, dim, T, false)
	clear(dq)
	clear(dk)
	clear(dv)
	t.cur = r
	tensor.ParallelFor(c.NKVHeads, t.bwdGroup)
	t.cur = nil
	for p := range T {
		cos, sin := t.cos[p*hh:(p+1)*hh], t.sin[p*hh:(p+1)*hh]
		ropeBack(dq[p*dim:(p+1)*dim], cos, sin)
		ropeBack(dk[p*kvDim:(p+1)*kvDim], cos, sin)
	}
	if gb != nil && gb.Bq != nil { // q = Wq·xn1 + bq before RoPE: dbq = Σ_p dq_p
		for p := range T {
			tensor.Add(gb.Bq, dq[p*dim:(p+1)*dim])
			tensor.Add(gb.Bk, dk[p*kvDim:(p+1)*kvDim])
			tensor.Add(gb.Bv, dv[p*kvDim:(p+1)*kvDim])
		}
	}
	t.transpose(r.xn1[:T*dim], T, dim)
	t.linearBackT(dxn, gWq, b.Wq, dq, dim, dim, T, false)
	t.linearBackT(dxn, gWk, b.Wk, dk, kvDim, dim, T, true)
	t.linearBackT(dxn, gWv, b.Wv, dv, kvDim, dim, T, true)
	for p := range T {
		o := p * dim
		rmsNormBack(d[o:o+dim], gAN, r.xIn[o:o+dim], b.AttNorm, dxn[o:o+dim], c.NormEps)
	}
}

// transpose stores the transpose of the n×cols matrix x in t.xT, for
// linearBackT.
func (t *Tape) transpose(x []float32, n, cols int) {
	tensor.Transpose(t.xT[:n*cols], x, n, cols)
}

// linearBack is the backward of y = W·x over n vectors (x n×cols, y
// n×rows, W rows×cols): it sets dx = dy·W (adds to it if acc) and adds
// dyᵀ·x to dw unless dw is nil.
func (t *Tape) linearBack(dx, dw, w, x, dy []float32, rows, cols, n int, acc bool) {
	if dw != nil {
		t.transpose(x, n, cols)
	}
	t.linearBackT(dx, dw, w, dy, rows, cols, n, acc)
}

// linearBackT is linearBack with xᵀ already in t.xT. Both products run on
// tensor.MatMul: dx with Wᵀ as the matrix, dw with xᵀ as the matrix and the
// rows of dyᵀ as the vectors.
func (t *Tape) linearBackT(dx, dw, w, dy []float32, rows, cols, n int, acc bool) {
	wT := t.wT[:rows*cols]
	tensor.Transpose(wT, w, rows, cols)
	if acc {
		tmp := t.tmp[:n*cols]
		tensor.MatMul(tmp, wT, dy, cols, rows, n)
		tensor.Add(dx, tmp)
	} else {
		tensor.MatMul(dx, wT, dy, cols, rows, n)
	}
	if dw == nil {
		return
	}
	dyT := t.dyT[:n*rows]
	tensor.Transpose(dyT, dy, n, rows)
	tmp := t.tmp[:rows*cols]
	tensor.MatMul(tmp, t.xT[:n*cols], dyT, cols, n, rows)
	tensor.Add(dw, tmp)
}
