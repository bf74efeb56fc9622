package train

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// randDelta is a delta over two tensors with normal values of scale std.
func randDelta(seed uint64, std float64) *Delta {
	r := rand.New(rand.NewPCG(seed, 1))
	mk := func(name string, shape ...int) model.Tensor {
		d := make([]float32, elems(shape))
		for i := range d {
			d[i] = float32(r.NormFloat64() * std)
		}
		return model.Tensor{Name: name, Shape: shape, Data: d}
	}
	return &Delta{Round: 3, Base: "bafkbase", Samples: 1000, Loss: 2.5,
		Tensors: []model.Tensor{mk("blocks.0.wq", 8, 20), mk("head.final_norm", 8)}}
}

func TestDeltaRoundTrip(t *testing.T) {
	for _, c := range []Codec{FP32, FP16, Int8} {
		d := randDelta(1, 0.01)
		d.Codec = c
		data, err := EncodeDelta(d)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != EncodedSize(d) || len(data) != DeltaBytes(c, d.Tensors)+len(d.Base) {
			t.Errorf("%s: encoded %d bytes, EncodedSize %d, DeltaBytes+base %d", c, len(data), EncodedSize(d), DeltaBytes(c, d.Tensors)+len(d.Base))
		}
		again, _ := EncodeDelta(d)
		if !bytes.Equal(data, again) {
			t.Errorf("%s: encoding is not deterministic", c)
		}
		got, err := DecodeDelta(data, d.Tensors)
		if err != nil {
			t.Fatal(err)
		}
		if got.Round != d.Round || got.Base != d.Base || got.Samples != d.Samples || got.Loss != d.Loss || got.Codec != c {
			t.Errorf("%s: metadata %+v, want %+v", c, got, d)
		}
		for i, tn := range d.Tensors {
			want := make([]float32, len(tn.Data))
			roundTrip(c, tn.Data, want)
			for j, v := range got.Tensors[i].Data {
				if v != want[j] {
					t.Fatalf("%s: %s[%d] decoded %g, want %g", c, tn.Name, j, v, want[j])
				}
				// Error bounds: fp32 exact, fp16 relative 2^-11, int8 half a
				// step of max|x|/127 in the block.
				e := math.Abs(float64(v - tn.Data[j]))
				switch c {
				case FP32:
					if e != 0 {
						t.Fatalf("fp32 not exact")
					}
				case FP16:
					if e > math.Abs(float64(tn.Data[j]))/2048+6e-8 {
						t.Fatalf("fp16 error %g at %g", e, tn.Data[j])
					}
				case Int8:
					blk := tn.Data[j/Int8Block*Int8Block : min(len(tn.Data), (j/Int8Block+1)*Int8Block)]
					if bound := float64(int8Scale(blk))/2 + 1e-9; e > bound {
						t.Fatalf("int8 error %g over %g", e, bound)
					}
				}
			}
		}
	}
	big := []model.Tensor{{Name: "w", Shape: []int{256, 256}}}
	if r := float64(DeltaBytes(Int8, big)) / float64(DeltaBytes(FP32, big)); r > 0.27 {
		t.Errorf("int8 is %.2f of fp32's size, want about 0.27", r)
	}
}

func TestDecodeDeltaRejects(t *testing.T) {
	d := randDelta(2, 0.1)
	d.Codec = Int8
	good, _ := EncodeDelta(d)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := map[string][]byte{
		"empty":      {},
		"magic":      mut(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":    mut(func(b []byte) []byte { b[4] = 9; return b }),
		"codec":      mut(func(b []byte) []byte { b[5] = 7; return b }),
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"neg scale":  mut(func(b []byte) []byte { b[len(b)-12+3] = 0x80; return b }),
		"minus 128":  mut(func(b []byte) []byte { b[len(b)-1] = 0x80; return b }),
		"huge count": mut(func(b []byte) []byte { i := deltaFixed + len(d.Base) - 4; b[i+3] = 0x7f; return b }),
	}
	for name, data := range cases {
		if _, err := DecodeDelta(data, nil); !errors.Is(err, ErrDelta) {
			t.Errorf("%s: err = %v, want ErrDelta", name, err)
		}
	}
	other := randDelta(2, 0.1)
	other.Tensors[0].Shape = []int{20, 8}
	if _, err := DecodeDelta(good, other.Tensors); !errors.Is(err, ErrShape) || !errors.Is(err, ErrDelta) {
		t.Errorf("wrong shape: err = %v, want ErrDelta and ErrShape", err)
	}
	nan := randDelta(2, 0.1)
	nan.Codec = FP16
	nan.Tensors[1].Data[3] = float32(math.NaN())
	if _, err := EncodeDelta(nan); !errors.Is(err, ErrNonFinite) {
		t.Errorf("encoding NaN: err = %v, want ErrNonFinite", err)
	}
}

// TestErrorFeedback: over many rounds the sum of what peers decode tracks
// the sum of the true deltas, off by exactly the bounded residual.
func TestErrorFeedback(t *testing.T) {
	for _, c := range []Codec{FP16, Int8} {
		comp := &Compressor{Codec: c}
		var sumTrue, sumSent []float64
		for round := range 50 {
			d := randDelta(uint64(100+round), 0.01)
			_, sent, err := comp.Compress(d)
			if err != nil {
				t.Fatal(err)
			}
			x, y := flat(d), flat(sent)
			if sumTrue == nil {
				sumTrue, sumSent = make([]float64, len(x)), make([]float64, len(x))
			}
			for j := range x {
				sumTrue[j] += float64(x[j])
				sumSent[j] += float64(y[j])
			}
		}
		res := flat(&Delta{Tensors: comp.Residual()})
		var maxGap, maxRes float64
		for j := range sumTrue {
			maxGap = max(maxGap, math.Abs(sumTrue[j]-sumSent[j]-float64(res[j])))
			maxRes = max(maxRes, math.Abs(float64(res[j])))
		}
		// The residual stays within half an int8 step of a block of
		// ~N(0, 0.01²) values (max ≈ 0.03 → step 2.4e-4).
		if maxGap > 1e-5 || maxRes > 3e-4 {
			t.Errorf("%s: Σtrue − Σsent − residual up to %g, residual up to %g", c, maxGap, maxRes)
		}
		state, err := comp.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var back Compressor
		if err := back.UnmarshalBinary(state); err != nil {
			t.Fatal(err)
		}
		if back.Codec != c || !bytes.Equal(float32Bytes(flat(&Delta{Tensors: back.Residual()})), float32Bytes(res)) {
			t.Errorf("%s: compressor state does not round trip", c)
		}
	}
}

func flat(d *Delta) []float32 {
	var x []float32
	for _, t := range d.Tensors {
		x = append(x, t.Data...)
	}
	return x
}

func float32Bytes(x []float32) []byte {
	var b []byte
	for _, v := range x {
		u := math.Float32bits(v)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}

func FuzzDecodeDelta(f *testing.F) {
	for _, c := range []Codec{FP32, FP16, Int8} {
		d := randDelta(3, 0.1)
		d.Codec = c
		data, _ := EncodeDelta(d)
		f.Add(data)
	}
	f.Add([]byte("STDL"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDelta(data, nil)
		if err != nil {
			if !errors.Is(err, ErrDelta) {
				t.Fatalf("error %v does not wrap ErrDelta", err)
			}
			return
		}
		if d.Elems() > 4*len(data) {
			t.Fatalf("%d values from %d bytes", d.Elems(), len(data))
		}
		// A decoded delta with finite values re-encodes to the same bytes.
		if _, err := flatten(d); err == nil {
			again, err := EncodeDelta(d)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if d.Codec == FP32 && !bytes.Equal(again, data) {
				t.Fatalf("fp32 re-encoding differs")
			}
		}
	})
}
