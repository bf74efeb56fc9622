package train

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// participant is one trainer of a federated run: its own data part, model
// copy, inner optimizer and compressor persist across rounds.
type participant struct {
	id    string
	local *model.Model
	tr    *Trainer
	comp  *Compressor
	scale float32 // ×100 for a Byzantine participant
}

type fedRun struct {
	rules   Aggregation
	outer   *Outer
	lim     Limits
	parts   []int     // which data parts take part
	scale   []float32 // per participant delta multiplier (1 honest)
	rounds  int
	h       int
	rejects []*Rejection
}

const fedSeq = 16

// run trains a federated model and returns the held-out loss before and
// after each round, plus the bytes one participant sent per round.
func (f *fedRun) run(t *testing.T) (losses []float64, sent int) {
	t.Helper()
	text := strings.Repeat(verse, 6)
	c, err := NewCorpus([][]byte{[]byte(text)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	trainPart, eval, err := c.HoldOut(0.15)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: ByteVocab, SeqLen: 32,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	base := Init(cfg, 1)
	var ps []*participant
	for i, part := range f.parts {
		data, err := trainPart.Split(4, part, ByRange)
		if err != nil {
			t.Fatal(err)
		}
		b, err := data.Batches(uint64(10+part), fedSeq)
		if err != nil {
			t.Fatal(err)
		}
		opt, err := New(DefaultConfig(AdamW, 3e-3))
		if err != nil {
			t.Fatal(err)
		}
		local := Init(cfg, 1)
		tr, err := NewTrainer(local, opt, Schedule{Base: 3e-3, Min: 3e-3, Total: f.rounds * f.h}, b, 1, fedSeq)
		if err != nil {
			t.Fatal(err)
		}
		ps = append(ps, &participant{id: "peer" + string(rune('A'+part)), local: local, tr: tr,
			comp: &Compressor{Codec: Int8}, scale: f.scale[i]})
	}
	eval1 := func() float64 {
		l, _, err := Evaluate(base, eval, fedSeq, 0)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	losses = append(losses, eval1())
	baseCID := "bafk-round-0"
	for r := 1; r <= f.rounds; r++ {
		var cs []Contribution
		for _, p := range ps {
			bt, lt := Tensors(base), Tensors(p.local)
			for i := range bt {
				copy(lt[i].Data, bt[i].Data)
			}
			var loss float64
			for range f.h {
				l, err := p.tr.Step()
				if err != nil {
					t.Fatal(err)
				}
				loss += float64(l)
			}
			d, err := ComputeDelta(base, p.local)
			if err != nil {
				t.Fatal(err)
			}
			d.Round, d.Base, d.Samples, d.Loss = uint64(r), baseCID, uint64(f.h*fedSeq), float32(loss/float64(f.h))
			if p.scale != 1 {
				for _, t := range d.Tensors {
					for j := range t.Data {
						t.Data[j] *= p.scale
					}
				}
			}
			data, _, err := p.comp.Compress(d)
			if err != nil {
				t.Fatal(err)
			}
			sent = len(data)
			got, err := DecodeDelta(data, Tensors(base))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			cs = append(cs, Contribution{Sender: p.id, Key: hex.EncodeToString(sum[:8]), Delta: got})
		}
		ok, rej := Validate(Tensors(base), uint64(r), baseCID, cs, f.lim)
		for _, x := range rej {
			t.Logf("round %d: %v", r, x)
		}
		f.rejects = append(f.rejects, rej...)
		mean, err := Aggregate(f.rules, ok)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.outer.Apply(base, mean); err != nil {
			t.Fatal(err)
		}
		baseCID = "bafk-round-" + string(rune('0'+r))
		losses = append(losses, eval1())
	}
	return losses, sent
}

// TestFederated runs 4 participants on disjoint parts of a text for 5
// rounds of H local steps, with FedAvg (SGD outer, lr 1) and with DiLoCo
// (Nesterov outer, lr 0.7, momentum 0.9; Douillard et al. 2023), and then
// with one participant sending its delta ×100: trimmed mean keeps the
// held-out loss within 10% of the honest-only run, FedAvg does not, and
// validation with the default norm limit rejects the sender by name.
func TestFederated(t *testing.T) {
	if testing.Short() {
		t.Skip("federated run in -short mode")
	}
	const rounds, h = 5, 12
	all := []int{0, 1, 2, 3}
	honest := []float32{1, 1, 1, 1}
	byz := []float32{1, 1, 1, 100}
	noNorm := Limits{}
	fedavg := &fedRun{rules: Aggregation{Rule: FedAvg, MaxSampleShare: 2}, outer: &Outer{Kind: OuterSGD, LR: 1},
		lim: DefaultLimits(), parts: all, scale: honest, rounds: rounds, h: h}
	lf, sent := fedavg.run(t)
	diloco := &fedRun{rules: Aggregation{Rule: FedAvg, MaxSampleShare: 2}, outer: DiLoCo(), lim: DefaultLimits(),
		parts: all, scale: honest, rounds: rounds, h: h}
	ld, _ := diloco.run(t)
	t.Logf("held-out loss per round, FedAvg: %.3f", lf)
	t.Logf("held-out loss per round, DiLoCo: %.3f", ld)
	for name, l := range map[string][]float64{"FedAvg": lf, "DiLoCo": ld} {
		if !(l[len(l)-1] < l[0]-0.5) {
			t.Errorf("%s: held-out loss %.3f → %.3f; want a fall of more than 0.5 nats", name, l[0], l[len(l)-1])
		}
	}
	shapes := Tensors(Init(model.Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: ByteVocab,
		SeqLen: 32, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}, 1))
	perStep := PerStepGradientBytes(shapes, h)
	t.Logf("bytes sent per participant per round: int8 delta %d, fp32 gradients every step %d (%.1f× less)",
		sent, perStep, float64(perStep)/float64(sent))
	if sent*h*3 > perStep {
		t.Errorf("int8 delta of %d bytes is not 3·H times smaller than %d bytes of per-step gradients", sent, perStep)
	}

	honestOnly := &fedRun{rules: Aggregation{Rule: FedAvg}, outer: &Outer{Kind: OuterSGD, LR: 1}, lim: noNorm,
		parts: []int{0, 1, 2}, scale: []float32{1, 1, 1}, rounds: rounds, h: h}
	lh, _ := honestOnly.run(t)
	trimmed := &fedRun{rules: Aggregation{Rule: TrimmedMean, Trim: 0.25}, outer: &Outer{Kind: OuterSGD, LR: 1}, lim: noNorm,
		parts: all, scale: byz, rounds: rounds, h: h}
	lt, _ := trimmed.run(t)
	naive := &fedRun{rules: Aggregation{Rule: FedAvg}, outer: &Outer{Kind: OuterSGD, LR: 1}, lim: noNorm,
		parts: all, scale: byz, rounds: rounds, h: h}
	ln, _ := naive.run(t)
	final := func(l []float64) float64 { return l[len(l)-1] }
	t.Logf("final held-out loss: honest-only %.3f, Byzantine ×100 with trimmed mean %.3f, with FedAvg %.3f",
		final(lh), final(lt), final(ln))
	if final(lt) > 1.1*final(lh) {
		t.Errorf("trimmed mean with a Byzantine participant: loss %.3f, more than 10%% over honest-only %.3f", final(lt), final(lh))
	}
	if !(final(ln) > 1.1*final(lh)) {
		t.Errorf("FedAvg with a Byzantine participant: loss %.3f, want well over honest-only %.3f (else the test shows nothing)",
			final(ln), final(lh))
	}
	guarded := &fedRun{rules: Aggregation{Rule: FedAvg}, outer: &Outer{Kind: OuterSGD, LR: 1}, lim: DefaultLimits(),
		parts: all, scale: byz, rounds: 1, h: h}
	guarded.run(t)
	if len(guarded.rejects) != 1 || guarded.rejects[0].Sender != "peerD" {
		t.Errorf("validation rejected %v, want peerD's ×100 delta", guarded.rejects)
	}
}
