package shards

import (
	"bytes"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
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
	if f.Metadata[MetaChat] != "" {
		t.Errorf("a tokenizer without a chat format wrote %s %q", MetaChat, f.Metadata[MetaChat])
	}
}

// TestHeadChatFormat: the chat format of a head's tokenizer travels in the
// head's metadata; a format the tokenizer cannot render, an unknown one or
// an empty one is refused.
func TestHeadChatFormat(t *testing.T) {
	cfg := tinyConfig(true)
	c := model.BPEConfig{Pre: model.PreQwen2, BOS: -1, EOS: 299}
	for b := range 256 {
		c.Tokens = append(c.Tokens, model.BPEToken{Text: model.ByteLevelEncode(string([]byte{byte(b)})), Kind: model.BPENormal})
	}
	for len(c.Tokens) < 297 {
		c.Tokens = append(c.Tokens, model.BPEToken{})
	}
	for _, s := range []string{"<|im_start|>", "<|im_end|>", "<|endoftext|>"} {
		c.Tokens = append(c.Tokens, model.BPEToken{Text: s, Kind: model.BPESpecial})
	}
	tok, err := model.NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SetChat(model.ChatML); err != nil {
		t.Fatal(err)
	}
	enc, err := EncodeHead(cfg, model.Synth(cfg, 2).Head, tok)
	if err != nil {
		t.Fatal(err)
	}
	_, back, err := DecodeHead(cfg, enc)
	if err != nil {
		t.Fatal(err)
	}
	if back.Chat() != model.ChatML {
		t.Errorf("chat format after the round trip %q, want %q", back.Chat(), model.ChatML)
	}
	for _, v := range []string{"", "llama3", "vicuna"} {
		bad := reencode(t, enc, func(meta map[string]string, ts []Tensor) []Tensor {
			meta[MetaChat] = v
			return ts
		})
		if _, _, err := DecodeHead(cfg, bad); !errors.Is(err, ErrShard) {
			t.Errorf("head with chat format %q: err = %v, want ErrShard", v, err)
		}
	}
}

// TestBiasBlockRoundTrip: blocks of a model with q/k/v biases carry
// bq, bk, bv after the other tensors, in F32 and in quantized shards;
// a block without biases has exactly its nine tensors.
func TestBiasBlockRoundTrip(t *testing.T) {
	cfg := tinyConfig(false)
	cfg.QKVBias = true
	m := model.Synth(cfg, 3)
	q, err := m.Quantize(tensor.Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	for _, mm := range []*model.Model{m, q} {
		for i, b := range mm.Blocks {
			enc, err := EncodeBlock(cfg, i, b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeBlock(cfg, i, enc)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, b) {
				t.Errorf("block %d (%s): decoded block differs", i, b.Format())
			}
			f, _ := Decode(enc)
			if n := len(f.Tensors); n != 12 || f.Tensors[9].Name != model.TensorBq || f.Tensors[11].Name != model.TensorBv {
				t.Errorf("block %d (%s): %d tensors, biases not last", i, b.Format(), n)
			}
			// The same shard read with a config without biases is refused.
			plain := cfg
			plain.QKVBias = false
			if _, err := DecodeBlock(plain, i, enc); err == nil {
				t.Errorf("block %d (%s) with biases decoded for a config without them", i, b.Format())
			}
		}
	}
	plain := tinyConfig(false)
	enc, _ := EncodeBlock(plain, 0, model.Synth(plain, 3).Blocks[0])
	if f, _ := Decode(enc); len(f.Tensors) != 9 {
		t.Errorf("a block without biases has %d tensors, want 9", len(f.Tensors))
	}
}
