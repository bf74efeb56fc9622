package train

import (
	"fmt"
	"math"
)

// Kind names an optimizer.
type Kind string

// The optimizers. Each one's update rule, with its source, is on the
// function that applies it (optim.go).
const (
	SGD      Kind = "sgd"
	Momentum Kind = "momentum"
	Nesterov Kind = "nesterov"
	AdaGrad  Kind = "adagrad"
	RMSProp  Kind = "rmsprop"
	Adam     Kind = "adam"
	AdamW    Kind = "adamw"
)

// Kinds lists every optimizer kind, in the order of their codes in the
// state format.
var Kinds = []Kind{SGD, Momentum, Nesterov, AdaGrad, RMSProp, Adam, AdamW}

// code is the kind's number in the state format, or -1.
func (k Kind) code() int {
	for i, x := range Kinds {
		if x == k {
			return i
		}
	}
	return -1
}

// slots is the number of per-element state buffers the kind keeps.
func (k Kind) slots() int {
	switch k {
	case SGD:
		return 0
	case Momentum, Nesterov, AdaGrad, RMSProp:
		return 1
	default:
		return 2
	}
}

// Config is an optimizer's hyperparameters. A field an optimizer does not
// use must be zero (Validate says so), so a setting is never silently
// ignored.
type Config struct {
	Kind Kind `json:"kind"`
	// LR is the base (peak) learning rate, the one a Schedule warms up to.
	// Step takes the current rate as an argument.
	LR float32 `json:"lr"`
	// Momentum is μ of momentum and nesterov, in [0, 1) ((0, 1) for
	// nesterov).
	Momentum float32 `json:"momentum,omitempty"`
	// Beta1 and Beta2 are Adam's moment decays β1, β2 in [0, 1). RMSProp
	// uses Beta2 as the decay α of its running mean of squares.
	Beta1 float32 `json:"beta1,omitempty"`
	Beta2 float32 `json:"beta2,omitempty"`
	// Eps is added to the denominator of adagrad, rmsprop, adam and adamw
	// (outside the square root); it must be > 0 for them.
	Eps float32 `json:"eps,omitempty"`
	// L2 is an L2 penalty: L2·w is added to the gradient before the
	// update (PyTorch's weight_decay for sgd, adagrad, rmsprop, adam).
	L2 float32 `json:"l2,omitempty"`
	// WeightDecay is decoupled weight decay (Loshchilov & Hutter 2019):
	// w ← w·(1 − lr·WeightDecay) before the update. Allowed for adamw
	// (where it is the point) and for sgd, momentum and nesterov.
	WeightDecay float32 `json:"weight_decay,omitempty"`
	// ClipNorm, when > 0, scales all gradients together so their global
	// L2 norm is at most ClipNorm before the update.
	ClipNorm float32 `json:"clip_norm,omitempty"`
}

// DefaultConfig returns kind's usual hyperparameters (PyTorch's defaults,
// momentum 0.9 for momentum and nesterov, weight decay 0.01 for adamw)
// with learning rate lr.
func DefaultConfig(kind Kind, lr float32) Config {
	c := Config{Kind: kind, LR: lr}
	switch kind {
	case Momentum, Nesterov:
		c.Momentum = 0.9
	case AdaGrad:
		c.Eps = 1e-10
	case RMSProp:
		c.Beta2, c.Eps = 0.99, 1e-8
	case Adam, AdamW:
		c.Beta1, c.Beta2, c.Eps = 0.9, 0.999, 1e-8
		if kind == AdamW {
			c.WeightDecay = 0.01
		}
	}
	return c
}

// Validate reports whether c is a usable configuration.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s: "+format, append([]any{ErrConfig, c.Kind}, a...)...)
	}
	if c.Kind.code() < 0 {
		return fmt.Errorf("%w: unknown optimizer %q (want one of %v)", ErrConfig, string(c.Kind), Kinds)
	}
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	for _, f := range []struct {
		name string
		v    float32
	}{{"lr", c.LR}, {"momentum", c.Momentum}, {"beta1", c.Beta1}, {"beta2", c.Beta2}, {"eps", c.Eps},
		{"l2", c.L2}, {"weight_decay", c.WeightDecay}, {"clip_norm", c.ClipNorm}} {
		if !finite(f.v) || f.v < 0 {
			return bad("%s %g must be finite and >= 0", f.name, f.v)
		}
	}
	if c.LR == 0 {
		return bad("lr must be > 0")
	}
	unit := func(name string, v float32) error {
		if v >= 1 {
			return bad("%s %g must be < 1", name, v)
		}
		return nil
	}
	unused := func(name string, v float32) error {
		if v != 0 {
			return bad("%s %g is not used by this optimizer; leave it 0", name, v)
		}
		return nil
	}
	var errs []error
	switch c.Kind {
	case SGD:
		errs = append(errs, unused("momentum", c.Momentum), unused("beta1", c.Beta1), unused("beta2", c.Beta2), unused("eps", c.Eps))
	case Momentum, Nesterov:
		errs = append(errs, unit("momentum", c.Momentum), unused("beta1", c.Beta1), unused("beta2", c.Beta2), unused("eps", c.Eps))
		if c.Kind == Nesterov && c.Momentum == 0 {
			errs = append(errs, bad("momentum must be > 0"))
		}
	case AdaGrad:
		errs = append(errs, unused("momentum", c.Momentum), unused("beta1", c.Beta1), unused("beta2", c.Beta2),
			unused("weight_decay", c.WeightDecay))
	case RMSProp:
		errs = append(errs, unused("momentum", c.Momentum), unused("beta1", c.Beta1), unit("beta2", c.Beta2),
			unused("weight_decay", c.WeightDecay))
	case Adam:
		errs = append(errs, unused("momentum", c.Momentum), unit("beta1", c.Beta1), unit("beta2", c.Beta2))
		if c.WeightDecay != 0 {
			errs = append(errs, bad("weight_decay is decoupled decay; use adamw, or l2 for an L2 penalty"))
		}
	case AdamW:
		errs = append(errs, unused("momentum", c.Momentum), unit("beta1", c.Beta1), unit("beta2", c.Beta2))
	}
	switch c.Kind {
	case AdaGrad, RMSProp, Adam, AdamW:
		if c.Eps == 0 {
			errs = append(errs, bad("eps must be > 0"))
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
