package infer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// bpeSetup is a Qwen2-like model (q/k/v biases, Llama 3 RoPE scaling)
// with a byte-level BPE tokenizer padded to its vocabulary.
func bpeSetup(t *testing.T, addBOS bool, stop []int) (*model.Model, *model.Tokenizer) {
	t.Helper()
	cfg := model.Config{Dim: 32, HiddenDim: 48, NLayers: 4, NHeads: 4, NKVHeads: 2, VocabSize: 300, SeqLen: 48,
		NormEps: 1e-6, RopeTheta: 1e4, QKVBias: true,
		RopeScaling: model.RopeScaling{Type: model.RopeLlama3, Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 16}}
	c := model.BPEConfig{Pre: model.PreQwen2, BOS: 258, EOS: 259, AddBOS: addBOS, Stop: stop}
	for b := range 256 {
		c.Tokens = append(c.Tokens, model.BPEToken{Text: model.ByteLevelEncode(string([]byte{byte(b)})), Kind: model.BPENormal})
	}
	c.Merges = [][2]string{{"Ġ", "t"}, {"h", "e"}}
	c.Tokens = append(c.Tokens, model.BPEToken{Text: "Ġt", Kind: model.BPENormal}, model.BPEToken{Text: "he", Kind: model.BPENormal},
		model.BPEToken{Text: "<|im_start|>", Kind: model.BPESpecial}, model.BPEToken{Text: "<|endoftext|>", Kind: model.BPESpecial})
	for len(c.Tokens) < cfg.VocabSize {
		c.Tokens = append(c.Tokens, model.BPEToken{})
	}
	tok, err := model.NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	return model.Synth(cfg, 9), tok
}

func generateIDs(t *testing.T, svc *Service, req Request) (string, []int, Stats) {
	t.Helper()
	var out strings.Builder
	var ids []int
	st, err := svc.Generate(context.Background(), req, func(tk Token) error {
		out.Write(tk.Piece)
		if !tk.Prompt {
			ids = append(ids, tk.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return out.String(), ids, st
}

// TestGenerateBPE: a byte-level BPE model prints its prompt exactly (the
// first token too when no BOS is added, multi-byte characters as raw
// bytes), gives the same greedy text split over peers as whole, and stops
// at a stop token.
func TestGenerateBPE(t *testing.T) {
	const prompt = "the théorie 日本 <|im_start|>"
	for _, addBOS := range []bool{false, true} {
		m, tok := bpeSetup(t, addBOS, nil)
		var whole memNet
		want, ids, _ := generateIDs(t, whole.mesh(t, m, tok, [][2]int{{0, 4}})[0], Request{Prompt: prompt, Steps: 40})
		if !strings.HasPrefix(want, prompt) {
			t.Fatalf("addBOS %v: output %q does not start with the prompt %q", addBOS, want, prompt)
		}
		var split memNet
		svcs := split.mesh(t, m, tok, [][2]int{{0, 1}, {1, 3}, {3, 4}})
		if got, _, _ := generateIDs(t, svcs[1], Request{Prompt: prompt, Steps: 40}); got != want {
			t.Errorf("addBOS %v: split over 3 peers %q, whole %q", addBOS, got, want)
		}
		waitIdle(t, svcs)
		// Make the 4th generated token a stop token: generation ends before it.
		if len(ids) < 4 {
			t.Fatalf("only %d tokens generated", len(ids))
		}
		stop := ids[3]
		first := slices.Index(ids, stop)
		_, stopTok := bpeSetup(t, addBOS, []int{stop})
		var n memNet
		_, got, st := generateIDs(t, n.mesh(t, m, stopTok, [][2]int{{0, 4}})[0], Request{Prompt: prompt, Steps: 40})
		if !slices.Equal(got, ids[:first]) || st.Stop != StopBOS {
			t.Errorf("addBOS %v: with stop token %d got %v (stop %q), want %v", addBOS, stop, got, st.Stop, ids[:first])
		}
	}
	m, tok := bpeSetup(t, false, nil)
	var n memNet
	if _, err := n.mesh(t, m, tok, [][2]int{{0, 4}})[0].Generate(context.Background(), Request{Prompt: "", Steps: 4},
		func(Token) error { return nil }); !errors.Is(err, ErrRequest) {
		t.Errorf("empty prompt without BOS: %v, want ErrRequest", err)
	}
}
