package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// MaxTokenizerJSON bounds a tokenizer.json file (Llama 3's is 9 MB).
const MaxTokenizerJSON = 64 << 20

// TokenizerJSONOptions completes what a tokenizer.json leaves to the
// model's config.json.
type TokenizerJSONOptions struct {
	// VocabSize is the model's vocabulary, at least the tokenizer's (Qwen2
	// pads its embedding beyond the tokenizer); 0 takes the tokenizer's.
	VocabSize int
	// BOS is config.json's bos_token_id, −1 if unknown. A BOS the
	// post-processor adds takes precedence.
	BOS int
	// EOS are config.json's eos_token_id(s): the first is EOS, the others
	// stop generation too.
	EOS []int
}

// tjNode is any component of tokenizer.json (normalizer, pre-tokenizer,
// post-processor, decoder) with the fields this reader looks at.
type tjNode struct {
	Type          string   `json:"type"`
	Normalizers   []tjNode `json:"normalizers"`
	Pretokenizers []tjNode `json:"pretokenizers"`
	Processors    []tjNode `json:"processors"`
	Decoders      []tjNode `json:"decoders"`
	Pattern       struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
	Content        string            `json:"content"`
	Prepend        string            `json:"prepend"`
	Replacement    string            `json:"replacement"`
	AddPrefixSpace *bool             `json:"add_prefix_space"`
	PrependScheme  string            `json:"prepend_scheme"`
	Split          *bool             `json:"split"`
	UseRegex       *bool             `json:"use_regex"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	Single         []json.RawMessage `json:"single"`
}

type tjFile struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
		Special bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    *tjNode `json:"normalizer"`
	PreTokenizer  *tjNode `json:"pre_tokenizer"`
	PostProcessor *tjNode `json:"post_processor"`
	Decoder       *tjNode `json:"decoder"`
	Model         struct {
		Type                    string          `json:"type"`
		Vocab                   map[string]int  `json:"vocab"`
		Merges                  json.RawMessage `json:"merges"`
		ByteFallback            bool            `json:"byte_fallback"`
		IgnoreMerges            bool            `json:"ignore_merges"`
		ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
		Dropout                 *float64        `json:"dropout"`
	} `json:"model"`
}

// flatten lists n and, for a Sequence, its members.
func (n *tjNode) flatten() []tjNode {
	if n == nil {
		return nil
	}
	if n.Type != "Sequence" {
		return []tjNode{*n}
	}
	var out []tjNode
	for _, l := range [][]tjNode{n.Normalizers, n.Pretokenizers, n.Processors, n.Decoders} {
		for i := range l {
			out = append(out, l[i].flatten()...)
		}
	}
	return out
}

func (n *tjNode) types() string {
	var t []string
	for _, m := range n.flatten() {
		t = append(t, m.Type)
	}
	return "[" + strings.Join(t, " ") + "]"
}

// ReadTokenizerJSON reads a Hugging Face tokenizer.json of model type BPE
// in one of two forms:
//
//   - byte-level BPE (GPT-2, Llama 3, Qwen2): a ByteLevel pre-tokenizer,
//     alone (GPT-2's pattern) or after a Split on one of the patterns of
//     PreGPT2, PreLlama3 or PreQwen2; no normalizer, or NFC. Added tokens
//     are special (matched verbatim); a TemplateProcessing post-processor
//     that puts a special token first makes it the BOS Encode adds. The
//     result encodes as NewBPE describes.
//   - SentencePiece-style BPE with byte_fallback (Llama 2, Mistral 7B
//     v0.1, TinyLlama): a Prepend("▁") and Replace(" ", "▁") normalizer
//     or a Metaspace pre-tokenizer. It becomes a llama2.c Tokenizer (ids
//     0, 1, 2 unk, <s>, </s>, byte tokens at 3..258) whose scores rank
//     each token by the first merge that makes it, so Encode's greedy
//     highest-score merging applies the merges in rank order.
//
// Added tokens are matched verbatim wherever they occur; their lstrip,
// rstrip and single_word options are not applied (the Llama 3 and Qwen2
// files set none of them). Anything else (WordPiece, Unigram, other
// patterns or normalizers, dropout, subword prefixes) is refused with an
// error wrapping
// ErrUnsupported that names it; malformed files and vocabularies give
// errors wrapping ErrTokenizer naming the token or merge at fault.
func ReadTokenizerJSON(data []byte, o TokenizerJSONOptions) (*Tokenizer, error) {
	if len(data) > MaxTokenizerJSON {
		return nil, fmt.Errorf("%w: tokenizer.json is %d bytes, limit %d", ErrTokenizer, len(data), MaxTokenizerJSON)
	}
	var f tjFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %v", ErrTokenizer, err)
	}
	m := &f.Model
	if m.Type != "BPE" && !(m.Type == "" && m.Vocab != nil && m.Merges != nil) {
		return nil, fmt.Errorf("%w: tokenizer.json model type %q; only BPE is supported", ErrUnsupported, m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("%w: tokenizer.json BPE dropout %g", ErrUnsupported, *m.Dropout)
	}
	if p := m.ContinuingSubwordPrefix; p != nil && *p != "" {
		return nil, fmt.Errorf("%w: tokenizer.json continuing_subword_prefix %q", ErrUnsupported, *p)
	}
	if p := m.EndOfWordSuffix; p != nil && *p != "" {
		return nil, fmt.Errorf("%w: tokenizer.json end_of_word_suffix %q", ErrUnsupported, *p)
	}
	// The vocabulary: model.vocab plus added_tokens, by id.
	n := 0
	for tok, id := range m.Vocab {
		if id < 0 || id >= MaxVocab {
			return nil, fmt.Errorf("%w: tokenizer.json token %.40q has id %d outside [0,%d)", ErrTokenizer, tok, id, MaxVocab)
		}
		n = max(n, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= MaxVocab {
			return nil, fmt.Errorf("%w: tokenizer.json added token %.40q has id %d outside [0,%d)", ErrTokenizer, a.Content, a.ID, MaxVocab)
		}
		n = max(n, a.ID+1)
	}
	if o.VocabSize != 0 {
		if n > o.VocabSize {
			return nil, fmt.Errorf("%w: tokenizer.json has ids up to %d, the model's vocabulary is %d", ErrTokenizer, n-1, o.VocabSize)
		}
		n = o.VocabSize
	}
	texts := make([]string, n)
	have := make([]bool, n)
	for tok, id := range m.Vocab {
		if have[id] {
			return nil, fmt.Errorf("%w: tokenizer.json vocab gives id %d twice", ErrTokenizer, id)
		}
		texts[id], have[id] = tok, true
	}
	special := make([]bool, n)
	for _, a := range f.AddedTokens {
		if have[a.ID] && texts[a.ID] != a.Content {
			return nil, fmt.Errorf("%w: tokenizer.json added token %d is %.40q, the vocab has %.40q", ErrTokenizer, a.ID, a.Content, texts[a.ID])
		}
		texts[a.ID], have[a.ID], special[a.ID] = a.Content, true, true
	}
	merges, err := tjMerges(m.Merges)
	if err != nil {
		return nil, err
	}
	pre := f.PreTokenizer.flatten()
	if len(pre) > 0 && pre[len(pre)-1].Type == "ByteLevel" {
		if m.ByteFallback {
			return nil, fmt.Errorf("%w: tokenizer.json byte-level BPE with byte_fallback", ErrUnsupported)
		}
		return tjByteLevel(&f, texts, have, special, merges, o)
	}
	if m.ByteFallback {
		return tjSentencePiece(&f, texts, have, merges, o)
	}
	return nil, fmt.Errorf("%w: tokenizer.json pre-tokenizer %s without byte_fallback; only byte-level BPE and SentencePiece-style BPE are supported",
		ErrUnsupported, f.PreTokenizer.types())
}

// tjMerges reads model.merges: "left right" strings or [left, right] pairs.
func tjMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json merges: %v", ErrTokenizer, err)
	}
	if len(list) > MaxMerges {
		return nil, fmt.Errorf("%w: tokenizer.json has %d merges, limit %d", ErrTokenizer, len(list), MaxMerges)
	}
	out := make([][2]string, len(list))
	for i, e := range list {
		var s string
		if err := json.Unmarshal(e, &s); err == nil {
			l, r, ok := strings.Cut(s, " ")
			if !ok || l == "" || r == "" || strings.Contains(r, " ") {
				return nil, fmt.Errorf("%w: tokenizer.json merge %d %.40q is not two tokens separated by one space", ErrTokenizer, i, s)
			}
			out[i] = [2]string{l, r}
			continue
		}
		var p []string
		if err := json.Unmarshal(e, &p); err != nil || len(p) != 2 || p[0] == "" || p[1] == "" {
			return nil, fmt.Errorf("%w: tokenizer.json merge %d %.40s is neither \"a b\" nor [\"a\", \"b\"]", ErrTokenizer, i, e)
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

// tjByteLevel builds a byte-level BPE tokenizer from tokenizer.json.
func tjByteLevel(f *tjFile, texts []string, have, special []bool, merges [][2]string, o TokenizerJSONOptions) (*Tokenizer, error) {
	c := BPEConfig{Merges: merges, IgnoreMerges: f.Model.IgnoreMerges, BOS: -1, EOS: -1}
	pre := f.PreTokenizer.flatten()
	bl := pre[len(pre)-1]
	c.AddPrefixSpace = bl.AddPrefixSpace != nil && *bl.AddPrefixSpace
	useRegex := bl.UseRegex == nil || *bl.UseRegex
	switch {
	case len(pre) == 1 && useRegex:
		c.Pre = PreGPT2
	case len(pre) == 2 && !useRegex && pre[0].Type == "Split" && pre[0].Pattern.Regex != nil:
		sp := pre[0]
		c.Pre = preTokenizerRegex[*sp.Pattern.Regex]
		if c.Pre == "" {
			return nil, fmt.Errorf("%w: tokenizer.json Split pattern %.200q is not the GPT-2, Llama 3 or Qwen2 pattern", ErrUnsupported, *sp.Pattern.Regex)
		}
		if sp.Invert || (sp.Behavior != "Isolated" && sp.Behavior != "") {
			return nil, fmt.Errorf("%w: tokenizer.json Split with behavior %q, invert %v; only Isolated is supported", ErrUnsupported, sp.Behavior, sp.Invert)
		}
	default:
		return nil, fmt.Errorf("%w: tokenizer.json pre-tokenizer %s (use_regex %v); supported: ByteLevel, or Split(Regex) then ByteLevel",
			ErrUnsupported, f.PreTokenizer.types(), useRegex)
	}
	if nz := f.Normalizer.flatten(); len(nz) > 0 {
		if len(nz) != 1 || nz[0].Type != "NFC" {
			return nil, fmt.Errorf("%w: tokenizer.json normalizer %s for byte-level BPE; only none or NFC", ErrUnsupported, f.Normalizer.types())
		}
		c.NFC = true
	}
	if d := f.Decoder.flatten(); len(d) > 0 && (len(d) != 1 || d[0].Type != "ByteLevel") {
		return nil, fmt.Errorf("%w: tokenizer.json decoder %s for byte-level BPE; want ByteLevel", ErrUnsupported, f.Decoder.types())
	}
	c.Tokens = make([]BPEToken, len(texts))
	byText := map[string]int{}
	for i, t := range texts {
		switch {
		case !have[i]:
		case special[i]:
			c.Tokens[i] = BPEToken{Text: t, Kind: BPESpecial}
			byText[t] = i
		default:
			c.Tokens[i] = BPEToken{Text: t, Kind: BPENormal}
		}
	}
	// BOS: the special token a TemplateProcessing post-processor puts first.
	for _, p := range f.PostProcessor.flatten() {
		if p.Type != "TemplateProcessing" || len(p.Single) == 0 {
			continue
		}
		var first struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
		}
		if json.Unmarshal(p.Single[0], &first) == nil && first.SpecialToken != nil {
			id, ok := byText[first.SpecialToken.ID]
			if !ok {
				return nil, fmt.Errorf("%w: tokenizer.json post-processor adds %.40q, which is not an added token", ErrTokenizer, first.SpecialToken.ID)
			}
			c.BOS, c.AddBOS = id, true
		}
	}
	if !c.AddBOS && o.BOS >= 0 && o.BOS < len(texts) && have[o.BOS] {
		c.BOS = o.BOS
	}
	if len(o.EOS) > 0 {
		c.EOS, c.Stop = o.EOS[0], slices.Clone(o.EOS[1:])
	} else {
		for _, s := range []string{"<|end_of_text|>", "<|endoftext|>", "</s>"} {
			if id, ok := byText[s]; ok {
				c.EOS = id
				break
			}
		}
	}
	for _, s := range []string{"<|eot_id|>", "<|eom_id|>", "<|im_end|>"} {
		if id, ok := byText[s]; ok && id != c.EOS {
			c.Stop = append(c.Stop, id)
		}
	}
	t, err := NewBPE(c)
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return t, nil
}

// tjSentencePiece builds a llama2.c Tokenizer from a SentencePiece-style
// BPE tokenizer.json.
func tjSentencePiece(f *tjFile, texts []string, have []bool, merges [][2]string, o TokenizerJSONOptions) (*Tokenizer, error) {
	// The dummy prefix: run.c's encode always puts " " before the text.
	prefix := false
	for _, nz := range f.Normalizer.flatten() {
		switch {
		case nz.Type == "Prepend" && nz.Prepend == "\u2581":
			prefix = true
		case nz.Type == "Replace" && nz.Pattern.String != nil && *nz.Pattern.String == " " && nz.Content == "\u2581":
		default:
			return nil, fmt.Errorf("%w: tokenizer.json normalizer %s; SentencePiece-style BPE needs Prepend(▁) and Replace(' ', ▁)",
				ErrUnsupported, f.Normalizer.types())
		}
	}
	for _, p := range f.PreTokenizer.flatten() {
		if p.Type != "Metaspace" || (p.Replacement != "" && p.Replacement != "\u2581") || (p.Split != nil && *p.Split) {
			return nil, fmt.Errorf("%w: tokenizer.json pre-tokenizer %s; SentencePiece-style BPE needs none or Metaspace(▁, split false)",
				ErrUnsupported, f.PreTokenizer.types())
		}
		switch {
		case p.PrependScheme == "first" || p.PrependScheme == "always":
			prefix = true
		case p.PrependScheme == "" && (p.AddPrefixSpace == nil || *p.AddPrefixSpace):
			prefix = true
		}
	}
	if !prefix {
		return nil, fmt.Errorf("%w: tokenizer.json SentencePiece-style BPE without a dummy prefix (▁ before the text)", ErrUnsupported)
	}
	if o.VocabSize != 0 && o.VocabSize != len(texts) {
		return nil, fmt.Errorf("%w: tokenizer.json has %d tokens, the model %d; a SentencePiece-style vocabulary must match", ErrTokenizer, len(texts), o.VocabSize)
	}
	for _, id := range append([]int{o.BOS}, o.EOS...) {
		if id >= 0 && id != BOS && id != EOS {
			return nil, fmt.Errorf("%w: config.json special id %d; llama2.c-style tokenizers have BOS %d and EOS %d", ErrUnsupported, id, BOS, EOS)
		}
	}
	index := make(map[string]int, len(texts))
	for i, t := range texts {
		if !have[i] {
			return nil, fmt.Errorf("%w: tokenizer.json has no token with id %d", ErrTokenizer, i)
		}
		index[t] = i
	}
	// A token's score is minus the rank of the first merge that makes it;
	// tokens no merge makes are never merged into.
	scores := make([]float64, len(texts))
	for i := range scores {
		scores[i] = minMergeScore
	}
	for r, m := range merges {
		_, okl := index[m[0]]
		_, okr := index[m[1]]
		id, ok := index[m[0]+m[1]]
		switch {
		case !okl || !okr:
			return nil, fmt.Errorf("%w: tokenizer.json merge %d (%.40q %.40q) names a token not in the vocabulary", ErrTokenizer, r, m[0], m[1])
		case !ok:
			return nil, fmt.Errorf("%w: tokenizer.json merge %d (%.40q %.40q): the merged token is not in the vocabulary", ErrTokenizer, r, m[0], m[1])
		}
		if scores[id] == minMergeScore {
			scores[id] = -float64(r)
		}
	}
	return spTokenizer("tokenizer.json", texts, scores, nil)
}

// ReadHFTokenizer reads the tokenizer.json of a Hugging Face checkpoint
// with the special ids and vocabulary size of its config.json (the same
// bytes ReadHF takes): vocab_size, bos_token_id and eos_token_id (an id or
// a list; the first is EOS, the others stop generation too).
func ReadHFTokenizer(config, tokenizerJSON []byte) (*Tokenizer, error) {
	if len(config) > maxHFConfig {
		return nil, fmt.Errorf("%w: config.json is %d bytes, limit %d", ErrFormat, len(config), maxHFConfig)
	}
	var hc hfConfig
	if err := json.Unmarshal(config, &hc); err != nil {
		return nil, fmt.Errorf("%w: config.json: %v", ErrFormat, err)
	}
	o := TokenizerJSONOptions{BOS: -1}
	if hc.Vocab != nil {
		o.VocabSize = *hc.Vocab
	}
	bos, err := hfTokenIDs(hc.BOS, "bos_token_id")
	if err != nil {
		return nil, err
	}
	if len(bos) > 0 {
		o.BOS = bos[0]
	}
	if o.EOS, err = hfTokenIDs(hc.EOS, "eos_token_id"); err != nil {
		return nil, err
	}
	return ReadTokenizerJSON(tokenizerJSON, o)
}
