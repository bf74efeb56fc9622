package train

import (
	"fmt"
	"math"
)

// Optimizer updates parameters from their gradients with one of the Kinds.
// It keeps per-element state (moments, accumulators) and a step count,
// which MarshalBinary saves and UnmarshalBinary restores, so a resumed run
// takes bitwise the steps an uninterrupted one would.
//
// The state is bound to the parameter list of the first Step (names and
// lengths, in order); later steps must pass the same list. An Optimizer is
// used by one goroutine at a time.
type Optimizer struct {
	cfg    Config
	step   uint64
	params []paramState
	g      []float32 // scratch: the clipped, penalised gradient of one param
}

// paramState is the state of one parameter tensor.
type paramState struct {
	name string
	n    int
	a, b []float32 // slot buffers (see Kind.slots): momentum/accumulator/m, v
}

// StepInfo describes one step.
type StepInfo struct {
	Step  uint64  // the step count after this step (1 after the first)
	Norm  float64 // global L2 norm of the gradients, before clipping
	Scale float32 // factor the gradients were multiplied by (1 if not clipped)
}

// New returns an optimizer with no state, or an error wrapping ErrConfig.
func New(cfg Config) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Optimizer{cfg: cfg}, nil
}

// Config returns the optimizer's configuration.
func (o *Optimizer) Config() Config { return o.cfg }

// Steps returns the number of steps taken (restored by UnmarshalBinary).
func (o *Optimizer) Steps() uint64 { return o.step }

// GlobalNorm returns sqrt(Σ G²) over every gradient element of params,
// accumulated in float64 in parameter then element order.
func GlobalNorm(params []Param) float64 {
	var s float64
	for _, p := range params {
		for _, g := range p.G {
			s += float64(g) * float64(g)
		}
	}
	return math.Sqrt(s)
}

// ClipScale returns the factor that brings a global gradient norm down to
// maxNorm, as PyTorch's clip_grad_norm_: maxNorm/(norm+1e-6) when norm
// exceeds maxNorm, else 1. maxNorm 0 disables clipping.
func ClipScale(norm float64, maxNorm float32) float32 {
	if maxNorm <= 0 || norm <= float64(maxNorm) {
		return 1
	}
	return float32(float64(maxNorm) / (norm + 1e-6))
}

// Step applies one update to every params[i].W from params[i].G at
// learning rate lr (usually Schedule.LR(step)). Gradients are read, never
// written. In order:
//
//  1. the global gradient norm is computed (GlobalNorm); if it is not
//     finite, Step returns ErrNonFinite and changes nothing;
//  2. with ClipNorm > 0 every gradient is scaled by ClipScale;
//  3. the L2 penalty is added: g ← g + L2·w;
//  4. decoupled weight decay shrinks the weight: w ← w·(1 − lr·WeightDecay);
//  5. the kind's update rule is applied with g.
//
// A params list that does not match the bound state returns ErrShape; a
// negative or non-finite lr returns ErrConfig. Arithmetic is float32 in a
// fixed order with every product rounded before it is added (no fused
// multiply-add), so results are bitwise reproducible on every platform.
func (o *Optimizer) Step(params []Param, lr float32) (StepInfo, error) {
	if math.IsNaN(float64(lr)) || math.IsInf(float64(lr), 0) || lr < 0 {
		return StepInfo{}, fmt.Errorf("%w: learning rate %g must be finite and >= 0", ErrConfig, lr)
	}
	if err := o.bind(params); err != nil {
		return StepInfo{}, err
	}
	norm := GlobalNorm(params)
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		for _, p := range params {
			for j, g := range p.G {
				if math.IsNaN(float64(g)) || math.IsInf(float64(g), 0) {
					return StepInfo{}, fmt.Errorf("%w: %s[%d] = %g at step %d", ErrNonFinite, p.Name, j, g, o.step+1)
				}
			}
		}
		return StepInfo{}, fmt.Errorf("%w: global gradient norm overflows at step %d", ErrNonFinite, o.step+1)
	}
	scale := ClipScale(norm, o.cfg.ClipNorm)
	o.step++
	c := &o.cfg
	decay := float32(1) - float32(lr*c.WeightDecay)
	var bc1, bc2 float32
	if c.Kind == Adam || c.Kind == AdamW {
		bc1 = float32(1 - powUint(float64(c.Beta1), o.step))
		bc2 = float32(1 - powUint(float64(c.Beta2), o.step))
	}
	for i, p := range params {
		s := &o.params[i]
		g := o.g[:len(p.G)]
		for j, x := range p.G {
			if scale != 1 {
				x = float32(x * scale)
			}
			if c.L2 != 0 {
				x += float32(c.L2 * p.W[j])
			}
			g[j] = x
		}
		w := p.W
		if c.WeightDecay != 0 {
			for j := range w {
				w[j] = float32(w[j] * decay)
			}
		}
		switch c.Kind {
		case SGD:
			sgd(w, g, lr)
		case Momentum:
			momentum(w, g, s.a, lr, c.Momentum)
		case Nesterov:
			nesterov(w, g, s.a, lr, c.Momentum)
		case AdaGrad:
			adagrad(w, g, s.a, lr, c.Eps)
		case RMSProp:
			rmsprop(w, g, s.a, lr, c.Beta2, c.Eps)
		case Adam, AdamW:
			adam(w, g, s.a, s.b, lr, c.Beta1, c.Beta2, c.Eps, bc1, bc2)
		}
	}
	return StepInfo{Step: o.step, Norm: norm, Scale: scale}, nil
}

// bind allocates state for params on the first step (or after a restore
// with no parameters) and otherwise checks params against it.
func (o *Optimizer) bind(params []Param) error {
	for _, p := range params {
		if len(p.W) != len(p.G) {
			return fmt.Errorf("%w: %s has %d weights but %d gradients", ErrShape, p.Name, len(p.W), len(p.G))
		}
	}
	if o.params == nil && o.step == 0 {
		slots := o.cfg.Kind.slots()
		o.params = make([]paramState, len(params))
		maxN := 0
		for i, p := range params {
			s := paramState{name: p.Name, n: len(p.W)}
			if slots >= 1 {
				s.a = make([]float32, s.n)
			}
			if slots >= 2 {
				s.b = make([]float32, s.n)
			}
			o.params[i] = s
			maxN = max(maxN, s.n)
		}
		o.g = make([]float32, maxN)
		return nil
	}
	if len(params) != len(o.params) {
		return fmt.Errorf("%w: %d parameters, but the optimizer state has %d", ErrShape, len(params), len(o.params))
	}
	for i, p := range params {
		s := o.params[i]
		if p.Name != s.name || len(p.W) != s.n {
			return fmt.Errorf("%w: parameter %d is %q with %d elements, but the optimizer state has %q with %d",
				ErrShape, i, p.Name, len(p.W), s.name, s.n)
		}
	}
	if o.g == nil {
		maxN := 0
		for _, s := range o.params {
			maxN = max(maxN, s.n)
		}
		o.g = make([]float32, maxN)
	}
	return nil
}

// powUint returns b^t by binary exponentiation in float64: a fixed
// sequence of correctly rounded multiplications, the same on every
// platform (math.Pow may differ in the last bit between implementations).
func powUint(b float64, t uint64) float64 {
	r := 1.0
	for t > 0 {
		if t&1 == 1 {
			r *= b
		}
		b *= b
		t >>= 1
	}
	return r
}

// sqrt32 is the correctly rounded float32 square root (the float64 root
// of a float32 rounds to the float32 root exactly).
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// sgd is plain stochastic gradient descent (Robbins & Monro 1951):
//
//	w ← w − lr·g
func sgd(w, g []float32, lr float32) {
	for j := range w {
		w[j] -= float32(lr * g[j])
	}
}

// momentum is SGD with heavy-ball momentum in the form of Sutskever,
// Martens, Dahl & Hinton 2013 (eq. 1) as PyTorch's torch.optim.SGD writes
// it (dampening 0), with the buffer b starting at 0 so b₁ = g₁:
//
//	b ← μ·b + g
//	w ← w − lr·b
func momentum(w, g, b []float32, lr, mu float32) {
	for j := range w {
		b[j] = float32(mu*b[j]) + g[j]
		w[j] -= float32(lr * b[j])
	}
}

// nesterov is Nesterov's accelerated gradient (Nesterov 1983) in the form
// of Sutskever et al. 2013 (eq. 3–4) as PyTorch's SGD(nesterov=True)
// writes it:
//
//	b ← μ·b + g
//	w ← w − lr·(g + μ·b)
func nesterov(w, g, b []float32, lr, mu float32) {
	for j := range w {
		b[j] = float32(mu*b[j]) + g[j]
		d := g[j] + float32(mu*b[j])
		w[j] -= float32(lr * d)
	}
}

// adagrad is AdaGrad (Duchi, Hazan & Singer 2011, diagonal form) as
// PyTorch's torch.optim.Adagrad writes it (no lr decay, accumulator
// starting at 0):
//
//	s ← s + g²
//	w ← w − lr·g/(√s + ε)
func adagrad(w, g, s []float32, lr, eps float32) {
	for j := range w {
		s[j] += float32(g[j] * g[j])
		w[j] -= float32(lr*g[j]) / (sqrt32(s[j]) + eps)
	}
}

// rmsprop is RMSProp (Tieleman & Hinton 2012, COURSERA Neural Networks
// lecture 6.5) as PyTorch's torch.optim.RMSprop writes it (not centered,
// no momentum), with decay α = Config.Beta2:
//
//	v ← α·v + (1 − α)·g²
//	w ← w − lr·g/(√v + ε)
func rmsprop(w, g, v []float32, lr, alpha, eps float32) {
	one := 1 - alpha
	for j := range w {
		v[j] = float32(alpha*v[j]) + float32(one*float32(g[j]*g[j]))
		w[j] -= float32(lr*g[j]) / (sqrt32(v[j]) + eps)
	}
}

// adam is Adam (Kingma & Ba 2015, Algorithm 1) with bias correction;
// AdamW (Loshchilov & Hutter 2019, Algorithm 2) is the same update after
// Step's decoupled decay w ← w·(1 − lr·λ) (PyTorch's AdamW form, where
// the paper's schedule multiplier η_t is folded into lr). With t the step
// count and bc1 = 1 − β1ᵗ, bc2 = 1 − β2ᵗ:
//
//	m ← β1·m + (1 − β1)·g
//	v ← β2·v + (1 − β2)·g²
//	m̂ = m/bc1,  v̂ = v/bc2
//	w ← w − lr·m̂/(√v̂ + ε)
func adam(w, g, m, v []float32, lr, b1, b2, eps, bc1, bc2 float32) {
	o1, o2 := 1-b1, 1-b2
	for j := range w {
		m[j] = float32(b1*m[j]) + float32(o1*g[j])
		v[j] = float32(b2*v[j]) + float32(o2*float32(g[j]*g[j]))
		mh := m[j] / bc1
		vh := v[j] / bc2
		w[j] -= float32(lr*mh) / (sqrt32(vh) + eps)
	}
}
