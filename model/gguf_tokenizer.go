package model

import (
	"fmt"
	"math"
	"strings"
)

// GGUF token types (tokenizer.ggml.token_type).
const (
	ggufTokByte = 6
)

// tokenizer builds a llama2.c Tokenizer from a GGUF "llama" vocabulary
// (tokenizer.ggml.model = "llama"): tokens, scores, optional token_type,
// bos and eos ids (which must be 1 and 2, llama2.c's fixed ids).
//
// Pieces are mapped to llama2.c's representation, so Encode and Decode
// behave as run.c with the tokenizer the GGUF was converted from:
// SentencePiece's "▁" (U+2581) becomes a space, and the control tokens
// "<s>" and "</s>" at the bos and eos ids become llama2.c's "\n<s>\n" and
// "\n</s>\n". Byte tokens "<0xHH>" are kept as they are (llama2.c uses the
// same form) and must sit at ids 3+HH, where Encode's byte fallback
// expects them. max_token_length is the longest mapped piece.
func (f *ggufFile) tokenizer() (*Tokenizer, error) {
	model := f.kv["tokenizer.ggml.model"]
	if model.typ != ggufString || model.s != "llama" {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.model is %s %q; only \"llama\" (SentencePiece) is supported",
			ErrUnsupported, model.typeName(), model.s)
	}
	tv, ok := f.kv["tokenizer.ggml.tokens"]
	if !ok || tv.typ != ggufArray || tv.elem != ggufString {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.tokens is missing or not an array of strings", ErrTokenizer)
	}
	n := len(tv.strs)
	if n < MinTokenizerVocab || n > MaxVocab {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.tokens has %d tokens, want %d..%d",
			ErrTokenizer, n, MinTokenizerVocab, MaxVocab)
	}
	sv, ok := f.kv["tokenizer.ggml.scores"]
	if !ok || sv.typ != ggufArray || (sv.elem != ggufFloat32 && sv.elem != ggufFloat64) || len(sv.nums) != n {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.scores must be an array of %d floats", ErrTokenizer, n)
	}
	var types []float64
	if ty, ok := f.kv["tokenizer.ggml.token_type"]; ok {
		if ty.typ != ggufArray || ty.elem == ggufString || len(ty.nums) != n {
			return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.token_type must be an array of %d integers", ErrTokenizer, n)
		}
		types = ty.nums
	}
	for _, sp := range []struct {
		key  string
		want int
	}{{"tokenizer.ggml.bos_token_id", BOS}, {"tokenizer.ggml.eos_token_id", EOS}} {
		v, ok := f.kv[sp.key]
		if !ok {
			continue
		}
		if v.typ != ggufUint32 && v.typ != ggufInt32 || v.i != int64(sp.want) {
			return nil, fmt.Errorf("%w: GGUF %s is %s %d; llama2.c-style tokenizers need %d",
				ErrUnsupported, sp.key, v.typeName(), v.i, sp.want)
		}
	}
	pieces := make([]string, n)
	scores := make([]float32, n)
	maxLen := 1
	for i, p := range tv.strs {
		s := sv.nums[i]
		if math.IsNaN(s) {
			return nil, fmt.Errorf("%w: GGUF token %d has a NaN score", ErrTokenizer, i)
		}
		scores[i] = float32(s)
		switch {
		case i == BOS && p == "<s>":
			p = "\n<s>\n"
		case i == EOS && p == "</s>":
			p = "\n</s>\n"
		default:
			p = strings.ReplaceAll(p, "\u2581", " ")
		}
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("%w: GGUF token %d contains a NUL byte", ErrTokenizer, i)
		}
		if len(p) > MaxTokenLength {
			return nil, fmt.Errorf("%w: GGUF token %d is %d bytes long, limit %d", ErrTokenizer, i, len(p), MaxTokenLength)
		}
		if i >= 3 && i < 3+256 {
			if b, ok := parseBytePiece(p); !ok || int(b) != i-3 || len(p) != len("<0x00>") {
				return nil, fmt.Errorf("%w: GGUF token %d is %q, want the byte token <0x%02X> (ids 3..258 are byte fallbacks)",
					ErrTokenizer, i, p, i-3)
			}
			if types != nil && types[i] != ggufTokByte {
				return nil, fmt.Errorf("%w: GGUF token %d (%s) has token_type %g, want %d (byte)",
					ErrTokenizer, i, p, types[i], ggufTokByte)
			}
		}
		pieces[i] = p
		maxLen = max(maxLen, len(p))
	}
	return newTokenizer(pieces, scores, maxLen), nil
}
