package train

import (
	"errors"
	"math"
	"testing"
)

// handGrads are the gradients of the hand-computed steps, one row per
// step, for a parameter starting at handW0 with lr = 0.1.
var (
	handGrads = [][]float32{{0.5, -1}, {0.25, 2}, {-1, 0.5}}
	handW0    = []float32{1, -0.5}
)

// TestOptimizerHandSteps checks three steps of each optimizer against
// values worked out from its published formula (float64, by hand or
// calculator), for w0 = (1, −0.5), lr = 0.1 and the gradients handGrads.
// The first step of each is derived in the comment.
func TestOptimizerHandSteps(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want [][2]float64
	}{
		// SGD (Robbins & Monro): w ← w − lr·g. Step 1: 1 − 0.1·0.5 = 0.95; −0.5 + 0.1 = −0.4.
		{"sgd", Config{Kind: SGD, LR: 0.1}, [][2]float64{{0.95, -0.4}, {0.925, -0.6}, {1.025, -0.65}}},
		// L2: g ← g + 0.1·w. Step 1: g = 0.5 + 0.1 = 0.6 → 0.94; g = −1 − 0.05 → −0.395.
		{"sgd+l2", Config{Kind: SGD, LR: 0.1, L2: 0.1},
			[][2]float64{{0.94, -0.395}, {0.9056, -0.59105}, {0.996544, -0.6351395}}},
		// Decoupled decay (Loshchilov & Hutter): w ← w(1 − lr·λ) − lr·g, λ = 0.5.
		// Step 1: 1·0.95 − 0.05 = 0.9; −0.5·0.95 + 0.1 = −0.375.
		{"sgd+decay", Config{Kind: SGD, LR: 0.1, WeightDecay: 0.5},
			[][2]float64{{0.9, -0.375}, {0.83, -0.55625}, {0.8885, -0.5784375}}},
		// Momentum (Sutskever et al. 2013 / PyTorch): b ← μb + g; w ← w − lr·b.
		// Step 2: b = 0.9·0.5 + 0.25 = 0.7 → 0.95 − 0.07 = 0.88.
		{"momentum", Config{Kind: Momentum, LR: 0.1, Momentum: 0.9},
			[][2]float64{{0.95, -0.4}, {0.88, -0.51}, {0.917, -0.659}}},
		// Nesterov (PyTorch form): b ← μb + g; w ← w − lr(g + μb).
		// Step 1: b = 0.5, g + μb = 0.95 → 0.905; b = −1, −1.9 → −0.31.
		{"nesterov", Config{Kind: Nesterov, LR: 0.1, Momentum: 0.9},
			[][2]float64{{0.905, -0.31}, {0.817, -0.609}, {0.9503, -0.7931}}},
		// AdaGrad (Duchi et al. 2011): s ← s + g²; w ← w − lr·g/(√s + ε).
		// Step 1: s = 0.25, 0.1·0.5/0.5 = 0.1 → 0.9; s = 1 → −0.4.
		// Step 2: s = 0.3125, 0.025/0.5590 = 0.04472 → 0.85528.
		{"adagrad", Config{Kind: AdaGrad, LR: 0.1, Eps: 1e-10},
			[][2]float64{{0.9, -0.4}, {0.85527864, -0.489442719}, {0.942565797, -0.511264508}}},
		// RMSProp (Tieleman & Hinton 2012): v ← αv + (1−α)g²; w ← w − lr·g/(√v + ε), α = 0.9.
		// Step 1: v = 0.025, 0.05/0.158114 = 0.316228 → 0.683772.
		{"rmsprop", Config{Kind: RMSProp, LR: 0.1, Beta2: 0.9, Eps: 1e-8},
			[][2]float64{{0.683772254, -0.183772244}, {0.536330307, -0.469486526}, {0.818188229, -0.542731366}}},
		// Adam (Kingma & Ba 2015, Alg. 1): m̂₁ = g, v̂₁ = g², so step 1 moves by lr·sign(g):
		// 0.9, −0.4. Step 2: m = 0.07, v = 0.0003125; m̂ = 0.368421, v̂ = 0.156328 → 0.8067820.
		{"adam", Config{Kind: Adam, LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8},
			[][2]float64{{0.900000002, -0.400000001}, {0.80678204, -0.436610353}, {0.827417743, -0.478175473}}},
		// Adam with L2 (g ← g + 0.1w): step 1 is still lr·sign(g).
		{"adam+l2", Config{Kind: Adam, LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, L2: 0.1},
			[][2]float64{{0.900000002, -0.400000001}, {0.805009766, -0.433972198}, {0.812098261, -0.472552853}}},
		// AdamW (Loshchilov & Hutter 2019, Alg. 2, PyTorch form): w ← w(1 − lr·λ) then Adam, λ = 0.1.
		// Step 1: 1·0.99 − 0.1 = 0.89; −0.5·0.99 + 0.1 = −0.395.
		{"adamw", Config{Kind: AdamW, LR: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1},
			[][2]float64{{0.890000002, -0.395000001}, {0.78788204, -0.427660353}, {0.800638922, -0.46494887}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			w := append([]float32(nil), handW0...)
			g := make([]float32, 2)
			for s, want := range tc.want {
				copy(g, handGrads[s])
				info, err := o.Step([]Param{{Name: "w", W: w, G: g}}, tc.cfg.LR)
				if err != nil {
					t.Fatal(err)
				}
				if info.Step != uint64(s+1) || info.Scale != 1 {
					t.Errorf("step %d: info %+v, want step %d scale 1", s+1, info, s+1)
				}
				for j := range w {
					if d := math.Abs(float64(w[j]) - want[j]); d > 2e-6*math.Max(1, math.Abs(want[j])) {
						t.Errorf("step %d: w[%d] = %.9g, want %.9g (|diff| %.3g)", s+1, j, w[j], want[j], d)
					}
				}
				if g[0] != handGrads[s][0] || g[1] != handGrads[s][1] {
					t.Errorf("step %d: Step changed the gradient to %v", s+1, g)
				}
			}
		})
	}
}

// TestClipping checks clipping by global norm (Pascanu et al. 2013, PyTorch
// clip_grad_norm_): gradients (3, 4) and (0, 0, 12) have norm 13; clipped
// to 1.3 every element is scaled by 1.3/(13 + 1e-6).
func TestClipping(t *testing.T) {
	for _, tc := range []struct {
		clip  float32
		scale float64
	}{{0, 1}, {13.5, 1}, {1.3, 1.3 / (13 + 1e-6)}} {
		o, err := New(Config{Kind: SGD, LR: 1, ClipNorm: tc.clip})
		if err != nil {
			t.Fatal(err)
		}
		a, b := make([]float32, 2), make([]float32, 3)
		ps := []Param{{Name: "a", W: a, G: []float32{3, 4}}, {Name: "b", W: b, G: []float32{0, 0, 12}}}
		info, err := o.Step(ps, 1)
		if err != nil {
			t.Fatal(err)
		}
		if info.Norm != 13 {
			t.Errorf("clip %g: norm %g, want 13", tc.clip, info.Norm)
		}
		if math.Abs(float64(info.Scale)-tc.scale) > 1e-7 {
			t.Errorf("clip %g: scale %g, want %g", tc.clip, info.Scale, tc.scale)
		}
		got := []float32{a[0], a[1], b[2]}
		for k, g := range []float64{3, 4, 12} {
			if want := -g * tc.scale; math.Abs(float64(got[k])-want) > 1e-6*math.Abs(want) {
				t.Errorf("clip %g: element %d = %g, want %g", tc.clip, k, got[k], want)
			}
		}
		if n := GlobalNorm([]Param{{W: got, G: got}}); tc.clip > 0 && n > float64(tc.clip)*(1+1e-6) {
			t.Errorf("clip %g: update norm %g exceeds the clip", tc.clip, n)
		}
	}
}

func TestStepErrors(t *testing.T) {
	o, err := New(DefaultConfig(Adam, 1e-3))
	if err != nil {
		t.Fatal(err)
	}
	w := []float32{1, 2}
	if _, err := o.Step([]Param{{Name: "w", W: w, G: []float32{1}}}, 1e-3); !errors.Is(err, ErrShape) {
		t.Errorf("len(W) != len(G): got %v, want ErrShape", err)
	}
	if _, err := o.Step([]Param{{Name: "w", W: w, G: []float32{1, float32(math.NaN())}}}, 1e-3); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN gradient: got %v, want ErrNonFinite", err)
	}
	if w[0] != 1 || w[1] != 2 || o.Steps() != 0 {
		t.Errorf("a failed step changed state: w %v, steps %d", w, o.Steps())
	}
	if _, err := o.Step([]Param{{Name: "w", W: w, G: []float32{float32(math.Inf(-1)), 0}}}, 1e-3); !errors.Is(err, ErrNonFinite) {
		t.Errorf("-Inf gradient: got %v, want ErrNonFinite", err)
	}
	for _, lr := range []float32{-1, float32(math.Inf(1)), float32(math.NaN())} {
		if _, err := o.Step([]Param{{Name: "w", W: w, G: []float32{1, 1}}}, lr); !errors.Is(err, ErrConfig) {
			t.Errorf("lr %g: got %v, want ErrConfig", lr, err)
		}
	}
	if _, err := o.Step([]Param{{Name: "w", W: w, G: []float32{1, 1}}}, 1e-3); err != nil {
		t.Fatal(err)
	}
	for _, ps := range [][]Param{
		{{Name: "w", W: w, G: w}, {Name: "x", W: w, G: w}},
		{{Name: "v", W: w, G: w}},
		{{Name: "w", W: w[:1], G: w[:1]}},
	} {
		if _, err := o.Step(ps, 1e-3); !errors.Is(err, ErrShape) {
			t.Errorf("params %v after binding: got %v, want ErrShape", ps, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, k := range Kinds {
		if err := DefaultConfig(k, 0.01).Validate(); err != nil {
			t.Errorf("DefaultConfig(%s): %v", k, err)
		}
	}
	nan := float32(math.NaN())
	for _, c := range []Config{
		{Kind: "lion", LR: 1},
		{Kind: SGD},
		{Kind: SGD, LR: -1},
		{Kind: SGD, LR: nan},
		{Kind: SGD, LR: 1, Momentum: 0.9},
		{Kind: SGD, LR: 1, ClipNorm: -1},
		{Kind: Momentum, LR: 1, Momentum: 1},
		{Kind: Nesterov, LR: 1},
		{Kind: AdaGrad, LR: 1},
		{Kind: AdaGrad, LR: 1, Eps: 1e-8, WeightDecay: 0.1},
		{Kind: RMSProp, LR: 1, Beta2: 1, Eps: 1e-8},
		{Kind: Adam, LR: 1, Beta1: 0.9, Beta2: 0.999},
		{Kind: Adam, LR: 1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1},
		{Kind: AdamW, LR: 1, Beta1: 1.5, Beta2: 0.999, Eps: 1e-8},
		{Kind: AdamW, LR: 1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, L2: float32(math.Inf(1))},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want ErrConfig", c, err)
		} else if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", c)
		}
	}
}

func TestPowUint(t *testing.T) {
	for _, tc := range []struct {
		b    float64
		t    uint64
		want float64
	}{{0.9, 0, 1}, {0.9, 1, 0.9}, {0.5, 10, 1.0 / 1024}, {0.999, 1000, math.Pow(0.999, 1000)}} {
		if got := powUint(tc.b, tc.t); math.Abs(got-tc.want) > 1e-14 {
			t.Errorf("powUint(%g, %d) = %.17g, want %.17g", tc.b, tc.t, got, tc.want)
		}
	}
}
