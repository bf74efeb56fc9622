package node

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

func TestUTF8Hold(t *testing.T) {
	for _, tc := range []struct {
		pieces []string
		want   []string // what add passes on for each piece
	}{
		{[]string{"a", "b"}, []string{"a", "b"}},
		{[]string{"\xc3", "\xa9x"}, []string{"", "éx"}},
		{[]string{"a\xe6", "\x97", "\xa5"}, []string{"a", "", "日"}},
		{[]string{"\xf0\x9f", "\x98", "\x80\xf0"}, []string{"", "", "😀"}},
		{[]string{"\xe6A"}, []string{"\xe6A"}},               // cannot complete: passed on
		{[]string{"\x80", "\xbf"}, []string{"\x80", "\xbf"}}, // stray continuation bytes
		{[]string{"\xed\xa0"}, []string{"\xed\xa0"}},         // a surrogate never completes
		{[]string{"\xc0"}, []string{"\xc0"}},                 // never a lead byte
	} {
		var h utf8Hold
		for i, p := range tc.pieces {
			if got := h.add(p); got != tc.want[i] {
				t.Errorf("pieces %q: add(%q) = %q, want %q", tc.pieces, p, got, tc.want[i])
			}
		}
	}
}

// FuzzUTF8Hold: whatever the pieces, what utf8Hold passes on and then
// flushes is the input, and for valid UTF-8 input every part it passes on
// is valid UTF-8 too.
func FuzzUTF8Hold(f *testing.F) {
	f.Add("aé日😀ж語", uint64(1))
	f.Add("\xe6\x97", uint64(2))
	f.Add("\xf0\x9f\x98\x80\x80", uint64(3))
	f.Fuzz(func(t *testing.T, text string, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 2))
		valid := utf8.ValidString(text)
		var h utf8Hold
		var out strings.Builder
		for rest := text; rest != ""; {
			k := rng.IntN(min(len(rest), 5) + 1)
			got := h.add(rest[:k])
			rest = rest[k:]
			if valid && !utf8.ValidString(got) {
				t.Fatalf("%q: passed on %q", text, got)
			}
			if len(h.pend) >= utf8.UTFMax {
				t.Fatalf("%q: holds %q", text, h.pend)
			}
			out.WriteString(got)
		}
		out.WriteString(h.flush())
		if out.String() != text {
			t.Fatalf("passed on %q, want %q", out.String(), text)
		}
	})
}

// cycleText is what cycleModel generates: characters of two, three and
// four bytes, no byte twice, so each token's successor is determined.
const cycleText = "aé日😀ж語"

// cycleModel is a model whose greedy output after token chain[i] is
// chain[i+1] (then chain[0] again), and chain[0] after any other token:
// the blocks add nothing (zero output projections), the embedding of
// chain[i] is the unit vector e_i (of every other token e_15) and the
// classifier row of its successor is e_i.
func cycleModel(vocab int, chain []int) *model.Model {
	const dim = 16
	cfg := model.Config{Dim: dim, HiddenDim: 16, NLayers: 2, NHeads: 2, NKVHeads: 2, VocabSize: vocab, SeqLen: 128,
		NormEps: 1e-5, RopeTheta: 10000}
	m := model.Synth(cfg, 1)
	for _, b := range m.Blocks {
		for _, w := range [][]float32{b.Wq, b.Wk, b.Wv, b.Wo, b.W1, b.W2, b.W3} {
			clear(w)
		}
	}
	h := m.Head
	clear(h.Embedding)
	clear(h.Classifier)
	for i := range h.FinalNorm {
		h.FinalNorm[i] = 1
	}
	for t := range vocab {
		h.Embedding[t*dim+dim-1] = 1
	}
	h.Classifier[chain[0]*dim+dim-1] = 1
	for i, t := range chain {
		h.Embedding[t*dim+dim-1] = 0
		h.Embedding[t*dim+i] = 1
		h.Classifier[chain[(i+1)%len(chain)]*dim+i] = 1
	}
	return m
}

// byteLevelBPE is a byte-level BPE tokenizer of the 256 bytes (id = byte)
// and a BOS and an EOS, so every character beyond ASCII takes several
// tokens.
func byteLevelBPE(t *testing.T) *model.Tokenizer {
	t.Helper()
	toks := make([]model.BPEToken, 0, 258)
	for b := range 256 {
		toks = append(toks, model.BPEToken{Text: model.ByteLevelEncode(string([]byte{byte(b)})), Kind: model.BPENormal})
	}
	toks = append(toks, model.BPEToken{Text: "<s>", Kind: model.BPESpecial}, model.BPEToken{Text: "</s>", Kind: model.BPESpecial})
	tok, err := model.NewBPE(model.BPEConfig{Tokens: toks, Pre: model.PreGPT2, BOS: 256, EOS: 257, AddBOS: true})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// startModelNode serves m with tok on a node with the HTTP API on
// loopback and returns the API's base URL.
func startModelNode(t *testing.T, ctx context.Context, m *model.Model, tok *model.Tokenizer) string {
	t.Helper()
	dir := t.TempDir()
	st, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := shards.ImportModel(st, m, tok, "cycle"); err != nil {
		t.Fatal(err)
	}
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, HTTP: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return "http://" + n.HTTPAddr()
}

// TestOpenAIStreamUTF8: with tokenizers that give each byte of a
// multi-byte character its own token — byte-level BPE, and SentencePiece
// byte fallback — every streamed chunk is whole characters, the chunks
// joined equal the non-streamed text, and neither holds U+FFFD. A
// character cut short by max_tokens is passed on at the end as it is.
func TestOpenAIStreamUTF8(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nodes; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// 2 × cycleText: 30 tokens after the prompt "a".
	want := strings.Repeat(cycleText[1:]+"a", 2)

	bpe := byteLevelBPE(t)
	var bpeChain []int
	for _, b := range []byte(cycleText) {
		bpeChain = append(bpeChain, int(b))
	}
	// SentencePiece style, too small to hold "a": the byte pieces <0xHH>
	// are ids 3..258.
	sp := model.ByteTokenizer(300)
	var spChain []int
	for _, b := range []byte(cycleText) {
		spChain = append(spChain, int(b)+3)
	}
	if p := sp.Encode("a", true, false); p[len(p)-1] != spChain[0] || sp.Piece(spChain[1]) != "<0xC3>" {
		t.Fatalf("SentencePiece prompt %v, chain %v", p, spChain)
	}
	for _, tc := range []struct {
		name  string
		tok   *model.Tokenizer
		chain []int
	}{{"byte-level BPE", bpe, bpeChain}, {"SentencePiece byte fallback", sp, spChain}} {
		t.Run(tc.name, func(t *testing.T) {
			base := startModelNode(t, ctx, cycleModel(tc.tok.VocabSize(), tc.chain), tc.tok)
			for _, ep := range []struct {
				path, body string
				want       string
			}{
				{"/v1/completions", `{"prompt":"a","max_tokens":30,"temperature":0}`, want},
				{"/v1/completions", `{"prompt":"a","max_tokens":30,"temperature":0,"echo":true}`, "a" + want},
				{"/v1/completions", `{"prompt":"a","max_tokens":30,"temperature":0,"stop":["ж"]}`, "é日😀"},
				{"/v1/chat/completions", `{"messages":[{"role":"user","content":"語"}],"max_tokens":30,"temperature":0}`,
					strings.Repeat("a"+cycleText[1:], 2)},
			} {
				what := fmt.Sprintf("%s %s", ep.path, ep.body)
				plain := decode[testCompletion](t, do(t, ctx, "POST", base+ep.path, ep.body))
				if plain.Error != nil || plain.text() != ep.want {
					t.Errorf("%s: %q (error %+v), want %q", what, plain.text(), plain.Error, ep.want)
				}
				events, done := stream(t, ctx, base+ep.path, strings.Replace(ep.body, "{", `{"stream":true,`, 1))
				if !done {
					t.Errorf("%s: the stream did not end with [DONE]", what)
				}
				for i, ev := range events {
					if strings.ContainsRune(ev.text(), utf8.RuneError) {
						t.Errorf("%s: chunk %d is %q", what, i, ev.text())
					}
				}
				if got := joined(events); got != plain.text() {
					t.Errorf("%s: streamed %q, not streamed %q", what, got, plain.text())
				}
			}
			// Cut inside 日 (bytes 4 and 5 of é日): the end goes out as it is.
			body := `{"prompt":"a","max_tokens":4,"temperature":0}`
			plain := decode[testCompletion](t, do(t, ctx, "POST", base+"/v1/completions", body))
			events, _ := stream(t, ctx, base+"/v1/completions", `{"stream":true,`+body[1:])
			if !strings.HasPrefix(plain.text(), "é") || joined(events) != plain.text() {
				t.Errorf("max_tokens 4: %q, streamed %q; want é and the rest of the bytes as they are", plain.text(), joined(events))
			}
		})
	}
}
