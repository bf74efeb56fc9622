package train

import (
	"fmt"

	"github.com/strata-mesh/strata/model"
)

// Compressor encodes a participant's deltas with error feedback (Seide et
// al. 2014; Karimireddy et al. 2019, "Error Feedback Fixes SignSGD"): what
// the codec loses this round (the residual x − decode(encode(x))) is
// added to the next round's delta, so over rounds the sum of what peers
// receive tracks the sum of the true deltas, off by one bounded residual.
//
// The residual is bound to the tensor names and shapes of the first
// delta; MarshalBinary saves it so a restarted node keeps it. The zero
// value is not usable: set Codec. Used by one goroutine at a time.
type Compressor struct {
	Codec    Codec
	residual []model.Tensor
}

// Compress returns the encoding of d + residual with c.Codec, and the
// delta the receivers will decode from it, and keeps the new residual. d
// is not modified; its metadata is copied (Codec set to c.Codec). Errors
// wrap ErrShape (d does not match the residual), ErrNonFinite or ErrDelta;
// on error the residual is unchanged.
func (c *Compressor) Compress(d *Delta) ([]byte, *Delta, error) {
	if !c.Codec.valid() {
		return nil, nil, fmt.Errorf("%w: compressor codec %d", ErrConfig, c.Codec)
	}
	if c.residual != nil {
		if err := sameShapes(c.residual, d.Tensors); err != nil {
			return nil, nil, fmt.Errorf("%w (the compressor's residual is for other tensors)", err)
		}
	}
	x := *d
	x.Codec = c.Codec
	x.Tensors = make([]model.Tensor, len(d.Tensors))
	for i, t := range d.Tensors {
		v := append([]float32(nil), t.Data...)
		if c.residual != nil {
			for j, r := range c.residual[i].Data {
				v[j] += r
			}
		}
		x.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: v}
	}
	data, err := EncodeDelta(&x)
	if err != nil {
		return nil, nil, err
	}
	sent := x
	sent.Tensors = make([]model.Tensor, len(x.Tensors))
	res := make([]model.Tensor, len(x.Tensors))
	for i, t := range x.Tensors {
		dec := make([]float32, len(t.Data))
		roundTrip(c.Codec, t.Data, dec)
		r := make([]float32, len(t.Data))
		for j := range r {
			r[j] = t.Data[j] - dec[j]
		}
		sent.Tensors[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: dec}
		res[i] = model.Tensor{Name: t.Name, Shape: t.Shape, Data: r}
	}
	c.residual = res
	return data, &sent, nil
}

// Residual returns the error-feedback residual (nil before the first
// Compress). It aliases the compressor's state.
func (c *Compressor) Residual() []model.Tensor { return c.residual }

// MarshalBinary saves the codec and residual: the codec byte, then (if
// there is a residual) the residual as an FP32 delta container.
func (c *Compressor) MarshalBinary() ([]byte, error) {
	if c.residual == nil {
		return []byte{byte(c.Codec)}, nil
	}
	data, err := EncodeDelta(&Delta{Codec: FP32, Tensors: c.residual})
	if err != nil {
		return nil, err
	}
	return append([]byte{byte(c.Codec)}, data...), nil
}

// UnmarshalBinary restores what MarshalBinary saved. Errors wrap ErrDelta
// or ErrFormat; on error c is unchanged.
func (c *Compressor) UnmarshalBinary(data []byte) error {
	if len(data) == 0 || !Codec(data[0]).valid() {
		return fmt.Errorf("%w: compressor state has no valid codec", ErrFormat)
	}
	var res []model.Tensor
	if len(data) > 1 {
		d, err := DecodeDelta(data[1:], nil)
		if err != nil {
			return err
		}
		if d.Codec != FP32 {
			return fmt.Errorf("%w: compressor residual stored as %s, want fp32", ErrFormat, d.Codec)
		}
		res = d.Tensors
	}
	c.Codec, c.residual = Codec(data[0]), res
	return nil
}

// DeltaBytes is the encoded size of a delta over tensors of the given
// shapes (Data is ignored) with codec c and an empty base CID: add the
// base CID's length for the exact size. It is what one participant sends
// (once, to a content store) per round.
func DeltaBytes(c Codec, shapes []model.Tensor) int {
	n := deltaFixed
	for _, t := range shapes {
		n += 2 + len(t.Name) + 1 + 4*len(t.Shape) + c.dataBytes(elems(t.Shape), Int8Block)
	}
	return n
}

// PerStepGradientBytes is what the same participant would send by
// exchanging fp32 gradients every step instead: steps × 4 bytes × values.
func PerStepGradientBytes(shapes []model.Tensor, steps int) int {
	n := 0
	for _, s := range shapes {
		n += elems(s.Shape)
	}
	return steps * 4 * n
}
