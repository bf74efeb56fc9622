package model

import "math"

// A float64 reference of the training forward pass, written independently
// of the float32 code (plain loops, no shared helpers), for the gradient
// checks: finite differences are taken on it, so their error is that of
// float64 arithmetic, far below the float32 gradients under test.

type ref64 struct {
	cfg Config
	w   map[string][]float64 // by Param name
}

func newRef64(m *Model) *ref64 {
	r := &ref64{cfg: m.Config, w: map[string][]float64{}}
	g := NewGrads(m, 0, m.Config.NLayers, true)
	for _, p := range m.Params(g) {
		w := make([]float64, len(p.W))
		for i, v := range p.W {
			w[i] = float64(v)
		}
		r.w[p.Name] = w
	}
	return r
}

func rmsNorm64(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = w[i] * v * r
	}
	return y
}

// matVec64 is y = W·x for a rows×len(x) matrix.
func matVec64(w, x []float64, rows int) []float64 {
	cols := len(x)
	y := make([]float64, rows)
	for i := range rows {
		var s float64
		for j, v := range x {
			s += w[i*cols+j] * v
		}
		y[i] = s
	}
	return y
}

// rope64 rotates each head of v (head size hs) at position pos.
func rope64(v []float64, pos, hs int, theta float64) {
	for h := 0; h < len(v); h += hs {
		for p := 0; p < hs/2; p++ {
			f := 1 / math.Pow(theta, float64(2*p)/float64(hs))
			a := float64(pos) * f
			c, s := math.Cos(a), math.Sin(a)
			v0, v1 := v[h+2*p], v[h+2*p+1]
			v[h+2*p] = v0*c - v1*s
			v[h+2*p+1] = v0*s + v1*c
		}
	}
}

// attention64 is causal grouped-query attention over T positions.
func attention64(q, k, v [][]float64, nHeads, nKV, hs int) [][]float64 {
	T := len(q)
	out := make([][]float64, T)
	kvMul := nHeads / nKV
	for t := range T {
		out[t] = make([]float64, nHeads*hs)
		for h := range nHeads {
			off := (h / kvMul) * hs
			sc := make([]float64, t+1)
			mx := math.Inf(-1)
			for u := 0; u <= t; u++ {
				var s float64
				for i := range hs {
					s += q[t][h*hs+i] * k[u][off+i]
				}
				sc[u] = s / math.Sqrt(float64(hs))
				mx = math.Max(mx, sc[u])
			}
			var z float64
			for u := range sc {
				sc[u] = math.Exp(sc[u] - mx)
				z += sc[u]
			}
			for u := range sc {
				for i := range hs {
					out[t][h*hs+i] += sc[u] / z * v[u][off+i]
				}
			}
		}
	}
	return out
}

func silu64(x float64) float64 { return x / (1 + math.Exp(-x)) }

// ffn64 is the SwiGLU feed-forward W2·(silu(W1·x) ⊙ W3·x).
func ffn64(w1, w2, w3, x []float64, hid int) []float64 {
	a, b := matVec64(w1, x, hid), matVec64(w3, x, hid)
	for i := range a {
		a[i] = silu64(a[i]) * b[i]
	}
	return matVec64(w2, a, len(x))
}

// crossEntropy64 is the mean over targets ≠ -1 of −log softmax(logits)[target].
func crossEntropy64(logits [][]float64, targets []int) float64 {
	var sum float64
	n := 0
	for t, tg := range targets {
		if tg < 0 {
			continue
		}
		mx := math.Inf(-1)
		for _, v := range logits[t] {
			mx = math.Max(mx, v)
		}
		var z float64
		for _, v := range logits[t] {
			z += math.Exp(v - mx)
		}
		sum += math.Log(z) + mx - logits[t][tg]
		n++
	}
	return sum / float64(n)
}

// blocks64 runs blocks [lo, hi) over the T activations xs, in place.
func (r *ref64) blocks64(xs [][]float64, lo, hi int) {
	c := r.cfg
	eps, theta := float64(c.NormEps), float64(c.RopeTheta)
	dim, kv, hid, hs := c.Dim, c.KVDim(), c.HiddenDim, c.HeadSize()
	for l := lo; l < hi; l++ {
		w := func(n string) []float64 { return r.w[blockParam(l, n)] }
		T := len(xs)
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t, x := range xs {
			xn := rmsNorm64(x, w(TensorAttNorm), eps)
			q[t], k[t], v[t] = matVec64(w(TensorWq), xn, dim), matVec64(w(TensorWk), xn, kv), matVec64(w(TensorWv), xn, kv)
			for _, qkv := range []struct {
				y    []float64
				bias string
			}{{q[t], TensorBq}, {k[t], TensorBk}, {v[t], TensorBv}} {
				for i, b := range w(qkv.bias) { // biases only for a QKVBias model
					qkv.y[i] += b
				}
			}
			rope64(q[t], t, hs, theta)
			rope64(k[t], t, hs, theta)
		}
		ao := attention64(q, k, v, c.NHeads, c.NKVHeads, hs)
		for t, x := range xs {
			o := matVec64(w(TensorWo), ao[t], dim)
			for i := range x {
				x[i] += o[i]
			}
			f := ffn64(w(TensorW1), w(TensorW2), w(TensorW3), rmsNorm64(x, w(TensorFFNNorm), eps), hid)
			for i := range x {
				x[i] += f[i]
			}
		}
	}
}

// loss64 is the whole model's mean cross-entropy.
func (r *ref64) loss64(tokens, targets []int) float64 {
	c := r.cfg
	emb := r.w["head."+TensorEmbedding]
	xs := make([][]float64, len(tokens))
	for t, tok := range tokens {
		xs[t] = append([]float64(nil), emb[tok*c.Dim:(tok+1)*c.Dim]...)
	}
	r.blocks64(xs, 0, c.NLayers)
	cls := emb
	if !c.SharedClassifier {
		cls = r.w["head."+TensorClassifier]
	}
	logits := make([][]float64, len(xs))
	for t, x := range xs {
		logits[t] = matVec64(cls, rmsNorm64(x, r.w["head."+TensorFinalNorm], float64(c.NormEps)), c.VocabSize)
	}
	return crossEntropy64(logits, targets)
}

func blockParam(l int, name string) string {
	return "blocks." + itoa(l) + "." + name
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}
