package train

import (
	"math"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

const verse = `First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
`

// byteModel is a small synthetic byte-level model.
func byteModel() *model.Model {
	cfg := model.Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: ByteVocab,
		SeqLen: 32, NormEps: 1e-5, RopeTheta: 10000}
	return model.Synth(cfg, 5)
}

// loop trains m on b for steps steps and returns the last loss.
func loop(t *testing.T, m *model.Model, o *Optimizer, b *Batches, s Schedule, steps int) float32 {
	t.Helper()
	n := m.Config.NLayers
	tp := m.NewTape(0, n, 16, true)
	g := model.NewGrads(m, 0, n, true)
	ps := m.Params(g)
	var loss float32
	for range steps {
		toks, tgts := b.Next()
		g.Zero()
		loss = m.LossAndGrad(tp, toks, tgts, g)
		if _, err := o.Step(ps, s.LR(int(o.Steps()))); err != nil {
			t.Fatal(err)
		}
	}
	return loss
}

// TestTrainByteLevelModel trains a byte-level model on text with AdamW and
// the schedule and expects the held-out loss to fall well below the
// uniform ln(259) ≈ 5.56.
func TestTrainByteLevelModel(t *testing.T) {
	c, err := NewCorpus([][]byte{[]byte(strings.Repeat(verse, 4))}, Options{BlankLines: true})
	if err != nil {
		t.Fatal(err)
	}
	tr, ev, err := c.HoldOut(0.1)
	if err != nil {
		t.Fatal(err)
	}
	m := byteModel()
	evalLoss := func() float32 {
		tp := m.NewTape(0, m.Config.NLayers, 16, true)
		eb, err := ev.Batches(0, 16)
		if err != nil {
			t.Fatal(err)
		}
		var sum float32
		for range eb.Windows() {
			toks, tgts := eb.Next()
			sum += m.Loss(tp, toks, tgts)
		}
		return sum / float32(eb.Windows())
	}
	before := evalLoss()
	cfg := DefaultConfig(AdamW, 1e-2)
	cfg.ClipNorm = 1
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.Batches(1, 16)
	if err != nil {
		t.Fatal(err)
	}
	loop(t, m, o, b, Schedule{Base: 1e-2, Min: 1e-3, Warmup: 10, Total: 150}, 150)
	after := evalLoss()
	t.Logf("held-out loss %.3f → %.3f after 150 AdamW steps", before, after)
	if !(after < 2.5 && after < before-2) {
		t.Errorf("held-out loss %.3f → %.3f; want below 2.5", before, after)
	}
}

// TestResumeModel: N steps of a real model, restore optimizer state,
// data position and weights into fresh objects, M more steps — bitwise the
// weights of N+M steps straight.
func TestResumeModel(t *testing.T) {
	c, err := NewCorpus([][]byte{[]byte(verse)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := Schedule{Base: 3e-3, Warmup: 2, Total: 10}
	const n, m = 3, 4
	for _, k := range []Kind{Nesterov, Adam} {
		cfg := DefaultConfig(k, 3e-3)
		cfg.ClipNorm = 1
		run := func(steps int, from *Checkpoint, weights *model.Model) (*model.Model, *Checkpoint) {
			md := byteModel()
			o, _ := New(cfg)
			b, _ := c.Batches(9, 16)
			if from != nil {
				if err := o.UnmarshalBinary(from.Optimizer); err != nil {
					t.Fatal(err)
				}
				if err := b.Seek(from.Position); err != nil {
					t.Fatal(err)
				}
				src := weights.Params(model.NewGrads(weights, 0, weights.Config.NLayers, true))
				for i, p := range md.Params(model.NewGrads(md, 0, md.Config.NLayers, true)) {
					copy(p.W, src[i].W)
				}
			}
			loop(t, md, o, b, s, steps)
			st, _ := o.MarshalBinary()
			return md, &Checkpoint{Step: o.Steps(), SeqLen: 16, Seed: 9, Position: b.Position(), Optimizer: st}
		}
		straight, _ := run(n+m, nil, nil)
		half, ck := run(n, nil, nil)
		resumed, _ := run(m, ck, half)
		a := straight.Params(model.NewGrads(straight, 0, 2, true))
		r := resumed.Params(model.NewGrads(resumed, 0, 2, true))
		for i := range a {
			for j := range a[i].W {
				if math.Float32bits(a[i].W[j]) != math.Float32bits(r[i].W[j]) {
					t.Fatalf("%s: %s[%d] resumed %g, straight %g", k, a[i].Name, j, r[i].W[j], a[i].W[j])
				}
			}
		}
	}
}
