package model

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestGGUFQwen2RoundTrip writes a Qwen2-like model (biases, Llama 3 RoPE
// scaling as rope_freqs.weight) with a byte-level BPE vocabulary as GGUF
// and reads it back: same weights, config and tokenizer. The q/k tensors
// and biases in the file must be those of the Hugging Face checkpoint
// (llama.cpp's qwen2 converter copies them unpermuted).
func TestGGUFQwen2RoundTrip(t *testing.T) {
	c := qwenTestConfig()
	bc := testBPEConfig(PreQwen2, 20)
	for len(bc.Tokens) < c.VocabSize {
		bc.Tokens = append(bc.Tokens, BPEToken{})
	}
	bc.Tokens = bc.Tokens[:c.VocabSize]
	tok, err := NewBPE(bc)
	if err != nil {
		t.Fatal(err)
	}
	m := Synth(c, 5)
	var buf bytes.Buffer
	if err := WriteGGUF(&buf, m, tok); err != nil {
		t.Fatal(err)
	}
	back, btok, err := readGGUFBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sameModel(t, back, m)
	a, _ := tok.MarshalBinary()
	b, _ := btok.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("BPE tokenizer differs after the GGUF round trip")
	}
	// Cross-check the layout against the Hugging Face export.
	_, hfw, err := WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := parseSafetensors(bytes.NewReader(hfw), int64(len(hfw)))
	g, err := parseGGUF(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for gname, hname := range map[string]string{
		"blk.1.attn_q.weight": "model.layers.1.self_attn.q_proj.weight",
		"blk.1.attn_k.bias":   "model.layers.1.self_attn.k_proj.bias",
		"blk.0.attn_q.bias":   "model.layers.0.self_attn.q_proj.bias",
	} {
		gv, err := g.floats(g.tensors[g.byName[gname]])
		if err != nil {
			t.Fatal(err)
		}
		hv, _ := st.floats(st.tensors[hname])
		if !equalBits(gv, hv) {
			t.Errorf("GGUF %s differs from Hugging Face %s", gname, hname)
		}
	}
	// A plain llama model with linear scaling round-trips too.
	c2 := ggufTestConfig
	c2.RopeScaling = RopeScaling{Type: RopeLinear, Factor: 4}
	m2 := Synth(c2, 6)
	buf.Reset()
	if err := WriteGGUF(&buf, m2, nil); err != nil {
		t.Fatal(err)
	}
	back2, _, err := readGGUFBytes(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sameModel(t, back2, m2)
}

// TestGGUFLlama3Vocabulary reads a "gpt2" vocabulary as llama.cpp writes
// Llama 3's: byte-level tokens, merges, control tokens, pre "llama-bpe".
func TestGGUFLlama3Vocabulary(t *testing.T) {
	_, _, spec := synthGGUF(true)
	bc := testBPEConfig(PreLlama3, 2) // 256 bytes, 2 merges, 4 specials: the 262 tokens of the model
	if len(bc.Tokens) != 262 {
		t.Fatalf("%d tokens", len(bc.Tokens))
	}
	var tokens, merges []string
	var types []int32
	for _, tk := range bc.Tokens {
		tokens = append(tokens, tk.Text)
		types = append(types, map[BPEKind]int32{BPENormal: 1, BPESpecial: 3}[tk.Kind])
	}
	for _, m := range bc.Merges {
		merges = append(merges, m[0]+" "+m[1])
	}
	spec.kvs = slices.DeleteFunc(spec.kvs, func(kv ggufKV) bool { return strings.HasPrefix(kv.key, "tokenizer.") })
	spec.kvs = append(spec.kvs,
		ggufKV{key: "tokenizer.ggml.model", val: "gpt2"},
		ggufKV{key: "tokenizer.ggml.pre", val: "llama-bpe"},
		ggufKV{key: "tokenizer.ggml.tokens", val: tokens},
		ggufKV{key: "tokenizer.ggml.token_type", val: types},
		ggufKV{key: "tokenizer.ggml.merges", val: merges},
		ggufKV{key: "tokenizer.ggml.bos_token_id", val: uint32(258)},
		ggufKV{key: "tokenizer.ggml.eos_token_id", val: uint32(259)},
		ggufKV{key: "tokenizer.ggml.eot_token_id", val: uint32(260)},
	)
	_, tok, err := readGGUFBytes(spec.bytes())
	if err != nil {
		t.Fatal(err)
	}
	got := tok.Encode("<|end|>hi", true, false)
	if got[0] != 258 || got[1] != 261 || tok.BOS() != 258 || !tok.IsStop(259) || !tok.IsStop(260) {
		t.Errorf("Encode = %v, BOS %d; want BOS 258 then <|end|> 261, stops 259 and 260", got, tok.BOS())
	}
	// Bad input names what is wrong.
	for _, k := range []struct {
		name string
		edit func(s *ggufSpec)
		is   error
		want string
	}{
		{"merge of unknown token", func(s *ggufSpec) { s.kv("tokenizer.ggml.merges").val = []string{"Ġ zzz"} }, ErrTokenizer, `"zzz" is not a token`},
		{"merge without space", func(s *ggufSpec) { s.kv("tokenizer.ggml.merges").val = []string{"ab"} }, ErrTokenizer, "merge 0"},
		{"unknown pre", func(s *ggufSpec) { s.kv("tokenizer.ggml.pre").val = "deepseek-llm" }, ErrUnsupported, "deepseek-llm"},
		{"eos out of range", func(s *ggufSpec) { s.kv("tokenizer.ggml.eos_token_id").val = uint32(5000) }, ErrTokenizer, "eos_token_id"},
		{"byte type in gpt2", func(s *ggufSpec) { s.kv("tokenizer.ggml.token_type").val.([]int32)[7] = 6 }, ErrTokenizer, "token_type 6"},
	} {
		_, _, spec := synthGGUF(true)
		spec.kvs = slices.DeleteFunc(spec.kvs, func(kv ggufKV) bool { return strings.HasPrefix(kv.key, "tokenizer.") })
		spec.kvs = append(spec.kvs,
			ggufKV{key: "tokenizer.ggml.model", val: "gpt2"}, ggufKV{key: "tokenizer.ggml.pre", val: "llama-bpe"},
			ggufKV{key: "tokenizer.ggml.tokens", val: slices.Clone(tokens)}, ggufKV{key: "tokenizer.ggml.token_type", val: slices.Clone(types)},
			ggufKV{key: "tokenizer.ggml.merges", val: slices.Clone(merges)}, ggufKV{key: "tokenizer.ggml.eos_token_id", val: uint32(259)})
		k.edit(spec)
		_, _, err := readGGUFBytes(spec.bytes())
		if !errors.Is(err, k.is) || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: got %v, want %v containing %q", k.name, err, k.is, k.want)
		}
	}
}

func TestGGUFVariantBadInput(t *testing.T) {
	qwen := func() *ggufSpec {
		m := Synth(qwenTestConfig(), 1)
		var buf bytes.Buffer
		if err := WriteGGUF(&buf, m, nil); err != nil {
			t.Fatal(err)
		}
		// Rebuild a spec from the file so cases can edit it.
		g, err := parseGGUF(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		s := &ggufSpec{version: 3}
		for k, v := range g.kv {
			var val any
			switch v.typ {
			case ggufString:
				val = v.s
			case ggufUint32:
				val = uint32(v.u)
			case ggufFloat32:
				val = float32(v.f)
			default:
				t.Fatalf("unexpected %s", v.typeName())
			}
			s.kvs = append(s.kvs, ggufKV{key: k, val: val})
		}
		slices.SortFunc(s.kvs, func(a, b ggufKV) int { return strings.Compare(a.key, b.key) })
		for _, ti := range g.tensors {
			data := make([]byte, ti.bytes)
			g.ra.ReadAt(data, g.dataOff+ti.off)
			dims := make([]uint64, len(ti.dims))
			for i, d := range ti.dims {
				dims[i] = uint64(d)
			}
			s.tensors = append(s.tensors, ggufTensorSpec{name: ti.name, dims: dims, typ: ti.typ, data: data, off: -1})
		}
		return s
	}
	if _, _, err := readGGUFBytes(qwen().bytes()); err != nil {
		t.Fatalf("the unedited spec: %v", err)
	}
	for _, k := range []struct {
		name string
		edit func(s *ggufSpec)
		is   error
		want string
	}{
		{"bias shape", func(s *ggufSpec) { s.tensor("blk.1.attn_k.bias").dims = []uint64{16} }, ErrFormat,
			"blk.1.attn_k.bias has shape [16], want [8] from qwen2.attention.head_count_kv=1"},
		{"missing bias", func(s *ggufSpec) {
			s.tensors = slices.DeleteFunc(s.tensors, func(x ggufTensorSpec) bool { return x.name == "blk.0.attn_v.bias" })
		}, ErrFormat, "blk.0.attn_v.bias is missing"},
		{"rope scaling type", func(s *ggufSpec) {
			s.kvs = append(s.kvs, ggufKV{key: "qwen2.rope.scaling.type", val: "yarn"})
		}, ErrUnsupported, `rope.scaling.type "yarn"`},
		{"rope_freqs not llama3", func(s *ggufSpec) {
			s.tensor("rope_freqs.weight").data = f32Bytes([]float32{1, 3, 2, 7})
		}, ErrUnsupported, "rope_freqs.weight[1] = 3"},
		{"rope_freqs and linear", func(s *ggufSpec) {
			s.kvs = append(s.kvs, ggufKV{key: "qwen2.rope.scaling.type", val: "linear"}, ggufKV{key: "qwen2.rope.scaling.factor", val: float32(2)})
		}, ErrFormat, "both"},
	} {
		s := qwen()
		k.edit(s)
		_, _, err := readGGUFBytes(s.bytes())
		if !errors.Is(err, k.is) || err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: got %v, want %v containing %q", k.name, err, k.is, k.want)
		}
	}
}
