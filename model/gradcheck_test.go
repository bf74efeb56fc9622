package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/strata-mesh/strata/tensor"
)

// Gradient checking by central finite differences (see Goodfellow, Bengio
// and Courville, Deep Learning, §11.5, "gradient checking"): for a scalar
// loss L and a coordinate θ_i,
//
//	n_i = (L(θ + h·e_i) − L(θ − h·e_i)) / 2h,  h = 1e-5,
//
// evaluated on an independent float64 implementation of the forward
// (ref64_test.go), whose truncation error O(h²) and rounding error
// O(1e-16/h) are both near 1e-10, far below the float32 error of the
// analytic gradient a under test.
//
// Metric: the normwise relative error over the checked coordinates S,
//
//	err = max_{i∈S} |a_i − n_i| / max(max_{i∈S} |a_i|, max_{i∈S} |n_i|, 1e-6),
//
// with S = 20 random coordinates plus the 4 of largest |a_i|, so the
// denominator is the tensor's gradient scale. A per-coordinate relative
// error |a_i − n_i|/|n_i| is not used: where a gradient is nearly zero it
// measures float32 cancellation noise, not a bug. A wrong formula (a
// missing term, a sign, a transposed index) gives errors of order 1; float32
// rounding gives about 1e-6. Threshold: 1e-3.
//
// Per-op losses are L = Σ r_i·y_i for a fixed random r, so dL/dy = r.
const (
	gradTol   = 1e-3
	fdStep    = 1e-5
	gradCheck = 20
)

// checkGrad compares the analytic gradient a of x with central differences
// of loss, which reads the float64 copy x64 of x.
func checkGrad(t *testing.T, name string, a []float32, x64 []float64, loss func() float64, rng *rand.Rand) {
	t.Helper()
	if len(a) != len(x64) {
		t.Fatalf("%s: analytic gradient has %d values, parameter %d", name, len(a), len(x64))
	}
	idx := make([]int, 0, gradCheck+4)
	for range min(gradCheck, len(a)) {
		idx = append(idx, rng.IntN(len(a)))
	}
	order := make([]int, len(a))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(i, j int) int {
		return -cmpF(math.Abs(float64(a[i])), math.Abs(float64(a[j])))
	})
	idx = append(idx, order[:min(4, len(order))]...)
	var maxDiff, scale float64
	for _, i := range idx {
		old := x64[i]
		x64[i] = old + fdStep
		lp := loss()
		x64[i] = old - fdStep
		lm := loss()
		x64[i] = old
		n := (lp - lm) / (2 * fdStep)
		maxDiff = max(maxDiff, math.Abs(float64(a[i])-n))
		scale = max(scale, math.Abs(float64(a[i])), math.Abs(n))
	}
	err := maxDiff / max(scale, 1e-6)
	if err > gradTol || math.IsNaN(err) {
		t.Errorf("%s: relative gradient error %.3g (max |a−n| %.3g, scale %.3g), want < %g", name, err, maxDiff, scale, gradTol)
	} else {
		t.Logf("%s: relative error %.2g (scale %.2g)", name, err, scale)
	}
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func randVec(rng *rand.Rand, n int, scale float32) ([]float32, []float64) {
	a, b := make([]float32, n), make([]float64, n)
	for i := range a {
		a[i] = (2*rng.Float32() - 1) * scale
		b[i] = float64(a[i])
	}
	return a, b
}

func dot64(r []float32, y []float64) float64 {
	var s float64
	for i, v := range y {
		s += float64(r[i]) * v
	}
	return s
}

func flat(xs [][]float64) []float64 { return slices.Concat(xs...) }

func rows64(x []float64, n int) [][]float64 {
	out := make([][]float64, 0, len(x)/n)
	for i := 0; i < len(x); i += n {
		out = append(out, x[i:i+n])
	}
	return out
}

// gradCfg is the small model of the gradient checks.
func gradCfg(shared bool) Config {
	return Config{Dim: 16, HiddenDim: 24, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: 300, SeqLen: 8,
		SharedClassifier: shared, NormEps: 1e-5, RopeTheta: 10000}
}

func TestGradRMSNorm(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	const n, eps = 16, 1e-5
	x, x64 := randVec(rng, n, 2)
	w, w64 := randVec(rng, n, 1.5)
	r, _ := randVec(rng, n, 1)
	dx, dw := make([]float32, n), make([]float32, n)
	rmsNormBack(dx, dw, x, w, r, eps)
	loss := func() float64 { return dot64(r, rmsNorm64(x64, w64, eps)) }
	checkGrad(t, "rmsnorm x", dx, x64, loss, rng)
	checkGrad(t, "rmsnorm w", dw, w64, loss, rng)
}

func TestGradRoPE(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 1))
	const T, dim, hs = 8, 16, 4
	_, x64 := randVec(rng, T*dim, 1) // RoPE is linear: its gradient does not depend on x
	r, _ := randVec(rng, T*dim, 1)
	freq, cos, sin := make([]float32, hs/2), make([]float32, hs/2), make([]float32, hs/2)
	tensor.RoPEFreqs(freq, hs, 10000)
	dx := slices.Clone(r)
	for p := range T {
		tensor.RoPEAngles(cos, sin, freq, p)
		ropeBack(dx[p*dim:(p+1)*dim], cos, sin)
	}
	loss := func() float64 {
		y := slices.Clone(x64)
		for p := range T {
			rope64(y[p*dim:(p+1)*dim], p, hs, 10000)
		}
		return dot64(r, y)
	}
	checkGrad(t, "rope x", dx, x64, loss, rng)
}

func TestGradAttention(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 1))
	const T, nh, nkv, hs = 8, 4, 2, 4
	dim, kvDim := nh*hs, nkv*hs
	a := attnShape{T: T, nHeads: nh, kvMul: nh / nkv, hs: hs, kvDim: kvDim, sqrtHS: tensor.Sqrt(hs)}
	q, q64 := randVec(rng, T*dim, 2)
	k, k64 := randVec(rng, T*kvDim, 2)
	v, v64 := randVec(rng, T*kvDim, 2)
	r, _ := randVec(rng, T*dim, 1)
	out, probs := make([]float32, T*dim), make([]float32, nh*T*T)
	attnForward(a, out, probs, q, k, v, 0, nh)
	dq, dk, dv := make([]float32, T*dim), make([]float32, T*kvDim), make([]float32, T*kvDim)
	attnBackward(a, dq, dk, dv, r, probs, q, k, v, make([]float32, T), 0, nh)
	loss := func() float64 {
		return dot64(r, flat(attention64(rows64(q64, dim), rows64(k64, kvDim), rows64(v64, kvDim), nh, nkv, hs)))
	}
	checkGrad(t, "attention q", dq, q64, loss, rng)
	checkGrad(t, "attention k", dk, k64, loss, rng)
	checkGrad(t, "attention v", dv, v64, loss, rng)
}

// TestGradFFN checks the SwiGLU feed-forward, which includes the backward
// of the three linear maps (Tape.linearBack on tensor.MatMul).
func TestGradFFN(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 1))
	cfg := gradCfg(true)
	m := Synth(cfg, 1)
	tp := m.NewTape(0, cfg.NLayers, cfg.SeqLen, true)
	T, dim, hid := cfg.SeqLen, cfg.Dim, cfg.HiddenDim
	x, x64 := randVec(rng, T*dim, 1)
	w1, w164 := randVec(rng, hid*dim, 0.5)
	w2, w264 := randVec(rng, dim*hid, 0.5)
	w3, w364 := randVec(rng, hid*dim, 0.5)
	r, _ := randVec(rng, T*dim, 1)
	h1, h3, g := make([]float32, T*hid), make([]float32, T*hid), make([]float32, T*hid)
	tensor.MatMul(h1, w1, x, hid, dim, T)
	tensor.MatMul(h3, w3, x, hid, dim, T)
	copy(g, h1)
	tensor.SiLUMul(g, h3)
	dg, dh1, dh3, dx := make([]float32, T*hid), make([]float32, T*hid), make([]float32, T*hid), make([]float32, T*dim)
	dw1, dw2, dw3 := make([]float32, hid*dim), make([]float32, dim*hid), make([]float32, hid*dim)
	tp.linearBack(dg, dw2, w2, g, r, dim, hid, T, false)
	swigluBack(dh1, dh3, dg, h1, h3)
	tp.transpose(x, T, dim)
	tp.linearBackT(dx, dw1, w1, dh1, hid, dim, T, false)
	tp.linearBackT(dx, dw3, w3, dh3, hid, dim, T, true)
	loss := func() float64 {
		var s float64
		for p := range T {
			s += dot64(r[p*dim:(p+1)*dim], ffn64(w164, w264, w364, x64[p*dim:(p+1)*dim], hid))
		}
		return s
	}
	checkGrad(t, "ffn x", dx, x64, loss, rng)
	checkGrad(t, "ffn w1", dw1, w164, loss, rng)
	checkGrad(t, "ffn w2", dw2, w264, loss, rng)
	checkGrad(t, "ffn w3", dw3, w364, loss, rng)
}

// TestGradClassifierCrossEntropy checks the classifier (a linear map to
// the vocabulary) together with the mean cross-entropy, with one ignored
// position, and the cross-entropy alone with respect to the logits.
func TestGradClassifierCrossEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 1))
	cfg := gradCfg(false)
	m := Synth(cfg, 1)
	tp := m.NewTape(0, cfg.NLayers, cfg.SeqLen, true)
	T, dim, vocab := cfg.SeqLen, cfg.Dim, cfg.VocabSize
	x, x64 := randVec(rng, T*dim, 1)
	cls, cls64 := randVec(rng, vocab*dim, 1)
	targets := make([]int, T)
	for i := range targets {
		targets[i] = rng.IntN(vocab)
	}
	targets[3] = -1
	logits := make([]float32, T*vocab)
	tensor.MatMul(logits, cls, x, vocab, dim, T)
	logits64 := make([]float64, len(logits))
	for i, v := range logits {
		logits64[i] = float64(v)
	}
	dlogits := slices.Clone(logits)
	crossEntropy(dlogits, targets, vocab, true)
	checkGrad(t, "cross-entropy logits", dlogits, logits64, func() float64 {
		return crossEntropy64(rows64(logits64, vocab), targets)
	}, rng)

	dx, dcls := make([]float32, T*dim), make([]float32, vocab*dim)
	tp.linearBack(dx, dcls, cls, x, dlogits, vocab, dim, T, false)
	loss := func() float64 {
		ls := make([][]float64, T)
		for p := range T {
			ls[p] = matVec64(cls64, x64[p*dim:(p+1)*dim], vocab)
		}
		return crossEntropy64(ls, targets)
	}
	checkGrad(t, "classifier x", dx, x64, loss, rng)
	checkGrad(t, "classifier w", dcls, cls64, loss, rng)
}

// gradModel is a small model whose block matrices are scaled up from
// Synth's 0.02 so the blocks are far from the identity and every path
// matters.
func gradModel(shared bool) *Model {
	m := Synth(gradCfg(shared), 7)
	for _, b := range m.Blocks {
		for _, s := range [][]float32{b.Wq, b.Wk, b.Wv, b.Wo, b.W1, b.W2, b.W3} {
			for i := range s {
				s[i] *= 15
			}
		}
	}
	return m
}

// TestGradModel checks every tensor of a whole 2-block model (embedding,
// norms, attention with RoPE and grouped-query heads, SwiGLU FFN, final
// norm, classifier, cross-entropy), with the classifier shared with the
// embedding and separate, and with q/k/v biases (Qwen2).
func TestGradModel(t *testing.T) {
	for _, k := range []struct {
		name         string
		shared, bias bool
	}{{"separate", false, false}, {"shared", true, false}, {"qkv-bias", false, true}} {
		shared := k.shared
		t.Run(k.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, 1))
			m := gradModel(shared)
			if k.bias {
				c := gradCfg(shared)
				c.QKVBias = true
				m = Synth(c, 7)
				for _, b := range m.Blocks {
					for _, s := range [][]float32{b.Wq, b.Wk, b.Wv, b.Wo, b.W1, b.W2, b.W3} {
						for i := range s {
							s[i] *= 15
						}
					}
				}
			}
			c := m.Config
			tokens, targets := make([]int, c.SeqLen), make([]int, c.SeqLen)
			for i := range tokens {
				// Few distinct tokens, so embedding rows collect several positions.
				tokens[i] = rng.IntN(5)
				targets[i] = rng.IntN(c.VocabSize)
			}
			targets[2] = -1
			tp := m.NewTape(0, c.NLayers, c.SeqLen, true)
			g := NewGrads(m, 0, c.NLayers, true)
			got := m.LossAndGrad(tp, tokens, targets, g)
			ref := newRef64(m)
			want := ref.loss64(tokens, targets)
			if d := math.Abs(float64(got) - want); d > 1e-4 {
				t.Errorf("loss %v, float64 reference %v", got, want)
			}
			loss := func() float64 { return ref.loss64(tokens, targets) }
			for _, p := range m.Params(g) {
				checkGrad(t, p.Name, p.G, ref.w[p.Name], loss, rng)
			}
		})
	}
}
