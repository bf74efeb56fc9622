package shards

import (
	"bytes"
	"slices"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// TestHeadBPETokenizer: a head shard carries a byte-level BPE tokenizer
// in its own format and gives back one that encodes the same.
func TestHeadBPETokenizer(t *testing.T) {
	cfg := tinyConfig(true)
	c := model.BPEConfig{Pre: model.PreLlama3, BOS: 298, EOS: 299, AddBOS: true}
	for b := range 256 {
		c.Tokens = append(c.Tokens, model.BPEToken{Text: model.ByteLevelEncode(string([]byte{byte(b)})), Kind: model.BPENormal})
	}
	c.Merges = [][2]string{{"Ġ", "t"}}
	c.Tokens = append(c.Tokens, model.BPEToken{Text: "Ġt", Kind: model.BPENormal})
	for len(c.Tokens) < 298 {
		c.Tokens = append(c.Tokens, model.BPEToken{}) // unused
	}
	c.Tokens = append(c.Tokens, model.BPEToken{Text: "<|begin_of_text|>", Kind: model.BPESpecial},
		model.BPEToken{Text: "<|end_of_text|>", Kind: model.BPESpecial})
	tok, err := model.NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeHead(cfg, model.Synth(cfg, 2).Head, tok)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := Decode(enc)
	if got := f.Metadata[MetaTokenizer]; got != model.TokenizerBPE {
		t.Errorf("tokenizer metadata %q, want %q", got, model.TokenizerBPE)
	}
	_, back, err := DecodeHead(cfg, enc)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tok.MarshalBinary()
	b, _ := back.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("tokenizer bytes differ after the round trip")
	}
	if got, want := back.Encode(" to<|end_of_text|>", true, false), []int{298, 256, 'o', 299}; !slices.Equal(got, want) {
		t.Errorf("Encode after the round trip = %v, want %v", got, want)
	}
	// The format name must match the bytes.
	bad := reencode(t, enc, func(meta map[string]string, ts []Tensor) []Tensor {
		meta[MetaTokenizer] = TokenizerLlama2C
		return ts
	})
	if _, _, err := DecodeHead(cfg, bad); err == nil {
		t.Error("DecodeHead read BPE bytes labelled llama2c")
	}
}
