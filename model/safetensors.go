package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Limits on a safetensors file's header.
const (
	// MaxSafetensorsHeader bounds the JSON header of a safetensors file.
	MaxSafetensorsHeader = 100 << 20
	maxSafetensorsDims   = 4
	maxSafetensorsName   = 1 << 10
)

// stTensor is one entry of a safetensors header. Offsets are relative to
// the start of the data section, which follows the header.
type stTensor struct {
	name       string
	dtype      string
	shape      []int64
	begin, end int64
}

// stFile is a parsed safetensors header.
type stFile struct {
	tensors map[string]stTensor
	dataOff int64 // absolute offset of the data section
	ra      io.ReaderAt
}

// stDtypeSize is the element size of the dtypes this package converts.
var stDtypeSize = map[string]int64{"F32": 4, "F16": 2, "BF16": 2}

// parseSafetensors reads and validates a safetensors header: an 8-byte
// little-endian length N, N bytes of JSON mapping tensor names to
// {dtype, shape, data_offsets} (plus an optional "__metadata__" map of
// strings), then the data. Every dtype must be F32, F16 or BF16, every
// extent must match its shape and lie inside the file. Data is not read.
func parseSafetensors(ra io.ReaderAt, size int64) (*stFile, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: safetensors needs an 8-byte header length, the file has %d bytes", ErrTruncated, size)
	}
	var lb [8]byte
	if _, err := ra.ReadAt(lb[:], 0); err != nil {
		return nil, fmt.Errorf("%w: safetensors header length: %v", ErrTruncated, err)
	}
	n := binary.LittleEndian.Uint64(lb[:])
	if n > MaxSafetensorsHeader {
		return nil, fmt.Errorf("%w: safetensors header length %d exceeds the limit %d", ErrFormat, n, MaxSafetensorsHeader)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("%w: safetensors header length %d, only %d bytes follow", ErrTruncated, n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := ra.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("%w: safetensors header: %v", ErrTruncated, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, fmt.Errorf("%w: safetensors header is not a JSON object: %v", ErrFormat, err)
	}
	f := &stFile{tensors: make(map[string]stTensor, len(raw)), dataOff: 8 + int64(n), ra: ra}
	dataLen := size - f.dataOff
	for name, msg := range raw {
		if name == "__metadata__" {
			var md map[string]string
			if err := json.Unmarshal(msg, &md); err != nil {
				return nil, fmt.Errorf("%w: safetensors __metadata__ must map strings to strings: %v", ErrFormat, err)
			}
			continue
		}
		if len(name) > maxSafetensorsName {
			return nil, fmt.Errorf("%w: safetensors tensor name of %d bytes, limit %d", ErrFormat, len(name), maxSafetensorsName)
		}
		var e struct {
			Dtype   *string  `json:"dtype"`
			Shape   []int64  `json:"shape"`
			Offsets []uint64 `json:"data_offsets"`
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: safetensors tensor %q: %v", ErrFormat, name, err)
		}
		if e.Dtype == nil || e.Shape == nil || len(e.Offsets) != 2 {
			return nil, fmt.Errorf("%w: safetensors tensor %q needs dtype, shape and two data_offsets", ErrFormat, name)
		}
		es, ok := stDtypeSize[*e.Dtype]
		if !ok {
			return nil, fmt.Errorf("%w: safetensors tensor %q has dtype %q; only F32, F16 and BF16 are supported",
				ErrUnsupported, name, *e.Dtype)
		}
		if len(e.Shape) > maxSafetensorsDims {
			return nil, fmt.Errorf("%w: safetensors tensor %q has %d dimensions, limit %d", ErrFormat, name, len(e.Shape), maxSafetensorsDims)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 || d > maxGGUFElems || (d > 0 && elems > maxGGUFElems/d) {
				return nil, fmt.Errorf("%w: safetensors tensor %q has shape %v: negative, or more than %d elements",
					ErrFormat, name, e.Shape, int64(maxGGUFElems))
			}
			elems *= d
		}
		b, en := e.Offsets[0], e.Offsets[1]
		if b > en || en > uint64(dataLen) {
			return nil, fmt.Errorf("%w: safetensors tensor %q has data_offsets [%d, %d] outside the %d-byte data section",
				ErrTruncated, name, b, en, dataLen)
		}
		if int64(en-b) != elems*es {
			return nil, fmt.Errorf("%w: safetensors tensor %q spans %d bytes, its shape %v of %s needs %d",
				ErrFormat, name, en-b, e.Shape, *e.Dtype, elems*es)
		}
		f.tensors[name] = stTensor{name: name, dtype: *e.Dtype, shape: e.Shape, begin: int64(b), end: int64(en)}
	}
	return f, nil
}

// floats reads tensor t as float32, converting F16 and BF16, and rejects
// NaN and infinite values.
func (f *stFile) floats(t stTensor) ([]float32, error) {
	es := stDtypeSize[t.dtype]
	n := (t.end - t.begin) / es
	out := make([]float32, 0, n)
	sr := io.NewSectionReader(f.ra, f.dataOff+t.begin, t.end-t.begin)
	buf := make([]byte, min(t.end-t.begin, 1<<16))
	for left := t.end - t.begin; left > 0; {
		k, err := io.ReadFull(sr, buf[:min(int64(len(buf)), left)])
		if err != nil {
			return nil, fmt.Errorf("%w: safetensors tensor %s: %v", ErrTruncated, t.name, err)
		}
		left -= int64(k)
		for p := buf[:k]; len(p) > 0; p = p[es:] {
			var v float32
			switch t.dtype {
			case "F32":
				v = math.Float32frombits(binary.LittleEndian.Uint32(p))
			case "F16":
				v = halfToFloat(binary.LittleEndian.Uint16(p))
			default: // BF16: the top half of a float32
				v = math.Float32frombits(uint32(binary.LittleEndian.Uint16(p)) << 16)
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: safetensors tensor %s has a non-finite value at element %d", ErrFormat, t.name, len(out))
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// writeSafetensors encodes tensors as F32 safetensors: names sorted, data
// in name order, header padded with spaces to a multiple of 8 bytes. The
// bytes depend only on the tensors and metadata.
func writeSafetensors(ts []Tensor, metadata map[string]string) ([]byte, error) {
	sorted := append([]Tensor(nil), ts...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	var hdr strings.Builder
	hdr.WriteByte('{')
	if len(metadata) > 0 {
		md, err := json.Marshal(metadata) // keys sorted
		if err != nil {
			return nil, fmt.Errorf("model: safetensors metadata: %w", err)
		}
		hdr.WriteString(`"__metadata__":`)
		hdr.Write(md)
	}
	var off int64
	for i, t := range sorted {
		elems := int64(1)
		for _, d := range t.Shape {
			elems *= int64(d)
		}
		if elems != int64(len(t.Data)) {
			return nil, fmt.Errorf("%w: tensor %s has %d values, shape %v needs %d", ErrFormat, t.Name, len(t.Data), t.Shape, elems)
		}
		if i > 0 && sorted[i-1].Name == t.Name {
			return nil, fmt.Errorf("%w: tensor %s appears twice", ErrFormat, t.Name)
		}
		name, _ := json.Marshal(t.Name)
		shape, _ := json.Marshal(t.Shape)
		if i > 0 || len(metadata) > 0 {
			hdr.WriteByte(',')
		}
		fmt.Fprintf(&hdr, `%s:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, name, shape, off, off+4*elems)
		off += 4 * elems
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	out := make([]byte, 0, 8+int64(hdr.Len())+off)
	out = binary.LittleEndian.AppendUint64(out, uint64(hdr.Len()))
	out = append(out, hdr.String()...)
	for _, t := range sorted {
		for _, v := range t.Data {
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
		}
	}
	return out, nil
}
