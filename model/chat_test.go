package model

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// chatBPE is testBPEConfig with the ChatML and Llama 3 markers added as
// special tokens.
func chatBPE(t *testing.T) *Tokenizer {
	t.Helper()
	c := testBPEConfig(PreLlama3, 40)
	for _, s := range []string{"<|im_start|>", "<|im_end|>", "<|start_header_id|>", "<|end_header_id|>"} {
		c.Tokens = append(c.Tokens, BPEToken{Text: s, Kind: BPESpecial})
	}
	tok, err := NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestDetectChat(t *testing.T) {
	for tmpl, want := range map[string]string{
		// The layouts of the families, written as Jinja templates do.
		"{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}":                                          ChatML,
		"{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + m['content'] | trim + '<|eot_id|>' }}{% endfor %}": ChatLlama3,
		"{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}":                                                                           "",
		"":                             "",
		"<|im_start|> without its end": "",
	} {
		if got := DetectChat(tmpl); got != want {
			t.Errorf("DetectChat(%.50q) = %q, want %q", tmpl, got, want)
		}
	}
}

func TestRenderChat(t *testing.T) {
	msgs := []ChatMessage{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", " Why? "}}
	for _, c := range []struct {
		format, want string
		stops        []string
	}{
		{ChatML, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" +
			"<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n Why? <|im_end|>\n<|im_start|>assistant\n",
			[]string{"<|im_end|>", "<|im_start|>"}},
		{ChatLlama3, "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
			"<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>" +
			"<|start_header_id|>user<|end_header_id|>\n\nWhy?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
			[]string{"<|eot_id|>", "<|start_header_id|>"}},
	} {
		got, stops, err := RenderChat(c.format, msgs)
		if err != nil || got != c.want || !slices.Equal(stops, c.stops) {
			t.Errorf("RenderChat(%s) = %q, %q, %v;\nwant %q, %q", c.format, got, stops, err, c.want, c.stops)
		}
	}
	if _, _, err := RenderChat("vicuna", msgs); !errors.Is(err, ErrTokenizer) {
		t.Errorf("unknown format: err = %v, want ErrTokenizer", err)
	}
}

func TestSetChat(t *testing.T) {
	tok := chatBPE(t)
	for _, f := range []string{ChatML, ChatLlama3, ""} {
		if err := tok.SetChat(f); err != nil || tok.Chat() != f {
			t.Errorf("SetChat(%q): %v, Chat() = %q", f, err, tok.Chat())
		}
	}
	// The markers of a rendered prompt are single tokens.
	prompt, _, _ := RenderChat(ChatML, []ChatMessage{{"user", "the cat"}})
	ids := tok.Encode(prompt, false, false)
	if n := strings.Count(prompt, "<|im_start|>"); countID(ids, tok.Encode("<|im_start|>", false, false)[0]) != n {
		t.Errorf("prompt %q encodes to %v, want %d <|im_start|> tokens", prompt, ids, n)
	}
	// A tokenizer without the markers refuses the format.
	plain, err := NewBPE(testBPEConfig(PreLlama3, 40))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.SetChat(ChatML); !errors.Is(err, ErrTokenizer) || plain.Chat() != "" {
		t.Errorf("SetChat(chatml) without its markers: %v, Chat() = %q", err, plain.Chat())
	}
	if err := plain.SetChat("nonsense"); !errors.Is(err, ErrTokenizer) {
		t.Errorf("SetChat of an unknown format: %v", err)
	}
	// testBPEConfig has <|eot_id|> but not the header markers of Llama 3.
	if err := plain.SetChat(ChatLlama3); err == nil {
		t.Error("SetChat(llama3) without <|start_header_id|> succeeded")
	}
	if tk, _ := tok512Maybe(); tk != nil {
		if err := tk.SetChat(ChatML); !errors.Is(err, ErrTokenizer) {
			t.Errorf("SetChat on a llama2.c tokenizer: %v, want ErrTokenizer", err)
		}
	}
}

func countID(ids []int, id int) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

func TestChatTemplateFromConfig(t *testing.T) {
	for in, want := range map[string]string{
		`{"chat_template":"<|im_start|>x<|im_end|>","eos_token":"<|im_end|>"}`:                     "<|im_start|>x<|im_end|>",
		`{"chat_template":[{"name":"tool_use","template":"a"},{"name":"default","template":"b"}]}`: "b",
		`{"chat_template":[{"name":"rag","template":"c"}]}`:                                        "c",
		`{"chat_template":null}`:    "",
		`{"model_max_length":4096}`: "",
	} {
		got, err := ChatTemplateFromConfig([]byte(in))
		if err != nil || got != want {
			t.Errorf("ChatTemplateFromConfig(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`not json`, `{"chat_template":42}`, `{"chat_template":{"a":1}}`} {
		if _, err := ChatTemplateFromConfig([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("ChatTemplateFromConfig(%s): err = %v, want ErrFormat", bad, err)
		}
	}
	if _, err := ChatTemplateFromConfig(make([]byte, MaxTokenizerJSON+1)); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized tokenizer_config.json: err = %v, want ErrFormat", err)
	}
}

// TestGGUFChatRoundTrip exports a Qwen2-style model whose tokenizer has
// the ChatML format: the GGUF carries a chat template, and reading it back
// recognises the format.
func TestGGUFChatRoundTrip(t *testing.T) {
	c := qwenTestConfig()
	bc := testBPEConfig(PreQwen2, 20)
	for _, s := range []string{"<|im_start|>", "<|im_end|>"} {
		bc.Tokens = append(bc.Tokens, BPEToken{Text: s, Kind: BPESpecial})
	}
	for len(bc.Tokens) < c.VocabSize {
		bc.Tokens = append(bc.Tokens, BPEToken{})
	}
	tok, err := NewBPE(bc)
	if err != nil {
		t.Fatal(err)
	}
	if err := tok.SetChat(ChatML); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteGGUF(&buf, Synth(c, 5), tok); err != nil {
		t.Fatal(err)
	}
	_, back, err := readGGUFBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if back.Chat() != ChatML {
		t.Errorf("chat format after the GGUF round trip = %q, want %q", back.Chat(), ChatML)
	}
	// Without a format nothing is written, and nothing is read back.
	tok.SetChat("")
	buf.Reset()
	if err := WriteGGUF(&buf, Synth(c, 5), tok); err != nil {
		t.Fatal(err)
	}
	if _, back, _ = readGGUFBytes(buf.Bytes()); back == nil || back.Chat() != "" {
		t.Errorf("a tokenizer without a chat format read back with %v", back)
	}
}

// FuzzChatTemplateFromConfig: any tokenizer_config.json gives a template
// or an ErrFormat error, never a panic, and DetectChat takes any template.
func FuzzChatTemplateFromConfig(f *testing.F) {
	f.Add([]byte(`{"chat_template":"<|im_start|>{{ m }}<|im_end|>"}`))
	f.Add([]byte(`{"chat_template":[{"name":"default","template":"<|start_header_id|><|eot_id|>"}]}`))
	f.Add([]byte(`{"chat_template":null,"eos_token":"</s>"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := ChatTemplateFromConfig(data)
		if err != nil && !errors.Is(err, ErrFormat) {
			t.Fatalf("error %v does not wrap ErrFormat", err)
		}
		if f := DetectChat(tmpl); f != "" && f != ChatML && f != ChatLlama3 {
			t.Fatalf("DetectChat gave %q", f)
		}
	})
}
