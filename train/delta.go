package train

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/strata-mesh/strata/model"
)

// Errors of federated rounds: deltas, their encoding, validation and
// aggregation.
var (
	// ErrDelta: an encoded delta is malformed, truncated, too large or does
	// not have the expected tensors and shapes.
	ErrDelta = errors.New("train: malformed delta")
	// ErrOutlier: a delta's L2 norm is above the absolute cap or far above
	// the median norm of the round's deltas.
	ErrOutlier = errors.New("train: delta norm outlier")
	// ErrRejected: a delta failed validation (wrapped by every Rejection).
	ErrRejected = errors.New("train: delta rejected")
	// ErrNoDeltas: there is nothing to aggregate.
	ErrNoDeltas = errors.New("train: no deltas to aggregate")
)

// Delta is a participant's pseudo-gradient for one round, Δ = θ_base −
// θ_local, over named tensors ("blocks.<i>.<tensor>", "head.<tensor>", in
// the order of model.Model.Params), with the round's metadata.
type Delta struct {
	Round   uint64         // the round the delta belongs to
	Base    string         // CID of the committed model the round started from
	Samples uint64         // tokens the participant trained on this round
	Loss    float32        // the participant's mean training loss this round
	Codec   Codec          // how the delta was (or will be) encoded
	Tensors []model.Tensor // Δ per tensor; Data has the product of Shape elements
}

// Elems returns the number of values in d.
func (d *Delta) Elems() int {
	n := 0
	for _, t := range d.Tensors {
		n += len(t.Data)
	}
	return n
}

// Norm returns the L2 norm of d, accumulated in float64 in tensor then
// element order.
func (d *Delta) Norm() float64 {
	var s float64
	for _, t := range d.Tensors {
		for _, x := range t.Data {
			s += float64(float64(x) * float64(x))
		}
	}
	return math.Sqrt(s)
}

// Tensors returns m's loaded weights as named tensors in the order of
// model.Model.Params: blocks in increasing index, each in
// model.Block.Tensors order, then the head. Data aliases m's weights.
func Tensors(m *model.Model) []model.Tensor {
	var out []model.Tensor
	for l, b := range m.Blocks {
		if b == nil {
			continue
		}
		prefix := "blocks." + strconv.Itoa(l) + "."
		for _, t := range b.Tensors(m.Config) {
			t.Name = prefix + t.Name
			out = append(out, t)
		}
	}
	if m.Head != nil {
		for _, t := range m.Head.Tensors(m.Config) {
			t.Name = "head." + t.Name
			out = append(out, t)
		}
	}
	return out
}

// ComputeDelta returns Δ = base − local over every tensor both models
// hold (float32 subtraction, exactly rounded). The models must have the
// same configuration and the same blocks and head loaded, else ErrShape.
// The caller fills in the metadata (Round, Base, Samples, Loss).
func ComputeDelta(base, local *model.Model) (*Delta, error) {
	if base.Config != local.Config {
		return nil, fmt.Errorf("%w: base and local models have different configurations", ErrShape)
	}
	bt, lt := Tensors(base), Tensors(local)
	if err := sameShapes(bt, lt); err != nil {
		return nil, err
	}
	d := &Delta{Tensors: make([]model.Tensor, len(bt))}
	for i, t := range bt {
		out := make([]float32, len(t.Data))
		l := lt[i].Data
		for j, w := range t.Data {
			out[j] = w - l[j]
		}
		d.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: out}
	}
	return d, nil
}

// sameShapes checks that got has exactly want's names and shapes, in
// order, with matching data lengths.
func sameShapes(want, got []model.Tensor) error {
	if len(got) != len(want) {
		return fmt.Errorf("%w: %d tensors, want %d", ErrShape, len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Name != w.Name || !sameDims(g.Shape, w.Shape) || len(g.Data) != elems(w.Shape) {
			return fmt.Errorf("%w: tensor %d is %q %v (%d values), want %q %v", ErrShape, i, g.Name, g.Shape, len(g.Data), w.Name, w.Shape)
		}
	}
	return nil
}

// elems is the product of shape's dimensions.
func elems(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
