package shards

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// tinyConfig is a small valid config for fast tests and fuzzing.
func tinyConfig(shared bool) model.Config {
	return model.Config{
		Dim: 8, HiddenDim: 12, NLayers: 2, NHeads: 2, NKVHeads: 1,
		VocabSize: 300, SeqLen: 8, SharedClassifier: shared, NormEps: 1e-5, RopeTheta: 10000,
	}
}

func TestBlockRoundTrip(t *testing.T) {
	cfg := tinyConfig(true)
	m := model.Synth(cfg, 1)
	for i, b := range m.Blocks {
		enc, err := EncodeBlock(cfg, i, b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := EncodeBlock(cfg, i, b)
		if err != nil || !bytes.Equal(enc, again) {
			t.Fatalf("block %d: EncodeBlock not deterministic (%v)", i, err)
		}
		got, err := DecodeBlock(cfg, i, enc)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, b) {
			t.Errorf("block %d: decoded block differs from original", i)
		}
		f, _ := Decode(enc)
		if f.Metadata[MetaKind] != KindBlock || f.Metadata[MetaIndex] != string(rune('0'+i)) {
			t.Errorf("block %d: metadata %v", i, f.Metadata)
		}
	}
}

func TestHeadRoundTrip(t *testing.T) {
	for _, shared := range []bool{true, false} {
		cfg := tinyConfig(shared)
		m := model.Synth(cfg, 2)
		tok := model.ByteTokenizer(cfg.VocabSize)
		enc, err := EncodeHead(cfg, m.Head, tok)
		if err != nil {
			t.Fatal(err)
		}
		h, gotTok, err := DecodeHead(cfg, enc)
		if err != nil {
			t.Fatalf("shared=%v: %v", shared, err)
		}
		if !reflect.DeepEqual(h, m.Head) {
			t.Errorf("shared=%v: decoded head differs", shared)
		}
		want, _ := tok.MarshalBinary()
		got, err := gotTok.MarshalBinary()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("shared=%v: tokenizer bytes differ after round trip (%v)", shared, err)
		}
		f, _ := Decode(enc)
		if tt, ok := f.Tensor(TokenizerTensor); !ok || tt.DType != U8 || !bytes.Equal(tt.Data, want) {
			t.Errorf("shared=%v: tokenizer tensor missing or wrong", shared)
		}
	}
	if _, err := EncodeHead(tinyConfig(true), model.Synth(tinyConfig(true), 1).Head, nil); !errors.Is(err, ErrTokenizer) {
		t.Errorf("EncodeHead without tokenizer: got %v, want ErrTokenizer", err)
	}
}

// reencode decodes a container, lets edit change it and encodes it again.
func reencode(t *testing.T, data []byte, edit func(meta map[string]string, ts []Tensor) []Tensor) []byte {
	t.Helper()
	f, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	ts := edit(f.Metadata, f.Tensors)
	out, err := Encode(f.Metadata, ts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDecodeBlockRejects(t *testing.T) {
	cfg := tinyConfig(true)
	m := model.Synth(cfg, 3)
	good, err := EncodeBlock(cfg, 1, m.Blocks[1])
	if err != nil {
		t.Fatal(err)
	}
	head, err := EncodeHead(cfg, m.Head, model.ByteTokenizer(cfg.VocabSize))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		i    int
		data []byte
		want error
		msg  string
	}{
		{"garbage", 1, []byte("garbage!"), ErrFormat, "header length"},
		{"truncated", 1, good[:len(good)-1], ErrFormat, ""},
		{"wrong index", 0, good, ErrShard, "want block 0"},
		{"index out of range", 2, good, ErrShard, "out of range"},
		{"no kind", 1, reencode(t, good, func(meta map[string]string, ts []Tensor) []Tensor {
			delete(meta, MetaKind)
			return ts
		}), ErrShard, "kind"},
		{"index with leading zero", 1, reencode(t, good, func(meta map[string]string, ts []Tensor) []Tensor {
			meta[MetaIndex] = "01"
			return ts
		}), ErrShard, "want block 1"},
		{"missing tensor", 1, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			return ts[1:]
		}), ErrShard, ""},
		{"extra tensor", 1, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			return append(ts, Tensor{Name: "extra", DType: F32, Shape: []int{1}, Data: make([]byte, 4)})
		}), ErrShard, ""},
		{"u8 tensor", 1, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			ts[0].DType, ts[0].Shape = U8, []int{len(ts[0].Data)}
			return ts
		}), ErrShard, "want F32"},
		{"wrong shape", 1, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			for i := range ts {
				if len(ts[i].Shape) == 2 {
					ts[i].Shape = []int{ts[i].Shape[1], ts[i].Shape[0]}
					if ts[i].Shape[0] != ts[i].Shape[1] {
						break
					}
				}
			}
			return ts
		}), ErrShard, ""},
		{"head as block", 1, head, ErrShard, "kind"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := DecodeBlock(cfg, tc.i, tc.data)
			if err == nil {
				t.Fatalf("got block %v, want error", b != nil)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to contain %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeHeadRejects(t *testing.T) {
	cfg := tinyConfig(false)
	m := model.Synth(cfg, 4)
	good, err := EncodeHead(cfg, m.Head, model.ByteTokenizer(cfg.VocabSize))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := EncodeBlock(cfg, 0, m.Blocks[0])
	smaller := cfg
	smaller.VocabSize = 299
	tests := []struct {
		name string
		cfg  model.Config
		data []byte
		msg  string
	}{
		{"block as head", cfg, block, "kind"},
		{"other vocab", smaller, good, ""},
		{"no tokenizer", cfg, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			var out []Tensor
			for _, x := range ts {
				if x.Name != TokenizerTensor {
					out = append(out, x)
				}
			}
			return out
		}), "no \"tokenizer\" tensor"},
		{"garbage tokenizer", cfg, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			for i := range ts {
				if ts[i].Name == TokenizerTensor {
					ts[i].Data = bytes.Repeat([]byte{0xff}, 64)
					ts[i].Shape = []int{64}
				}
			}
			return ts
		}), "tokenizer"},
		{"unknown tokenizer format", cfg, reencode(t, good, func(meta map[string]string, ts []Tensor) []Tensor {
			meta[MetaTokenizer] = "sentencepiece"
			return ts
		}), "tokenizer format"},
		{"missing matrix", cfg, reencode(t, good, func(_ map[string]string, ts []Tensor) []Tensor {
			for i, x := range ts {
				if len(x.Shape) == 2 {
					return append(ts[:i:i], ts[i+1:]...)
				}
			}
			t.Fatal("head has no matrix")
			return nil
		}), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeHead(tc.cfg, tc.data)
			if !errors.Is(err, ErrShard) {
				t.Fatalf("got %v, want ErrShard", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to contain %q", err, tc.msg)
			}
		})
	}
}

func FuzzDecodeBlock(f *testing.F) {
	// The smallest valid shape keeps inputs short, so the fuzzer spends
	// its time mutating rather than minimizing.
	cfg := model.Config{Dim: 4, HiddenDim: 4, NLayers: 2, NHeads: 2, NKVHeads: 1,
		VocabSize: 4, SeqLen: 4, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	m := model.Synth(cfg, 5)
	for _, format := range []tensor.QFormat{0, tensor.Q8_0, tensor.Q4_0} {
		mf := m
		if format != 0 {
			var err error
			if mf, err = m.Quantize(format); err != nil {
				f.Fatal(err)
			}
		}
		for i, b := range mf.Blocks {
			enc, err := EncodeBlock(cfg, i, b)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(i), enc)
		}
	}
	f.Add(uint8(0), []byte("garbage"))
	f.Fuzz(func(t *testing.T, idx uint8, data []byte) {
		i := int(idx) % cfg.NLayers
		b, err := DecodeBlock(cfg, i, data)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrShard) {
				t.Fatalf("error %v wraps neither ErrFormat nor ErrShard", err)
			}
			return
		}
		enc, err := EncodeBlock(cfg, i, b)
		if err != nil {
			t.Fatalf("decoded block does not re-encode: %v", err)
		}
		again, err := DecodeBlock(cfg, i, enc)
		if err != nil {
			t.Fatalf("re-encoded block does not decode: %v", err)
		}
		if !reflect.DeepEqual(floatBits(again.Tensors(cfg)), floatBits(b.Tensors(cfg))) {
			t.Fatal("block changed across re-encoding")
		}
		if !bytes.Equal(enc, data) && b.Quant != nil {
			// A quantized block is canonical: only one encoding decodes.
			t.Fatal("accepted quantized block is not in canonical encoding")
		}
		if b.Quant != nil && !reflect.DeepEqual(again.Quant, b.Quant) {
			t.Fatal("quantized block changed across re-encoding")
		}
	})
}

// floatBits compares tensors by bit pattern, so NaNs compare equal.
func floatBits(ts []model.Tensor) map[string][]uint32 {
	out := map[string][]uint32{}
	for _, t := range ts {
		v := make([]uint32, len(t.Data))
		for i, x := range t.Data {
			v[i] = math.Float32bits(x)
		}
		out[t.Name] = v
	}
	return out
}
