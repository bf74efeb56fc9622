package train

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// resumeConfigs cover every kind, with clipping and each penalty where the
// kind allows it.
var resumeConfigs = func() []Config {
	var cs []Config
	for _, k := range Kinds {
		c := DefaultConfig(k, 0.05)
		c.ClipNorm = 0.5
		c.L2 = 0.01
		if k == SGD || k == Momentum || k == Nesterov {
			c.WeightDecay = 0.1
		}
		cs = append(cs, c)
	}
	return cs
}()

// trainer is a tiny deterministic training loop: two parameter tensors
// pulled towards targets that depend on the batch, so the gradients depend
// on the data order as a model's would.
type trainer struct {
	opt    *Optimizer
	batch  *Batches
	sched  Schedule
	params []Param
}

func newTrainer(t *testing.T, cfg Config, c *Corpus) *trainer {
	t.Helper()
	o, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Batches(99, 6)
	if err != nil {
		t.Fatal(err)
	}
	tr := &trainer{opt: o, batch: b, sched: Schedule{Base: cfg.LR, Min: cfg.LR / 10, Warmup: 3, Total: 40}}
	for i, n := range []int{5, 3} {
		p := Param{Name: []string{"a", "b"}[i], W: make([]float32, n), G: make([]float32, n)}
		for j := range p.W {
			p.W[j] = float32(j+1) / float32(n+i)
		}
		tr.params = append(tr.params, p)
	}
	return tr
}

func (tr *trainer) run(t *testing.T, steps int) {
	t.Helper()
	for range steps {
		toks, _ := tr.batch.Next()
		for _, p := range tr.params {
			for j := range p.G {
				p.G[j] = p.W[j] - float32(toks[j%len(toks)])/100
			}
		}
		if _, err := tr.opt.Step(tr.params, tr.sched.LR(int(tr.opt.Steps()))); err != nil {
			t.Fatal(err)
		}
	}
}

// TestResumeEquivalence: N steps, save, restore into fresh objects, M more
// steps gives bitwise the weights of N+M steps straight.
func TestResumeEquivalence(t *testing.T) {
	c := testCorpus(t, 6)
	const n, m = 7, 11
	for _, cfg := range resumeConfigs {
		t.Run(string(cfg.Kind), func(t *testing.T) {
			straight := newTrainer(t, cfg, c)
			straight.run(t, n+m)

			first := newTrainer(t, cfg, c)
			first.run(t, n)
			state, err := first.opt.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			ck := Checkpoint{Step: first.opt.Steps(), SeqLen: 6, Seed: 99, Position: first.batch.Position(),
				Model: "bafkreitest", Optimizer: state}
			raw, err := ck.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}

			var got Checkpoint
			if err := got.UnmarshalBinary(raw); err != nil {
				t.Fatal(err)
			}
			resumed := newTrainer(t, cfg, c)
			if err := resumed.opt.UnmarshalBinary(got.Optimizer); err != nil {
				t.Fatal(err)
			}
			if err := resumed.batch.Seek(got.Position); err != nil {
				t.Fatal(err)
			}
			for i := range resumed.params { // the weights come back from the saved model version
				copy(resumed.params[i].W, first.params[i].W)
			}
			if resumed.opt.Steps() != n {
				t.Fatalf("restored step count %d, want %d", resumed.opt.Steps(), n)
			}
			resumed.run(t, m)
			for i, p := range straight.params {
				for j, w := range p.W {
					if math.Float32bits(w) != math.Float32bits(resumed.params[i].W[j]) {
						t.Fatalf("%s[%d]: resumed %g, straight %g", p.Name, j, resumed.params[i].W[j], w)
					}
				}
			}
			// The state itself round-trips byte for byte.
			again, _ := resumed.opt.MarshalBinary()
			want, _ := straight.opt.MarshalBinary()
			if !bytes.Equal(again, want) {
				t.Error("resumed optimizer state differs from the straight run's")
			}
		})
	}
}

func TestStateErrors(t *testing.T) {
	tr := newTrainer(t, DefaultConfig(Adam, 0.01), testCorpus(t, 3))
	tr.run(t, 2)
	good, _ := tr.opt.MarshalBinary()
	fresh := func(k Kind) *Optimizer {
		o, err := New(DefaultConfig(k, 0.01))
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if err := fresh(Adam).UnmarshalBinary(good); err != nil {
		t.Fatalf("good state: %v", err)
	}
	mod := func(off int, b ...byte) []byte {
		d := bytes.Clone(good)
		copy(d[off:], b)
		return d
	}
	// Offsets: magic 0, version 8, kind 12, step 16, nparams 24, name len 28, name 32, n 33, data 41.
	negV := math.Float32bits(-1)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic", mod(0, 'X')},
		{"version", mod(8, 2)},
		{"kind", mod(12, 9)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"huge param count", mod(24, 0xff, 0xff, 0xff, 0x7f)},
		{"huge name", mod(28, 0xff, 0xff, 0xff, 0xff)},
		{"huge n", mod(33, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"nan moment", mod(41, 0x00, 0x00, 0xc0, 0x7f)},
		{"negative second moment", mod(41+4*5, byte(negV), byte(negV>>8), byte(negV>>16), byte(negV>>24))},
		{"step 0 with params", mod(16, 0, 0, 0, 0, 0, 0, 0, 0)},
	} {
		o := fresh(Adam)
		if err := o.UnmarshalBinary(tc.data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", tc.name, err)
		}
		if o.Steps() != 0 || o.params != nil {
			t.Errorf("%s: a failed restore changed the optimizer", tc.name)
		}
	}
	if err := fresh(AdamW).UnmarshalBinary(good); !errors.Is(err, ErrFormat) {
		t.Errorf("adam state into adamw: got %v, want ErrFormat", err)
	}
	// Restored state bound to other parameters is refused at the next step.
	o := fresh(Adam)
	if err := o.UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	w := make([]float32, 4)
	if _, err := o.Step([]Param{{Name: "a", W: w, G: w}}, 0.01); !errors.Is(err, ErrShape) {
		t.Errorf("step on other params after restore: got %v, want ErrShape", err)
	}
}

func TestCheckpointErrors(t *testing.T) {
	ck := Checkpoint{Step: 3, SeqLen: 8, Seed: 1, Position: Position{1, 2}, Model: "bafk", Optimizer: []byte{1, 2, 3}}
	good, err := ck.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back Checkpoint
	if err := back.UnmarshalBinary(good); err != nil {
		t.Fatal(err)
	}
	if back.Step != 3 || back.SeqLen != 8 || back.Seed != 1 || back.Position != ck.Position || back.Model != "bafk" ||
		!bytes.Equal(back.Optimizer, ck.Optimizer) {
		t.Errorf("round trip: got %+v, want %+v", back, ck)
	}
	mod := func(off int, b ...byte) []byte {
		d := bytes.Clone(good)
		copy(d[off:], b)
		return d
	}
	// Offsets: magic 0, version 8, step 12, seqlen 20, seed 24, epoch 32, index 40, modellen 48, model 52, optlen 56.
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"magic", mod(0, 'X')},
		{"version", mod(8, 9)},
		{"seqlen 0", mod(20, 0, 0, 0, 0)},
		{"huge model ref", mod(48, 0xff, 0xff, 0, 0)},
		{"model not utf-8", mod(52, 0xff)},
		{"huge optimizer", mod(56, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
	} {
		var c Checkpoint
		if err := c.UnmarshalBinary(tc.data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", tc.name, err)
		}
	}
	if _, err := (&Checkpoint{SeqLen: 0}).MarshalBinary(); !errors.Is(err, ErrFormat) {
		t.Errorf("marshal seqlen 0: got %v, want ErrFormat", err)
	}
}

// FuzzOptimizerState decodes arbitrary bytes as the state of every kind:
// no panic, and whatever decodes re-encodes to the same bytes.
func FuzzOptimizerState(f *testing.F) {
	c := testCorpus(f, 3)
	for _, cfg := range resumeConfigs {
		o, _ := New(cfg)
		empty, _ := o.MarshalBinary()
		f.Add(empty)
		b, _ := c.Batches(1, 4)
		w := []float32{1, 2, 3}
		for range 2 {
			toks, _ := b.Next()
			g := []float32{float32(toks[0]), -1, 0.5}
			if _, err := o.Step([]Param{{Name: "w", W: w, G: g}}, 0.1); err != nil {
				f.Fatal(err)
			}
		}
		s, _ := o.MarshalBinary()
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, k := range Kinds {
			o, err := New(DefaultConfig(k, 0.1))
			if err != nil {
				t.Fatal(err)
			}
			if err := o.UnmarshalBinary(data); err != nil {
				if !errors.Is(err, ErrFormat) {
					t.Fatalf("%s: error %v does not wrap ErrFormat", k, err)
				}
				continue
			}
			out, err := o.MarshalBinary()
			if err != nil || !bytes.Equal(out, data) {
				t.Fatalf("%s: decoded state re-encodes differently (err %v)", k, err)
			}
		}
	})
}

// FuzzCheckpoint decodes arbitrary bytes as a checkpoint: no panic, and
// whatever decodes re-encodes to the same bytes.
func FuzzCheckpoint(f *testing.F) {
	ck := Checkpoint{Step: 5, SeqLen: 64, Seed: 7, Position: Position{2, 9}, Model: "bafkreiabc", Optimizer: []byte("STOPTST\x00")}
	raw, _ := ck.MarshalBinary()
	f.Add(raw)
	f.Add(raw[:20])
	f.Fuzz(func(t *testing.T, data []byte) {
		var c Checkpoint
		if err := c.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		out, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("decoded checkpoint re-encodes differently (err %v)", err)
		}
	})
}
