package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/model"
)

// TestOpenAIChatFormat: a model whose tokenizer has a chat format (here
// ChatML) gets its chat prompts in that layout and its reply ends at the
// end-of-turn marker; the same model without a format gets the plain
// template and runs on to max_tokens. The model's greedy output after any
// token outside its chain is "x", then "y", then <|im_end|> (cycleModel).
func TestOpenAIChatFormat(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newTok := func(format string) *model.Tokenizer {
		toks := make([]model.BPEToken, 0, 260)
		for b := range 256 {
			toks = append(toks, model.BPEToken{Text: model.ByteLevelEncode(string([]byte{byte(b)})), Kind: model.BPENormal})
		}
		for _, s := range []string{"<s>", "</s>", "<|im_start|>", "<|im_end|>"} {
			toks = append(toks, model.BPEToken{Text: s, Kind: model.BPESpecial})
		}
		tok, err := model.NewBPE(model.BPEConfig{Tokens: toks, Pre: model.PreQwen2, BOS: 256, EOS: 257, AddBOS: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := tok.SetChat(format); err != nil {
			t.Fatal(err)
		}
		return tok
	}
	const imEnd = 259
	chain := []int{'x', 'y', imEnd}
	const body = `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"}],"max_tokens":12,"temperature":0}`
	for _, tc := range []struct {
		format, want, finish, prompt string
	}{
		{model.ChatML, "xy", "stop",
			"<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"", "xy<|im_end|>xy<|im_end|>xy<|im_end|>xy<|im_end|>", "length", "System: Be brief.\nUser: Hi\nAssistant:"},
	} {
		tok := newTok(tc.format)
		base := startModelNode(t, ctx, cycleModel(tok.VocabSize(), chain), tok)
		got := decode[testCompletion](t, do(t, ctx, "POST", base+"/v1/chat/completions", body))
		if got.Error != nil || len(got.Choices) != 1 {
			t.Fatalf("format %q: %+v", tc.format, got)
		}
		c := got.Choices[0]
		if got.text() != tc.want || c.FinishReason == nil || *c.FinishReason != tc.finish {
			t.Errorf("format %q: reply %q, finish %v; want %q, %q", tc.format, got.text(), c.FinishReason, tc.want, tc.finish)
		}
		if n := len(tok.Encode(tc.prompt, true, false)); got.Usage == nil || got.Usage.PromptTokens != n {
			t.Errorf("format %q: usage %+v, want %d prompt tokens (%q)", tc.format, got.Usage, n, tc.prompt)
		}
		if tc.format != "" && strings.Contains(got.text(), "<|im_") {
			t.Errorf("format %q: the reply holds a marker: %q", tc.format, got.text())
		}
	}
}
