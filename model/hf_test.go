package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func readHFBytes(config, weights []byte) (*Model, error) {
	return ReadHF(config, bytes.NewReader(weights), int64(len(weights)))
}

// torchPermute is transformers' convert_llama_weights_to_hf permute,
// w.view(n, hs/2, 2, cols).transpose(1, 2).reshape(rows, cols), written
// with explicit 4-D indices: out[h][j][i][:] = in[h][i][j][:].
func torchPermute(w []float32, n, cols int) []float32 {
	rows := len(w) / cols
	hs := rows / n
	out := make([]float32, len(w))
	in := func(h, i, j, c int) float32 { return w[((h*(hs/2)+i)*2+j)*cols+c] }
	for h := range n {
		for j := range 2 {
			for i := range hs / 2 {
				for c := range cols {
					out[((h*2+j)*(hs/2)+i)*cols+c] = in(h, i, j, c)
				}
			}
		}
	}
	return out
}

func TestPermuteHFMatchesTorch(t *testing.T) {
	for _, tc := range []struct{ n, hs, cols int }{{1, 2, 1}, {2, 4, 3}, {4, 8, 5}, {3, 6, 2}} {
		w := make([]float32, tc.n*tc.hs*tc.cols)
		for i := range w {
			w[i] = float32(i)
		}
		got := permuteHF(w, tc.n, tc.cols)
		if want := torchPermute(w, tc.n, tc.cols); !slices.Equal(got, want) {
			t.Errorf("permuteHF(n=%d hs=%d cols=%d) = %v, want %v", tc.n, tc.hs, tc.cols, got, want)
		}
		if back := unpermuteHF(got, tc.n, tc.cols); !slices.Equal(back, w) {
			t.Errorf("unpermuteHF(permuteHF(w)) = %v, want %v", back, w)
		}
	}
}

// stepLogits runs tokens through m from position 0 and returns the
// logits after each.
func stepLogits(m *Model, toks []int) [][]float32 {
	s := m.NewState(0, m.Config.NLayers)
	var out [][]float32
	for pos, tok := range toks {
		l := make([]float32, m.Config.VocabSize)
		m.Step(s, tok, pos, l)
		out = append(out, l)
	}
	return out
}

func TestHFStoriesRoundTrip(t *testing.T) {
	m, _ := loadStories(t)
	cfgJSON, st, err := WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	cfg2, st2, err := WriteHF(m)
	if err != nil || !bytes.Equal(cfgJSON, cfg2) || !bytes.Equal(st, st2) {
		t.Fatalf("WriteHF is not deterministic (err %v)", err)
	}
	// The file really holds Hugging Face's q/k layout, not ours.
	f, err := parseSafetensors(bytes.NewReader(st), int64(len(st)))
	if err != nil {
		t.Fatal(err)
	}
	q, err := f.floats(f.tensors["model.layers.0.self_attn.q_proj.weight"])
	if err != nil {
		t.Fatal(err)
	}
	if !equalBits(q, torchPermute(m.Blocks[0].Wq, m.Config.NHeads, m.Config.Dim)) || equalBits(q, m.Blocks[0].Wq) {
		t.Fatalf("q_proj in the export is not torch's permute of Wq")
	}
	g, err := readHFBytes(cfgJSON, st)
	if err != nil {
		t.Fatalf("ReadHF: %v", err)
	}
	sameModel(t, g, m)
	toks := []int{BOS, 403, 407, 261, 378}
	want, got := stepLogits(m, toks), stepLogits(g, toks)
	for i := range want {
		if !equalBits(got[i], want[i]) {
			t.Fatalf("position %d: logits differ from the llama2.c checkpoint's", i)
		}
	}
	ref := loadReference(t)
	for i, v := range ref.logits {
		if d := math.Abs(float64(got[0][i] - v)); d > 1e-4 {
			t.Fatalf("logit %d = %g, REFERENCE.md says %g", i, got[0][i], v)
		}
	}
}

func TestHFSynthRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		cfg := ggufTestConfig
		cfg.SharedClassifier = shared
		cfg.RopeTheta = 500000
		m := Synth(cfg, 3)
		c, w, err := WriteHF(m)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(w[:200]), "lm_head") == shared {
			t.Errorf("shared=%v: lm_head.weight presence wrong", shared)
		}
		g, err := readHFBytes(c, w)
		if err != nil {
			t.Fatalf("shared=%v: ReadHF: %v", shared, err)
		}
		sameModel(t, g, m)
	}
}

func TestGGUFWriteRoundTrip(t *testing.T) {
	m, tok := loadStories(t)
	var a, b bytes.Buffer
	if err := WriteGGUF(&a, m, tok); err != nil {
		t.Fatal(err)
	}
	if err := WriteGGUF(&b, m, tok); err != nil || !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("WriteGGUF is not deterministic (err %v)", err)
	}
	g, gtok, err := readGGUFBytes(a.Bytes())
	if err != nil {
		t.Fatalf("ReadGGUF of our export: %v", err)
	}
	sameModel(t, g, m)
	x, _ := gtok.MarshalBinary()
	y, _ := tok.MarshalBinary()
	if !bytes.Equal(x, y) {
		t.Errorf("tokenizer read back from our GGUF does not marshal to tok512.bin's bytes")
	}
	for _, shared := range []bool{true, false} {
		m, tok, _ := synthGGUF(shared)
		var buf bytes.Buffer
		if err := WriteGGUF(&buf, m, tok); err != nil {
			t.Fatal(err)
		}
		g, gtok, err := readGGUFBytes(buf.Bytes())
		if err != nil {
			t.Fatalf("shared=%v: %v", shared, err)
		}
		sameModel(t, g, m)
		if gtok.VocabSize() != tok.VocabSize() {
			t.Errorf("tokenizer has %d tokens, want %d", gtok.VocabSize(), tok.VocabSize())
		}
		buf.Reset()
		if err := WriteGGUF(&buf, m, nil); err != nil {
			t.Fatal(err)
		}
		if _, gtok, err := readGGUFBytes(buf.Bytes()); err != nil || gtok != nil {
			t.Errorf("without a tokenizer: tok %v err %v, want nil, nil", gtok, err)
		}
	}
	if err := WriteGGUF(&bytes.Buffer{}, &Model{Config: ggufTestConfig}, nil); !errors.Is(err, ErrSpan) {
		t.Errorf("WriteGGUF of a headless model: %v, want ErrSpan", err)
	}
}

// stEntry is one tensor of a hand-built safetensors file.
type stEntry struct {
	name, dtype string
	shape       []int
	data        []byte
}

func buildST(es []stEntry) []byte {
	hdr := map[string]any{}
	var data []byte
	for _, e := range es {
		hdr[e.name] = map[string]any{"dtype": e.dtype, "shape": e.shape, "data_offsets": []int{len(data), len(data) + len(e.data)}}
		data = append(data, e.data...)
	}
	h, _ := json.Marshal(hdr)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

// entriesOf reads back an F32 export as entries, so tests can edit them.
func entriesOf(t *testing.T, st []byte) []stEntry {
	f, err := parseSafetensors(bytes.NewReader(st), int64(len(st)))
	if err != nil {
		t.Fatal(err)
	}
	var es []stEntry
	for name, tt := range f.tensors {
		shape := make([]int, len(tt.shape))
		for i, d := range tt.shape {
			shape[i] = int(d)
		}
		es = append(es, stEntry{name, tt.dtype, shape, st[f.dataOff+tt.begin : f.dataOff+tt.end]})
	}
	slices.SortFunc(es, func(a, b stEntry) int { return strings.Compare(a.name, b.name) })
	return es
}

func TestHFHalfPrecision(t *testing.T) {
	m := Synth(ggufTestConfig, 5)
	c, st, err := WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	es := entriesOf(t, st)
	for _, dtype := range []string{"F16", "BF16"} {
		conv := slices.Clone(es)
		want := slices.Clone(es)
		for i, e := range conv {
			var out, back []byte
			for p := e.data; len(p) > 0; p = p[4:] {
				v := math.Float32frombits(binary.LittleEndian.Uint32(p))
				var h uint16
				if dtype == "BF16" {
					h = uint16(math.Float32bits(v) >> 16) // truncation: exact on read
					back = binary.LittleEndian.AppendUint32(back, uint32(h)<<16)
				} else {
					h = floatToHalfTest(v)
					back = binary.LittleEndian.AppendUint32(back, math.Float32bits(halfToFloat(h)))
				}
				out = binary.LittleEndian.AppendUint16(out, h)
			}
			conv[i] = stEntry{e.name, dtype, e.shape, out}
			want[i] = stEntry{e.name, "F32", e.shape, back}
		}
		got, err := readHFBytes(c, buildST(conv))
		if err != nil {
			t.Fatalf("%s: %v", dtype, err)
		}
		wm, err := readHFBytes(c, buildST(want))
		if err != nil {
			t.Fatal(err)
		}
		sameModel(t, got, wm)
	}
}

// floatToHalfTest rounds toward zero to binary16; enough for values in
// the normal half range such as Synth's weights.
func floatToHalfTest(v float32) uint16 {
	b := math.Float32bits(v)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

func TestHFHostile(t *testing.T) {
	m := Synth(ggufTestConfig, 9)
	cfgJSON, st, err := WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	es := entriesOf(t, st)
	editCfg := func(f func(map[string]any)) []byte {
		var c map[string]any
		if err := json.Unmarshal(cfgJSON, &c); err != nil {
			t.Fatal(err)
		}
		f(c)
		b, _ := json.Marshal(c)
		return b
	}
	editST := func(f func([]stEntry) []stEntry) []byte { return buildST(f(slices.Clone(es))) }
	hugeHeader := binary.LittleEndian.AppendUint64(nil, MaxSafetensorsHeader+1)
	for _, tc := range []struct {
		name     string
		cfg, st  []byte
		is       error
		contains string
	}{
		{"arch", editCfg(func(c map[string]any) { c["architectures"] = []string{"GPTNeoXForCausalLM"} }), st,
			ErrUnsupported, "GPTNeoXForCausalLM"},
		{"no hidden_size", editCfg(func(c map[string]any) { delete(c, "hidden_size") }), st, ErrFormat, "hidden_size"},
		{"bad heads", editCfg(func(c map[string]any) { c["num_attention_heads"] = 3 }), st, ErrConfig, "divisible"},
		{"rope scaling", editCfg(func(c map[string]any) { c["rope_scaling"] = map[string]any{"type": "yarn", "factor": 4} }), st,
			ErrUnsupported, `rope_scaling type "yarn"`},
		{"rope scaling without factor", editCfg(func(c map[string]any) { c["rope_scaling"] = map[string]any{"type": "linear"} }), st,
			ErrFormat, "has no factor"},
		{"llama3 scaling without low_freq_factor", editCfg(func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8, "high_freq_factor": 4, "original_max_position_embeddings": 8}
		}), st, ErrFormat, "low_freq_factor"},
		{"llama3 scaling high below low", editCfg(func(c map[string]any) {
			c["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8, "low_freq_factor": 4, "high_freq_factor": 1, "original_max_position_embeddings": 8}
		}), st, ErrConfig, "high_freq_factor"},
		{"o_proj bias", editCfg(func(c map[string]any) { c["attention_bias"] = true }), st, ErrUnsupported, "attention_bias"},
		{"mlp bias", editCfg(func(c map[string]any) { c["mlp_bias"] = true }), st, ErrUnsupported, "mlp_bias"},
		{"qwen2 without biases", editCfg(func(c map[string]any) { c["architectures"] = []string{"Qwen2ForCausalLM"} }), st,
			ErrFormat, "model.layers.0.self_attn.k_proj.bias is missing"},
		{"not json", []byte("{"), st, ErrFormat, "config.json"},
		{"missing tensor", cfgJSON, editST(func(e []stEntry) []stEntry {
			return slices.DeleteFunc(e, func(x stEntry) bool { return x.name == "model.layers.1.mlp.up_proj.weight" })
		}), ErrFormat, "model.layers.1.mlp.up_proj.weight is missing"},
		{"wrong shape", cfgJSON, editST(func(e []stEntry) []stEntry {
			for i := range e {
				if e[i].name == "model.layers.0.self_attn.k_proj.weight" {
					e[i].shape = []int{8, 4}
				}
			}
			return e
		}), ErrFormat, "k_proj.weight has shape [8 4], want [4 8]"},
		{"unknown tensor", cfgJSON, editST(func(e []stEntry) []stEntry {
			return append(e, stEntry{"model.layers.2.mlp.up_proj.weight", "F32", []int{1}, make([]byte, 4)})
		}), ErrUnsupported, "model.layers.2.mlp.up_proj.weight"},
		{"dtype", cfgJSON, editST(func(e []stEntry) []stEntry {
			e[0].dtype = "I8"
			return e
		}), ErrUnsupported, `dtype "I8"`},
		{"nan", cfgJSON, editST(func(e []stEntry) []stEntry {
			e[0].data = binary.LittleEndian.AppendUint32(slices.Clone(e[0].data[4:]), 0x7fc00000)
			return e
		}), ErrFormat, "non-finite"},
		{"short data", cfgJSON, editST(func(e []stEntry) []stEntry {
			e[0].data = e[0].data[:len(e[0].data)-4]
			return e
		}), ErrFormat, "needs"},
		{"untied lm_head missing", cfgJSON, editST(func(e []stEntry) []stEntry {
			return slices.DeleteFunc(e, func(x stEntry) bool { return x.name == "lm_head.weight" })
		}), ErrFormat, "lm_head.weight is missing"},
		{"tied lm_head differs", editCfg(func(c map[string]any) { c["tie_word_embeddings"] = true }), st,
			ErrFormat, "tie_word_embeddings"},
		{"truncated file", cfgJSON, st[:len(st)-1], ErrTruncated, "outside"},
		{"header too big", cfgJSON, hugeHeader, ErrFormat, "limit"},
		{"header past end", cfgJSON, binary.LittleEndian.AppendUint64(nil, 100), ErrTruncated, "only 0 bytes follow"},
		{"tiny", cfgJSON, []byte{1, 2}, ErrTruncated, "8-byte"},
		{"header not object", cfgJSON, append(binary.LittleEndian.AppendUint64(nil, 2), "[]"...), ErrFormat, "JSON object"},
	} {
		_, err := readHFBytes(tc.cfg, tc.st)
		if !errors.Is(err, tc.is) || !strings.Contains(fmtErr(err), tc.contains) {
			t.Errorf("%s: err = %v, want %v containing %q", tc.name, err, tc.is, tc.contains)
		}
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func FuzzReadHF(f *testing.F) {
	m := Synth(ggufTestConfig, 1)
	c, st, err := WriteHF(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st[:min(len(st), 4096)])
	f.Add(buildST([]stEntry{{"model.norm.weight", "F16", []int{2}, []byte{0, 60, 0, 188}}}))
	f.Add(buildST([]stEntry{{"x", "BF16", []int{}, []byte{0, 0}}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		// The header parser alone, then the whole reader with a valid config.
		if sf, err := parseSafetensors(bytes.NewReader(data), int64(len(data))); err == nil {
			for _, tt := range sf.tensors {
				if _, err := sf.floats(tt); err != nil && !errors.Is(err, ErrFormat) {
					t.Fatalf("floats: %v", err)
				}
			}
		}
		if m, err := readHFBytes(c, data); err == nil && m.Config.Validate() != nil {
			t.Fatalf("ReadHF accepted an invalid config %+v", m.Config)
		}
	})
}
