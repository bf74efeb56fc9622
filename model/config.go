package model

import (
	"errors"
	"fmt"
)

// ErrConfig is returned (wrapped) when a model configuration is invalid.
var ErrConfig = errors.New("model: invalid config")

// Limits on a configuration read from a file or a peer. They bound every
// allocation a hostile header could otherwise ask for.
const (
	MaxDim    = 1 << 16
	MaxHidden = 1 << 18
	MaxLayers = 1 << 10
	MaxHeads  = 1 << 10
	MaxVocab  = 1 << 20
	MaxSeqLen = 1 << 20
)

// Config is the architecture of a Llama-family transformer.
// The JSON names are part of the manifest format; do not rename them.
type Config struct {
	Dim       int `json:"dim"`        // residual stream width
	HiddenDim int `json:"hidden_dim"` // FFN inner width
	NLayers   int `json:"n_layers"`   // number of transformer blocks
	NHeads    int `json:"n_heads"`    // query heads
	NKVHeads  int `json:"n_kv_heads"` // key/value heads (grouped-query attention)
	VocabSize int `json:"vocab_size"`
	SeqLen    int `json:"seq_len"` // maximum context length
	// SharedClassifier is true when the classifier reuses the token
	// embedding table (llama2.c: positive vocab_size in the header).
	SharedClassifier bool    `json:"shared_classifier"`
	NormEps          float32 `json:"norm_eps"`   // RMSNorm epsilon, 1e-5 for llama2.c
	RopeTheta        float32 `json:"rope_theta"` // RoPE base, 10000 for llama2.c
	// QKVBias: every block adds biases bq, bk, bv to its query, key and
	// value projections (Qwen2). Left out of the JSON when false, so the
	// manifests of models without biases are unchanged.
	QKVBias bool `json:"qkv_bias,omitempty"`
	// RopeScaling rescales RoPE's frequencies (see RopeScaling); left out
	// of the JSON when zero.
	RopeScaling RopeScaling `json:"rope_scaling,omitzero"`
}

// RoPE scaling types.
const (
	// RopeLinear divides every frequency by Factor (position interpolation).
	RopeLinear = "linear"
	// RopeLlama3 is Llama 3.1's scaling: frequencies whose wavelength
	// exceeds OriginalMaxPos/LowFreqFactor are divided by Factor, those
	// below OriginalMaxPos/HighFreqFactor are kept, and those between are
	// interpolated smoothly.
	RopeLlama3 = "llama3"
)

// RopeScaling changes RoPE's frequencies for contexts longer than the
// model was first trained on. The zero value is plain RoPE. The JSON
// names are Hugging Face's rope_scaling fields.
type RopeScaling struct {
	Type           string  `json:"type"` // RopeLinear or RopeLlama3
	Factor         float32 `json:"factor"`
	LowFreqFactor  float32 `json:"low_freq_factor,omitempty"`
	HighFreqFactor float32 `json:"high_freq_factor,omitempty"`
	OriginalMaxPos int     `json:"original_max_position_embeddings,omitempty"`
}

// Validate reports whether r is plain RoPE or a scaling this package runs.
// Errors wrap ErrConfig and name the field.
func (r RopeScaling) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: rope_scaling "+format, append([]any{ErrConfig}, a...)...)
	}
	finite := func(v float32) bool { return v == v && v < 1e30 && v > -1e30 }
	switch r.Type {
	case "":
		if r != (RopeScaling{}) {
			return bad("has no type but sets factors %+v", r)
		}
	case RopeLinear:
		if !(finite(r.Factor) && r.Factor >= 1 && r.Factor <= 1024) {
			return bad("linear factor %g out of range [1, 1024]", r.Factor)
		}
		if r.LowFreqFactor != 0 || r.HighFreqFactor != 0 || r.OriginalMaxPos != 0 {
			return bad("linear sets llama3 fields %+v", r)
		}
	case RopeLlama3:
		switch {
		case !(finite(r.Factor) && r.Factor >= 1 && r.Factor <= 1024):
			return bad("llama3 factor %g out of range [1, 1024]", r.Factor)
		case !(finite(r.LowFreqFactor) && r.LowFreqFactor > 0):
			return bad("llama3 low_freq_factor %g, want > 0", r.LowFreqFactor)
		case !(finite(r.HighFreqFactor) && r.HighFreqFactor > r.LowFreqFactor):
			return bad("llama3 high_freq_factor %g, want > low_freq_factor %g", r.HighFreqFactor, r.LowFreqFactor)
		case r.OriginalMaxPos < 1 || r.OriginalMaxPos > MaxSeqLen:
			return bad("llama3 original_max_position_embeddings %d out of range [1, %d]", r.OriginalMaxPos, MaxSeqLen)
		}
	default:
		return bad("type %.40q is not supported (only %q and %q)", r.Type, RopeLinear, RopeLlama3)
	}
	return nil
}

// HeadSize is the width of one attention head.
func (c Config) HeadSize() int { return c.Dim / c.NHeads }

// KVDim is the width of the key (and value) projection.
func (c Config) KVDim() int { return c.Dim * c.NKVHeads / c.NHeads }

// CapContext returns c with its context length SeqLen lowered to n when
// 0 < n < SeqLen. No weight depends on SeqLen, only the KV cache
// (2·layers·SeqLen·KVDim floats) and the positions a model accepts, so
// the model runs unchanged up to n tokens and refuses longer contexts.
func (c Config) CapContext(n int) Config {
	if n > 0 && n < c.SeqLen {
		c.SeqLen = n
	}
	return c
}

// Validate reports whether c describes a model this package can run.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch {
	case c.Dim <= 0 || c.Dim > MaxDim:
		return bad("dim %d out of range (1..%d)", c.Dim, MaxDim)
	case c.HiddenDim <= 0 || c.HiddenDim > MaxHidden:
		return bad("hidden_dim %d out of range (1..%d)", c.HiddenDim, MaxHidden)
	case c.NLayers <= 0 || c.NLayers > MaxLayers:
		return bad("n_layers %d out of range (1..%d)", c.NLayers, MaxLayers)
	case c.NHeads <= 0 || c.NHeads > MaxHeads:
		return bad("n_heads %d out of range (1..%d)", c.NHeads, MaxHeads)
	case c.NKVHeads <= 0 || c.NKVHeads > c.NHeads:
		return bad("n_kv_heads %d out of range (1..n_heads=%d)", c.NKVHeads, c.NHeads)
	case c.Dim%c.NHeads != 0:
		return bad("dim %d not divisible by n_heads %d", c.Dim, c.NHeads)
	case c.NHeads%c.NKVHeads != 0:
		return bad("n_heads %d not divisible by n_kv_heads %d", c.NHeads, c.NKVHeads)
	case c.HeadSize()%2 != 0:
		return bad("head size %d is odd; RoPE needs pairs", c.HeadSize())
	case c.VocabSize <= 0 || c.VocabSize > MaxVocab:
		return bad("vocab_size %d out of range (1..%d)", c.VocabSize, MaxVocab)
	case c.SeqLen <= 0 || c.SeqLen > MaxSeqLen:
		return bad("seq_len %d out of range (1..%d)", c.SeqLen, MaxSeqLen)
	case !(c.NormEps > 0 && c.NormEps < 1):
		return bad("norm_eps %g out of range (0, 1)", c.NormEps)
	case !(c.RopeTheta >= 1 && c.RopeTheta < 1e9):
		return bad("rope_theta %g out of range [1, 1e9)", c.RopeTheta)
	}
	return c.RopeScaling.Validate()
}
