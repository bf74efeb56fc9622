package model

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// ggufKV is one metadata entry for the test writer: val is uint32, int32,
// float32, bool, string, []string, []float32 or []int32, or raw (typ plus
// encoded bytes) for anything else.
type ggufKV struct {
	key string
	val any
	typ uint32 // with raw
	raw []byte
}

type ggufTensorSpec struct {
	name string
	dims []uint64
	typ  uint32
	data []byte
	off  int64 // -1: place automatically
}

type ggufSpec struct {
	version uint32
	kvs     []ggufKV
	tensors []ggufTensorSpec
	align   int
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// bytes encodes s as a GGUF file.
func (s *ggufSpec) bytes() []byte {
	b := []byte(GGUFMagic)
	b = binary.LittleEndian.AppendUint32(b, s.version)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.tensors)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(s.kvs)))
	for _, kv := range s.kvs {
		b = appendStr(b, kv.key)
		switch v := kv.val.(type) {
		case uint32:
			b = binary.LittleEndian.AppendUint32(b, ggufUint32)
			b = binary.LittleEndian.AppendUint32(b, v)
		case int32:
			b = binary.LittleEndian.AppendUint32(b, ggufInt32)
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		case float32:
			b = binary.LittleEndian.AppendUint32(b, ggufFloat32)
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		case bool:
			b = binary.LittleEndian.AppendUint32(b, ggufBool)
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case string:
			b = binary.LittleEndian.AppendUint32(b, ggufString)
			b = appendStr(b, v)
		case []string:
			b = binary.LittleEndian.AppendUint32(b, ggufArray)
			b = binary.LittleEndian.AppendUint32(b, ggufString)
			b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
			for _, e := range v {
				b = appendStr(b, e)
			}
		case []float32:
			b = binary.LittleEndian.AppendUint32(b, ggufArray)
			b = binary.LittleEndian.AppendUint32(b, ggufFloat32)
			b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
			for _, e := range v {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(e))
			}
		case []int32:
			b = binary.LittleEndian.AppendUint32(b, ggufArray)
			b = binary.LittleEndian.AppendUint32(b, ggufInt32)
			b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
			for _, e := range v {
				b = binary.LittleEndian.AppendUint32(b, uint32(e))
			}
		case nil:
			b = binary.LittleEndian.AppendUint32(b, kv.typ)
			b = append(b, kv.raw...)
		default:
			panic("ggufSpec: unsupported value type")
		}
	}
	align := int64(s.align)
	if align == 0 {
		align = ggufDefaultAlign
	}
	var next int64
	offs := make([]int64, len(s.tensors))
	for i, t := range s.tensors {
		offs[i] = t.off
		if t.off < 0 { // automatic placement; explicit offsets do not move the data
			offs[i] = next
			next = (next + int64(len(t.data)) + align - 1) / align * align
		}
	}
	for i, t := range s.tensors {
		b = appendStr(b, t.name)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(t.dims)))
		for _, d := range t.dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, t.typ)
		b = binary.LittleEndian.AppendUint64(b, uint64(offs[i]))
	}
	for int64(len(b))%align != 0 {
		b = append(b, 0)
	}
	data := make([]byte, next)
	for i, t := range s.tensors {
		if t.off < 0 {
			copy(data[offs[i]:], t.data)
		}
	}
	return append(b, data...)
}

func (s *ggufSpec) kv(key string) *ggufKV {
	for i := range s.kvs {
		if s.kvs[i].key == key {
			return &s.kvs[i]
		}
	}
	return nil
}

func (s *ggufSpec) tensor(name string) *ggufTensorSpec {
	for i := range s.tensors {
		if s.tensors[i].name == name {
			return &s.tensors[i]
		}
	}
	return nil
}

func f32Bytes(x []float32) []byte {
	var b []byte
	for _, v := range x {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

// ggufSpecOf describes m and tok as llama.cpp's convert-llama2c-to-ggml
// would write them: SentencePiece pieces, <s> and </s>, a copy of the
// embedding as output.weight when the classifier is shared.
func ggufSpecOf(m *Model, tok *Tokenizer) *ggufSpec {
	c := m.Config
	pieces := make([]string, tok.VocabSize())
	scores := make([]float32, tok.VocabSize())
	types := make([]int32, tok.VocabSize())
	for i := range pieces {
		pieces[i] = strings.ReplaceAll(tok.Piece(i), " ", "\u2581")
		scores[i] = tok.Score(i)
		types[i] = 1
		if i >= 3 && i < 259 {
			types[i] = ggufTokByte
		}
	}
	pieces[1], pieces[2], types[0], types[1], types[2] = "<s>", "</s>", 2, 3, 3
	s := &ggufSpec{version: 3, kvs: []ggufKV{
		{key: "tokenizer.ggml.tokens", val: pieces},
		{key: "tokenizer.ggml.scores", val: scores},
		{key: "tokenizer.ggml.token_type", val: types},
		{key: "tokenizer.ggml.model", val: "llama"},
		{key: "general.architecture", val: "llama"},
		{key: "tokenizer.ggml.bos_token_id", val: uint32(1)},
		{key: "tokenizer.ggml.eos_token_id", val: uint32(2)},
		{key: "llama.context_length", val: uint32(c.SeqLen)},
		{key: "llama.embedding_length", val: uint32(c.Dim)},
		{key: "llama.feed_forward_length", val: uint32(c.HiddenDim)},
		{key: "llama.attention.head_count", val: uint32(c.NHeads)},
		{key: "llama.attention.head_count_kv", val: uint32(c.NKVHeads)},
		{key: "llama.block_count", val: uint32(c.NLayers)},
		{key: "llama.rope.dimension_count", val: uint32(c.HeadSize())},
		{key: "llama.attention.layer_norm_rms_epsilon", val: c.NormEps},
	}}
	d, kv, hid, v := uint64(c.Dim), uint64(c.KVDim()), uint64(c.HiddenDim), uint64(c.VocabSize)
	add := func(name string, x []float32, dims ...uint64) {
		s.tensors = append(s.tensors, ggufTensorSpec{name: name, dims: dims, typ: ggmlF32, data: f32Bytes(x), off: -1})
	}
	add("token_embd.weight", m.Head.Embedding, d, v)
	add("output_norm.weight", m.Head.FinalNorm, d)
	cls := m.Head.Classifier
	if c.SharedClassifier {
		cls = m.Head.Embedding
	}
	add("output.weight", cls, d, v)
	for l, b := range m.Blocks {
		p := "blk." + strconv.Itoa(l) + "."
		add(p+"attn_q.weight", b.Wq, d, d)
		add(p+"attn_k.weight", b.Wk, d, kv)
		add(p+"attn_v.weight", b.Wv, d, kv)
		add(p+"attn_output.weight", b.Wo, d, d)
		add(p+"ffn_gate.weight", b.W1, d, hid)
		add(p+"ffn_down.weight", b.W2, hid, d)
		add(p+"ffn_up.weight", b.W3, d, hid)
		add(p+"attn_norm.weight", b.AttNorm, d)
		add(p+"ffn_norm.weight", b.FFNNorm, d)
	}
	return s
}

var ggufTestConfig = Config{Dim: 8, HiddenDim: 12, NLayers: 2, NHeads: 2, NKVHeads: 1, VocabSize: 262,
	SeqLen: 16, NormEps: 1e-5, RopeTheta: 10000}

func synthGGUF(shared bool) (*Model, *Tokenizer, *ggufSpec) {
	cfg := ggufTestConfig
	cfg.SharedClassifier = shared
	m := Synth(cfg, 7)
	tok := ByteTokenizer(cfg.VocabSize)
	return m, tok, ggufSpecOf(m, tok)
}

func readGGUFBytes(b []byte) (*Model, *Tokenizer, error) {
	return ReadGGUF(bytes.NewReader(b), int64(len(b)))
}

func sameModel(t *testing.T, got, want *Model) {
	t.Helper()
	if got.Config != want.Config {
		t.Fatalf("config = %+v, want %+v", got.Config, want.Config)
	}
	if !equalBits(got.Head.Embedding, want.Head.Embedding) || !equalBits(got.Head.FinalNorm, want.Head.FinalNorm) ||
		!equalBits(got.Head.Classifier, want.Head.Classifier) {
		t.Errorf("head differs")
	}
	for l := range want.Blocks {
		if g, w := got.Blocks[l].Tensors(want.Config), want.Blocks[l].Tensors(want.Config); len(g) != len(w) {
			t.Fatalf("block %d: %d tensors, want %d", l, len(g), len(w))
		} else {
			for i := range w {
				if !equalBits(g[i].Data, w[i].Data) {
					t.Errorf("block %d tensor %s differs", l, w[i].Name)
				}
			}
		}
	}
}

func TestGGUFSynthRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		m, tok, spec := synthGGUF(shared)
		g, gtok, err := readGGUFBytes(spec.bytes())
		if err != nil {
			t.Fatalf("shared=%v: ReadGGUF: %v", shared, err)
		}
		sameModel(t, g, m)
		a, _ := gtok.MarshalBinary()
		b, _ := tok.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Errorf("shared=%v: tokenizer differs", shared)
		}
	}
	// Without output.weight the classifier is shared; with alignment 64
	// and version 2 everything still reads.
	m, _, spec := synthGGUF(true)
	spec.tensors = slices.DeleteFunc(spec.tensors, func(t ggufTensorSpec) bool { return t.name == "output.weight" })
	spec.version, spec.align = 2, 64
	spec.kvs = append(spec.kvs, ggufKV{key: "general.alignment", val: uint32(64)})
	g, _, err := readGGUFBytes(spec.bytes())
	if err != nil {
		t.Fatalf("no output.weight, alignment 64: %v", err)
	}
	sameModel(t, g, m)
}

func TestGGUFF16(t *testing.T) {
	_, _, spec := synthGGUF(true)
	// Halves of chosen values, including a subnormal and negative zero.
	halves := []uint16{0x3c00, 0xc000, 0x0001, 0x8000, 0x7bff, 0x3555, 0x0400, 0xb800}
	want := []float32{1, -2, 1.0 / (1 << 24), float32(math.Copysign(0, -1)), 65504, 0.333251953125, 1.0 / (1 << 14), -0.5}
	var data []byte
	for _, h := range halves {
		data = binary.LittleEndian.AppendUint16(data, h)
	}
	ts := spec.tensor("output_norm.weight")
	ts.typ, ts.data = ggmlF16, data
	g, _, err := readGGUFBytes(spec.bytes())
	if err != nil {
		t.Fatalf("ReadGGUF: %v", err)
	}
	if !equalBits(g.Head.FinalNorm, want) {
		t.Errorf("F16 output_norm = %v, want %v", g.Head.FinalNorm, want)
	}
}

func TestGGUFHostile(t *testing.T) {
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	cases := []struct {
		name   string
		mutate func(s *ggufSpec)
		raw    func(b []byte) []byte
		is     error
		want   string
	}{
		{name: "wrong magic", raw: func(b []byte) []byte { b[0] = 'X'; return b }, is: ErrFormat, want: "not a GGUF file"},
		{name: "version 1", mutate: func(s *ggufSpec) { s.version = 1 }, is: ErrUnsupported, want: "version 1"},
		{name: "huge tensor count", raw: func(b []byte) []byte { copy(b[8:], u64(1<<40)); return b }, is: ErrFormat, want: "tensor count"},
		{name: "huge kv count", raw: func(b []byte) []byte { copy(b[16:], u64(1<<40)); return b }, is: ErrFormat, want: "metadata count"},
		{name: "huge key length", raw: func(b []byte) []byte { copy(b[24:], u64(1<<62)); return b }, is: ErrFormat, want: "length"},
		{name: "huge array", mutate: func(s *ggufSpec) {
			s.kvs = append(s.kvs, ggufKV{key: "x", typ: ggufArray, raw: append(binary.LittleEndian.AppendUint32(nil, ggufUint32), u64(1<<23)...)})
		}, is: ErrTruncated, want: `array "x"`},
		{name: "nested array", mutate: func(s *ggufSpec) {
			s.kvs = append(s.kvs, ggufKV{key: "x", typ: ggufArray, raw: append(binary.LittleEndian.AppendUint32(nil, ggufArray), u64(1)...)})
		}, is: ErrFormat, want: "element type"},
		{name: "unknown value type", mutate: func(s *ggufSpec) { s.kvs = append(s.kvs, ggufKV{key: "x", typ: 99}) }, is: ErrFormat, want: "value type 99"},
		{name: "bad bool", mutate: func(s *ggufSpec) { s.kvs = append(s.kvs, ggufKV{key: "x", typ: ggufBool, raw: []byte{7}}) }, is: ErrFormat, want: "bool"},
		{name: "duplicate key", mutate: func(s *ggufSpec) { s.kvs = append(s.kvs, s.kvs[4]) }, is: ErrFormat, want: "twice"},
		{name: "unsupported architecture", mutate: func(s *ggufSpec) { s.kv("general.architecture").val = "gpt2" }, is: ErrUnsupported, want: `architecture "gpt2"`},
		{name: "unknown tensor type", mutate: func(s *ggufSpec) { s.tensors[3].typ = 2 }, is: ErrUnsupported, want: "ggml type 2 (Q4_0)"},
		{name: "unknown tensor type number", mutate: func(s *ggufSpec) { s.tensors[3].typ = 77 }, is: ErrUnsupported, want: "ggml type 77"},
		{name: "shape mismatch", mutate: func(s *ggufSpec) { s.tensor("blk.1.attn_k.weight").dims = []uint64{8, 8} },
			is: ErrFormat, want: "blk.1.attn_k.weight has shape [8 8], want [8 4] from llama.attention.head_count_kv=1"},
		{name: "missing tensor", mutate: func(s *ggufSpec) { s.tensors = slices.Delete(s.tensors, 5, 6) }, is: ErrFormat, want: "missing"},
		{name: "extra tensor", mutate: func(s *ggufSpec) { s.tensor("blk.1.attn_k.weight").name = "blk.2.attn_k.weight" }, is: ErrUnsupported, want: "blk.2.attn_k.weight"},
		{name: "duplicate tensor", mutate: func(s *ggufSpec) { s.tensors[4].name = s.tensors[3].name }, is: ErrFormat, want: "twice"},
		{name: "misaligned offset", mutate: func(s *ggufSpec) { s.tensors[2].off = 4 }, is: ErrFormat, want: "alignment"},
		{name: "offset past end", mutate: func(s *ggufSpec) { s.tensors[2].off = 1 << 20 }, is: ErrTruncated, want: "beyond the end"},
		{name: "data past end", mutate: func(s *ggufSpec) { s.tensors[2].dims = []uint64{8, 1000} }, is: ErrTruncated, want: "data section"},
		{name: "bad alignment", mutate: func(s *ggufSpec) { s.kvs = append(s.kvs, ggufKV{key: "general.alignment", val: uint32(48)}) }, is: ErrFormat, want: "general.alignment"},
		{name: "huge dim", mutate: func(s *ggufSpec) { s.tensors[0].dims = []uint64{1 << 62, 1 << 62} }, is: ErrFormat, want: "dimension"},
		{name: "zero dims", mutate: func(s *ggufSpec) { s.tensors[0].dims = nil }, is: ErrFormat, want: "0 dimensions"},
		{name: "missing config key", mutate: func(s *ggufSpec) { s.kv("llama.block_count").key = "llama.blocks" }, is: ErrFormat, want: "llama.block_count is missing"},
		{name: "config key wrong type", mutate: func(s *ggufSpec) { s.kv("llama.block_count").val = "two" }, is: ErrFormat, want: "llama.block_count is a string"},
		{name: "invalid config", mutate: func(s *ggufSpec) { s.kv("llama.attention.head_count").val = uint32(3) }, is: ErrConfig, want: "divisible"},
		{name: "partial rope", mutate: func(s *ggufSpec) { s.kv("llama.rope.dimension_count").val = uint32(2) }, is: ErrUnsupported, want: "dimension_count"},
		{name: "non-finite weight", mutate: func(s *ggufSpec) { copy(s.tensors[1].data, f32Bytes([]float32{float32(math.Inf(1))})) }, is: ErrFormat, want: "non-finite"},
		{name: "other tokenizer", mutate: func(s *ggufSpec) { s.kv("tokenizer.ggml.model").val = "bert" }, is: ErrUnsupported, want: `"bert"`},
		{name: "scores length", mutate: func(s *ggufSpec) { s.kv("tokenizer.ggml.scores").val = []float32{1} }, is: ErrTokenizer, want: "scores"},
		{name: "byte token moved", mutate: func(s *ggufSpec) { s.kv("tokenizer.ggml.tokens").val.([]string)[10] = "x" }, is: ErrTokenizer, want: "token 10"},
		{name: "bos id", mutate: func(s *ggufSpec) { s.kv("tokenizer.ggml.bos_token_id").val = uint32(5) }, is: ErrUnsupported, want: "bos_token_id"},
		{name: "vocab disagrees", mutate: func(s *ggufSpec) {
			s.kv("tokenizer.ggml.tokens").val = s.kv("tokenizer.ggml.tokens").val.([]string)[:261]
			s.kv("tokenizer.ggml.scores").val = s.kv("tokenizer.ggml.scores").val.([]float32)[:261]
			s.kv("tokenizer.ggml.token_type").val = s.kv("tokenizer.ggml.token_type").val.([]int32)[:261]
		}, is: ErrFormat, want: "261 tokens"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, spec := synthGGUF(true)
			if c.mutate != nil {
				c.mutate(spec)
			}
			b := spec.bytes()
			if c.raw != nil {
				b = c.raw(b)
			}
			_, _, err := readGGUFBytes(b)
			if err == nil {
				t.Fatalf("got no error, want %v containing %q", c.is, c.want)
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %v containing %q", err, c.is, c.want)
			}
		})
	}
}

// TestGGUFTruncated cuts a valid file at every byte of its header and at
// random points of its data: each must fail with ErrTruncated.
func TestGGUFTruncated(t *testing.T) {
	_, _, spec := synthGGUF(false)
	b := spec.bytes()
	f, err := parseGGUF(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	cuts := make([]int, 0, f.dataOff+200)
	for n := range int(f.dataOff) {
		cuts = append(cuts, n)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		cuts = append(cuts, int(f.dataOff)+rng.IntN(len(b)-int(f.dataOff)))
	}
	for _, n := range cuts {
		_, _, err := readGGUFBytes(b[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: got %v, want ErrTruncated", n, len(b), err)
		}
	}
}

func FuzzReadGGUF(f *testing.F) {
	_, _, spec := synthGGUF(false)
	f.Add(spec.bytes())
	spec.tensors[0].typ = ggmlF16
	f.Add(spec.bytes())
	// A qwen2 model with a byte-level BPE vocabulary and rope_freqs.weight.
	bc := testBPEConfig(PreQwen2, 10)
	for len(bc.Tokens) < qwenTestConfig().VocabSize {
		bc.Tokens = append(bc.Tokens, BPEToken{})
	}
	if tok, err := NewBPE(bc); err == nil {
		var buf bytes.Buffer
		if WriteGGUF(&buf, Synth(qwenTestConfig(), 1), tok) == nil {
			f.Add(buf.Bytes())
		}
	}
	if p, ok := refPath(); ok {
		if data, err := os.ReadFile(filepath.Join(p, "stories260K.gguf")); err == nil {
			f.Add(data[:min(len(data), 16<<10)])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, tok, err := readGGUFBytes(b)
		if err != nil {
			return
		}
		if err := m.Config.Validate(); err != nil {
			t.Fatalf("accepted model with invalid config: %v", err)
		}
		if err := m.CheckSpan(0, m.Config.NLayers); err != nil {
			t.Fatalf("accepted model with missing blocks: %v", err)
		}
		if tok != nil && tok.VocabSize() != m.Config.VocabSize {
			t.Fatalf("tokenizer vocab %d, model %d", tok.VocabSize(), m.Config.VocabSize)
		}
	})
}
