package model

import (
	"errors"
	"fmt"

	"github.com/strata-mesh/strata/tensor"
)

// ErrQuantized: a model with quantized blocks was given to an operation
// that needs float32 weights (training, gradients).
var ErrQuantized = errors.New("model: quantized weights")

// QuantBlock holds the seven matrices of a block in one quantized format
// (tensor.Q8_0 or tensor.Q4_0). The norms of a quantized block stay
// float32 in the Block.
type QuantBlock struct {
	Format                     tensor.QFormat
	Wq, Wk, Wv, Wo, W1, W2, W3 *tensor.QMatrix
}

// QTensor is a named quantized matrix, as a shard carries it.
type QTensor struct {
	Name   string
	Matrix *tensor.QMatrix
}

// Format returns the format of b's matrices: tensor.Q8_0 or tensor.Q4_0
// for a quantized block, 0 (float32) otherwise.
func (b *Block) Format() tensor.QFormat {
	if b.Quant == nil {
		return 0
	}
	return b.Quant.Format
}

// Bytes returns the memory b's weights take.
func (b *Block) Bytes() int64 {
	n := 4 * int64(len(b.AttNorm)+len(b.FFNNorm)+len(b.Wq)+len(b.Wk)+len(b.Wv)+len(b.Wo)+len(b.W1)+len(b.W2)+len(b.W3)+
		len(b.Bq)+len(b.Bk)+len(b.Bv))
	if q := b.Quant; q != nil {
		for _, m := range q.matrices() {
			n += int64(len(m.Data))
		}
	}
	return n
}

func (q *QuantBlock) matrices() [7]*tensor.QMatrix {
	return [7]*tensor.QMatrix{q.Wq, q.Wk, q.Wv, q.Wo, q.W1, q.W2, q.W3}
}

// Quantize returns b with its seven matrices in format f (see
// tensor.Quantize); the norms are shared with b, the float32 matrices are
// dropped. It returns an error wrapping ErrFormat if b is already
// quantized, a matrix has the wrong size for cfg, or a weight does not fit
// the format.
func (b *Block) Quantize(cfg Config, f tensor.QFormat) (*Block, error) {
	if f.BlockBytes() == 0 {
		return nil, fmt.Errorf("%w: unknown quantized format %s", ErrFormat, f)
	}
	if b.Quant != nil {
		return nil, fmt.Errorf("%w: block is already %s", ErrFormat, b.Quant.Format)
	}
	ts := b.Tensors(cfg)
	out := &Block{AttNorm: b.AttNorm, FFNNorm: b.FFNNorm, Bq: b.Bq, Bk: b.Bk, Bv: b.Bv, Quant: &QuantBlock{Format: f}}
	dst := out.Quant.dst()
	for i, t := range ts[1:9] {
		if t.Name == TensorFFNNorm {
			continue
		}
		rows, cols := t.Shape[0], t.Shape[1]
		if len(t.Data) != rows*cols {
			return nil, fmt.Errorf("%w: tensor %q has %d values, want %d×%d", ErrFormat, t.Name, len(t.Data), rows, cols)
		}
		q, err := tensor.Quantize(f, t.Data, rows, cols)
		if err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %w", ErrFormat, t.Name, err)
		}
		*dst[matIndex(i+1)] = q
	}
	return out, nil
}

// dst returns pointers to the matrices in Block.Tensors order (the names
// matIndex maps).
func (q *QuantBlock) dst() [7]**tensor.QMatrix {
	return [7]**tensor.QMatrix{&q.Wq, &q.Wk, &q.Wv, &q.Wo, &q.W1, &q.W2, &q.W3}
}

// matIndex maps a position in Block.Tensors (1..8 without 5, the norm) to
// the index of that matrix in QuantBlock.dst.
func matIndex(i int) int {
	if i > 5 {
		return i - 2
	}
	return i - 1
}

// Dequantize returns a float32 block with the values the quantized
// matrices represent (b itself when it is not quantized).
func (b *Block) Dequantize() *Block {
	q := b.Quant
	if q == nil {
		return b
	}
	deq := func(m *tensor.QMatrix) []float32 {
		v := make([]float32, m.Rows*m.Cols)
		m.Dequantize(v)
		return v
	}
	return &Block{AttNorm: b.AttNorm, FFNNorm: b.FFNNorm, Bq: b.Bq, Bk: b.Bk, Bv: b.Bv,
		Wq: deq(q.Wq), Wk: deq(q.Wk), Wv: deq(q.Wv), Wo: deq(q.Wo), W1: deq(q.W1), W2: deq(q.W2), W3: deq(q.W3)}
}

// QuantTensors returns a quantized block's float32 vectors (attn_norm,
// ffn_norm, then bq, bk, bv when cfg.QKVBias, as in Block.Tensors) and its
// matrices by their Block.Tensors names (wq, wk, wv, wo, w1, w2, w3). It
// returns nil, nil for a float32 block.
func (b *Block) QuantTensors(cfg Config) (norms []Tensor, mats []QTensor) {
	q := b.Quant
	if q == nil {
		return nil, nil
	}
	d := cfg.Dim
	norms = []Tensor{{TensorAttNorm, []int{d}, b.AttNorm}, {TensorFFNNorm, []int{d}, b.FFNNorm}}
	if cfg.QKVBias {
		kv := cfg.KVDim()
		norms = append(norms, Tensor{TensorBq, []int{d}, b.Bq}, Tensor{TensorBk, []int{kv}, b.Bk}, Tensor{TensorBv, []int{kv}, b.Bv})
	}
	mats = []QTensor{{TensorWq, q.Wq}, {TensorWk, q.Wk}, {TensorWv, q.Wv}, {TensorWo, q.Wo},
		{TensorW1, q.W1}, {TensorW2, q.W2}, {TensorW3, q.W3}}
	return norms, mats
}

// BlockFromQuantTensors builds a quantized Block from its float32 vectors
// (two norms, and the three biases when cfg.QKVBias) and seven quantized
// matrices, in any order: each name of
// Block.Tensors exactly once, norms as BlockFromTensors checks them,
// matrices all in one format with the rows and columns of cfg's shapes
// and passing tensor.QMatrix.Validate. The Block aliases the inputs.
// Errors wrap ErrFormat (ErrConfig for an invalid cfg).
func BlockFromQuantTensors(cfg Config, norms []Tensor, mats []QTensor) (*Block, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Block{Quant: &QuantBlock{}}
	want := b.Tensors(cfg)
	vecs, dstv := []Tensor{want[0], want[5]}, []*[]float32{&b.AttNorm, &b.FFNNorm}
	if cfg.QKVBias {
		vecs, dstv = append(vecs, want[9:]...), append(dstv, &b.Bq, &b.Bk, &b.Bv)
	}
	if err := assign("block", vecs, dstv, norms); err != nil {
		return nil, err
	}
	if len(mats) != 7 {
		return nil, fmt.Errorf("%w: block has %d quantized matrices, want 7", ErrFormat, len(mats))
	}
	dst := b.Quant.dst()
	for _, t := range mats {
		i := -1
		for k, w := range want {
			if w.Name == t.Name && k != 0 && k != 5 && k < 9 {
				i = k
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%w: block has unknown quantized tensor %.64q", ErrFormat, t.Name)
		}
		p := dst[matIndex(i)]
		if *p != nil {
			return nil, fmt.Errorf("%w: block has tensor %q twice", ErrFormat, t.Name)
		}
		m := t.Matrix
		if m == nil {
			return nil, fmt.Errorf("%w: block tensor %q is nil", ErrFormat, t.Name)
		}
		if b.Quant.Format == 0 {
			b.Quant.Format = m.Format
		}
		if m.Format != b.Quant.Format {
			return nil, fmt.Errorf("%w: block tensor %q is %s, others are %s", ErrFormat, t.Name, m.Format, b.Quant.Format)
		}
		if sh := want[i].Shape; m.Rows != sh[0] || m.Cols != sh[1] {
			return nil, fmt.Errorf("%w: block tensor %q has shape [%d %d], want %v", ErrFormat, t.Name, m.Rows, m.Cols, sh)
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("%w: block tensor %q: %w", ErrFormat, t.Name, err)
		}
		*p = m
	}
	return b, nil
}

// Quantize returns a model whose loaded blocks have their matrices in
// format f (Block.Quantize); the head stays float32 and is shared with m.
func (m *Model) Quantize(f tensor.QFormat) (*Model, error) {
	out := &Model{Config: m.Config, Head: m.Head, Blocks: make([]*Block, len(m.Blocks))}
	for i, b := range m.Blocks {
		if b == nil {
			continue
		}
		q, err := b.Quantize(m.Config, f)
		if err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
		out.Blocks[i] = q
	}
	return out, nil
}

// CheckTrainable returns an error wrapping ErrQuantized if a loaded block
// of [lo, hi) is quantized: training needs float32 weights.
func (m *Model) CheckTrainable(lo, hi int) error {
	for i := max(lo, 0); i < min(hi, len(m.Blocks)); i++ {
		if b := m.Blocks[i]; b != nil && b.Quant != nil {
			return fmt.Errorf("%w: block %d is %s; training needs float32 weights (train from the float32 version of the model)",
				ErrQuantized, i, b.Quant.Format)
		}
	}
	return nil
}

// quantOf returns b's quantized matrices, or the zero QuantBlock (all nil)
// for a float32 block.
func quantOf(b *Block) QuantBlock {
	if b.Quant == nil {
		return QuantBlock{}
	}
	return *b.Quant
}

// matVec applies a block matrix: the quantized one when q is set, else
// the float32 w.
func matVec(out, w []float32, q *tensor.QMatrix, x []float32, rows, cols int) {
	if q != nil {
		tensor.MatVecQ(out, q, x)
		return
	}
	tensor.MatVec(out, w, x, rows, cols)
}

// matMul is matVec for n vectors.
func matMul(out, w []float32, q *tensor.QMatrix, x []float32, rows, cols, n int) {
	if q != nil {
		tensor.MatMulQ(out, q, x, n)
		return
	}
	tensor.MatMul(out, w, x, rows, cols, n)
}
