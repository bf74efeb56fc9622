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
}

// HeadSize is the width of one attention head.
func (c Config) HeadSize() int { return c.Dim / c.NHeads }

// KVDim is the width of the key (and value) projection.
func (c Config) KVDim() int { return c.Dim * c.NKVHeads / c.NHeads }

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
	return nil
}
