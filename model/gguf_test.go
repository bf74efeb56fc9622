package model

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func loadGGUF(t testing.TB) (*Model, *Tokenizer, []byte) {
	t.Helper()
	p := filepath.Join(refDir(t), "stories260K.gguf")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("GGUF reference %q not readable (%v); it lives beside stories260K.bin", p, err)
	}
	m, tok, err := ReadGGUF(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("ReadGGUF: %v", err)
	}
	return m, tok, data
}

func TestGGUFMatchesLlama2C(t *testing.T) {
	g, gtok, _ := loadGGUF(t)
	m, tok := loadStories(t)
	want := m.Config
	want.SeqLen = 2048 // llama.context_length; the .bin says 512
	if g.Config != want {
		t.Errorf("config = %+v, want %+v", g.Config, want)
	}
	if !equalBits(g.Head.Embedding, m.Head.Embedding) || !equalBits(g.Head.FinalNorm, m.Head.FinalNorm) ||
		g.Head.Classifier != nil {
		t.Errorf("head differs from the llama2.c checkpoint")
	}
	for l := range g.Blocks {
		a, b := g.Blocks[l], m.Blocks[l]
		for i, pair := range [][2][]float32{{a.AttNorm, b.AttNorm}, {a.Wq, b.Wq}, {a.Wk, b.Wk}, {a.Wv, b.Wv},
			{a.Wo, b.Wo}, {a.FFNNorm, b.FFNNorm}, {a.W1, b.W1}, {a.W2, b.W2}, {a.W3, b.W3}} {
			if !equalBits(pair[0], pair[1]) {
				t.Errorf("block %d array %d differs bitwise from the llama2.c checkpoint", l, i)
			}
		}
	}
	for i := range tok.VocabSize() {
		if gtok.Piece(i) != tok.Piece(i) || math.Float32bits(gtok.Score(i)) != math.Float32bits(tok.Score(i)) {
			t.Errorf("token %d = %q %g, want %q %g", i, gtok.Piece(i), gtok.Score(i), tok.Piece(i), tok.Score(i))
		}
	}
	b1, _ := gtok.MarshalBinary()
	b2, _ := tok.MarshalBinary()
	if !bytes.Equal(b1, b2) {
		t.Errorf("GGUF tokenizer does not marshal to tok512.bin's bytes")
	}
	for _, s := range []string{"Once upon a time", "", "Lily's mom said, \"hi\"\n", "héllo wörld ☃", "  two  spaces"} {
		if a, b := gtok.Encode(s, true, false), tok.Encode(s, true, false); !slices.Equal(a, b) {
			t.Errorf("Encode(%q) = %v, tok512.bin gives %v", s, a, b)
		}
	}
	if got := gtok.Encode("Once upon a time", true, false); !slices.Equal(got, []int{1, 403, 407, 261, 378}) {
		t.Errorf("Encode(Once upon a time) = %v, want [1 403 407 261 378]", got)
	}
	for prev := range 3 {
		for id := range tok.VocabSize() {
			if a, b := gtok.Decode(prev, id), tok.Decode(prev, id); a != b {
				t.Errorf("Decode(%d, %d) = %q, want %q", prev, id, a, b)
			}
		}
	}
}

func TestGGUFReference(t *testing.T) {
	m, tok, _ := loadGGUF(t)
	ref := loadReference(t)
	s := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	m.Step(s, BOS, 0, logits)
	for i, want := range ref.logits {
		if d := math.Abs(float64(logits[i]) - float64(want)); d > 1e-4 {
			t.Errorf("logit %d = %.8g, want %.8g", i, logits[i], want)
		}
	}
	ids, text := generate(m, tok, NewSampler(m.Config.VocabSize, 0, 0.9, 1), "", 200)
	if !slices.Equal(ids, ref.case2IDs) {
		t.Errorf("greedy ids differ from REFERENCE.md Case 2:\n got %v\nwant %v", ids, ref.case2IDs)
	}
	if text != ref.case2Text {
		t.Errorf("greedy text:\n got %q\nwant %q", text, ref.case2Text)
	}
}
