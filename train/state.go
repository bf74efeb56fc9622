package train

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Limits on optimizer state read from a file or a peer.
const (
	// MaxParams bounds the number of parameter tensors in saved state.
	MaxParams = 1 << 16
	// MaxNameLen bounds a parameter name in saved state.
	MaxNameLen = 1 << 10
	// MaxParamLen bounds the elements of one parameter tensor.
	MaxParamLen = 1 << 31
)

// stateMagic starts every saved optimizer state.
const stateMagic = "STOPTST\x00"

const stateVersion = 1

// MarshalBinary encodes the optimizer state. All integers and floats are
// little-endian:
//
//	magic    [8]byte  "STOPTST\x00"
//	version  uint32   1
//	kind     uint32   index into Kinds (0 sgd … 6 adamw)
//	step     uint64   steps taken
//	nparams  uint32   parameter tensors (0 before the first step)
//	then per parameter, in Step order:
//	  namelen uint32, name [namelen]byte
//	  n       uint64  elements
//	  slots × n float32: the kind's buffers one after the other —
//	    momentum, nesterov: b; adagrad: s; rmsprop: v; adam, adamw: m then v
//	    (sgd has none; its n still records the shape)
//
// Hyperparameters are not saved: the caller restores an Optimizer built
// from the same Config (the kind is checked).
func (o *Optimizer) MarshalBinary() ([]byte, error) {
	slots := o.cfg.Kind.slots()
	size := 8 + 4 + 4 + 8 + 4
	for _, s := range o.params {
		size += 4 + len(s.name) + 8 + 4*slots*s.n
	}
	out := make([]byte, 0, size)
	out = append(out, stateMagic...)
	out = binary.LittleEndian.AppendUint32(out, stateVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(o.cfg.Kind.code()))
	out = binary.LittleEndian.AppendUint64(out, o.step)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(o.params)))
	for _, s := range o.params {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(s.name)))
		out = append(out, s.name...)
		out = binary.LittleEndian.AppendUint64(out, uint64(s.n))
		for _, buf := range [][]float32{s.a, s.b}[:slots] {
			for _, f := range buf {
				out = binary.LittleEndian.AppendUint32(out, math.Float32bits(f))
			}
		}
	}
	return out, nil
}

// UnmarshalBinary replaces o's state with data saved by MarshalBinary.
// The input is validated before o is changed: magic, version, the kind
// (must be o's), every count and length bounded by the limits and by the
// bytes present, every float finite, second moments and accumulators
// non-negative, no trailing bytes. Errors wrap ErrFormat.
func (o *Optimizer) UnmarshalBinary(data []byte) error {
	d := decoder{data: data}
	if magic := d.bytes(8, "magic"); d.err == nil && string(magic) != stateMagic {
		return fmt.Errorf("%w: not optimizer state (bad magic %q)", ErrFormat, magic)
	}
	if v := d.u32("version"); d.err == nil && v != stateVersion {
		return fmt.Errorf("%w: optimizer state version %d, want %d", ErrFormat, v, stateVersion)
	}
	kind := d.u32("kind")
	if d.err == nil && (kind >= uint32(len(Kinds)) || Kinds[kind] != o.cfg.Kind) {
		name := "unknown"
		if kind < uint32(len(Kinds)) {
			name = string(Kinds[kind])
		}
		return fmt.Errorf("%w: state is for optimizer %s (code %d), this one is %s", ErrFormat, name, kind, o.cfg.Kind)
	}
	step := d.u64("step")
	np := d.u32("parameter count")
	if d.err != nil {
		return d.err
	}
	// Each parameter takes at least 12 bytes, which bounds np by the input.
	if np > MaxParams || uint64(np)*12 > uint64(d.left()) {
		return fmt.Errorf("%w: %d parameters in %d bytes (limit %d)", ErrFormat, np, d.left(), MaxParams)
	}
	slots := o.cfg.Kind.slots()
	params := make([]paramState, np)
	seen := make(map[string]bool, np)
	for i := range params {
		nl := d.u32("name length")
		if d.err == nil && nl > MaxNameLen {
			return fmt.Errorf("%w: parameter %d name length %d exceeds %d", ErrFormat, i, nl, MaxNameLen)
		}
		name := string(d.bytes(int(nl), "name"))
		n := d.u64("element count")
		if d.err != nil {
			return d.err
		}
		if seen[name] {
			return fmt.Errorf("%w: parameter %q appears twice", ErrFormat, name)
		}
		seen[name] = true
		if n > MaxParamLen || n*4*uint64(slots) > uint64(d.left()) {
			return fmt.Errorf("%w: parameter %q has %d elements × %d buffers, %d bytes left (limit %d elements)",
				ErrFormat, name, n, slots, d.left(), uint64(MaxParamLen))
		}
		s := paramState{name: name, n: int(n)}
		bufs := []*[]float32{&s.a, &s.b}
		for k := range slots {
			buf := make([]float32, n)
			raw := d.bytes(int(4*n), "buffer")
			for j := range buf {
				f := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
				if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
					return fmt.Errorf("%w: parameter %q buffer %d element %d is %g", ErrFormat, name, k, j, f)
				}
				if f < 0 && secondMoment(o.cfg.Kind, k) {
					return fmt.Errorf("%w: parameter %q buffer %d element %d is negative (%g), a mean of squares cannot be",
						ErrFormat, name, k, j, f)
				}
				buf[j] = f
			}
			*bufs[k] = buf
		}
		params[i] = s
	}
	if d.left() != 0 {
		return fmt.Errorf("%w: %d bytes after the last parameter", ErrFormat, d.left())
	}
	if step == 0 && np != 0 {
		return fmt.Errorf("%w: state of %d parameters at step 0", ErrFormat, np)
	}
	o.step, o.params, o.g = step, params, nil
	if np == 0 {
		o.params = nil
	}
	return nil
}

// secondMoment reports whether slot k of kind holds a sum or mean of
// squares (never negative).
func secondMoment(kind Kind, k int) bool {
	switch kind {
	case AdaGrad, RMSProp:
		return k == 0
	case Adam, AdamW:
		return k == 1
	}
	return false
}

// decoder reads little-endian fields, remembering the first error.
type decoder struct {
	data []byte
	off  int
	err  error
}

func (d *decoder) left() int { return len(d.data) - d.off }

func (d *decoder) bytes(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.left() {
		d.err = fmt.Errorf("%w: truncated at %s (offset %d: need %d bytes, have %d)", ErrFormat, what, d.off, n, d.left())
		return nil
	}
	b := d.data[d.off : d.off+n]
	d.off += n
	return b
}

func (d *decoder) u32(what string) uint32 {
	b := d.bytes(4, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (d *decoder) u64(what string) uint64 {
	b := d.bytes(8, what)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}
