package model

import (
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// Batch is reusable scratch for running several steps through blocks
// [Lo, Hi) together: one position of each of several sessions (Forward,
// continuous batching) or several successive positions of one session
// (ForwardSeq, prompt prefill and failover replay). The weight matrices of
// each block (wq, wk, wv, wo, w1, w3, w2) are applied to all the steps with
// one tensor.MatMul, so they are read from memory once per block rather
// than once per step; attention runs per step against its own session's
// key/value cache.
//
// Results are bitwise identical to running each step alone with
// Model.Forward: how steps are batched never changes an output.
//
// A Batch is not safe for concurrent use; the States it runs must not be
// used by another goroutine during the call. Its methods do not allocate.
type Batch struct {
	m            *Model
	lo, hi, maxN int

	xb, xb2, q, k, v, hb, hb2 []float32 // maxN × dim, kvDim or hidden, step-major
	att                       []float32 // SeqLen, one step at a time
	freq, cos, sin            []float32 // cos, sin: maxN × headSize/2
	sqrtHS                    float32

	// ForwardSeq's views of its input, so it does not allocate.
	seqStates []*State
	seqXs     [][]float32
	seqPos    []int
}

// BatchBytes returns the memory a Batch for up to maxN steps takes (its
// scratch; the KV caches belong to the States).
func (m *Model) BatchBytes(maxN int) int64 {
	c := m.Config
	per := 3*int64(c.Dim) + 2*int64(c.KVDim()) + 2*int64(c.HiddenDim) + int64(c.HeadSize()) + 4 // + views
	return 4 * (int64(maxN)*per + int64(c.SeqLen) + int64(c.HeadSize())/2)
}

// NewBatch returns scratch for running up to maxN steps at once through
// blocks [lo, hi). It panics if the span is invalid or holds an unloaded
// block (check with CheckSpan first) or maxN < 1.
func (m *Model) NewBatch(lo, hi, maxN int) *Batch {
	if err := m.CheckSpan(lo, hi); err != nil {
		panic(err)
	}
	if maxN < 1 {
		panic(fmt.Sprintf("model: NewBatch maxN %d, want at least 1", maxN))
	}
	c := m.Config
	dim, kvDim, hid, hh := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()/2
	b := &Batch{
		m: m, lo: lo, hi: hi, maxN: maxN,
		xb: make([]float32, maxN*dim), xb2: make([]float32, maxN*dim), q: make([]float32, maxN*dim),
		k: make([]float32, maxN*kvDim), v: make([]float32, maxN*kvDim),
		hb: make([]float32, maxN*hid), hb2: make([]float32, maxN*hid),
		att:  make([]float32, c.SeqLen),
		freq: make([]float32, hh), cos: make([]float32, maxN*hh), sin: make([]float32, maxN*hh),
		sqrtHS:    tensor.Sqrt(float32(c.HeadSize())),
		seqStates: make([]*State, maxN), seqXs: make([][]float32, maxN), seqPos: make([]int, maxN),
	}
	c.RoPEFreqs(b.freq)
	return b
}

// Lo returns the start of the block span the Batch serves.
func (b *Batch) Lo() int { return b.lo }

// Hi returns the end (exclusive) of the block span.
func (b *Batch) Hi() int { return b.hi }

// MaxN returns the largest number of steps one call may run.
func (b *Batch) MaxN() int { return b.maxN }

// Forward runs one position for each of several sessions through the
// Batch's blocks: xs[j] (len Dim) is session j's activation, updated in
// place, pos[j] its position, and states[j] its State, which receives the
// keys and values for pos[j] exactly as Model.Forward(states[j], xs[j],
// pos[j]) would; each xs[j] ends bitwise equal to what that call gives.
//
// The three slices must have the same length n, 0 ≤ n ≤ MaxN (n = 0 does
// nothing). The activations must not overlap one another. Every State must
// be distinct and made for the Batch's model
// configuration and span. It panics otherwise, or if a position is outside
// [0, SeqLen) or an activation has the wrong length: callers validate
// remote input first. It does not allocate.
func (b *Batch) Forward(states []*State, xs [][]float32, pos []int) {
	n := len(states)
	if len(xs) != n || len(pos) != n {
		panic(fmt.Sprintf("model: Batch.Forward with %d states, %d activations, %d positions", n, len(xs), len(pos)))
	}
	if n > b.maxN {
		panic(fmt.Sprintf("model: Batch.Forward of %d steps, batch holds %d", n, b.maxN))
	}
	for j, s := range states {
		b.checkStep(s, xs[j], pos[j])
		for _, o := range states[:j] {
			if o == s {
				panic(fmt.Sprintf("model: Batch.Forward with State %d given twice (use ForwardSeq for several positions of one session)", j))
			}
		}
	}
	b.run(states, xs, pos)
}

// ForwardSeq runs n = len(xs)/Dim successive positions pos, pos+1, …,
// pos+n-1 of one session through the Batch's blocks: xs holds the n
// activations one after another and is updated in place. It is bitwise
// identical to n calls Model.Forward(s, xs[i*Dim:(i+1)*Dim], pos+i) in
// order — position p attends to positions ≤ p only — but reads each weight
// matrix once for all n positions, which makes prompt prefill and the
// replay of a session's history to a new peer faster.
//
// It panics if len(xs) is not a multiple of Dim, n > MaxN, the positions
// leave [0, SeqLen), or s was made for another configuration or span.
// It does not allocate.
func (b *Batch) ForwardSeq(s *State, xs []float32, pos int) {
	dim := b.m.Config.Dim
	if len(xs)%dim != 0 {
		panic(fmt.Sprintf("model: ForwardSeq activations length %d, not a multiple of dim %d", len(xs), dim))
	}
	n := len(xs) / dim
	if n > b.maxN {
		panic(fmt.Sprintf("model: ForwardSeq of %d positions, batch holds %d", n, b.maxN))
	}
	if n == 0 {
		return
	}
	if pos < 0 || pos > b.m.Config.SeqLen-n {
		panic(fmt.Sprintf("model: ForwardSeq positions [%d,%d) outside [0,%d)", pos, pos+n, b.m.Config.SeqLen))
	}
	states, views, ps := b.seqStates[:n], b.seqXs[:n], b.seqPos[:n]
	for j := range n {
		states[j], views[j], ps[j] = s, xs[j*dim:(j+1)*dim:(j+1)*dim], pos+j
		b.checkStep(s, views[j], ps[j])
	}
	b.run(states, views, ps)
	clear(states) // do not keep the session alive
	clear(views)
}

// ForwardSeq runs positions pos..pos+n-1 of one session, whose activations
// are xs[i*Dim:(i+1)*Dim], through s's blocks: bitwise the same as n
// successive Forward calls, but with the weight matrices applied to up to
// 64 positions at a time. It allocates a Batch for the call; a server that
// prefills often should keep one (NewBatch) and use Batch.ForwardSeq.
// It panics as Batch.ForwardSeq does, or if len(xs) != n*Dim.
func (m *Model) ForwardSeq(s *State, xs []float32, pos, n int) {
	dim := m.Config.Dim
	if n < 0 || len(xs) != n*dim {
		panic(fmt.Sprintf("model: ForwardSeq activations length %d, want %d positions × dim %d", len(xs), n, dim))
	}
	if n == 0 {
		return
	}
	const chunk = 64
	b := m.NewBatch(s.lo, s.hi, min(n, chunk))
	for i := 0; i < n; i += b.maxN {
		j := min(i+b.maxN, n)
		b.ForwardSeq(s, xs[i*dim:j*dim], pos+i)
	}
}

// checkStep panics unless s, x and pos are a valid step for b.
func (b *Batch) checkStep(s *State, x []float32, pos int) {
	c := b.m.Config
	if s.cfg != c {
		panic("model: Batch with a State made for a different config")
	}
	if s.lo != b.lo || s.hi != b.hi {
		panic(fmt.Sprintf("model: Batch for blocks [%d,%d) with a State for [%d,%d)", b.lo, b.hi, s.lo, s.hi))
	}
	if len(x) != c.Dim {
		panic(fmt.Sprintf("model: Batch activation length %d, want dim %d", len(x), c.Dim))
	}
	if pos < 0 || pos >= c.SeqLen {
		panic(fmt.Sprintf("model: Batch position %d outside [0,%d)", pos, c.SeqLen))
	}
}

// run is the batched forward pass over validated steps.
func (b *Batch) run(states []*State, xs [][]float32, pos []int) {
	n := len(states)
	if n == 0 {
		return
	}
	hh := len(b.freq)
	for j, p := range pos {
		tensor.RoPEAngles(b.cos[j*hh:(j+1)*hh], b.sin[j*hh:(j+1)*hh], b.freq, p)
	}
	for l := b.lo; l < b.hi; l++ {
		b.block(states, xs, pos, b.m.Blocks[l], l-b.lo)
	}
}

// block is Model.block for n steps at once. The per-step operations are
// the same, in the same order, on the same values; only the matrix
// products are grouped. All steps' keys and values for this block are
// written to the caches before any step attends, so a later position of
// the same session (ForwardSeq) sees an earlier one's entry, exactly as
// if the positions had run one after another.
func (b *Batch) block(states []*State, xs [][]float32, pos []int, w *Block, li int) {
	c := b.m.Config
	n := len(states)
	dim, kvDim, hid, hs, hh := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize(), c.HeadSize()/2
	kvMul := c.NHeads / c.NKVHeads
	xb, xb2, q := b.xb[:n*dim], b.xb2[:n*dim], b.q[:n*dim]
	k, v := b.k[:n*kvDim], b.v[:n*kvDim]
	hb, hb2 := b.hb[:n*hid], b.hb2[:n*hid]
	qw := quantOf(w)

	// Attention.
	for j, x := range xs {
		tensor.RMSNorm(xb[j*dim:(j+1)*dim], x, w.AttNorm, c.NormEps)
	}
	matMul(q, w.Wq, qw.Wq, xb, dim, dim, n)
	matMul(k, w.Wk, qw.Wk, xb, kvDim, dim, n)
	matMul(v, w.Wv, qw.Wv, xb, kvDim, dim, n)
	if w.Bq != nil {
		for j := range n {
			tensor.Add(q[j*dim:(j+1)*dim], w.Bq)
			tensor.Add(k[j*kvDim:(j+1)*kvDim], w.Bk)
			tensor.Add(v[j*kvDim:(j+1)*kvDim], w.Bv)
		}
	}
	for j, s := range states {
		cos, sin := b.cos[j*hh:(j+1)*hh], b.sin[j*hh:(j+1)*hh]
		kj := k[j*kvDim : (j+1)*kvDim]
		tensor.RoPE(q[j*dim:(j+1)*dim], cos, sin)
		tensor.RoPE(kj, cos, sin)
		p := pos[j]
		copy(s.key[li][p*kvDim:(p+1)*kvDim], kj)
		copy(s.val[li][p*kvDim:(p+1)*kvDim], v[j*kvDim:(j+1)*kvDim])
	}
	for j, s := range states {
		keys, vals := s.key[li], s.val[li]
		att := b.att[:pos[j]+1]
		qj, out := q[j*dim:(j+1)*dim], xb[j*dim:(j+1)*dim]
		for h := range c.NHeads {
			off := (h / kvMul) * hs
			scores(att, qj[h*hs:(h+1)*hs], keys, kvDim, off, b.sqrtHS)
			tensor.Softmax(att)
			weightedSum(out[h*hs:(h+1)*hs], att, vals, kvDim, off)
		}
	}
	matMul(xb2, w.Wo, qw.Wo, xb, dim, dim, n)
	for j, x := range xs {
		tensor.Add(x, xb2[j*dim:(j+1)*dim])
	}

	// Feed-forward (SwiGLU).
	for j, x := range xs {
		tensor.RMSNorm(xb[j*dim:(j+1)*dim], x, w.FFNNorm, c.NormEps)
	}
	matMul(hb, w.W1, qw.W1, xb, hid, dim, n)
	matMul(hb2, w.W3, qw.W3, xb, hid, dim, n)
	tensor.SiLUMul(hb, hb2)
	matMul(xb, w.W2, qw.W2, hb, dim, hid, n)
	for j, x := range xs {
		tensor.Add(x, xb[j*dim:(j+1)*dim])
	}
}
