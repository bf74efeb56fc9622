package shards

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// Shard metadata keys and values.
const (
	MetaKind      = "strata.kind"      // "block" or "head"
	MetaIndex     = "strata.index"     // block index, decimal
	MetaTokenizer = "strata.tokenizer" // tokenizer format of a head shard
	MetaChat      = "strata.chat"      // chat format of a head shard's tokenizer, when it has one
	KindBlock     = "block"
	KindHead      = "head"
	// TokenizerLlama2C names the llama2.c tokenizer.bin byte format.
	TokenizerLlama2C = "llama2c"
	// TokenizerTensor is the U8 tensor of a head shard holding the tokenizer.
	TokenizerTensor = "tokenizer"
)

// EncodeBlock encodes block i of a model with config cfg as a shard: the
// block's tensors in model.Block.Tensors order (F32, or for a quantized
// block F32 norms and Q8_0 or Q4_0 matrices) and metadata
// {"strata.kind":"block","strata.index":"<i>"}. Equal blocks give equal bytes.
func EncodeBlock(cfg model.Config, i int, b *model.Block) ([]byte, error) {
	if err := checkIndex(cfg, i); err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("%w: block %d is nil", ErrShard, i)
	}
	var ts []Tensor
	var err error
	if b.Quant == nil {
		ts, err = toF32(b.Tensors(cfg))
	} else {
		ts, err = quantTensors(cfg, b)
	}
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", i, err)
	}
	return Encode(map[string]string{MetaKind: KindBlock, MetaIndex: strconv.Itoa(i)}, ts)
}

// quantTensors gives a quantized block's container tensors: the norms (and
// biases) as F32, the matrices in their quantized dtype with shape [rows,
// cols], in model.Block.Tensors order.
func quantTensors(cfg model.Config, b *model.Block) ([]Tensor, error) {
	norms, mats := b.QuantTensors(cfg)
	nt, err := toF32(norms)
	if err != nil {
		return nil, err
	}
	dt := QDType(b.Quant.Format)
	if dt == "" {
		return nil, fmt.Errorf("%w: unknown quantized format %s", ErrShard, b.Quant.Format)
	}
	ts := []Tensor{nt[0]}
	for k, q := range mats {
		m := q.Matrix
		if m == nil || m.Format != b.Quant.Format || len(m.Data) != m.Bytes() {
			return nil, fmt.Errorf("%w: quantized tensor %q is missing or malformed", ErrShard, q.Name)
		}
		ts = append(ts, Tensor{Name: q.Name, DType: dt, Shape: []int{m.Rows, m.Cols}, Data: m.Data})
		if k == 3 {
			ts = append(ts, nt[1]) // ffn_norm follows wo
		}
	}
	return append(ts, nt[2:]...), nil // the biases of a QKVBias model last
}

// DecodeBlock decodes the shard of block i. Besides the container checks it
// requires the block metadata for index i and exactly the tensors (names
// and shapes) of a block of cfg: either all F32 with finite values
// (model.BlockFromTensors), or F32 norms and the seven matrices in one
// quantized dtype, each a valid canonical matrix of its format
// (model.BlockFromQuantTensors).
func DecodeBlock(cfg model.Config, i int, data []byte) (*model.Block, error) {
	if err := checkIndex(cfg, i); err != nil {
		return nil, err
	}
	f, err := Decode(data)
	if err != nil {
		return nil, err
	}
	if k := f.Metadata[MetaKind]; k != KindBlock {
		return nil, fmt.Errorf("%w: kind %q, want %q", ErrShard, k, KindBlock)
	}
	if idx := f.Metadata[MetaIndex]; idx != strconv.Itoa(i) {
		return nil, fmt.Errorf("%w: shard is block %.20q, want block %d", ErrShard, idx, i)
	}
	var floats, quant []Tensor
	for _, t := range f.Tensors {
		if t.DType.QFormat() != 0 {
			quant = append(quant, t)
		} else {
			floats = append(floats, t)
		}
	}
	ts, err := fromF32(floats)
	if err != nil {
		return nil, fmt.Errorf("block %d: %w", i, err)
	}
	var b *model.Block
	if len(quant) == 0 {
		b, err = model.BlockFromTensors(cfg, ts)
	} else {
		qs := make([]model.QTensor, len(quant))
		for k, t := range quant {
			if len(t.Shape) != 2 {
				return nil, fmt.Errorf("%w: block %d: tensor %q is %s%v, want a matrix", ErrShard, i, t.Name, t.DType, t.Shape)
			}
			// Fresh memory, as for F32: the caller may reuse data.
			qs[k] = model.QTensor{Name: t.Name, Matrix: &tensor.QMatrix{
				Format: t.DType.QFormat(), Rows: t.Shape[0], Cols: t.Shape[1], Data: slices.Clone(t.Data)}}
		}
		b, err = model.BlockFromQuantTensors(cfg, ts, qs)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: block %d: %w", ErrShard, i, err)
	}
	return b, nil
}

// EncodeHead encodes the head shard: the head's F32 tensors, the tokenizer
// as a U8 tensor "tokenizer" in its format (tok.MarshalBinary), and metadata
// {"strata.kind":"head","strata.tokenizer":FORMAT}, FORMAT "llama2c" or, for
// a byte-level BPE tokenizer, "bpe" (model.Tokenizer.Format), plus
// "strata.chat" naming the tokenizer's chat format when it has one.
func EncodeHead(cfg model.Config, h *model.Head, tok *model.Tokenizer) ([]byte, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrShard, err)
	}
	if h == nil {
		return nil, fmt.Errorf("%w: head is nil", ErrShard)
	}
	if tok == nil {
		return nil, fmt.Errorf("%w: head shard needs a tokenizer", ErrTokenizer)
	}
	ts, err := toF32(h.Tensors(cfg))
	if err != nil {
		return nil, fmt.Errorf("head: %w", err)
	}
	tb, err := tok.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("%w: tokenizer: %w", ErrShard, err)
	}
	ts = append(ts, Tensor{Name: TokenizerTensor, DType: U8, Shape: []int{len(tb)}, Data: tb})
	meta := map[string]string{MetaKind: KindHead, MetaTokenizer: tok.Format()}
	if c := tok.Chat(); c != "" {
		meta[MetaChat] = c
	}
	return Encode(meta, ts)
}

// DecodeHead decodes a head shard into the head weights and the tokenizer.
func DecodeHead(cfg model.Config, data []byte) (*model.Head, *model.Tokenizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrShard, err)
	}
	f, err := Decode(data)
	if err != nil {
		return nil, nil, err
	}
	if k := f.Metadata[MetaKind]; k != KindHead {
		return nil, nil, fmt.Errorf("%w: kind %q, want %q", ErrShard, k, KindHead)
	}
	tf := f.Metadata[MetaTokenizer]
	if tf != TokenizerLlama2C && tf != model.TokenizerBPE {
		return nil, nil, fmt.Errorf("%w: tokenizer format %q, want %q or %q", ErrShard, tf, TokenizerLlama2C, model.TokenizerBPE)
	}
	var rest []Tensor
	var tokData []byte
	found := false
	for _, t := range f.Tensors {
		if t.Name != TokenizerTensor {
			rest = append(rest, t)
			continue
		}
		if t.DType != U8 || len(t.Shape) != 1 {
			return nil, nil, fmt.Errorf("%w: tokenizer tensor is %s%v, want U8 of rank 1", ErrShard, t.DType, t.Shape)
		}
		tokData, found = t.Data, true
	}
	if !found {
		return nil, nil, fmt.Errorf("%w: head shard has no %q tensor", ErrShard, TokenizerTensor)
	}
	tok, err := model.ReadTokenizerFormat(tf, tokData, cfg.VocabSize)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: tokenizer: %w", ErrShard, err)
	}
	if c, ok := f.Metadata[MetaChat]; ok {
		if c == "" {
			return nil, nil, fmt.Errorf("%w: empty chat format", ErrShard)
		}
		if err := tok.SetChat(c); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrShard, err)
		}
	}
	ts, err := fromF32(rest)
	if err != nil {
		return nil, nil, fmt.Errorf("head: %w", err)
	}
	h, err := model.HeadFromTensors(cfg, ts)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: head: %w", ErrShard, err)
	}
	return h, tok, nil
}

func checkIndex(cfg model.Config, i int) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrShard, err)
	}
	if i < 0 || i >= cfg.NLayers {
		return fmt.Errorf("%w: block index %d out of range (0..%d)", ErrShard, i, cfg.NLayers-1)
	}
	return nil
}

// toF32 converts model tensors to little-endian F32 container tensors.
func toF32(ts []model.Tensor) ([]Tensor, error) {
	out := make([]Tensor, len(ts))
	for i, t := range ts {
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return nil, fmt.Errorf("%w: tensor %q has %d values, shape %v needs %d", ErrShard, t.Name, len(t.Data), t.Shape, n)
		}
		b := make([]byte, 4*len(t.Data))
		for j, v := range t.Data {
			binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
		}
		out[i] = Tensor{Name: t.Name, DType: F32, Shape: slices.Clone(t.Shape), Data: b}
	}
	return out, nil
}

// fromF32 converts F32 container tensors to model tensors (fresh memory).
func fromF32(ts []Tensor) ([]model.Tensor, error) {
	out := make([]model.Tensor, len(ts))
	for i, t := range ts {
		if t.DType != F32 {
			return nil, fmt.Errorf("%w: tensor %q has dtype %s, want F32", ErrShard, t.Name, t.DType)
		}
		v := make([]float32, len(t.Data)/4)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*j:]))
		}
		out[i] = model.Tensor{Name: t.Name, Shape: slices.Clone(t.Shape), Data: v}
	}
	return out, nil
}
