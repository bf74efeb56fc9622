package model

import (
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// State is one session's working memory for a span of blocks [Lo, Hi):
// the key/value cache of every block in the span for SeqLen positions, and
// scratch buffers for the forward pass. A State belongs to one session and
// one goroutine at a time; the model weights it runs against are shared
// and never written.
type State struct {
	cfg    Config
	lo, hi int
	key    [][]float32 // per block in span: [SeqLen][KVDim]
	val    [][]float32

	x                        []float32 // Step's activation
	xb, xb2, q, hb, hb2, att []float32
	freq, cos, sin           []float32
	sqrtHS                   float32
}

// Lo and Hi return the block span [Lo, Hi) the State serves.
func (s *State) Lo() int { return s.lo }

// Hi returns the end (exclusive) of the block span.
func (s *State) Hi() int { return s.hi }

// Reset forgets every cached position (the buffers are kept for reuse).
// Forward overwrites the cache at each position it runs, so Reset is only
// needed to make stale state impossible to read; it zeroes the cache.
func (s *State) Reset() {
	for i := range s.key {
		clear(s.key[i])
		clear(s.val[i])
	}
}

// CheckSpan reports whether [lo, hi) is a non-empty span of blocks that are
// all loaded in m.
func (m *Model) CheckSpan(lo, hi int) error {
	n := m.Config.NLayers
	if len(m.Blocks) != n {
		return fmt.Errorf("%w: model has %d block slots for n_layers %d", ErrSpan, len(m.Blocks), n)
	}
	if lo < 0 || hi > n || lo >= hi {
		return fmt.Errorf("%w: [%d,%d) is not a non-empty span within [0,%d)", ErrSpan, lo, hi, n)
	}
	for i := lo; i < hi; i++ {
		if m.Blocks[i] == nil {
			return fmt.Errorf("%w: block %d of span [%d,%d) is not loaded", ErrSpan, i, lo, hi)
		}
	}
	return nil
}

// StateBytes returns the memory a State for blocks [lo, hi) takes: the KV
// cache, 2·(hi−lo)·SeqLen·KVDim float32s, plus scratch. A header from a
// peer or file can make this large; check it against a budget before
// NewState.
func (m *Model) StateBytes(lo, hi int) int64 {
	c := m.Config
	kv := 2 * int64(hi-lo) * int64(c.SeqLen) * int64(c.KVDim())
	scratch := 5*int64(c.Dim) + 2*int64(c.HiddenDim) + int64(c.SeqLen) + 3*int64(c.HeadSize())/2
	return 4 * (kv + scratch)
}

// NewState allocates a State for blocks [lo, hi). It panics if the span is
// invalid or holds an unloaded block (check with CheckSpan first). The KV
// cache takes 2·(hi−lo)·SeqLen·KVDim float32s.
func (m *Model) NewState(lo, hi int) *State {
	if err := m.CheckSpan(lo, hi); err != nil {
		panic(err)
	}
	c := m.Config
	s := &State{
		cfg: c, lo: lo, hi: hi,
		key: make([][]float32, hi-lo), val: make([][]float32, hi-lo),
		x: make([]float32, c.Dim), xb: make([]float32, c.Dim), xb2: make([]float32, c.Dim), q: make([]float32, c.Dim),
		hb: make([]float32, c.HiddenDim), hb2: make([]float32, c.HiddenDim),
		att:  make([]float32, c.SeqLen),
		freq: make([]float32, c.HeadSize()/2), cos: make([]float32, c.HeadSize()/2), sin: make([]float32, c.HeadSize()/2),
		sqrtHS: tensor.Sqrt(float32(c.HeadSize())),
	}
	for i := range s.key {
		s.key[i] = make([]float32, c.SeqLen*c.KVDim())
		s.val[i] = make([]float32, c.SeqLen*c.KVDim())
	}
	c.RoPEFreqs(s.freq)
	return s
}

// Forward runs blocks s.Lo()..s.Hi()-1 on the residual-stream activation x
// (len Dim) at position pos, in place, and writes each block's key and
// value for pos into s. Positions 0..pos-1 must have been run on s before
// (their cached keys and values are attended to). It does not allocate.
// It panics if x has the wrong length, pos is outside [0, SeqLen), or s was
// made for a different configuration.
func (m *Model) Forward(s *State, x []float32, pos int) {
	c := m.Config
	if s.cfg != c {
		panic("model: Forward with a State made for a different config")
	}
	if len(x) != c.Dim {
		panic(fmt.Sprintf("model: Forward activation length %d, want dim %d", len(x), c.Dim))
	}
	if pos < 0 || pos >= c.SeqLen {
		panic(fmt.Sprintf("model: Forward position %d outside [0,%d)", pos, c.SeqLen))
	}
	tensor.RoPEAngles(s.cos, s.sin, s.freq, pos)
	for l := s.lo; l < s.hi; l++ {
		m.block(s, m.Blocks[l], l-s.lo, x, pos)
	}
}

// block is one transformer block, as llama2.c run.c's forward loop body.
func (m *Model) block(s *State, b *Block, li int, x []float32, pos int) {
	c := m.Config
	dim, kvDim, hid, hs := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()
	kvMul := c.NHeads / c.NKVHeads
	keys, vals := s.key[li], s.val[li]
	qb := quantOf(b)
	k := keys[pos*kvDim : (pos+1)*kvDim]
	v := vals[pos*kvDim : (pos+1)*kvDim]

	// Attention.
	tensor.RMSNorm(s.xb, x, b.AttNorm, c.NormEps)
	matVec(s.q, b.Wq, qb.Wq, s.xb, dim, dim)
	matVec(k, b.Wk, qb.Wk, s.xb, kvDim, dim)
	matVec(v, b.Wv, qb.Wv, s.xb, kvDim, dim)
	if b.Bq != nil {
		tensor.Add(s.q, b.Bq)
		tensor.Add(k, b.Bk)
		tensor.Add(v, b.Bv)
	}
	tensor.RoPE(s.q, s.cos, s.sin)
	tensor.RoPE(k, s.cos, s.sin)

	att := s.att[:pos+1]
	for h := range c.NHeads {
		q := s.q[h*hs : (h+1)*hs]
		off := (h / kvMul) * hs
		scores(att, q, keys, kvDim, off, s.sqrtHS)
		tensor.Softmax(att)
		weightedSum(s.xb[h*hs:(h+1)*hs], att, vals, kvDim, off)
	}
	matVec(s.xb2, b.Wo, qb.Wo, s.xb, dim, dim)
	tensor.Add(x, s.xb2)

	// Feed-forward (SwiGLU).
	tensor.RMSNorm(s.xb, x, b.FFNNorm, c.NormEps)
	matVec(s.hb, b.W1, qb.W1, s.xb, hid, dim)
	matVec(s.hb2, b.W3, qb.W3, s.xb, hid, dim)
	tensor.SiLUMul(s.hb, s.hb2)
	matVec(s.xb, b.W2, qb.W2, s.hb, dim, hid)
	tensor.Add(x, s.xb)
}

// Embed copies the embedding row of token tok into x (len Dim). It panics
// if the head is not loaded or tok is outside [0, VocabSize): callers
// validate tokens from peers first.
func (m *Model) Embed(tok int, x []float32) {
	c := m.Config
	if tok < 0 || tok >= c.VocabSize {
		panic(fmt.Sprintf("model: Embed token %d outside [0,%d)", tok, c.VocabSize))
	}
	if len(x) != c.Dim {
		panic(fmt.Sprintf("model: Embed activation length %d, want dim %d", len(x), c.Dim))
	}
	copy(x, m.Head.Embedding[tok*c.Dim:(tok+1)*c.Dim])
}

// Logits applies the final RMSNorm to x in place, then the classifier
// (the embedding table when SharedClassifier), writing VocabSize values to
// logits. It panics if the head is not loaded or a length is wrong.
func (m *Model) Logits(x []float32, logits []float32) {
	c := m.Config
	tensor.RMSNorm(x, x, m.Head.FinalNorm, c.NormEps)
	cls := m.Head.Classifier
	if c.SharedClassifier {
		cls = m.Head.Embedding
	}
	tensor.MatVec(logits, cls, x, c.VocabSize, c.Dim)
}

// Step runs a whole forward pass for one token at pos: Embed, Forward over
// every block, Logits. s must span [0, NLayers). The activation lives in
// the State, so Step does not allocate.
func (m *Model) Step(s *State, tok, pos int, logits []float32) {
	if s.lo != 0 || s.hi != m.Config.NLayers {
		panic(fmt.Sprintf("model: Step needs a State for [0,%d), got [%d,%d)", m.Config.NLayers, s.lo, s.hi))
	}
	x := s.x
	m.Embed(tok, x)
	m.Forward(s, x, pos)
	m.Logits(x, logits)
}

// ParamCount returns the number of weights of the full model (the shared
// classifier counted once).
func (m *Model) ParamCount() int {
	c := m.Config
	d, kv, hid := c.Dim, c.KVDim(), c.HiddenDim
	n := c.VocabSize*d + d + c.NLayers*(2*d+2*d*d+2*kv*d+3*hid*d)
	if c.QKVBias {
		n += c.NLayers * (d + 2*kv)
	}
	if !c.SharedClassifier {
		n += c.VocabSize * d
	}
	return n
}

// scores sets att[t] = (q · k_t) / sqrtHS for every cached position t,
// where k_t = keys[t*kvDim+off:][:len(q)]. Each dot product is summed
// sequentially as run.c does; four positions are interleaved only to give
// the CPU independent dependency chains.
func scores(att, q, keys []float32, kvDim, off int, sqrtHS float32) {
	hs := len(q)
	t := 0
	for ; t+4 <= len(att); t += 4 {
		k0 := keys[t*kvDim+off:][:hs]
		k1 := keys[(t+1)*kvDim+off:][:hs]
		k2 := keys[(t+2)*kvDim+off:][:hs]
		k3 := keys[(t+3)*kvDim+off:][:hs]
		var s0, s1, s2, s3 float32
		for i, qi := range q {
			s0 += float32(qi * k0[i])
			s1 += float32(qi * k1[i])
			s2 += float32(qi * k2[i])
			s3 += float32(qi * k3[i])
		}
		a := att[t : t+4 : t+4]
		a[0], a[1], a[2], a[3] = s0/sqrtHS, s1/sqrtHS, s2/sqrtHS, s3/sqrtHS
	}
	for ; t < len(att); t++ {
		kt := keys[t*kvDim+off:][:hs]
		var sc float32
		for i, qi := range q {
			sc += float32(qi * kt[i])
		}
		att[t] = sc / sqrtHS
	}
}

// weightedSum sets out[i] = Σ_t att[t]·v_t[i], v_t = vals[t*kvDim+off:],
// summing over t in order from zero as run.c does. Eight lanes are kept in
// registers across the t loop.
func weightedSum(out, att, vals []float32, kvDim, off int) {
	hs := len(out)
	i0 := 0
	for ; i0+8 <= hs; i0 += 8 {
		var a0, a1, a2, a3, a4, a5, a6, a7 float32
		for t, a := range att {
			v := vals[t*kvDim+off+i0:][:8]
			a0 += float32(a * v[0])
			a1 += float32(a * v[1])
			a2 += float32(a * v[2])
			a3 += float32(a * v[3])
			a4 += float32(a * v[4])
			a5 += float32(a * v[5])
			a6 += float32(a * v[6])
			a7 += float32(a * v[7])
		}
		o := out[i0 : i0+8 : i0+8]
		o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7] = a0, a1, a2, a3, a4, a5, a6, a7
	}
	for i := i0; i < hs; i++ {
		var acc float32
		for t, a := range att {
			acc += float32(a * vals[t*kvDim+off+i])
		}
		out[i] = acc
	}
}
