package train

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/tensor"
)

// Codec is how a delta's values are encoded.
type Codec uint8

const (
	// FP32 stores each value as IEEE float32: lossless, 4 bytes a value.
	FP32 Codec = 1
	// FP16 stores each value as IEEE binary16 rounded to nearest even
	// (tensor.F32ToF16): 2 bytes a value.
	FP16 Codec = 2
	// Int8 splits each tensor into blocks of Int8Block values and stores a
	// float32 scale s = max|x|/127 per block and q = round(x/s) in
	// [−127, 127] per value (ties away from zero); x is read back as q·s.
	// About 1.06 bytes a value.
	Int8 Codec = 3
)

// Int8Block is the block length EncodeDelta uses for Int8.
const Int8Block = 64

// Limits on an encoded delta. DecodeDelta rejects anything larger.
const (
	MaxDeltaTensors = 4096    // tensors in one delta
	MaxDeltaName    = 256     // bytes of a tensor name
	MaxDeltaRank    = 4       // dimensions of a tensor
	MaxDeltaBase    = 256     // bytes of the base CID string
	MaxDeltaElems   = 1 << 30 // values in one delta
	maxInt8Block    = 1 << 16
)

func (c Codec) String() string {
	switch c {
	case FP32:
		return "fp32"
	case FP16:
		return "fp16"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("Codec(%d)", uint8(c))
}

// ParseCodec returns the codec named "fp32", "fp16" or "int8".
func ParseCodec(s string) (Codec, error) {
	for _, c := range []Codec{FP32, FP16, Int8} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: codec %q; want fp32, fp16 or int8", ErrConfig, s)
}

func (c Codec) valid() bool { return c == FP32 || c == FP16 || c == Int8 }

// dataBytes is the encoded size of n values with block length blk.
func (c Codec) dataBytes(n, blk int) int {
	switch c {
	case FP16:
		return 2 * n
	case Int8:
		return 4*((n+blk-1)/blk) + n
	}
	return 4 * n
}

// Encoded delta format, version 1, little-endian:
//
//	magic "STDL", version u8 = 1, codec u8, reserved u16 = 0
//	round u64, samples u64, loss f32, int8 block length u32 (0 unless Int8)
//	base: u16 length, bytes (UTF-8)
//	tensor count u32, then per tensor: name (u16 length, UTF-8 bytes),
//	  rank u8 (1..MaxDeltaRank), rank × u32 dimensions (each >= 1)
//	data, tensor after tensor:
//	  FP32: n × f32;  FP16: n × u16 (binary16 bits);
//	  Int8: ⌈n/block⌉ × f32 scales, then n × i8 (−127..127)
//
// Nothing may follow the data. The bytes depend only on the delta's
// contents, so the same delta always has the same CID.
const (
	deltaMagic   = "STDL"
	deltaVersion = 1
	deltaFixed   = 4 + 1 + 1 + 2 + 8 + 8 + 4 + 4 + 2 + 4 // header without base and tensors
)

// EncodedSize returns the length of EncodeDelta(d) for a well-formed d.
func EncodedSize(d *Delta) int {
	n := deltaFixed + len(d.Base)
	for _, t := range d.Tensors {
		n += 2 + len(t.Name) + 1 + 4*len(t.Shape) + d.Codec.dataBytes(len(t.Data), Int8Block)
	}
	return n
}

// EncodeDelta encodes d with d.Codec in the format above. FP16 and Int8
// are lossy; DecodeDelta of the result gives the values the receivers
// will use (Compressor keeps the difference for the next round). It fails
// with ErrDelta if d breaks the format's limits and with ErrNonFinite if a
// value is NaN or ±Inf.
func EncodeDelta(d *Delta) ([]byte, error) {
	if err := checkDelta(d); err != nil {
		return nil, err
	}
	buf := make([]byte, 0, EncodedSize(d))
	le := binary.LittleEndian
	buf = append(buf, deltaMagic...)
	buf = append(buf, deltaVersion, byte(d.Codec), 0, 0)
	buf = le.AppendUint64(buf, d.Round)
	buf = le.AppendUint64(buf, d.Samples)
	buf = le.AppendUint32(buf, math.Float32bits(d.Loss))
	blk := uint32(0)
	if d.Codec == Int8 {
		blk = Int8Block
	}
	buf = le.AppendUint32(buf, blk)
	buf = le.AppendUint16(buf, uint16(len(d.Base)))
	buf = append(buf, d.Base...)
	buf = le.AppendUint32(buf, uint32(len(d.Tensors)))
	for _, t := range d.Tensors {
		buf = le.AppendUint16(buf, uint16(len(t.Name)))
		buf = append(buf, t.Name...)
		buf = append(buf, byte(len(t.Shape)))
		for _, n := range t.Shape {
			buf = le.AppendUint32(buf, uint32(n))
		}
	}
	for _, t := range d.Tensors {
		buf = appendValues(buf, d.Codec, t.Data)
	}
	return buf, nil
}

// checkDelta checks d against the format's limits.
func checkDelta(d *Delta) error {
	if !d.Codec.valid() {
		return fmt.Errorf("%w: unknown codec %d", ErrDelta, d.Codec)
	}
	if len(d.Base) > MaxDeltaBase || !utf8.ValidString(d.Base) {
		return fmt.Errorf("%w: base CID of %d bytes (at most %d, UTF-8)", ErrDelta, len(d.Base), MaxDeltaBase)
	}
	if len(d.Tensors) == 0 || len(d.Tensors) > MaxDeltaTensors {
		return fmt.Errorf("%w: %d tensors; want 1 to %d", ErrDelta, len(d.Tensors), MaxDeltaTensors)
	}
	seen := make(map[string]bool, len(d.Tensors))
	total := 0
	for _, t := range d.Tensors {
		if err := checkName(t.Name); err != nil {
			return err
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: tensor %q appears twice", ErrDelta, t.Name)
		}
		seen[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > MaxDeltaRank {
			return fmt.Errorf("%w: tensor %q has rank %d; want 1 to %d", ErrDelta, t.Name, len(t.Shape), MaxDeltaRank)
		}
		n := 1
		for _, k := range t.Shape {
			if k < 1 || k > MaxDeltaElems || n > MaxDeltaElems/k {
				return fmt.Errorf("%w: tensor %q has shape %v (at most %d values)", ErrDelta, t.Name, t.Shape, MaxDeltaElems)
			}
			n *= k
		}
		if n != len(t.Data) {
			return fmt.Errorf("%w: tensor %q has shape %v but %d values", ErrDelta, t.Name, t.Shape, len(t.Data))
		}
		for j, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("%w: %s[%d] = %g; a delta to send must be finite", ErrNonFinite, t.Name, j, v)
			}
		}
		if total += n; total > MaxDeltaElems {
			return fmt.Errorf("%w: more than %d values", ErrDelta, MaxDeltaElems)
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > MaxDeltaName || !utf8.ValidString(name) {
		return fmt.Errorf("%w: tensor name %q must be 1 to %d bytes of UTF-8", ErrDelta, name, MaxDeltaName)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: tensor name %q holds a control character", ErrDelta, name)
		}
	}
	return nil
}

// appendValues appends x encoded with c.
func appendValues(buf []byte, c Codec, x []float32) []byte {
	le := binary.LittleEndian
	switch c {
	case FP32:
		for _, v := range x {
			buf = le.AppendUint32(buf, math.Float32bits(v))
		}
	case FP16:
		for _, v := range x {
			buf = le.AppendUint16(buf, tensor.F32ToF16(v))
		}
	case Int8:
		nb := (len(x) + Int8Block - 1) / Int8Block
		scales := make([]float32, nb)
		for b := range scales {
			scales[b] = int8Scale(x[b*Int8Block : min(len(x), (b+1)*Int8Block)])
			buf = le.AppendUint32(buf, math.Float32bits(scales[b]))
		}
		for j, v := range x {
			buf = append(buf, byte(int8Quant(v, scales[j/Int8Block])))
		}
	}
	return buf
}

// int8Scale is max|x|/127 over a block (0 for an all-zero block). A
// non-finite value makes the scale non-finite, which DecodeDelta rejects.
func int8Scale(x []float32) float32 {
	var m float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > m || a != a {
			m = a
		}
	}
	return m / 127
}

// int8Quant is round(v/s) clamped to [−127, 127], 0 when s is 0 or v/s
// is NaN.
func int8Quant(v, s float32) int8 {
	if s == 0 {
		return 0
	}
	q := math.Round(float64(v / s))
	switch {
	case q > 127:
		return 127
	case q < -127:
		return -127
	case q != q:
		return 0
	}
	return int8(q)
}

// roundTrip writes into dst the values x reads back as after encoding
// with c (dst and x may be the same slice).
func roundTrip(c Codec, x, dst []float32) {
	switch c {
	case FP32:
		copy(dst, x)
	case FP16:
		for j, v := range x {
			dst[j] = tensor.F16ToF32(tensor.F32ToF16(v))
		}
	case Int8:
		for lo := 0; lo < len(x); lo += Int8Block {
			hi := min(len(x), lo+Int8Block)
			s := int8Scale(x[lo:hi])
			for j := lo; j < hi; j++ {
				dst[j] = float32(int8Quant(x[j], s)) * s
			}
		}
	}
}

// DecodeDelta decodes an encoded delta (bytes from a peer: hostile). With
// expect non-nil, the tensors must have exactly expect's names and shapes
// in order (expect's Data is ignored; Tensors(model) or Shapes gives it).
// Every count and length is checked against the bytes that remain before
// anything is allocated, so memory use is bounded by a small multiple of
// len(data). Values may be NaN or ±Inf (Validate rejects those, naming
// the tensor); an Int8 scale that is negative or not finite is a format
// error. Errors wrap ErrDelta.
func DecodeDelta(data []byte, expect []model.Tensor) (*Delta, error) {
	r := reader{b: data}
	if string(r.bytes(4)) != deltaMagic {
		return nil, fmt.Errorf("%w: not a delta (bad magic)", ErrDelta)
	}
	if v := r.u8(); v != deltaVersion {
		return nil, fmt.Errorf("%w: version %d; this node reads version %d", ErrDelta, v, deltaVersion)
	}
	d := &Delta{Codec: Codec(r.u8())}
	if !d.Codec.valid() {
		return nil, fmt.Errorf("%w: unknown codec %d", ErrDelta, d.Codec)
	}
	if r.u16() != 0 {
		return nil, fmt.Errorf("%w: reserved header bytes are not zero", ErrDelta)
	}
	d.Round, d.Samples = r.u64(), r.u64()
	d.Loss = math.Float32frombits(r.u32())
	blk := int(r.u32())
	if (d.Codec == Int8) != (blk != 0) || blk > maxInt8Block {
		return nil, fmt.Errorf("%w: block length %d for codec %s", ErrDelta, blk, d.Codec)
	}
	nb := int(r.u16())
	if nb > MaxDeltaBase {
		return nil, fmt.Errorf("%w: base CID of %d bytes (at most %d)", ErrDelta, nb, MaxDeltaBase)
	}
	d.Base = string(r.bytes(nb))
	if !utf8.ValidString(d.Base) {
		return nil, fmt.Errorf("%w: base CID is not UTF-8", ErrDelta)
	}
	nt := int(r.u32())
	if r.err != nil {
		return nil, r.err
	}
	if nt == 0 || nt > MaxDeltaTensors {
		return nil, fmt.Errorf("%w: %d tensors; want 1 to %d", ErrDelta, nt, MaxDeltaTensors)
	}
	if expect != nil && nt != len(expect) {
		return nil, fmt.Errorf("%w: %w: %d tensors, want %d", ErrDelta, ErrShape, nt, len(expect))
	}
	if nt > r.left()/4 { // every tensor header takes at least 2+1+1+4 bytes
		return nil, fmt.Errorf("%w: %d tensors in %d bytes", ErrDelta, nt, r.left())
	}
	d.Tensors = make([]model.Tensor, nt)
	total, need := 0, 0
	for i := range d.Tensors {
		t := &d.Tensors[i]
		t.Name = string(r.bytes(int(r.u16())))
		rank := int(r.u8())
		if r.err != nil {
			return nil, r.err
		}
		if err := checkName(t.Name); err != nil {
			return nil, err
		}
		if rank == 0 || rank > MaxDeltaRank {
			return nil, fmt.Errorf("%w: tensor %q has rank %d; want 1 to %d", ErrDelta, t.Name, rank, MaxDeltaRank)
		}
		t.Shape = make([]int, rank)
		n := 1
		for k := range t.Shape {
			dim := int(r.u32())
			if r.err != nil {
				return nil, r.err
			}
			if dim < 1 || n > MaxDeltaElems/dim {
				return nil, fmt.Errorf("%w: tensor %q dimension %d is %d (at most %d values)", ErrDelta, t.Name, k, dim, MaxDeltaElems)
			}
			t.Shape[k] = dim
			n *= dim
		}
		if expect != nil {
			if e := expect[i]; e.Name != t.Name || !sameDims(e.Shape, t.Shape) {
				return nil, fmt.Errorf("%w: %w: tensor %d is %q %v, want %q %v", ErrDelta, ErrShape, i, t.Name, t.Shape, e.Name, e.Shape)
			}
		}
		if total += n; total > MaxDeltaElems {
			return nil, fmt.Errorf("%w: more than %d values", ErrDelta, MaxDeltaElems)
		}
		need += d.Codec.dataBytes(n, max(blk, 1))
	}
	if need != r.left() {
		return nil, fmt.Errorf("%w: tensors need %d bytes of data, %d remain", ErrDelta, need, r.left())
	}
	seen := make(map[string]bool, nt)
	for i := range d.Tensors {
		t := &d.Tensors[i]
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrDelta, t.Name)
		}
		seen[t.Name] = true
		t.Data = make([]float32, elems(t.Shape))
		if err := r.values(d.Codec, blk, t); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func sameDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// reader reads little-endian fields; after a short read every further
// read returns zero and err is set.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.left() {
		r.err = fmt.Errorf("%w: truncated at byte %d (need %d more, %d left)", ErrDelta, r.off, n, r.left())
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if s := r.bytes(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if s := r.bytes(2); s != nil {
		return binary.LittleEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if s := r.bytes(4); s != nil {
		return binary.LittleEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.bytes(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// values decodes t's data (its size was checked against the bytes left).
func (r *reader) values(c Codec, blk int, t *model.Tensor) error {
	le := binary.LittleEndian
	x := t.Data
	switch c {
	case FP32:
		s := r.bytes(4 * len(x))
		for j := range x {
			x[j] = math.Float32frombits(le.Uint32(s[4*j:]))
		}
	case FP16:
		s := r.bytes(2 * len(x))
		for j := range x {
			x[j] = tensor.F16ToF32(le.Uint16(s[2*j:]))
		}
	case Int8:
		nb := (len(x) + blk - 1) / blk
		sc := r.bytes(4 * nb)
		q := r.bytes(len(x))
		for b := range nb {
			s := math.Float32frombits(le.Uint32(sc[4*b:]))
			if !(s >= 0) || math.IsInf(float64(s), 0) {
				return fmt.Errorf("%w: tensor %q block %d has scale %g", ErrDelta, t.Name, b, s)
			}
			for j := b * blk; j < min(len(x), (b+1)*blk); j++ {
				v := int8(q[j])
				if v == -128 {
					return fmt.Errorf("%w: tensor %q value %d is −128 (outside −127..127)", ErrDelta, t.Name, j)
				}
				x[j] = float32(v) * s
			}
		}
	}
	return r.err
}
