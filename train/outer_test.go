package train

import (
	"errors"
	"math"
	"testing"

	"github.com/strata-mesh/strata/model"
)

func tinyModel() *model.Model {
	cfg := model.Config{Dim: 8, HiddenDim: 16, NLayers: 1, NHeads: 2, NKVHeads: 2, VocabSize: ByteVocab, SeqLen: 8,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	return Init(cfg, 3)
}

// deltaLike returns a delta over m's tensors with every value v.
func deltaLike(m *model.Model, v float32) *Delta {
	d := &Delta{Codec: FP32}
	for _, t := range Tensors(m) {
		x := make([]float32, len(t.Data))
		for j := range x {
			x[j] = v
		}
		d.Tensors = append(d.Tensors, model.Tensor{Name: t.Name, Shape: t.Shape, Data: x})
	}
	return d
}

// TestOuterByHand: SGD θ − lr·Δ̄; Nesterov (DiLoCo) b ← μb + Δ̄,
// θ ← θ − lr(Δ̄ + μb): from b = 0 with Δ̄ = 1 twice, b = 1 then 1.9, and θ
// moves by 0.7·1.9 = 1.33 then 0.7·2.71 = 1.897.
func TestOuterByHand(t *testing.T) {
	m := tinyModel()
	w0 := Tensors(m)[1].Data[5]
	o := &Outer{Kind: OuterSGD, LR: 1}
	if err := o.Apply(m, deltaLike(m, 0.5)); err != nil {
		t.Fatal(err)
	}
	if got, want := Tensors(m)[1].Data[5], w0-0.5; got != want {
		t.Errorf("sgd: got %g, want %g", got, want)
	}
	m = tinyModel()
	o = DiLoCo()
	for i, move := range []float32{1.33, 1.897} {
		before := Tensors(m)[1].Data[5]
		if err := o.Apply(m, deltaLike(m, 1)); err != nil {
			t.Fatal(err)
		}
		if got := before - Tensors(m)[1].Data[5]; math.Abs(float64(got-move)) > 1e-5 {
			t.Errorf("nesterov step %d moved %g, want %g", i+1, got, move)
		}
	}
	bad := deltaLike(m, 1)
	bad.Tensors[2].Data[0] = float32(math.Inf(1))
	w := Tensors(m)[0].Data[0]
	if err := o.Apply(m, bad); !errors.Is(err, ErrNonFinite) || Tensors(m)[0].Data[0] != w {
		t.Errorf("non-finite delta: err = %v, want ErrNonFinite and no change", err)
	}
	if err := (&Outer{Kind: "adam", LR: 1}).Apply(m, deltaLike(m, 1)); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown kind: err = %v, want ErrConfig", err)
	}
}

// TestOuterResume: two Nesterov steps, save, restore into a fresh Outer,
// a third step — bitwise the same as three steps straight.
func TestOuterResume(t *testing.T) {
	deltas := []*Delta{randLike(tinyModel(), 1), randLike(tinyModel(), 2), randLike(tinyModel(), 3)}
	straight, o := tinyModel(), DiLoCo()
	for _, d := range deltas {
		if err := o.Apply(straight, d); err != nil {
			t.Fatal(err)
		}
	}
	resumed, o1 := tinyModel(), DiLoCo()
	for _, d := range deltas[:2] {
		_ = o1.Apply(resumed, d)
	}
	state, err := o1.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var o2 Outer
	if err := o2.UnmarshalBinary(state); err != nil {
		t.Fatal(err)
	}
	if err := o2.Apply(resumed, deltas[2]); err != nil {
		t.Fatal(err)
	}
	a, b := Tensors(straight), Tensors(resumed)
	for i := range a {
		for j := range a[i].Data {
			if math.Float32bits(a[i].Data[j]) != math.Float32bits(b[i].Data[j]) {
				t.Fatalf("%s[%d]: resumed %g, straight %g", a[i].Name, j, b[i].Data[j], a[i].Data[j])
			}
		}
	}
	if err := o2.UnmarshalBinary(state[:len(state)-1]); err == nil {
		t.Error("truncated outer state accepted")
	}
}

func randLike(m *model.Model, seed uint64) *Delta {
	d := deltaLike(m, 0)
	r := Init(m.Config, seed)
	for i, t := range Tensors(r) {
		copy(d.Tensors[i].Data, t.Data)
	}
	return d
}

// TestOuterPartial applies deltas over some tensors only: the others, and
// their momentum, stay exactly as they were; tensors out of order or not
// in the model are refused.
func TestOuterPartial(t *testing.T) {
	m := tinyModel()
	before := Tensors(tinyModel())
	full := deltaLike(m, 1)
	sub := &Delta{Codec: FP32, Tensors: []model.Tensor{full.Tensors[1], full.Tensors[3]}}
	o := DiLoCo()
	for range 2 {
		if err := o.Apply(m, sub); err != nil {
			t.Fatal(err)
		}
	}
	for i, tn := range Tensors(m) {
		changed := tn.Data[0] != before[i].Data[0]
		if want := i == 1 || i == 3; changed != want {
			t.Errorf("tensor %d %s: changed %v, want %v", i, tn.Name, changed, want)
		}
		if mom := o.buf[i].Data[0]; (mom != 0) != (i == 1 || i == 3) {
			t.Errorf("tensor %d momentum %g", i, mom)
		}
	}
	swapped := &Delta{Codec: FP32, Tensors: []model.Tensor{full.Tensors[3], full.Tensors[1]}}
	if err := o.Apply(m, swapped); !errors.Is(err, ErrShape) {
		t.Errorf("tensors out of order: %v, want ErrShape", err)
	}
	foreign := &Delta{Codec: FP32, Tensors: []model.Tensor{{Name: "blocks.9.w1", Shape: []int{1}, Data: []float32{1}}}}
	if err := o.Apply(m, foreign); !errors.Is(err, ErrShape) {
		t.Errorf("unknown tensor: %v, want ErrShape", err)
	}
}
