package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// byteLevelJSON writes c as a Hugging Face tokenizer.json: Llama 3's form
// (Split on the pattern, then ByteLevel; a TemplateProcessing that adds
// BOS; merges as pairs) or, for PreGPT2, GPT-2's (ByteLevel with its own
// regex, merges as "a b" strings, no BOS).
func byteLevelJSON(t testing.TB, c BPEConfig) []byte {
	t.Helper()
	vocab := map[string]int{}
	var added []map[string]any
	for i, tk := range c.Tokens {
		switch tk.Kind {
		case BPENormal:
			vocab[tk.Text] = i
		case BPESpecial:
			added = append(added, map[string]any{"id": i, "content": tk.Text, "single_word": false, "lstrip": false,
				"rstrip": false, "normalized": false, "special": true})
		}
	}
	var merges any
	if c.Pre == PreGPT2 {
		var m []string
		for _, p := range c.Merges {
			m = append(m, p[0]+" "+p[1])
		}
		merges = m
	} else {
		merges = c.Merges
	}
	regex := map[string]string{}
	for k, v := range preTokenizerRegex {
		regex[v] = k
	}
	f := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added, "normalizer": nil,
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": c.IgnoreMerges,
			"vocab": vocab, "merges": merges},
	}
	if c.Pre == PreGPT2 {
		f["pre_tokenizer"] = map[string]any{"type": "ByteLevel", "add_prefix_space": c.AddPrefixSpace, "trim_offsets": true, "use_regex": true}
		f["post_processor"] = map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true}
	} else {
		f["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": regex[c.Pre]}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
		}}
		if c.AddBOS {
			f["post_processor"] = map[string]any{"type": "Sequence", "processors": []any{
				map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
				map[string]any{"type": "TemplateProcessing",
					"single": []any{map[string]any{"SpecialToken": map[string]any{"id": c.Tokens[c.BOS].Text, "type_id": 0}},
						map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
					"pair": []any{}, "special_tokens": map[string]any{}},
			}}
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenizerJSONByteLevel(t *testing.T) {
	for _, pre := range []string{PreLlama3, PreQwen2, PreGPT2} {
		c := testBPEConfig(pre, 80)
		c.IgnoreMerges = pre == PreLlama3
		if pre != PreLlama3 {
			c.AddBOS, c.BOS = false, -1 // no post-processor: the BOS comes from config.json only
		}
		want, err := NewBPE(c)
		if err != nil {
			t.Fatal(err)
		}
		data := byteLevelJSON(t, c)
		got, err := ReadTokenizerJSON(data, TokenizerJSONOptions{BOS: -1})
		if err != nil {
			t.Fatalf("%s: %v", pre, err)
		}
		a, _ := want.MarshalBinary()
		b, _ := got.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: the tokenizer read from tokenizer.json differs from the one it was written from", pre)
		}
		if pre == PreLlama3 && (got.BOS() != c.BOS || got.Encode("x", true, false)[0] != c.BOS) {
			t.Errorf("the post-processor's BOS %d is not added (BOS() = %d)", c.BOS, got.BOS())
		}
		// config.json's ids: EOS first, the rest stop; padding to the model's vocabulary.
		cfg := fmt.Sprintf(`{"vocab_size": %d, "bos_token_id": %d, "eos_token_id": [%d, 65]}`, len(c.Tokens)+10, len(c.Tokens)-4, c.EOS)
		tok, err := ReadHFTokenizer([]byte(cfg), data)
		if err != nil {
			t.Fatal(err)
		}
		if tok.VocabSize() != len(c.Tokens)+10 || !tok.IsStop(65) || !tok.IsStop(c.EOS) || tok.Decode(0, len(c.Tokens)+3) != "" {
			t.Errorf("%s with config.json: vocab %d, stops wrong", pre, tok.VocabSize())
		}
	}
}

// spVocab is a SentencePiece-style BPE vocabulary as Hugging Face's
// converter writes it: <unk> <s> </s>, the 256 byte tokens, "▁" and the
// letters, then pieces learned on a corpus (ids in score order); merges
// are every split of every piece into two pieces, by the piece's id, then
// the left and right ids (SentencePieceExtractor).
func spVocab() (tokens []string, merges [][2]string) {
	tokens = []string{"<unk>", "<s>", "</s>"}
	for b := range 256 {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
	}
	tokens = append(tokens, "▁")
	for c := 'a'; c <= 'z'; c++ {
		tokens = append(tokens, string(c))
	}
	tokens = append(tokens, "T", "é")
	for _, w := range []string{"▁t", "he", "▁the", "▁a", "in", "▁c", "at", "▁cat", "er", "▁s", "an", "▁th", "re",
		"on", "▁o", "ing", "▁on", "ca", "▁ca", "the", "her", "▁her", "▁there", "▁Th", "é▁"} {
		tokens = append(tokens, w)
	}
	id := map[string]int{}
	for i, s := range tokens {
		id[s] = i
	}
	for _, s := range tokens[259:] {
		var local [][2]string
		rs := []rune(s)
		for k := 1; k < len(rs); k++ {
			l, r := string(rs[:k]), string(rs[k:])
			if _, ok := id[l]; !ok {
				continue
			}
			if _, ok := id[r]; ok {
				local = append(local, [2]string{l, r})
			}
		}
		slices.SortFunc(local, func(a, b [2]string) int {
			if id[a[0]] != id[b[0]] {
				return id[a[0]] - id[b[0]]
			}
			return id[a[1]] - id[b[1]]
		})
		merges = append(merges, local...)
	}
	return tokens, merges
}

// hfSentencePieceBPE is Hugging Face's BPE with byte_fallback on text
// normalized by Prepend("▁") and Replace(" ", "▁"), spelled out naively.
func hfSentencePieceBPE(tokens []string, merges [][2]string, text string) []int {
	id := map[string]int{}
	for i, s := range tokens {
		id[s] = i
	}
	rank := map[[2]string]int{}
	for r, m := range merges {
		if _, ok := rank[m]; !ok {
			rank[m] = r
		}
	}
	if text == "" {
		return nil
	}
	text = "▁" + strings.ReplaceAll(text, " ", "▁")
	var sym []string
	for _, r := range text {
		sym = append(sym, string(r))
	}
	sym = mergeByRank(sym, rank)
	var out []int
	for _, s := range sym {
		if i, ok := id[s]; ok {
			out = append(out, i)
			continue
		}
		for _, b := range []byte(s) {
			out = append(out, 3+int(b))
		}
	}
	return out
}

func spJSON(t testing.TB, tokens []string, merges [][2]string, metaspace bool) []byte {
	vocab := map[string]int{}
	for i, s := range tokens {
		vocab[s] = i
	}
	var ms []string
	for _, m := range merges {
		ms = append(ms, m[0]+" "+m[1])
	}
	f := map[string]any{
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<unk>", "special": true},
			map[string]any{"id": 1, "content": "<s>", "special": true},
			map[string]any{"id": 2, "content": "</s>", "special": true},
		},
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"String": " "}, "content": "▁"}}},
		"pre_tokenizer": nil,
		"model": map[string]any{"type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "byte_fallback": true,
			"vocab": vocab, "merges": ms},
	}
	if metaspace {
		f["normalizer"] = nil
		f["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}
	}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenizerJSONSentencePiece(t *testing.T) {
	tokens, merges := spVocab()
	for _, metaspace := range []bool{false, true} {
		cfg := fmt.Sprintf(`{"vocab_size": %d, "bos_token_id": 1, "eos_token_id": 2}`, len(tokens))
		tok, err := ReadHFTokenizer([]byte(cfg), spJSON(t, tokens, merges, metaspace))
		if err != nil {
			t.Fatal(err)
		}
		if tok.Format() != TokenizerLlama2C || tok.VocabSize() != len(tokens) {
			t.Fatalf("format %s, %d tokens", tok.Format(), tok.VocabSize())
		}
		r := rand.New(rand.NewPCG(5, 6))
		words := []string{"the", " the", " cat", "there", " her", "ing", "on", " ", "  ", "Th", "é", "ü", "日", "ca", "x", "T"}
		for range 400 {
			var sb strings.Builder
			for range r.IntN(8) {
				sb.WriteString(words[r.IntN(len(words))])
			}
			text := sb.String()
			got := tok.Encode(text, false, false)
			if want := hfSentencePieceBPE(tokens, merges, text); !slices.Equal(got, want) {
				t.Fatalf("Encode(%q) = %v, Hugging Face BPE gives %v", text, got, want)
			}
		}
		if got := tok.Decode(1, tok.Encode("the cat", false, false)[0]); got != "the" {
			t.Errorf("Decode after BOS = %q, want %q", got, "the")
		}
	}
	// Wrong special ids and vocab sizes are named.
	if _, err := ReadHFTokenizer([]byte(`{"vocab_size": 400}`), spJSON(t, tokens, merges, false)); !errors.Is(err, ErrTokenizer) {
		t.Errorf("vocab size 400: %v", err)
	}
	if _, err := ReadHFTokenizer([]byte(`{"eos_token_id": 7}`), spJSON(t, tokens, merges, false)); !errors.Is(err, ErrUnsupported) {
		t.Errorf("eos 7: %v", err)
	}
}

func TestTokenizerJSONBadInput(t *testing.T) {
	c := testBPEConfig(PreLlama3, 30)
	c.IgnoreMerges = true
	good := byteLevelJSON(t, c)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	for _, k := range []struct {
		name string
		data []byte
		is   error
		want string
	}{
		{"not json", []byte("{"), ErrTokenizer, "tokenizer.json"},
		{"wordpiece", edit(func(m map[string]any) { model(m)["type"] = "WordPiece" }), ErrUnsupported, `model type "WordPiece"`},
		{"unknown regex", edit(func(m map[string]any) {
			m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": `\w+`}
		}), ErrUnsupported, `Split pattern "\\w+"`},
		{"merge of unknown token", edit(func(m map[string]any) {
			model(m)["merges"] = append(model(m)["merges"].([]any), []any{"zzq", "t"})
		}), ErrTokenizer, `"zzq" is not a token`},
		{"merge result missing", edit(func(m map[string]any) {
			model(m)["merges"] = append(model(m)["merges"].([]any), []any{"q", "j"})
		}), ErrTokenizer, `merged token "qj"`},
		{"malformed merge", edit(func(m map[string]any) { model(m)["merges"] = []any{"abc"} }), ErrTokenizer, "merge 0"},
		{"negative id", edit(func(m map[string]any) { model(m)["vocab"].(map[string]any)["Ġzz"] = -4 }), ErrTokenizer, "id -4"},
		{"duplicate id", edit(func(m map[string]any) { model(m)["vocab"].(map[string]any)["Ġzz"] = 3 }), ErrTokenizer, "id 3 twice"},
		{"lowercase normalizer", edit(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }),
			ErrUnsupported, "normalizer [Lowercase]"},
		{"dropout", edit(func(m map[string]any) { model(m)["dropout"] = 0.1 }), ErrUnsupported, "dropout"},
		{"no pre-tokenizer", edit(func(m map[string]any) { m["pre_tokenizer"] = nil }), ErrUnsupported, "only byte-level BPE and SentencePiece"},
		{"template of unknown token", edit(func(m map[string]any) {
			m["post_processor"].(map[string]any)["processors"].([]any)[1].(map[string]any)["single"].([]any)[0].(map[string]any)["SpecialToken"].(map[string]any)["id"] = "<bos>"
		}), ErrTokenizer, `adds "<bos>"`},
	} {
		_, err := ReadTokenizerJSON(k.data, TokenizerJSONOptions{BOS: -1})
		if !errors.Is(err, k.is) || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: got %v, want %v containing %q", k.name, err, k.is, k.want)
		}
	}
}

// TestTokenizerJSONShared reads every tokenizer.json under the shared
// models folder, if there are any, and checks that text round-trips.
func TestTokenizerJSONShared(t *testing.T) {
	dir, _ := refPath() // …/shared/models/stories260K, present or not
	if dir == "" {
		t.Skip("shared models folder not found")
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*", "tokenizer.json"))
	if len(files) == 0 {
		t.Skip("no tokenizer.json under the shared models folder")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ReadTokenizerJSON(data, TokenizerJSONOptions{BOS: -1})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if tok.Format() == TokenizerBPE {
			const s = "Hello world! 12345 naïve café\n\n日本語"
			var sb strings.Builder
			for _, id := range tok.Encode(s, false, false) {
				sb.WriteString(tok.Decode(0, id))
			}
			if sb.String() != s {
				t.Errorf("%s: Decode(Encode(%q)) = %q", f, s, sb.String())
			}
		}
	}
}

func FuzzReadTokenizerJSON(f *testing.F) {
	c := testBPEConfig(PreLlama3, 10)
	f.Add(byteLevelJSON(f, c))
	c2 := testBPEConfig(PreGPT2, 10)
	c2.AddBOS = false
	f.Add(byteLevelJSON(f, c2))
	tokens, merges := spVocab()
	f.Add(spJSON(f, tokens, merges, true))
	f.Add([]byte(`{"model":{"type":"BPE","vocab":{"a":0},"merges":["a a"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := ReadTokenizerJSON(data, TokenizerJSONOptions{BOS: -1})
		if err != nil {
			return
		}
		ids := tok.Encode("hello <|eot_id|> wörld 123", true, true)
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode gave id %d of %d", id, tok.VocabSize())
			}
		}
		b, err := tok.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadTokenizerFormat(tok.Format(), b, tok.VocabSize()); err != nil {
			t.Fatalf("re-read of MarshalBinary output: %v", err)
		}
	})
}
