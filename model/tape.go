package model

import (
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// Tape holds the activations of one training forward pass over a sequence
// of up to SeqLen positions through blocks [Lo, Hi) (and the head, if made
// with head), which the backward pass reads, plus the backward's scratch.
// It is reused from step to step, so training does not allocate. A Tape
// belongs to one goroutine at a time; the weights it runs against must not
// change between a forward and its backward.
type Tape struct {
	m              *Model
	lo, hi, seqLen int
	head           bool
	n              int // positions recorded by the last forward; 0 before any
	attn           attnShape

	cos, sin []float32 // seqLen × headSize/2: RoPE of positions 0..seqLen-1
	layers   []tapeLayer

	// Whole-model pass (head): embedded tokens, last block output, final
	// normed activations, logits (then their gradient), the tokens.
	x, xf, xnf, logits []float32
	tokens             []int

	// Attention work handed to tensor.ParallelFor, one item per kv-head
	// group (query heads sharing a key/value head write disjoint memory).
	// The method values are made once so a step does not allocate.
	cur                *tapeLayer
	fwdGroup, bwdGroup func(int)

	// Backward scratch.
	dx, dxn, dq, dk, dv, dao, dh1, dh3, dg, dp []float32
	xT, dyT, wT, tmp                           []float32
}

// tapeLayer is what one block's training forward records, per position.
type tapeLayer struct {
	xIn, xn1, q, k, v, probs, ao, xMid, xn2, h1, h3, g []float32
}

// TapeBytes returns the memory NewTape(lo, hi, seqLen, head) allocates,
// dominated by the attention probabilities, NHeads·seqLen² per block.
func (m *Model) TapeBytes(lo, hi, seqLen int, head bool) int64 {
	c := m.Config
	T, d, kv, hid, v := int64(seqLen), int64(c.Dim), int64(c.KVDim()), int64(c.HiddenDim), int64(c.VocabSize)
	per := T*(6*d+2*kv+3*hid) + int64(c.NHeads)*T*T
	n := int64(hi-lo)*per + T*int64(c.HeadSize()) // layers, cos/sin
	n += T*(5*d+2*kv+3*hid) + T                   // dx..dg, dp
	widest := max(d, hid)
	if head {
		n += T*(3*d+v) + T // x, xf, xnf, logits, tokens
		widest = max(widest, v)
	}
	n += 2 * T * widest // xT, dyT
	mat := max(d*d, hid*d)
	if head {
		mat = max(mat, v*d)
	}
	n += mat + max(mat, T*widest) // wT, tmp
	return 4 * n
}

// NewTape allocates a Tape for sequences of up to seqLen positions through
// blocks [lo, hi) and, if head, the embedding, final norm and classifier.
// It panics if the span is invalid or holds an unloaded or quantized block
// (check with CheckTrainable), if head is set
// and the head is not loaded, or if seqLen is outside [1, SeqLen].
// TapeBytes tells the memory it takes.
func (m *Model) NewTape(lo, hi, seqLen int, head bool) *Tape {
	c := m.Config
	if err := m.CheckSpan(lo, hi); err != nil {
		panic(err)
	}
	if err := m.CheckTrainable(lo, hi); err != nil {
		panic(err)
	}
	if head && m.Head == nil {
		panic("model: NewTape with head for a model without its head")
	}
	if seqLen < 1 || seqLen > c.SeqLen {
		panic(fmt.Sprintf("model: NewTape seqLen %d outside [1,%d]", seqLen, c.SeqLen))
	}
	T, d, kv, hid, hh := seqLen, c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()/2
	f := func(n int) []float32 { return make([]float32, n) }
	t := &Tape{
		m: m, lo: lo, hi: hi, seqLen: T, head: head,
		attn: attnShape{nHeads: c.NHeads, kvMul: c.NHeads / c.NKVHeads, hs: c.HeadSize(), kvDim: kv,
			sqrtHS: tensor.Sqrt(float32(c.HeadSize()))},
		cos: f(T * hh), sin: f(T * hh),
		layers: make([]tapeLayer, hi-lo),
		dx:     f(T * d), dxn: f(T * d), dq: f(T * d), dk: f(T * kv), dv: f(T * kv), dao: f(T * d),
		dh1: f(T * hid), dh3: f(T * hid), dg: f(T * hid), dp: f(c.NKVHeads * T),
	}
	for i := range t.layers {
		t.layers[i] = tapeLayer{
			xIn: f(T * d), xn1: f(T * d), q: f(T * d), k: f(T * kv), v: f(T * kv), probs: f(c.NHeads * T * T),
			ao: f(T * d), xMid: f(T * d), xn2: f(T * d), h1: f(T * hid), h3: f(T * hid), g: f(T * hid),
		}
	}
	widest, mat := max(d, hid), max(d*d, hid*d)
	if head {
		t.x, t.xf, t.xnf, t.logits = f(T*d), f(T*d), f(T*d), f(T*c.VocabSize)
		t.tokens = make([]int, T)
		widest, mat = max(widest, c.VocabSize), max(mat, c.VocabSize*d)
	}
	t.xT, t.dyT, t.wT, t.tmp = f(T*widest), f(T*widest), f(mat), f(max(mat, T*widest))
	t.fwdGroup, t.bwdGroup = t.attnForwardGroup, t.attnBackwardGroup
	freq := f(hh)
	c.RoPEFreqs(freq)
	for p := range T {
		tensor.RoPEAngles(t.cos[p*hh:(p+1)*hh], t.sin[p*hh:(p+1)*hh], freq, p)
	}
	return t
}

// Lo returns the start of the Tape's block span.
func (t *Tape) Lo() int { return t.lo }

// Hi returns the end (exclusive) of the Tape's block span.
func (t *Tape) Hi() int { return t.hi }

// SeqLen returns the longest sequence the Tape records.
func (t *Tape) SeqLen() int { return t.seqLen }

// attnForwardGroup runs the attention forward of the query heads of kv
// head grp on t.cur.
func (t *Tape) attnForwardGroup(grp int) {
	r, T, dim, kv := t.cur, t.n, t.m.Config.Dim, t.m.Config.KVDim()
	h0 := grp * t.attn.kvMul
	attnForward(t.attn, r.ao[:T*dim], r.probs, r.q[:T*dim], r.k[:T*kv], r.v[:T*kv], h0, h0+t.attn.kvMul)
}

// attnBackwardGroup runs the attention backward of the query heads of kv
// head grp on t.cur, from t.dao into t.dq, t.dk, t.dv.
func (t *Tape) attnBackwardGroup(grp int) {
	r, T, dim, kv := t.cur, t.n, t.m.Config.Dim, t.m.Config.KVDim()
	h0 := grp * t.attn.kvMul
	attnBackward(t.attn, t.dq[:T*dim], t.dk[:T*kv], t.dv[:T*kv], t.dao[:T*dim], r.probs,
		r.q[:T*dim], r.k[:T*kv], r.v[:T*kv], t.dp[grp*t.seqLen:(grp+1)*t.seqLen], h0, h0+t.attn.kvMul)
}
