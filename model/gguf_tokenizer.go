package model

import (
	"fmt"
	"math"
	"strings"
)

// GGUF token types (tokenizer.ggml.token_type).
const (
	ggufTokNormal      = 1
	ggufTokUnknown     = 2
	ggufTokControl     = 3
	ggufTokUserDefined = 4
	ggufTokUnused      = 5
	ggufTokByte        = 6
)

// tokenizer builds the Tokenizer of a GGUF vocabulary: tokenizer.ggml.model
// "llama" (SentencePiece, see llamaTokenizer) or "gpt2" (byte-level BPE,
// see bpeTokenizer).
func (f *ggufFile) tokenizer() (*Tokenizer, error) {
	model := f.kv["tokenizer.ggml.model"]
	if model.typ == ggufString && model.s == "gpt2" {
		tok, err := f.bpeTokenizer()
		if err != nil {
			return nil, err
		}
		// A chat template of a known family whose markers this vocabulary
		// has sets the chat format; any other template is left unused.
		if ct, ok := f.kv["tokenizer.chat_template"]; ok && ct.typ == ggufString {
			_ = tok.SetChat(DetectChat(ct.s))
		}
		return tok, nil
	}
	if model.typ != ggufString || model.s != "llama" {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.model is %s %q; only \"llama\" (SentencePiece) and \"gpt2\" (byte-level BPE) are supported",
			ErrUnsupported, model.typeName(), model.s)
	}
	return f.llamaTokenizer()
}

// tokens returns tokenizer.ggml.tokens and, when present, token_type.
func (f *ggufFile) tokens(min int) ([]string, []float64, error) {
	tv, ok := f.kv["tokenizer.ggml.tokens"]
	if !ok || tv.typ != ggufArray || tv.elem != ggufString {
		return nil, nil, fmt.Errorf("%w: GGUF tokenizer.ggml.tokens is missing or not an array of strings", ErrTokenizer)
	}
	n := len(tv.strs)
	if n < min || n > MaxVocab {
		return nil, nil, fmt.Errorf("%w: GGUF tokenizer.ggml.tokens has %d tokens, want %d..%d",
			ErrTokenizer, n, min, MaxVocab)
	}
	var types []float64
	if ty, ok := f.kv["tokenizer.ggml.token_type"]; ok {
		if ty.typ != ggufArray || ty.elem == ggufString || len(ty.nums) != n {
			return nil, nil, fmt.Errorf("%w: GGUF tokenizer.ggml.token_type must be an array of %d integers", ErrTokenizer, n)
		}
		types = ty.nums
	}
	return tv.strs, types, nil
}

// llamaTokenizer builds a llama2.c Tokenizer from a GGUF "llama"
// vocabulary: tokens, scores, optional token_type, bos and eos ids (which
// must be 1 and 2, llama2.c's fixed ids). See spTokenizer.
func (f *ggufFile) llamaTokenizer() (*Tokenizer, error) {
	tokens, types, err := f.tokens(MinTokenizerVocab)
	if err != nil {
		return nil, err
	}
	n := len(tokens)
	sv, ok := f.kv["tokenizer.ggml.scores"]
	if !ok || sv.typ != ggufArray || (sv.elem != ggufFloat32 && sv.elem != ggufFloat64) || len(sv.nums) != n {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.scores must be an array of %d floats", ErrTokenizer, n)
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
	return spTokenizer("GGUF", tokens, sv.nums, types)
}

// spTokenizer builds a llama2.c Tokenizer from a SentencePiece vocabulary
// (from a GGUF or a tokenizer.json, src names it in errors): tokens,
// scores and optional token types by id.
//
// Pieces are mapped to llama2.c's representation, so Encode and Decode
// behave as run.c with the tokenizer the vocabulary was converted from:
// SentencePiece's "▁" (U+2581) becomes a space, and the control tokens
// "<s>" and "</s>" at the bos and eos ids become llama2.c's "\n<s>\n" and
// "\n</s>\n". Byte tokens "<0xHH>" are kept as they are (llama2.c uses the
// same form) and must sit at ids 3+HH, where Encode's byte fallback
// expects them. max_token_length is the longest mapped piece.
func spTokenizer(src string, tokens []string, scores []float64, types []float64) (*Tokenizer, error) {
	n := len(tokens)
	if n < MinTokenizerVocab || n > MaxVocab {
		return nil, fmt.Errorf("%w: %s vocabulary has %d tokens, want %d..%d", ErrTokenizer, src, n, MinTokenizerVocab, MaxVocab)
	}
	pieces := make([]string, n)
	sc := make([]float32, n)
	maxLen := 1
	for i, p := range tokens {
		s := scores[i]
		if math.IsNaN(s) {
			return nil, fmt.Errorf("%w: %s token %d has a NaN score", ErrTokenizer, src, i)
		}
		sc[i] = float32(s)
		switch {
		case i == BOS && p == "<s>":
			p = "\n<s>\n"
		case i == EOS && p == "</s>":
			p = "\n</s>\n"
		default:
			p = strings.ReplaceAll(p, "\u2581", " ")
		}
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("%w: %s token %d contains a NUL byte", ErrTokenizer, src, i)
		}
		if len(p) > MaxTokenLength {
			return nil, fmt.Errorf("%w: %s token %d is %d bytes long, limit %d", ErrTokenizer, src, i, len(p), MaxTokenLength)
		}
		if i >= 3 && i < 3+256 {
			if b, ok := parseBytePiece(p); !ok || int(b) != i-3 || len(p) != len("<0x00>") {
				return nil, fmt.Errorf("%w: %s token %d is %q, want the byte token <0x%02X> (ids 3..258 are byte fallbacks)",
					ErrTokenizer, src, i, p, i-3)
			}
			if types != nil && types[i] != ggufTokByte {
				return nil, fmt.Errorf("%w: %s token %d (%s) has token_type %g, want %d (byte)",
					ErrTokenizer, src, i, p, types[i], ggufTokByte)
			}
		}
		pieces[i] = p
		maxLen = max(maxLen, len(p))
	}
	return newTokenizer(pieces, sc, maxLen), nil
}

// ggufTokenID reads an optional token id key: −1 when absent.
func (f *ggufFile) ggufTokenID(key string, n int) (int, error) {
	v, ok := f.kv[key]
	if !ok {
		return -1, nil
	}
	switch v.typ {
	case ggufUint8, ggufUint16, ggufUint32, ggufUint64, ggufInt8, ggufInt16, ggufInt32, ggufInt64:
	default:
		return 0, fmt.Errorf("%w: GGUF %s is a %s, want an integer", ErrTokenizer, key, v.typeName())
	}
	if v.i < 0 || v.i >= int64(n) {
		return 0, fmt.Errorf("%w: GGUF %s = %d is outside the %d-token vocabulary", ErrTokenizer, key, v.i, n)
	}
	return int(v.i), nil
}

// ggufPre maps tokenizer.ggml.pre to a pre-tokenizer and whether whole
// chunks that are tokens skip merging (llama.cpp's ignore_merges).
var ggufPre = map[string]struct {
	pre          string
	ignoreMerges bool
}{
	"":          {PreGPT2, false},
	"default":   {PreGPT2, false},
	"gpt-2":     {PreGPT2, false},
	"gpt2":      {PreGPT2, false},
	"llama-bpe": {PreLlama3, true},
	"llama3":    {PreLlama3, true},
	"qwen2":     {PreQwen2, false},
}

// bpeTokenizer builds a byte-level BPE Tokenizer from a GGUF "gpt2"
// vocabulary: tokenizer.ggml.tokens (normal ones in byte-to-unicode form),
// merges ("left right" strings by rank), optional token_type (control and
// user-defined tokens are special and matched verbatim, unused ones are
// never produced), pre (the pre-tokenizer: "llama-bpe", "qwen2", "gpt-2"
// or "default"), bos_token_id, eos_token_id, eot_token_id and
// eom_token_id (stops), add_bos_token (default true when there is a BOS).
func (f *ggufFile) bpeTokenizer() (*Tokenizer, error) {
	tokens, types, err := f.tokens(minBPEVocab)
	if err != nil {
		return nil, err
	}
	n := len(tokens)
	c := BPEConfig{Tokens: make([]BPEToken, n)}
	preName := ""
	if v, ok := f.kv["tokenizer.ggml.pre"]; ok {
		if v.typ != ggufString {
			return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.pre is a %s, want a string", ErrTokenizer, v.typeName())
		}
		preName = v.s
	}
	p, ok := ggufPre[preName]
	if !ok {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.pre %.40q; supported: llama-bpe, qwen2, gpt-2, default", ErrUnsupported, preName)
	}
	c.Pre, c.IgnoreMerges = p.pre, p.ignoreMerges
	for i, t := range tokens {
		kind := BPENormal
		if types != nil {
			switch types[i] {
			case ggufTokNormal:
			case ggufTokControl, ggufTokUserDefined, ggufTokUnknown:
				kind = BPESpecial
			case ggufTokUnused:
				kind = BPEUnused
			default:
				return nil, fmt.Errorf("%w: GGUF token %d %.40q has token_type %g; a gpt2 vocabulary has normal, control, user-defined and unused tokens",
					ErrTokenizer, i, t, types[i])
			}
		}
		if kind == BPESpecial && t == "" {
			kind = BPEUnused
		}
		c.Tokens[i] = BPEToken{Text: t, Kind: kind}
		if kind == BPEUnused {
			c.Tokens[i].Text = ""
		}
	}
	mv, ok := f.kv["tokenizer.ggml.merges"]
	if !ok || mv.typ != ggufArray || mv.elem != ggufString {
		return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.merges is missing or not an array of strings", ErrTokenizer)
	}
	if len(mv.strs) > MaxMerges {
		return nil, fmt.Errorf("%w: GGUF has %d merges, limit %d", ErrTokenizer, len(mv.strs), MaxMerges)
	}
	c.Merges = make([][2]string, len(mv.strs))
	for r, s := range mv.strs {
		l, rt, ok := strings.Cut(s, " ")
		if !ok || l == "" || rt == "" || strings.Contains(rt, " ") {
			return nil, fmt.Errorf("%w: GGUF merge %d %.40q is not two tokens separated by one space", ErrTokenizer, r, s)
		}
		c.Merges[r] = [2]string{l, rt}
	}
	if c.BOS, err = f.ggufTokenID("tokenizer.ggml.bos_token_id", n); err != nil {
		return nil, err
	}
	if c.EOS, err = f.ggufTokenID("tokenizer.ggml.eos_token_id", n); err != nil {
		return nil, err
	}
	for _, key := range []string{"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"} {
		id, err := f.ggufTokenID(key, n)
		if err != nil {
			return nil, err
		}
		if id >= 0 {
			c.Stop = append(c.Stop, id)
		}
	}
	c.AddBOS = c.BOS >= 0
	if v, ok := f.kv["tokenizer.ggml.add_bos_token"]; ok {
		if v.typ != ggufBool {
			return nil, fmt.Errorf("%w: GGUF tokenizer.ggml.add_bos_token is a %s, want a bool", ErrTokenizer, v.typeName())
		}
		c.AddBOS = v.b && c.BOS >= 0
	}
	t, err := NewBPE(c)
	if err != nil {
		return nil, fmt.Errorf("GGUF: %w", err)
	}
	return t, nil
}
