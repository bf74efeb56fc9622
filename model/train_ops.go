package model

import (
	"math"

	"github.com/strata-mesh/strata/tensor"
)

// Backward of the single operations of the training pass. Each works on
// one position (a row) or on a whole T-row sequence as documented; the
// forward of every operation is the inference kernel itself (package
// tensor, scores, weightedSum), so training and serving compute the same
// function.

// invRMS returns 1/√(mean(x²)+eps) exactly as tensor.RMSNorm computes it.
func invRMS(x []float32, eps float32) float32 {
	var ss float32
	for _, v := range x {
		ss += float32(v * v)
	}
	ss /= float32(len(x))
	ss += eps
	return 1 / tensor.Sqrt(ss)
}

// rmsNormBack is the backward of y = w ⊙ x·r, r = (mean(x²)+eps)^-½, for
// one row: it adds ∂L/∂x to dx and ∂L/∂w to dw (dw may be nil: frozen).
//
//	∂L/∂w_i = dy_i·x_i·r
//	∂L/∂x_i = r·w_i·dy_i − (r³/n)·x_i·Σ_k dy_k·w_k·x_k
func rmsNormBack(dx, dw, x, w, dy []float32, eps float32) {
	r := invRMS(x, eps)
	var s float32
	for i, v := range x {
		s += float32(dy[i]*w[i]) * v
	}
	c := r * r * r * s / float32(len(x))
	for i, v := range x {
		dx[i] += r*w[i]*dy[i] - c*v
	}
	if dw != nil {
		for i, v := range x {
			dw[i] += dy[i] * v * r
		}
	}
}

// ropeBack applies the inverse rotation of tensor.RoPE to the gradient
// dv in place: the rotation is orthogonal, so its backward is the rotation
// by the opposite angle.
func ropeBack(dv, cos, sin []float32) {
	hs := 2 * len(cos)
	for h := 0; h < len(dv); h += hs {
		head := dv[h : h+hs : h+hs]
		for p := range cos {
			c, s := cos[p], sin[p]
			d0, d1 := head[2*p], head[2*p+1]
			head[2*p] = d0*c + d1*s
			head[2*p+1] = d1*c - d0*s
		}
	}
}

// attnShape is the geometry of causal grouped-query attention over T
// positions: q is T×Dim, k and v are T×KVDim (the KV cache layout), the
// probabilities are stored per head as a T×T matrix, row t holding
// positions 0..t.
type attnShape struct {
	T, nHeads, kvMul, hs, kvDim int
	sqrtHS                      float32
}

// attnForward computes out (T×Dim) from q, k, v and records the softmax
// probabilities in probs (nHeads×T×T) for heads [h0, h1): for each head and
// position t, scores against positions 0..t, softmax, weighted sum of
// values — Model.block's attention, with the same functions.
func attnForward(a attnShape, out, probs, q, k, v []float32, h0, h1 int) {
	T, hs, dim := a.T, a.hs, a.nHeads*a.hs
	for h := h0; h < h1; h++ {
		off := (h / a.kvMul) * hs
		for t := range T {
			att := probs[(h*T+t)*T:][:t+1]
			scores(att, q[t*dim+h*hs:][:hs], k, a.kvDim, off, a.sqrtHS)
			tensor.Softmax(att)
			weightedSum(out[t*dim+h*hs:][:hs], att, v, a.kvDim, off)
		}
	}
}

// attnBackward adds the gradients of the attention of query heads
// [h0, h1) with respect to q, k and v (after RoPE) to dq, dk, dv, given
// dOut (T×Dim). For one head and query t, with p the probabilities,
// s_u = q_t·k_u/√hs:
//
//	dp_u = dOut_t·v_u,  dv_u += p_u·dOut_t,
//	ds_u = p_u·(dp_u − Σ_w p_w·dp_w),
//	dq_t += Σ_u ds_u·k_u/√hs,  dk_u += ds_u·q_t/√hs.
//
// Heads [h0, h1) must cover whole kv groups when run concurrently with
// other ranges (dk and dv of a kv head are shared by its query heads).
// dp is scratch of at least T floats.
func attnBackward(a attnShape, dq, dk, dv, dOut, probs, q, k, v, dp []float32, h0, h1 int) {
	T, hs, dim, kvDim := a.T, a.hs, a.nHeads*a.hs, a.kvDim
	for h := h0; h < h1; h++ {
		off := (h / a.kvMul) * hs
		for t := range T {
			p := probs[(h*T+t)*T:][:t+1]
			do := dOut[t*dim+h*hs:][:hs]
			dpt := dp[:t+1]
			var sum float32
			for u, pu := range p {
				vu := v[u*kvDim+off:][:hs]
				dvu := dv[u*kvDim+off:][:hs]
				var s float32
				for i, g := range do {
					s += g * vu[i]
					dvu[i] += pu * g
				}
				dpt[u] = s
				sum += pu * s
			}
			qt := q[t*dim+h*hs:][:hs]
			dqt := dq[t*dim+h*hs:][:hs]
			for u, pu := range p {
				ds := pu * (dpt[u] - sum) / a.sqrtHS
				if ds == 0 {
					continue
				}
				ku := k[u*kvDim+off:][:hs]
				dku := dk[u*kvDim+off:][:hs]
				for i := range qt {
					dqt[i] += ds * ku[i]
					dku[i] += ds * qt[i]
				}
			}
		}
	}
}

// swigluBack is the backward of g = silu(a)⊙b elementwise: given dg it
// sets da and db. silu'(a) = σ(a)·(1 + a·(1−σ(a))).
func swigluBack(da, db, dg, a, b []float32) {
	for i, x := range a {
		sg := 1 / (1 + tensor.Exp(-x))
		silu := x * sg
		db[i] = dg[i] * silu
		da[i] = dg[i] * b[i] * sg * (1 + x*(1-sg))
	}
}

// crossEntropy turns each row of logits (T×vocab) whose target is not -1
// into the gradient of the mean cross-entropy, (softmax − onehot)/count, and
// zeroes the other rows if grad; without grad the logits are left as they
// are. It returns the summed loss in nats and the count. The log-softmax is
// the stable one: log Σ exp(l − max) + max − l_target, the sum in float64.
func crossEntropy(logits []float32, targets []int, vocab int, grad bool) (sum float64, count int) {
	for _, tg := range targets {
		if tg >= 0 {
			count++
		}
	}
	for t, tg := range targets {
		row := logits[t*vocab : (t+1)*vocab]
		if tg < 0 {
			if grad {
				clear(row)
			}
			continue
		}
		m := row[0]
		for _, v := range row[1:] {
			m = max(m, v)
		}
		var z float64
		for _, v := range row {
			z += float64(tensor.Exp(v - m))
		}
		sum += math.Log(z) + float64(m) - float64(row[tg])
		if !grad {
			continue
		}
		inv := 1 / (z * float64(count))
		for i, v := range row {
			row[i] = float32(float64(tensor.Exp(v-m)) * inv)
		}
		row[tg] -= float32(1 / float64(count))
	}
	return sum, count
}
