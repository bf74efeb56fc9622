package train

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/strata-mesh/strata/model"
)

// Outer kinds.
const (
	OuterSGD      = "sgd"      // θ ← θ − lr·Δ̄; lr 1 is FedAvg
	OuterNesterov = "nesterov" // DiLoCo's outer optimizer
)

// Outer is the optimizer that applies a round's aggregated delta Δ̄ to the
// committed model, treating Δ̄ as a gradient. With Kind "sgd":
//
//	θ ← θ − lr·Δ̄                  (FedAvg with lr 1)
//
// With Kind "nesterov", as PyTorch's SGD(nesterov=True) and DiLoCo
// (Douillard et al. 2023, Algorithm 1: lr 0.7, momentum 0.9):
//
//	b ← μ·b + Δ̄
//	θ ← θ − lr·(Δ̄ + μ·b)
//
// Arithmetic is float32 with every product rounded before it is added,
// so every node computes bitwise the same model. The momentum buffer b is
// bound to the tensors of the first Apply; MarshalBinary saves it.
type Outer struct {
	Kind     string
	LR       float32
	Momentum float32
	buf      []model.Tensor
}

// DiLoCo returns the Nesterov outer optimizer with DiLoCo's defaults.
func DiLoCo() *Outer { return &Outer{Kind: OuterNesterov, LR: 0.7, Momentum: 0.9} }

// Validate checks the kind and hyperparameters.
func (o *Outer) Validate() error {
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	if o.Kind != OuterSGD && o.Kind != OuterNesterov {
		return fmt.Errorf("%w: outer optimizer %q; want sgd or nesterov", ErrConfig, o.Kind)
	}
	if !finite(o.LR) || o.LR <= 0 || !finite(o.Momentum) || o.Momentum < 0 || o.Momentum >= 1 {
		return fmt.Errorf("%w: outer lr %g must be > 0 and momentum %g in [0, 1)", ErrConfig, o.LR, o.Momentum)
	}
	return nil
}

// Apply updates m's weights in place with the aggregated delta mean. The
// tensors of mean must be Tensors(m), or (for a round that trained only
// some blocks) a subsequence of it with the same names and shapes
// (ErrShape); only those tensors, and their momentum, change. mean must be
// finite (ErrNonFinite). On error nothing changes.
func (o *Outer) Apply(m *model.Model, mean *Delta) error {
	if err := o.Validate(); err != nil {
		return err
	}
	ws := Tensors(m)
	idx, err := subsequence(ws, mean.Tensors)
	if err != nil {
		return err
	}
	if _, err := flatten(mean); err != nil {
		return err
	}
	if o.Kind == OuterNesterov {
		if o.buf == nil {
			o.buf = make([]model.Tensor, len(ws))
			for i, t := range ws {
				o.buf[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: make([]float32, len(t.Data))}
			}
		} else if err := sameShapes(o.buf, ws); err != nil {
			return fmt.Errorf("%w (the outer momentum is for other tensors)", err)
		}
	}
	lr, mu := o.LR, o.Momentum
	for k, g := range mean.Tensors {
		i := idx[k]
		w := ws[i].Data
		if o.Kind == OuterSGD {
			for j := range w {
				w[j] -= float32(lr * g.Data[j])
			}
			continue
		}
		b := o.buf[i].Data
		for j := range w {
			b[j] = float32(mu*b[j]) + g.Data[j]
			d := g.Data[j] + float32(mu*b[j])
			w[j] -= float32(lr * d)
		}
	}
	return nil
}

// subsequence returns, for each tensor of sub, its index in all: sub must
// name tensors of all in the same order, with the same shapes and data
// lengths.
func subsequence(all, sub []model.Tensor) ([]int, error) {
	idx := make([]int, len(sub))
	i := 0
	for k, t := range sub {
		for i < len(all) && all[i].Name != t.Name {
			i++
		}
		if i == len(all) {
			return nil, fmt.Errorf("%w: tensor %q is not a tensor of the model, or is out of order", ErrShape, t.Name)
		}
		if !sameDims(t.Shape, all[i].Shape) || len(t.Data) != len(all[i].Data) {
			return nil, fmt.Errorf("%w: tensor %q is %v (%d values), want %v", ErrShape, t.Name, t.Shape, len(t.Data), all[i].Shape)
		}
		idx[k] = i
		i++
	}
	return idx, nil
}

// MarshalBinary saves the configuration and momentum: kind byte (0 sgd,
// 1 nesterov), lr f32, momentum f32 (little-endian), then the momentum
// buffer, if any, as an FP32 delta container.
func (o *Outer) MarshalBinary() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	out := make([]byte, 1, 9)
	if o.Kind == OuterNesterov {
		out[0] = 1
	}
	out = binary.LittleEndian.AppendUint32(out, math.Float32bits(o.LR))
	out = binary.LittleEndian.AppendUint32(out, math.Float32bits(o.Momentum))
	if o.buf == nil {
		return out, nil
	}
	data, err := EncodeDelta(&Delta{Codec: FP32, Tensors: o.buf})
	if err != nil {
		return nil, err
	}
	return append(out, data...), nil
}

// UnmarshalBinary restores what MarshalBinary saved; on error o is
// unchanged. Errors wrap ErrFormat, ErrConfig or ErrDelta.
func (o *Outer) UnmarshalBinary(data []byte) error {
	if len(data) < 9 || data[0] > 1 {
		return fmt.Errorf("%w: outer optimizer state of %d bytes", ErrFormat, len(data))
	}
	n := Outer{Kind: OuterSGD, LR: math.Float32frombits(binary.LittleEndian.Uint32(data[1:])),
		Momentum: math.Float32frombits(binary.LittleEndian.Uint32(data[5:]))}
	if data[0] == 1 {
		n.Kind = OuterNesterov
	}
	if err := n.Validate(); err != nil {
		return err
	}
	if len(data) > 9 {
		if n.Kind != OuterNesterov {
			return fmt.Errorf("%w: sgd outer state carries a momentum buffer", ErrFormat)
		}
		d, err := DecodeDelta(data[9:], nil)
		if err != nil {
			return err
		}
		if d.Codec != FP32 {
			return fmt.Errorf("%w: outer momentum stored as %s, want fp32", ErrFormat, d.Codec)
		}
		if _, err := flatten(d); err != nil {
			return err
		}
		n.buf = d.Tensors
	}
	*o = n
	return nil
}
