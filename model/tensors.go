package model

import (
	"fmt"
	"math"
	"slices"
)

// Tensor names of a block and of the head. They are part of the shard
// format: do not rename.
const (
	TensorAttNorm    = "attn_norm"
	TensorWq         = "wq"
	TensorWk         = "wk"
	TensorWv         = "wv"
	TensorWo         = "wo"
	TensorFFNNorm    = "ffn_norm"
	TensorW1         = "w1"
	TensorW2         = "w2"
	TensorW3         = "w3"
	TensorBq         = "bq"
	TensorBk         = "bk"
	TensorBv         = "bv"
	TensorEmbedding  = "embedding"
	TensorFinalNorm  = "final_norm"
	TensorClassifier = "classifier"
)

// Tensors returns b's weights as named tensors in the fixed order attn_norm,
// wq, wk, wv, wo, ffn_norm, w1, w2, w3, then bq, bk, bv when cfg.QKVBias,
// with shapes from cfg ([dim] for norms, [out, in] for matrices, [out] for
// biases). Data aliases b's slices (no copy). A model without biases has
// exactly the nine tensors it always had, so its shards keep their CIDs.
func (b *Block) Tensors(cfg Config) []Tensor {
	d, kv, hid := cfg.Dim, cfg.KVDim(), cfg.HiddenDim
	ts := []Tensor{
		{TensorAttNorm, []int{d}, b.AttNorm},
		{TensorWq, []int{d, d}, b.Wq},
		{TensorWk, []int{kv, d}, b.Wk},
		{TensorWv, []int{kv, d}, b.Wv},
		{TensorWo, []int{d, d}, b.Wo},
		{TensorFFNNorm, []int{d}, b.FFNNorm},
		{TensorW1, []int{hid, d}, b.W1},
		{TensorW2, []int{d, hid}, b.W2},
		{TensorW3, []int{hid, d}, b.W3},
	}
	if cfg.QKVBias {
		ts = append(ts, Tensor{TensorBq, []int{d}, b.Bq}, Tensor{TensorBk, []int{kv}, b.Bk}, Tensor{TensorBv, []int{kv}, b.Bv})
	}
	return ts
}

// BlockFromTensors builds a Block from named tensors, in any order. Each
// name of Block.Tensors must appear exactly once with exactly the shape
// Block.Tensors gives and len(Data) equal to that shape's product; no other
// name may appear; every value must be finite. The Block aliases the
// tensors' Data slices (capacity is clipped, so appending to a Block field
// cannot write into a neighbouring tensor): do not modify them afterwards.
// Errors wrap ErrFormat (ErrConfig for an invalid cfg).
func BlockFromTensors(cfg Config, ts []Tensor) (*Block, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Block{}
	want := b.Tensors(cfg)
	dst := []*[]float32{&b.AttNorm, &b.Wq, &b.Wk, &b.Wv, &b.Wo, &b.FFNNorm, &b.W1, &b.W2, &b.W3}
	if cfg.QKVBias {
		dst = append(dst, &b.Bq, &b.Bk, &b.Bv)
	}
	if err := assign("block", want, dst, ts); err != nil {
		return nil, err
	}
	return b, nil
}

// Tensors returns h's weights as named tensors: embedding [vocab, dim],
// final_norm [dim], and classifier [vocab, dim] only when cfg does not share
// it. Data aliases h's slices.
func (h *Head) Tensors(cfg Config) []Tensor {
	ts := []Tensor{
		{TensorEmbedding, []int{cfg.VocabSize, cfg.Dim}, h.Embedding},
		{TensorFinalNorm, []int{cfg.Dim}, h.FinalNorm},
	}
	if !cfg.SharedClassifier {
		ts = append(ts, Tensor{TensorClassifier, []int{cfg.VocabSize, cfg.Dim}, h.Classifier})
	}
	return ts
}

// HeadFromTensors is BlockFromTensors for the head: embedding, final_norm
// and, exactly when cfg.SharedClassifier is false, classifier.
func HeadFromTensors(cfg Config, ts []Tensor) (*Head, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Head{}
	want := h.Tensors(cfg)
	dst := []*[]float32{&h.Embedding, &h.FinalNorm}
	if !cfg.SharedClassifier {
		dst = append(dst, &h.Classifier)
	}
	if err := assign("head", want, dst, ts); err != nil {
		return nil, err
	}
	return h, nil
}

// assign matches ts against the wanted names and shapes and stores each
// tensor's Data into the corresponding dst.
func assign(what string, want []Tensor, dst []*[]float32, ts []Tensor) error {
	if len(ts) != len(want) {
		return fmt.Errorf("%w: %s has %d tensors, want %d", ErrFormat, what, len(ts), len(want))
	}
	seen := make([]bool, len(want))
	for _, t := range ts {
		k := slices.IndexFunc(want, func(w Tensor) bool { return w.Name == t.Name })
		if k < 0 {
			return fmt.Errorf("%w: %s has unknown tensor %q", ErrFormat, what, t.Name)
		}
		if seen[k] {
			return fmt.Errorf("%w: %s has tensor %q twice", ErrFormat, what, t.Name)
		}
		seen[k] = true
		if !slices.Equal(t.Shape, want[k].Shape) {
			return fmt.Errorf("%w: %s tensor %q has shape %v, want %v", ErrFormat, what, t.Name, t.Shape, want[k].Shape)
		}
		n := 1
		for _, s := range want[k].Shape {
			n *= s
		}
		if len(t.Data) != n {
			return fmt.Errorf("%w: %s tensor %q has %d values, shape %v needs %d", ErrFormat, what, t.Name, len(t.Data), t.Shape, n)
		}
		for i, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: %s tensor %q has non-finite value %v at index %d", ErrFormat, what, t.Name, v, i)
			}
		}
		*dst[k] = t.Data[:n:n]
	}
	return nil
}
