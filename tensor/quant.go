package tensor

import (
	"errors"
	"fmt"
	"math"
)

// QFormat is a block-quantized weight format. Every format splits each
// matrix row into blocks of QBlockLen consecutive values; each block stores
// one binary16 scale d followed by its quantized values, and value j of the
// block is d·q[j].
//
//	Q8_0  34 bytes a block: d (2 bytes, little-endian binary16), then 32
//	      int8 q[0..31]. 8.5 bits a weight.
//	Q4_0  18 bytes a block: d, then 16 bytes; byte i holds q[i] in its low
//	      nibble and q[16+i] in its high nibble, each stored as q+8
//	      (q in [−8, 7]). 4.5 bits a weight.
//
// A row of cols values takes ⌈cols/32⌉ blocks; in a last, partial block
// the values past cols are stored as q = 0 (a canonical encoding: Validate
// rejects anything else).
type QFormat uint8

// The quantized formats. The zero QFormat means float32 (not quantized).
const (
	Q8_0 QFormat = iota + 1
	Q4_0
)

// QBlockLen is the number of values in one quantization block.
const QBlockLen = 32

// ErrQuant is wrapped by every error about quantized data: an unknown
// format, a size that does not fit the shape, a non-finite scale, a
// non-canonical padding value, or weights that do not fit a format.
var ErrQuant = errors.New("tensor: bad quantized matrix")

// String returns the format's name as manifests and flags spell it:
// "q8_0", "q4_0" (or "f32" for the zero format).
func (f QFormat) String() string {
	switch f {
	case 0:
		return "f32"
	case Q8_0:
		return "q8_0"
	case Q4_0:
		return "q4_0"
	}
	return fmt.Sprintf("QFormat(%d)", uint8(f))
}

// ParseQFormat is the inverse of String for the quantized formats.
func ParseQFormat(s string) (QFormat, error) {
	switch s {
	case "q8_0":
		return Q8_0, nil
	case "q4_0":
		return Q4_0, nil
	}
	return 0, fmt.Errorf("%w: unknown format %.32q (want q8_0 or q4_0)", ErrQuant, s)
}

// BlockBytes returns the size of one block of the format, or 0 for an
// unknown format.
func (f QFormat) BlockBytes() int {
	switch f {
	case Q8_0:
		return 2 + QBlockLen
	case Q4_0:
		return 2 + QBlockLen/2
	}
	return 0
}

// RowBytes returns the bytes one row of cols values takes.
func (f QFormat) RowBytes(cols int) int {
	return (cols + QBlockLen - 1) / QBlockLen * f.BlockBytes()
}

// QMatrix is a rows×cols matrix in a quantized format: Data holds the rows
// one after another, each RowBytes(Cols) bytes. It is immutable once made
// and may be shared by any number of goroutines.
type QMatrix struct {
	Format     QFormat
	Rows, Cols int
	Data       []byte
}

// Bytes is the size of Data.
func (q *QMatrix) Bytes() int { return q.Rows * q.Format.RowBytes(q.Cols) }

// Validate checks that q is a canonical matrix of its format: a known
// format, non-negative shape, len(Data) equal to Rows·RowBytes(Cols),
// finite scales, and padding values of partial blocks equal to zero. Data
// from a file or peer must pass it before it reaches a kernel. Errors
// wrap ErrQuant.
func (q *QMatrix) Validate() error {
	bb := q.Format.BlockBytes()
	if bb == 0 {
		return fmt.Errorf("%w: unknown format %d", ErrQuant, q.Format)
	}
	if q.Rows < 0 || q.Cols < 0 {
		return fmt.Errorf("%w: shape %d×%d", ErrQuant, q.Rows, q.Cols)
	}
	rb := q.Format.RowBytes(q.Cols)
	if rb > 0 && q.Rows > math.MaxInt/rb || q.Rows*rb != len(q.Data) {
		return fmt.Errorf("%w: %s %d×%d needs %d bytes, have %d", ErrQuant, q.Format, q.Rows, q.Cols, q.Rows*rb, len(q.Data))
	}
	for off := 0; off < len(q.Data); off += bb {
		if h := uint16(q.Data[off]) | uint16(q.Data[off+1])<<8; h&0x7c00 == 0x7c00 {
			return fmt.Errorf("%w: %s block %d has a non-finite scale", ErrQuant, q.Format, off/bb)
		}
	}
	rem := q.Cols % QBlockLen
	if rem == 0 {
		return nil
	}
	for r := range q.Rows {
		blk := q.Data[(r+1)*rb-bb : (r+1)*rb]
		for j := rem; j < QBlockLen; j++ {
			if qv := blockQ(q.Format, blk, j); qv != 0 {
				return fmt.Errorf("%w: %s row %d: padding value %d at column %d, want 0", ErrQuant, q.Format, r, qv, q.Cols-rem+j)
			}
		}
	}
	return nil
}

// blockQ returns quantized value j of one block.
func blockQ(f QFormat, blk []byte, j int) int {
	if f == Q8_0 {
		return int(int8(blk[2+j]))
	}
	if j < QBlockLen/2 {
		return int(blk[2+j]&0x0f) - 8
	}
	return int(blk[2+j-QBlockLen/2]>>4) - 8
}

// Quantize returns the rows×cols matrix w (row-major) in format f. Each
// block's scale is chosen from its largest magnitude (Q8_0: d = max|v|/127;
// Q4_0: d = −v/8 for the v of largest magnitude, so that value is exactly
// −8·d), rounded to binary16, and each value becomes round(v/d) (half away
// from zero) clamped to the format's range. It returns an error wrapping
// ErrQuant if a value is not finite or a scale overflows binary16; it
// panics if len(w) != rows·cols or f is unknown.
func Quantize(f QFormat, w []float32, rows, cols int) (*QMatrix, error) {
	if rows < 0 || cols < 0 || len(w) != rows*cols || f.BlockBytes() == 0 {
		panic(fmt.Sprintf("tensor: Quantize %s shape mismatch: rows=%d cols=%d len(w)=%d", f, rows, cols, len(w)))
	}
	q := &QMatrix{Format: f, Rows: rows, Cols: cols, Data: make([]byte, rows*f.RowBytes(cols))}
	bb := f.BlockBytes()
	var vals [QBlockLen]float32
	off := 0
	for r := range rows {
		row := w[r*cols : (r+1)*cols]
		for lo := 0; lo < cols; lo += QBlockLen {
			clear(vals[:])
			copy(vals[:], row[lo:min(lo+QBlockLen, cols)])
			if err := quantBlock(f, q.Data[off:off+bb], &vals); err != nil {
				return nil, fmt.Errorf("%w (row %d, columns %d..)", err, r, lo)
			}
			off += bb
		}
	}
	return q, nil
}

func quantBlock(f QFormat, blk []byte, v *[QBlockLen]float32) error {
	var amax, m float32
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: non-finite weight %v", ErrQuant, x)
		}
		if a := float32(math.Abs(float64(x))); a > amax {
			amax, m = a, x
		}
	}
	var d float32
	lo, hi := float32(-127), float32(127)
	if f == Q8_0 {
		d = amax / 127
	} else {
		d, lo, hi = m/-8, -8, 7
	}
	h := F32ToF16(d)
	if h&0x7c00 == 0x7c00 {
		return fmt.Errorf("%w: weights up to %v overflow the binary16 scale of %s", ErrQuant, amax, f)
	}
	blk[0], blk[1] = byte(h), byte(h>>8)
	dq := F16ToF32(h)
	for j, x := range v {
		var qv float32
		if dq != 0 {
			qv = float32(math.Round(float64(x / dq)))
			qv = min(max(qv, lo), hi)
		}
		if f == Q8_0 {
			blk[2+j] = byte(int8(qv))
		} else if j < QBlockLen/2 {
			blk[2+j] |= byte(int(qv) + 8)
		} else {
			blk[2+j-QBlockLen/2] |= byte(int(qv)+8) << 4
		}
	}
	return nil
}

// Dequantize writes the Rows·Cols values d·q of q, row-major, to out. It
// panics if len(out) != Rows·Cols.
func (q *QMatrix) Dequantize(out []float32) {
	if len(out) != q.Rows*q.Cols {
		panic(fmt.Sprintf("tensor: Dequantize into %d values, matrix has %d×%d", len(out), q.Rows, q.Cols))
	}
	bb, rb := q.Format.BlockBytes(), q.Format.RowBytes(q.Cols)
	for r := range q.Rows {
		row := q.Data[r*rb : (r+1)*rb]
		for c := range q.Cols {
			blk := row[c/QBlockLen*bb:]
			d := F16ToF32(uint16(blk[0]) | uint16(blk[1])<<8)
			out[r*q.Cols+c] = d * float32(blockQ(q.Format, blk, c%QBlockLen))
		}
	}
}
