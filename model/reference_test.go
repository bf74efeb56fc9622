package model

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReferenceLogitsPos0(t *testing.T) {
	m, _ := loadStories(t)
	ref := loadReference(t)
	if len(ref.logits) != 512 {
		t.Fatalf("parsed %d reference logits, want 512", len(ref.logits))
	}
	s := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	m.Step(s, BOS, 0, logits)
	var maxDiff float64
	for i, want := range ref.logits {
		d := math.Abs(float64(logits[i]) - float64(want))
		maxDiff = max(maxDiff, d)
		if d > 1e-4 {
			t.Errorf("logit %d = %.8g, want %.8g (diff %g)", i, logits[i], want, d)
		}
	}
	t.Logf("max |logit - reference| = %g", maxDiff)
	if got := slicesArgmax(logits); got != 403 {
		t.Errorf("argmax = %d, want 403", got)
	}
}

func slicesArgmax(x []float32) int {
	return slices.Index(x, slices.Max(x))
}

// generate runs run.c's generate() loop: prompt tokens forced, then
// sampled; stop at steps or when BOS is sampled; text as run.c prints it
// (safe_printf of each decoded piece, then a final newline).
func generate(m *Model, tok *Tokenizer, smp *Sampler, prompt string, steps int) ([]int, string) {
	prompts := tok.Encode(prompt, true, false)
	s := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	var ids []int
	var out strings.Builder
	token := prompts[0]
	for pos := 0; pos < steps; {
		m.Step(s, token, pos, logits)
		var next int
		if pos < len(prompts)-1 {
			next = prompts[pos+1]
		} else {
			next = smp.Sample(logits)
		}
		pos++
		if next == BOS {
			break
		}
		ids = append(ids, next)
		out.WriteString(SafePrint(tok.Decode(token, next)))
		token = next
	}
	out.WriteString("\n")
	return ids, out.String()
}

func TestGreedyCase2(t *testing.T) {
	m, tok := loadStories(t)
	ref := loadReference(t)
	if len(ref.case2Text) != 465 {
		t.Fatalf("parsed Case 2 stdout of %d bytes, REFERENCE.md says 465", len(ref.case2Text))
	}
	ids, text := generate(m, tok, NewSampler(m.Config.VocabSize, 0, 0.9, 1), "", 200)
	if !slices.Equal(ids, ref.case2IDs) {
		t.Errorf("greedy ids differ from REFERENCE.md Case 2:\n got %v\nwant %v", ids, ref.case2IDs)
	}
	if text != ref.case2Text {
		t.Errorf("greedy text:\n got %q\nwant %q", text, ref.case2Text)
	}
}

// TestSeededSampling reproduces the sample in llama2.c's doc/stories260K.md
// (github.com/karpathy/llama2.c, MIT), produced by
// `./run stories260K.bin -z tok512.bin -t 1.0 -p 0.9 -s 133742` (256 steps).
// testdata/stories260K_t1.0_p0.9_s133742.txt holds that output as run.c
// prints it.
func TestSeededSampling(t *testing.T) {
	m, tok := loadStories(t)
	want, err := os.ReadFile(filepath.Join("testdata", "stories260K_t1.0_p0.9_s133742.txt"))
	if err != nil {
		t.Fatal(err)
	}
	_, text := generate(m, tok, NewSampler(m.Config.VocabSize, 1.0, 0.9, 133742), "", 256)
	if text != string(want) {
		t.Errorf("seeded sample:\n got %q\nwant %q", text, want)
	}
}

func TestEncodeReference(t *testing.T) {
	_, tok := loadStories(t)
	got := tok.Encode("Once upon a time", true, false)
	if want := []int{1, 403, 407, 261, 378}; !slices.Equal(got, want) {
		t.Errorf("Encode(Once upon a time) = %v, want %v", got, want)
	}
	if got := tok.Encode("", true, true); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("Encode(\"\", bos, eos) = %v, want [1 2]", got)
	}
}

func TestTokenizerRoundTripBytes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(refDir(t), "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ReadTokenizer(data, 512)
	if err != nil {
		t.Fatal(err)
	}
	out, err := tok.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(data) {
		t.Errorf("MarshalBinary differs from tok512.bin (%d vs %d bytes)", len(out), len(data))
	}
}

// TestSplitSpans checks that running the model as spans on separate
// States, passing the activation along, is bitwise the same as one State.
func TestSplitSpans(t *testing.T) {
	m, _ := loadStories(t)
	whole := m.NewState(0, 5)
	spans := []*State{m.NewState(0, 2), m.NewState(2, 4), m.NewState(4, 5)}
	x1, x2 := make([]float32, m.Config.Dim), make([]float32, m.Config.Dim)
	l1, l2 := make([]float32, m.Config.VocabSize), make([]float32, m.Config.VocabSize)
	tok := BOS
	for pos := range 40 {
		m.Embed(tok, x1)
		m.Forward(whole, x1, pos)
		m.Logits(x1, l1)
		m.Embed(tok, x2)
		for _, s := range spans {
			m.Forward(s, x2, pos)
		}
		m.Logits(x2, l2)
		for i := range l1 {
			if math.Float32bits(l1[i]) != math.Float32bits(l2[i]) {
				t.Fatalf("pos %d logit %d: split %v, whole %v", pos, i, l2[i], l1[i])
			}
		}
		tok = slicesArgmax(l1)
	}
}

func TestNoAllocs(t *testing.T) {
	m, _ := loadStories(t)
	s := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	smp := NewSampler(m.Config.VocabSize, 1, 0.9, 42)
	pos := 0
	allocs := testing.AllocsPerRun(50, func() {
		m.Step(s, 5, pos, logits)
		smp.Sample(logits)
		pos++
	})
	if allocs != 0 {
		t.Errorf("Step+Sample: %v allocations per token, want 0", allocs)
	}
}
