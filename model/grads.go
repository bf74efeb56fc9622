package model

import (
	"fmt"
	"strconv"
)

// Grads holds gradients with the same shapes as the weights they belong
// to, reusing Block and Head as containers. Blocks[i] is nil for a block
// that is not trained (outside the span, or frozen); Head is nil when the
// head is not trained. With Config.SharedClassifier, Head.Classifier is nil
// and the classifier's gradient is added to Head.Embedding.
//
// The backward passes (LossAndGrad, BackwardSpan) add into a Grads, so
// gradients of several sequences accumulate until Zero.
type Grads struct {
	Head   *Head
	Blocks []*Block // len == Config.NLayers
}

// NewGrads returns zeroed gradients for blocks [lo, hi) and, if head, for
// the head. lo == hi gives no block gradients. It panics if the span is
// outside [0, NLayers].
func NewGrads(m *Model, lo, hi int, head bool) *Grads {
	c := m.Config
	if lo < 0 || hi > c.NLayers || lo > hi {
		panic(fmt.Sprintf("model: NewGrads span [%d,%d) outside [0,%d]", lo, hi, c.NLayers))
	}
	d, kv, hid := c.Dim, c.KVDim(), c.HiddenDim
	g := &Grads{Blocks: make([]*Block, c.NLayers)}
	for l := lo; l < hi; l++ {
		g.Blocks[l] = &Block{
			AttNorm: make([]float32, d), Wq: make([]float32, d*d), Wk: make([]float32, kv*d),
			Wv: make([]float32, kv*d), Wo: make([]float32, d*d), FFNNorm: make([]float32, d),
			W1: make([]float32, hid*d), W2: make([]float32, d*hid), W3: make([]float32, hid*d),
		}
		if c.QKVBias {
			g.Blocks[l].Bq, g.Blocks[l].Bk, g.Blocks[l].Bv = make([]float32, d), make([]float32, kv), make([]float32, kv)
		}
	}
	if head {
		g.Head = &Head{Embedding: make([]float32, c.VocabSize*d), FinalNorm: make([]float32, d)}
		if !c.SharedClassifier {
			g.Head.Classifier = make([]float32, c.VocabSize*d)
		}
	}
	return g
}

// Zero sets every gradient to zero.
func (g *Grads) Zero() {
	for _, b := range g.Blocks {
		if b != nil {
			for _, s := range b.slices() {
				clear(s)
			}
			clear(b.Bq)
			clear(b.Bk)
			clear(b.Bv)
		}
	}
	if g.Head != nil {
		clear(g.Head.Embedding)
		clear(g.Head.FinalNorm)
		clear(g.Head.Classifier)
	}
}

// slices returns b's tensors in Block.Tensors order.
func (b *Block) slices() [9][]float32 {
	return [9][]float32{b.AttNorm, b.Wq, b.Wk, b.Wv, b.Wo, b.FFNNorm, b.W1, b.W2, b.W3}
}

// blockTensorNames is Block.Tensors' order of names.
var blockTensorNames = [9]string{TensorAttNorm, TensorWq, TensorWk, TensorWv, TensorWo, TensorFFNNorm, TensorW1, TensorW2, TensorW3}

// Param pairs a trainable weight tensor W with its gradient G (same
// length). Name is "blocks.<i>.<tensor>" or "head.<tensor>" with the
// tensor names of Block.Tensors and Head.Tensors.
type Param struct {
	Name string
	W, G []float32
}

// Params pairs every tensor that g holds a gradient for with m's weights,
// in a fixed order: blocks in increasing index (each in Block.Tensors
// order, biases last when Config.QKVBias), then head.embedding, head.final_norm and, unless shared,
// head.classifier. Optimizers update W in place from G. It panics if g
// holds a gradient for a block or head that m has not loaded, or if g was
// made for another configuration.
func (m *Model) Params(g *Grads) []Param {
	if len(g.Blocks) != m.Config.NLayers {
		panic(fmt.Sprintf("model: Params with %d gradient blocks for n_layers %d", len(g.Blocks), m.Config.NLayers))
	}
	var ps []Param
	add := func(name string, w, gr []float32) {
		if len(w) != len(gr) {
			panic(fmt.Sprintf("model: Params %s: weight length %d, gradient length %d", name, len(w), len(gr)))
		}
		ps = append(ps, Param{Name: name, W: w, G: gr})
	}
	for l, gb := range g.Blocks {
		if gb == nil {
			continue
		}
		b := m.Blocks[l]
		if b == nil {
			panic(fmt.Sprintf("model: Params: gradient for block %d, which is not loaded", l))
		}
		ws, gs := b.slices(), gb.slices()
		prefix := "blocks." + strconv.Itoa(l) + "."
		for i, name := range blockTensorNames {
			add(prefix+name, ws[i], gs[i])
		}
		if m.Config.QKVBias {
			add(prefix+TensorBq, b.Bq, gb.Bq)
			add(prefix+TensorBk, b.Bk, gb.Bk)
			add(prefix+TensorBv, b.Bv, gb.Bv)
		}
	}
	if g.Head != nil {
		if m.Head == nil {
			panic("model: Params: head gradient for a model without its head")
		}
		add("head."+TensorEmbedding, m.Head.Embedding, g.Head.Embedding)
		add("head."+TensorFinalNorm, m.Head.FinalNorm, g.Head.FinalNorm)
		if !m.Config.SharedClassifier {
			add("head."+TensorClassifier, m.Head.Classifier, g.Head.Classifier)
		}
	}
	return ps
}
