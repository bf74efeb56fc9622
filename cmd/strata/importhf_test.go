package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// TestReadHFDirTokenizerJSON: a Qwen2-style Hugging Face directory
// (config.json, model.safetensors, a byte-level tokenizer.json) imports
// with its own tokenizer, and the chat format of its tokenizer_config.json,
// and loads back from the store unchanged.
func TestReadHFDirTokenizerJSON(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Config{Dim: 16, HiddenDim: 24, NLayers: 2, NHeads: 2, NKVHeads: 1, VocabSize: 270, SeqLen: 32,
		NormEps: 1e-6, RopeTheta: 1e6, QKVBias: true}
	m := model.Synth(cfg, 4)
	config, weights, err := model.WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	vocab := map[string]int{}
	for b := range 256 {
		vocab[model.ByteLevelEncode(string([]byte{byte(b)}))] = b
	}
	vocab["Ġt"] = 256
	tj, _ := json.Marshal(map[string]any{
		"added_tokens": []any{map[string]any{"id": 257, "content": "<|endoftext|>", "special": true},
			map[string]any{"id": 258, "content": "<|im_end|>", "special": true},
			map[string]any{"id": 259, "content": "<|im_start|>", "special": true}},
		"normalizer":    map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{"Ġ t"}},
	})
	tc := []byte(`{"chat_template":"{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}","eos_token":"<|im_end|>"}`)
	for name, data := range map[string][]byte{"config.json": config, "model.safetensors": weights, "tokenizer.json": tj,
		"tokenizer_config.json": tc} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, tok, err := readHFDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if tok == nil || tok.Format() != model.TokenizerBPE || tok.VocabSize() != cfg.VocabSize || !got.Config.QKVBias {
		t.Fatalf("tokenizer %v, config %+v", tok, got.Config)
	}
	st, err := shards.Open(filepath.Join(dir, "repo"))
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := shards.ImportModel(st, got, tok, "qwen-test")
	if err != nil {
		t.Fatal(err)
	}
	back, btok, _, err := shards.Load(st, id, 0, cfg.NLayers, true)
	if err != nil {
		t.Fatal(err)
	}
	if want, have := tok.Encode(" to<|im_end|>", true, false), btok.Encode(" to<|im_end|>", true, false); !slices.Equal(want, have) || len(want) != 3 {
		t.Errorf("Encode after the store: %v, want %v (3 tokens)", have, want)
	}
	if !btok.IsStop(258) || !slices.Equal(back.Blocks[1].Bk, got.Blocks[1].Bk) {
		t.Error("stop token or biases lost in the store")
	}
	if tok.Chat() != model.ChatML || btok.Chat() != model.ChatML {
		t.Errorf("chat format %q, after the store %q; want %q from tokenizer_config.json", tok.Chat(), btok.Chat(), model.ChatML)
	}
	// A tokenizer_config.json that does not parse is an error naming it.
	os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte("{"), 0o644)
	if _, _, err := readHFDir(dir, ""); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json") {
		t.Errorf("readHFDir with a broken tokenizer_config.json: %v", err)
	}
	// Without tokenizer.json the directory needs --tokenizer.
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	if _, _, err := readHFDir(dir, ""); err == nil {
		t.Error("readHFDir without tokenizer.json succeeded")
	}
}
