package shards

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// qCfg has a hidden size that is not a multiple of 32, so w2's rows end in
// a padded block.
var qCfg = model.Config{Dim: 32, HiddenDim: 40, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: 300,
	SeqLen: 16, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}

func quantModel(t testing.TB, f tensor.QFormat) (*model.Model, *model.Model) {
	t.Helper()
	m := model.Synth(qCfg, 9)
	q, err := m.Quantize(f)
	if err != nil {
		t.Fatal(err)
	}
	return m, q
}

func TestQuantBlockRoundTrip(t *testing.T) {
	for _, f := range []tensor.QFormat{tensor.Q8_0, tensor.Q4_0} {
		_, q := quantModel(t, f)
		enc, err := EncodeBlock(qCfg, 1, q.Blocks[1])
		if err != nil {
			t.Fatal(err)
		}
		file, err := Decode(enc)
		if err != nil {
			t.Fatal(err)
		}
		w2, _ := file.Tensor(model.TensorW2)
		if w2.DType != QDType(f) || len(w2.Data) != 32*2*f.BlockBytes() {
			t.Errorf("%s: w2 stored as %s with %d bytes, want %s with %d", f, w2.DType, len(w2.Data), QDType(f), 32*2*f.BlockBytes())
		}
		if n, _ := file.Tensor(model.TensorFFNNorm); n.DType != F32 {
			t.Errorf("%s: ffn_norm stored as %s, want F32", f, n.DType)
		}
		b, err := DecodeBlock(qCfg, 1, enc)
		if err != nil {
			t.Fatal(err)
		}
		again, err := EncodeBlock(qCfg, 1, b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, enc) {
			t.Errorf("%s: block changed across decode and encode", f)
		}
		if b.Format() != f {
			t.Errorf("decoded format %s, want %s", b.Format(), f)
		}
	}
}

func TestImportQuantized(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, q := quantModel(t, tensor.Q8_0)
	fid, fman, err := ImportModel(st, m, nil, "m")
	if err != nil {
		t.Fatal(err)
	}
	qid, qman, err := ImportModel(st, q, nil, "m")
	if err != nil {
		t.Fatal(err)
	}
	if fid == qid {
		t.Fatal("quantized model has the float32 model's CID")
	}
	fenc, _ := fman.Encode()
	qenc, _ := qman.Encode()
	if bytes.Contains(fenc, []byte(`"weights"`)) {
		t.Errorf("float32 manifest carries a weights field: %s", fenc)
	}
	if !bytes.Contains(qenc, []byte(`"weights":"q8_0"`)) {
		t.Errorf("quantized manifest lacks \"weights\":\"q8_0\": %s", qenc)
	}
	if qman.Blocks[0].Size*3 > fman.Blocks[0].Size {
		t.Errorf("q8_0 block shard is %d bytes, float32 %d: want under a third", qman.Blocks[0].Size, fman.Blocks[0].Size)
	}
	got, _, man, err := Load(st, qid, 0, 2, true)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := man.WeightFormat(); f != tensor.Q8_0 || got.Blocks[1].Format() != tensor.Q8_0 {
		t.Fatalf("loaded manifest format %v, block format %s", f, got.Blocks[1].Format())
	}
	// The loaded model runs the quantized kernels and gives what q gives.
	l1, l2 := make([]float32, qCfg.VocabSize), make([]float32, qCfg.VocabSize)
	q.Step(q.NewState(0, 2), 5, 0, l1)
	got.Step(got.NewState(0, 2), 5, 0, l2)
	for i := range l1 {
		if l1[i] != l2[i] {
			t.Fatalf("logit %d: loaded %v, imported %v", i, l2[i], l1[i])
		}
	}

	// A manifest whose weight format disagrees with its blocks.
	lie := *qman
	lie.Weights = "q4_0"
	enc, err := lie.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lieID, err := st.Put(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(st, lieID, 0, 1, false); !errors.Is(err, ErrShard) || !strings.Contains(err.Error(), "manifest says q4_0") {
		t.Errorf("Load of a lying manifest: got %v, want ErrShard naming the formats", err)
	}

	// Mixed formats cannot be imported.
	mixed := &model.Model{Config: q.Config, Head: q.Head, Blocks: []*model.Block{q.Blocks[0], m.Blocks[1]}}
	if _, _, err := ImportModel(st, mixed, nil, "m"); !errors.Is(err, ErrShard) {
		t.Errorf("mixed formats: got %v, want ErrShard", err)
	}
}

func TestManifestWeights(t *testing.T) {
	m, _ := testManifest()
	m.Weights = "q5_1"
	if _, err := m.Encode(); !errors.Is(err, ErrManifest) {
		t.Errorf("unknown weights: got %v, want ErrManifest", err)
	}
	m.Weights = "f32" // float32 is spelled by omission, so there is one encoding
	if _, err := m.Encode(); !errors.Is(err, ErrManifest) {
		t.Errorf("weights f32: got %v, want ErrManifest", err)
	}
}

func TestDecodeQuantBlockRejects(t *testing.T) {
	_, q := quantModel(t, tensor.Q4_0)
	good, err := EncodeBlock(qCfg, 0, q.Blocks[0])
	if err != nil {
		t.Fatal(err)
	}
	edit := func(name string, f func(x *Tensor)) func(map[string]string, []Tensor) []Tensor {
		return func(_ map[string]string, ts []Tensor) []Tensor {
			for i := range ts {
				if ts[i].Name == name {
					ts[i].Data = bytes.Clone(ts[i].Data)
					f(&ts[i])
				}
			}
			return ts
		}
	}
	tests := []struct {
		name string
		data []byte
		msg  string
	}{
		{"truncated", good[:len(good)-5], "data_offsets"},
		{"truncated block", reencode(t, good, edit(model.TensorWq, func(x *Tensor) {
			x.Data = x.Data[:len(x.Data)-18]
			x.Shape = []int{31, 32}
		})), "shape [31 32]"},
		{"wrong cols", reencode(t, good, edit(model.TensorW1, func(x *Tensor) { x.Shape = []int{40, 31} })), "shape [40 31]"},
		{"rank 3", reencode(t, good, edit(model.TensorW1, func(x *Tensor) { x.Shape = []int{40, 1, 32} })), "want a matrix"},
		{"inf scale", reencode(t, good, edit(model.TensorWk, func(x *Tensor) { x.Data[1] = 0x7c })), "non-finite scale"},
		{"padding", reencode(t, good, edit(model.TensorW2, func(x *Tensor) { x.Data[2*18-1] = 0x12 })), "padding"},
		{"mixed", reencode(t, good, edit(model.TensorWv, func(x *Tensor) {
			x.DType = Q8_0
			x.Data = make([]byte, 16*34)
		})), "others are"},
		{"float matrix", reencode(t, good, edit(model.TensorWo, func(x *Tensor) {
			x.DType = F32
			x.Data = make([]byte, 32*32*4)
		})), "tensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeBlock(qCfg, 0, tc.data)
			if !errors.Is(err, ErrShard) && !errors.Is(err, ErrFormat) {
				t.Fatalf("got %v, want ErrShard or ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to contain %q", err, tc.msg)
			}
		})
	}
}

func TestQuantDTypeSize(t *testing.T) {
	for _, tc := range []struct {
		d     DType
		shape []int
		want  uint64
		ok    bool
	}{
		{Q8_0, []int{2, 32}, 68, true},
		{Q8_0, []int{2, 33}, 136, true},
		{Q4_0, []int{3, 1}, 54, true},
		{Q4_0, []int{0, 64}, 0, true},
		{Q4_0, []int{5, 0}, 0, true},
		{Q4_0, []int{2, 2, 64}, 144, true},
		{Q8_0, []int{}, 0, false},
		{Q8_0, []int{1 << 40, 1 << 40}, 0, false},
	} {
		got, err := byteSize(tc.d, tc.shape)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("byteSize(%s, %v) = %d, %v; want %d (ok %v)", tc.d, tc.shape, got, err, tc.want, tc.ok)
		}
	}
}
