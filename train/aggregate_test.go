package train

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

func contrib(key string, samples uint64, v ...float32) Contribution {
	return Contribution{Sender: "peer-" + key, Key: key, Delta: &Delta{Round: 1, Base: "b", Samples: samples, Loss: 1,
		Tensors: []model.Tensor{{Name: "w", Shape: []int{len(v)}, Data: v}}}}
}

// TestRulesByHand checks each rule against values computed by hand.
func TestRulesByHand(t *testing.T) {
	three := []Contribution{contrib("a", 1, 1, 10), contrib("b", 1, 2, 20), contrib("c", 2, 3, -30)}
	four := append(append([]Contribution(nil), three...), contrib("d", 1, 100, 0))
	clip := []Contribution{contrib("a", 1, 0, 0), contrib("b", 1, 0, 0), contrib("c", 1, 0, 0), contrib("d", 1, 10, 0)}
	tests := []struct {
		name string
		a    Aggregation
		cs   []Contribution
		want []float32
	}{
		// (1·1 + 1·2 + 2·3)/4, (10 + 20 − 60)/4
		{"fedavg", Aggregation{Rule: FedAvg}, three, []float32{2.25, -7.5}},
		// sample counts capped at 1 × median 1: plain mean
		{"fedavg capped share", Aggregation{Rule: FedAvg, MaxSampleShare: 1}, three, []float32{2, 0}},
		{"fedavg capped count", Aggregation{Rule: FedAvg, SampleCap: 1}, three, []float32{2, 0}},
		{"median odd", Aggregation{Rule: Median}, three, []float32{2, 10}},
		// sorted 1,2,3,100 → (2+3)/2; −30,0,10,20 → (0+10)/2
		{"median even", Aggregation{Rule: Median}, four, []float32{2.5, 5}},
		{"trimmed 0.25", Aggregation{Rule: TrimmedMean, Trim: 0.25}, four, []float32{2.5, 5}},
		{"trimmed 0", Aggregation{Rule: TrimmedMean}, four, []float32{26.5, 0}},
		// τ huge: one step from the median lands on the mean
		{"clip no-op", Aggregation{Rule: CenteredClip, Tau: 1e9, Iters: 1}, four, []float32{26.5, 0}},
		// from median 0: z₄ = 10 clipped to 1 → v = 1/4; then z₁₋₃ = −0.25,
		// z₄ = 9.75 → 1 → v = 0.25 + (−0.75 + 1)/4 = 0.3125
		{"clip 1 iter", Aggregation{Rule: CenteredClip, Tau: 1, Iters: 1}, clip, []float32{0.25, 0}},
		{"clip 2 iters", Aggregation{Rule: CenteredClip, Tau: 1, Iters: 2}, clip, []float32{0.3125, 0}},
	}
	for _, tc := range tests {
		got, err := Aggregate(tc.a, tc.cs)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, v := range got.Tensors[0].Data {
			if v != tc.want[i] {
				t.Errorf("%s: got %v, want %v", tc.name, got.Tensors[0].Data, tc.want)
				break
			}
		}
	}
	if _, err := Aggregate(Aggregation{Rule: TrimmedMean, Trim: 0.5}, four); !errors.Is(err, ErrConfig) {
		t.Errorf("trim 0.5: err = %v, want ErrConfig", err)
	}
	if _, err := Aggregate(Aggregation{}, nil); !errors.Is(err, ErrNoDeltas) {
		t.Errorf("no deltas: err = %v, want ErrNoDeltas", err)
	}
}

// honest returns n deltas g + noise with a common direction g, and g.
func honest(n, size int, seed uint64) ([]Contribution, []float64) {
	r := rand.New(rand.NewPCG(seed, 2))
	g := make([]float64, size)
	for j := range g {
		g[j] = r.NormFloat64() * 0.01
	}
	var cs []Contribution
	for i := range n {
		v := make([]float32, size)
		for j := range v {
			v[j] = float32(g[j] + 0.5*r.NormFloat64()*0.01)
		}
		cs = append(cs, contrib(fmt.Sprintf("k%d", i), 100, v...))
	}
	return cs, g
}

func relErr(d *Delta, g []float64) float64 {
	var e, n float64
	for j, v := range d.Tensors[0].Data {
		e += (float64(v) - g[j]) * (float64(v) - g[j])
		n += g[j] * g[j]
	}
	return math.Sqrt(e / n)
}

// TestByzantineScaled: one of four contributors sends its delta ×100.
// Trimmed mean and centered clipping stay near the honest direction;
// FedAvg is dragged 25× off.
func TestByzantineScaled(t *testing.T) {
	cs, g := honest(4, 512, 7)
	for j := range cs[3].Delta.Tensors[0].Data {
		cs[3].Delta.Tensors[0].Data[j] *= 100
	}
	honestMean, _ := Aggregate(Aggregation{Rule: FedAvg}, cs[:3])
	tau := honestMean.Norm()
	for _, tc := range []struct {
		a       Aggregation
		lo, hip float64
	}{
		{Aggregation{Rule: FedAvg}, 10, math.Inf(1)},
		{Aggregation{Rule: TrimmedMean, Trim: 0.25}, 0, 0.6},
		{Aggregation{Rule: Median}, 0, 0.6},
		{Aggregation{Rule: CenteredClip, Tau: tau, Iters: 3}, 0, 0.6},
	} {
		got, err := Aggregate(tc.a, cs)
		if err != nil {
			t.Fatal(err)
		}
		e := relErr(got, g)
		t.Logf("%s: relative distance from the honest direction %.3f", tc.a.Rule, e)
		if e < tc.lo || e > tc.hip {
			t.Errorf("%s: relative error %.3f, want in [%g, %g]", tc.a.Rule, e, tc.lo, tc.hip)
		}
	}
}

// TestValidateRejects: NaN, ±Inf, oversized, misshapen and duplicate
// deltas are rejected with the sender named; honest ones pass.
func TestValidateRejects(t *testing.T) {
	cs, _ := honest(5, 64, 9)
	expect := []model.Tensor{{Name: "w", Shape: []int{64}}}
	cs[1].Delta.Tensors[0].Data[17] = float32(math.NaN())
	for j := range cs[2].Delta.Tensors[0].Data {
		cs[2].Delta.Tensors[0].Data[j] *= 100
	}
	cs = append(cs,
		contrib("short", 10, 1, 2),
		Contribution{Sender: cs[0].Sender, Key: "again", Delta: cs[0].Delta},
		contrib("inf", 10, append(make([]float32, 63), float32(math.Inf(-1)))...))
	ok, rej := Validate(expect, 1, "b", cs, DefaultLimits())
	if len(ok) != 3 {
		t.Errorf("accepted %d, want 3 (k0, k3, k4)", len(ok))
	}
	msgs := map[string]error{}
	for _, r := range rej {
		msgs[r.Sender+"/"+r.Key] = r
		if !errors.Is(r, ErrRejected) {
			t.Errorf("%v does not wrap ErrRejected", r)
		}
	}
	for key, want := range map[string]string{
		"peer-k1/k1":       "rejected delta k1 from peer-k1: train: non-finite gradient: NaN in w[17]",
		"peer-k2/k2":       "norm outlier",
		"peer-short/short": "shape mismatch",
		"peer-k0/again":    "second delta from the same sender",
		"peer-inf/inf":     "-Inf in w[63]",
	} {
		if err := msgs[key]; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want a rejection containing %q", key, err, want)
		}
	}
	if !errors.Is(msgs["peer-k2/k2"], ErrOutlier) || !errors.Is(msgs["peer-k1/k1"], ErrNonFinite) {
		t.Error("rejections do not wrap their causes")
	}
	few, _ := honest(3, 64, 9)
	if ok, _ := Validate(expect, 1, "b", few, Limits{MaxNorm: 1e-6}); len(ok) != 0 {
		t.Errorf("absolute cap accepted %d deltas", len(ok))
	}
	if ok, rej := Validate(expect, 2, "b", few, DefaultLimits()); len(ok) != 0 || len(rej) != 3 {
		t.Errorf("wrong round accepted %d", len(ok))
	}
}

// TestAggregateDeterministic: every permutation of the inputs gives
// bitwise the same result, for every rule.
func TestAggregateDeterministic(t *testing.T) {
	cs, _ := honest(5, 300, 11)
	for i, c := range cs {
		c.Delta.Samples = uint64(50 + 37*i)
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, a := range []Aggregation{{Rule: FedAvg, MaxSampleShare: 2}, {Rule: Median}, {Rule: TrimmedMean, Trim: 0.2},
		{Rule: CenteredClip, Tau: 0.05, Iters: 4}} {
		ref, err := Aggregate(a, cs)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			p := append([]Contribution(nil), cs...)
			r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
			got, _ := Aggregate(a, p)
			for j, v := range got.Tensors[0].Data {
				if math.Float32bits(v) != math.Float32bits(ref.Tensors[0].Data[j]) {
					t.Fatalf("%s: permuted inputs give %g at %d, want %g", a.Rule, v, j, ref.Tensors[0].Data[j])
				}
			}
			if got.Samples != ref.Samples || got.Loss != ref.Loss {
				t.Fatalf("%s: metadata differs under permutation", a.Rule)
			}
		}
	}
}
