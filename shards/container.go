package shards

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/strata-mesh/strata/tensor"
)

// Limits of the tensor container. They bound what a hostile file can make a
// decoder allocate or loop over.
const (
	// MaxHeaderSize bounds the JSON header of a container.
	MaxHeaderSize = 16 << 20
	// MaxRank bounds the number of dimensions of one tensor.
	MaxRank = 8
	// MaxNameLen bounds a tensor name and a metadata key or value, in bytes.
	MaxNameLen = 1024
)

// metadataKey is the reserved header key holding the string-to-string map.
const metadataKey = "__metadata__"

// DType is the element type of a tensor in a container.
type DType string

// The element types a container may hold.
const (
	F32 DType = "F32" // IEEE-754 binary32, little-endian
	U8  DType = "U8"  // raw bytes
	// Q8_0 and Q4_0 are block-quantized matrices (tensor.Q8_0,
	// tensor.Q4_0): the last dimension is split into blocks of 32 values,
	// the last block of each row padded, each block stored as a binary16
	// scale and its quantized values (34 and 18 bytes a block).
	Q8_0 DType = "Q8_0"
	Q4_0 DType = "Q4_0"
)

// Size returns the width of one element in bytes, or 0 for an unknown or
// block-quantized type.
func (d DType) Size() int {
	switch d {
	case F32:
		return 4
	case U8:
		return 1
	}
	return 0
}

// QFormat returns the quantized format of a block-quantized dtype, or 0.
func (d DType) QFormat() tensor.QFormat {
	switch d {
	case Q8_0:
		return tensor.Q8_0
	case Q4_0:
		return tensor.Q4_0
	}
	return 0
}

// QDType is the container dtype of a quantized format ("" for others).
func QDType(f tensor.QFormat) DType {
	switch f {
	case tensor.Q8_0:
		return Q8_0
	case tensor.Q4_0:
		return Q4_0
	}
	return ""
}

// Tensor is one named array in a container: raw little-endian element
// bytes plus the type and shape that give them meaning.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte
}

// File is a decoded container. Tensors are in file (data offset) order and
// their Data aliases the slice passed to Decode.
type File struct {
	Metadata map[string]string
	Tensors  []Tensor
}

// Tensor returns the tensor called name.
func (f *File) Tensor(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Encode writes the canonical container for meta and ts: header keys in
// sorted order ("__metadata__" first, omitted when meta is empty), tensor
// data laid out in the order of ts, header padded with spaces to a multiple
// of 8 bytes. Equal inputs always give equal bytes.
func Encode(meta map[string]string, ts []Tensor) ([]byte, error) {
	type entry struct {
		name       string
		dtype      DType
		shape      []int
		begin, end int
	}
	entries := make([]entry, 0, len(ts))
	seen := make(map[string]bool, len(ts))
	off := 0
	for _, t := range ts {
		if err := checkName(t.Name); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrFormat, t.Name)
		}
		seen[t.Name] = true
		n, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return nil, fmt.Errorf("%w (tensor %q)", err, t.Name)
		}
		if uint64(len(t.Data)) != n {
			return nil, fmt.Errorf("%w: tensor %q has %d data bytes, shape %v of %s needs %d",
				ErrFormat, t.Name, len(t.Data), t.Shape, t.DType, n)
		}
		entries = append(entries, entry{t.Name, t.DType, t.Shape, off, off + len(t.Data)})
		off += len(t.Data)
	}
	for k, v := range meta {
		if err := checkMetaKey(k); err != nil {
			return nil, err
		}
		if len(v) > MaxNameLen || !utf8.ValidString(v) {
			return nil, fmt.Errorf("%w: metadata value for %q is not UTF-8 of at most %d bytes", ErrFormat, k, MaxNameLen)
		}
	}

	var h bytes.Buffer
	h.WriteByte('{')
	if len(meta) > 0 {
		writeJSONString(&h, metadataKey)
		h.WriteString(":{")
		for i, k := range slices.Sorted(maps.Keys(meta)) {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, meta[k])
		}
		h.WriteByte('}')
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for i, e := range entries {
		if i > 0 || len(meta) > 0 {
			h.WriteByte(',')
		}
		writeJSONString(&h, e.name)
		h.WriteString(`:{"dtype":`)
		writeJSONString(&h, string(e.dtype))
		h.WriteString(`,"shape":[`)
		for j, d := range e.shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		h.WriteString(`],"data_offsets":[`)
		h.WriteString(strconv.Itoa(e.begin))
		h.WriteByte(',')
		h.WriteString(strconv.Itoa(e.end))
		h.WriteString("]}")
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrFormat, h.Len(), MaxHeaderSize)
	}

	out := make([]byte, 8, 8+h.Len()+off)
	binary.LittleEndian.PutUint64(out, uint64(h.Len()))
	out = append(out, h.Bytes()...)
	for _, t := range ts {
		out = append(out, t.Data...)
	}
	return out, nil
}

// Decode parses and validates a container. It rejects, with an error
// wrapping ErrFormat: a header length beyond MaxHeaderSize or the input,
// malformed or duplicate-keyed JSON, unknown dtypes, shapes whose byte size
// overflows or disagrees with the offsets, and offsets that are out of
// range, overlapping, or leave a gap. The returned tensors alias data.
func Decode(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes is too short for the 8-byte header length", ErrFormat, len(data))
	}
	hlen := binary.LittleEndian.Uint64(data)
	if hlen > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header length %d exceeds limit %d", ErrFormat, hlen, MaxHeaderSize)
	}
	if hlen > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes that follow it", ErrFormat, hlen, len(data)-8)
	}
	header := data[8 : 8+hlen]
	body := data[8+hlen:]

	f := &File{Metadata: map[string]string{}}
	type span struct {
		begin, end uint64
		idx        int
	}
	var spans []span
	err := parseHeader(header, func(key string, dec *json.Decoder) error {
		if key == metadataKey {
			return parseObject(dec, func(k string, dec *json.Decoder) error {
				if err := checkMetaKey(k); err != nil {
					return err
				}
				var v string
				if err := decodeString(dec, &v); err != nil {
					return fmt.Errorf("metadata %q: %w", k, err)
				}
				if len(v) > MaxNameLen {
					return fmt.Errorf("metadata %q: value of %d bytes exceeds %d", k, len(v), MaxNameLen)
				}
				f.Metadata[k] = v
				return nil
			})
		}
		if err := checkName(key); err != nil {
			return err
		}
		t, begin, end, err := parseTensorInfo(dec)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", key, err)
		}
		t.Name = key
		n, err := byteSize(t.DType, t.Shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", key, err)
		}
		if end < begin || end-begin != n {
			return fmt.Errorf("tensor %q: data_offsets [%d,%d] do not hold shape %v of %s (%d bytes)",
				key, begin, end, t.Shape, t.DType, n)
		}
		if end > uint64(len(body)) {
			return fmt.Errorf("tensor %q: data_offsets end %d beyond the %d data bytes", key, end, len(body))
		}
		spans = append(spans, span{begin, end, len(f.Tensors)})
		f.Tensors = append(f.Tensors, t)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrFormat, err)
	}

	slices.SortFunc(spans, func(a, b span) int {
		if a.begin != b.begin {
			return cmp.Compare(a.begin, b.begin)
		}
		return cmp.Compare(a.end, b.end)
	})
	var pos uint64
	ordered := make([]Tensor, 0, len(spans))
	for _, s := range spans {
		t := f.Tensors[s.idx]
		switch {
		case s.begin < pos:
			return nil, fmt.Errorf("%w: tensor %q overlaps the previous tensor (begins at %d, previous ends at %d)",
				ErrFormat, t.Name, s.begin, pos)
		case s.begin > pos:
			return nil, fmt.Errorf("%w: gap of %d bytes before tensor %q", ErrFormat, s.begin-pos, t.Name)
		}
		t.Data = body[s.begin:s.end:s.end]
		ordered = append(ordered, t)
		pos = s.end
	}
	if pos != uint64(len(body)) {
		return nil, fmt.Errorf("%w: %d trailing data bytes not covered by any tensor", ErrFormat, uint64(len(body))-pos)
	}
	f.Tensors = ordered
	return f, nil
}

// byteSize returns product(shape) × dtype size (for a block-quantized
// dtype: product of the leading dimensions × the blocks of the last ×
// block size), rejecting unknown dtypes, negative dimensions, excessive
// rank and overflow.
func byteSize(d DType, shape []int) (uint64, error) {
	es := d.Size()
	qf := d.QFormat()
	if es == 0 && qf == 0 {
		return 0, fmt.Errorf("%w: unknown dtype %.32q (want F32, U8, Q8_0 or Q4_0)", ErrFormat, d)
	}
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("%w: rank %d exceeds %d", ErrFormat, len(shape), MaxRank)
	}
	if qf != 0 && len(shape) == 0 {
		return 0, fmt.Errorf("%w: a %s tensor needs at least one dimension", ErrFormat, d)
	}
	n := uint64(es)
	if qf != 0 {
		n = 1
	}
	for i, dim := range shape {
		if dim < 0 {
			return 0, fmt.Errorf("%w: negative dimension in shape %v", ErrFormat, shape)
		}
		f := uint64(dim)
		if qf != 0 && i == len(shape)-1 {
			// Rows of dim values take whole blocks (no overflow: dim ≤ MaxInt).
			f = (f + tensor.QBlockLen - 1) / tensor.QBlockLen * uint64(qf.BlockBytes())
		}
		hi, lo := bits.Mul64(n, f)
		if hi != 0 || lo > math.MaxInt {
			return 0, fmt.Errorf("%w: shape %v of %s overflows", ErrFormat, shape, d)
		}
		n = lo
	}
	return n, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty tensor name", ErrFormat)
	case name == metadataKey:
		return fmt.Errorf("%w: tensor name %q is reserved", ErrFormat, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: name of %d bytes exceeds %d", ErrFormat, len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: name %q is not valid UTF-8", ErrFormat, name)
	}
	return nil
}

func checkMetaKey(k string) error {
	if k == "" || len(k) > MaxNameLen || !utf8.ValidString(k) {
		return fmt.Errorf("%w: metadata key %.40q is not 1..%d bytes of UTF-8", ErrFormat, k, MaxNameLen)
	}
	return nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}
