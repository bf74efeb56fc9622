package model

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// ErrUnsupported is returned (wrapped) when a well-formed GGUF file,
// Hugging Face config.json or tokenizer.json holds something this package
// cannot run: another architecture, a quantized tensor type, an unknown
// tensor, a tokenizer model or pre-tokenizer, a RoPE scaling type.
var ErrUnsupported = errors.New("model: unsupported")

// GGUFMagic is the first four bytes of every GGUF file.
const GGUFMagic = "GGUF"

// Limits on a GGUF file's header. Together with the file size (every
// count is also checked against the bytes that remain) they bound every
// allocation a hostile header could ask for.
const (
	maxGGUFTensors   = 1 << 16
	maxGGUFKVs       = 1 << 16
	maxGGUFString    = 1 << 20 // bytes in one metadata string or key
	maxGGUFArray     = 1 << 24 // elements in one metadata array
	maxGGUFDims      = 4
	maxGGUFElems     = 1 << 40 // elements in one tensor (its bytes are then checked against the file)
	maxGGUFAlignment = 1 << 16
	ggufDefaultAlign = 32
)

// GGUF metadata value types.
const (
	ggufUint8 uint32 = iota
	ggufInt8
	ggufUint16
	ggufInt16
	ggufUint32
	ggufInt32
	ggufFloat32
	ggufBool
	ggufString
	ggufArray
	ggufUint64
	ggufInt64
	ggufFloat64
)

var ggufValueTypeNames = [...]string{"uint8", "int8", "uint16", "int16", "uint32", "int32",
	"float32", "bool", "string", "array", "uint64", "int64", "float64"}

// ggufScalarSize is the encoded size of a scalar value type (0 for string
// and array).
var ggufScalarSize = [...]int{1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8}

// ggml tensor types this reader converts.
const (
	ggmlF32 uint32 = 0
	ggmlF16 uint32 = 1
)

// ggmlTypeNames names the ggml tensor types, for error messages.
var ggmlTypeNames = map[uint32]string{0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1",
	8: "Q8_0", 9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
	23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16"}

// ggufValue is one metadata value. Integers are kept in i (signed types,
// and unsigned ones up to MaxInt64) or u (unsigned types); floats in f.
type ggufValue struct {
	typ  uint32
	i    int64
	u    uint64
	f    float64
	b    bool
	s    string
	elem uint32    // element type of an array
	strs []string  // string array
	nums []float64 // numeric or bool array (exact for every float32 and every integer below 2^53)
}

func (v ggufValue) typeName() string {
	if v.typ == ggufArray {
		return "array of " + ggufValueTypeNames[v.elem]
	}
	return ggufValueTypeNames[v.typ]
}

// ggufTensorInfo is one tensor's entry in the header.
type ggufTensorInfo struct {
	name  string
	dims  []int64 // ne0 (innermost, columns) first
	typ   uint32
	off   int64 // relative to the data section
	bytes int64
}

// ggufFile is a parsed GGUF header.
type ggufFile struct {
	version uint32
	kv      map[string]ggufValue
	tensors []ggufTensorInfo
	byName  map[string]int
	dataOff int64 // absolute offset of the data section
	size    int64
	ra      io.ReaderAt
}

// ggufReader reads the header sequentially, tracking the offset and the
// bytes left so every length can be checked before allocating.
type ggufReader struct {
	br   *bufio.Reader
	off  int64
	size int64
	buf  [8]byte
}

func (g *ggufReader) left() int64 { return g.size - g.off }

func (g *ggufReader) bytes(n int, what string) ([]byte, error) {
	var p []byte
	if n <= len(g.buf) {
		p = g.buf[:n]
	} else {
		p = make([]byte, n)
	}
	got, err := io.ReadFull(g.br, p)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: GGUF %s needs %d bytes at offset %d, only %d present",
				ErrTruncated, what, n, g.off, got)
		}
		return nil, fmt.Errorf("model: GGUF reading %s at offset %d: %w", what, g.off, err)
	}
	g.off += int64(n)
	return p, nil
}

func (g *ggufReader) u32(what string) (uint32, error) {
	p, err := g.bytes(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p), nil
}

func (g *ggufReader) u64(what string) (uint64, error) {
	p, err := g.bytes(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p), nil
}

// str reads a uint64 length and that many bytes, at most limit.
func (g *ggufReader) str(what string, limit int64) (string, error) {
	at := g.off
	n, err := g.u64(what + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(limit) {
		return "", fmt.Errorf("%w: GGUF %s at offset %d has length %d, limit %d", ErrFormat, what, at, n, limit)
	}
	if int64(n) > g.left() {
		return "", fmt.Errorf("%w: GGUF %s at offset %d has length %d, only %d bytes left",
			ErrTruncated, what, at, n, g.left())
	}
	p, err := g.bytes(int(n), what)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// scalar reads one value of scalar type typ.
func (g *ggufReader) scalar(typ uint32, what string) (ggufValue, error) {
	v := ggufValue{typ: typ}
	p, err := g.bytes(ggufScalarSize[typ], what)
	if err != nil {
		return v, err
	}
	switch typ {
	case ggufUint8:
		v.u = uint64(p[0])
	case ggufInt8:
		v.i = int64(int8(p[0]))
	case ggufUint16:
		v.u = uint64(binary.LittleEndian.Uint16(p))
	case ggufInt16:
		v.i = int64(int16(binary.LittleEndian.Uint16(p)))
	case ggufUint32:
		v.u = uint64(binary.LittleEndian.Uint32(p))
	case ggufInt32:
		v.i = int64(int32(binary.LittleEndian.Uint32(p)))
	case ggufUint64:
		v.u = binary.LittleEndian.Uint64(p)
	case ggufInt64:
		v.i = int64(binary.LittleEndian.Uint64(p))
	case ggufFloat32:
		v.f = float64(math.Float32frombits(binary.LittleEndian.Uint32(p)))
	case ggufFloat64:
		v.f = math.Float64frombits(binary.LittleEndian.Uint64(p))
	case ggufBool:
		if p[0] > 1 {
			return v, fmt.Errorf("%w: GGUF %s is a bool with byte value %d", ErrFormat, what, p[0])
		}
		v.b = p[0] == 1
	}
	if v.typ == ggufUint8 || v.typ == ggufUint16 || v.typ == ggufUint32 || v.typ == ggufUint64 {
		v.i = int64(min(v.u, math.MaxInt64))
	} else if v.typ != ggufBool && v.typ != ggufFloat32 && v.typ != ggufFloat64 {
		v.u = uint64(max(v.i, 0))
	}
	return v, nil
}

// value reads a value of type typ (arrays one level deep).
func (g *ggufReader) value(typ uint32, key string) (ggufValue, error) {
	switch {
	case typ >= uint32(len(ggufValueTypeNames)):
		return ggufValue{}, fmt.Errorf("%w: GGUF key %q has unknown value type %d", ErrFormat, key, typ)
	case typ == ggufString:
		s, err := g.str(fmt.Sprintf("value of %q", key), maxGGUFString)
		return ggufValue{typ: typ, s: s}, err
	case typ != ggufArray:
		return g.scalar(typ, fmt.Sprintf("value of %q", key))
	}
	elem, err := g.u32(fmt.Sprintf("element type of %q", key))
	if err != nil {
		return ggufValue{}, err
	}
	if elem >= uint32(len(ggufValueTypeNames)) || elem == ggufArray {
		return ggufValue{}, fmt.Errorf("%w: GGUF array %q has unsupported element type %d", ErrFormat, key, elem)
	}
	at := g.off
	n, err := g.u64(fmt.Sprintf("length of %q", key))
	if err != nil {
		return ggufValue{}, err
	}
	minSize := int64(ggufScalarSize[elem])
	if elem == ggufString {
		minSize = 8
	}
	if n > maxGGUFArray {
		return ggufValue{}, fmt.Errorf("%w: GGUF array %q at offset %d has %d elements, limit %d",
			ErrFormat, key, at, n, maxGGUFArray)
	}
	if int64(n)*minSize > g.left() {
		return ggufValue{}, fmt.Errorf("%w: GGUF array %q at offset %d has %d elements of %d+ bytes, only %d bytes left",
			ErrTruncated, key, at, n, minSize, g.left())
	}
	v := ggufValue{typ: ggufArray, elem: elem}
	if elem == ggufString {
		v.strs = make([]string, n)
		for i := range v.strs {
			if v.strs[i], err = g.str(fmt.Sprintf("element %d of %q", i, key), maxGGUFString); err != nil {
				return v, err
			}
		}
		return v, nil
	}
	v.nums = make([]float64, n)
	for i := range v.nums {
		e, err := g.scalar(elem, fmt.Sprintf("element %d of %q", i, key))
		if err != nil {
			return v, err
		}
		switch elem {
		case ggufFloat32, ggufFloat64:
			v.nums[i] = e.f
		case ggufBool:
			if e.b {
				v.nums[i] = 1
			}
		case ggufUint8, ggufUint16, ggufUint32, ggufUint64:
			v.nums[i] = float64(e.u)
		default:
			v.nums[i] = float64(e.i)
		}
	}
	return v, nil
}

// parseGGUF reads and validates the header of a GGUF v2 or v3 file: the
// metadata and the tensor infos, with every offset and size checked
// against the file. Tensor data is not read.
func parseGGUF(ra io.ReaderAt, size int64) (*ggufFile, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: GGUF size %d is negative", ErrFormat, size)
	}
	g := &ggufReader{br: bufio.NewReaderSize(io.NewSectionReader(ra, 0, size), 1<<16), size: size}
	magic, err := g.bytes(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != GGUFMagic {
		return nil, fmt.Errorf("%w: not a GGUF file: magic %q, want %q", ErrFormat, magic, GGUFMagic)
	}
	f := &ggufFile{kv: map[string]ggufValue{}, byName: map[string]int{}, size: size, ra: ra}
	if f.version, err = g.u32("version"); err != nil {
		return nil, err
	}
	if f.version != 2 && f.version != 3 {
		return nil, fmt.Errorf("%w: GGUF version %d; only versions 2 and 3 are supported", ErrUnsupported, f.version)
	}
	nt, err := g.u64("tensor count")
	if err != nil {
		return nil, err
	}
	nkv, err := g.u64("metadata count")
	if err != nil {
		return nil, err
	}
	if nt > maxGGUFTensors {
		return nil, fmt.Errorf("%w: GGUF tensor count %d exceeds the limit %d", ErrFormat, nt, maxGGUFTensors)
	}
	if nkv > maxGGUFKVs {
		return nil, fmt.Errorf("%w: GGUF metadata count %d exceeds the limit %d", ErrFormat, nkv, maxGGUFKVs)
	}
	for i := range nkv {
		key, err := g.str(fmt.Sprintf("key of metadata entry %d", i), maxGGUFString)
		if err != nil {
			return nil, err
		}
		if _, dup := f.kv[key]; dup {
			return nil, fmt.Errorf("%w: GGUF metadata key %q appears twice", ErrFormat, key)
		}
		typ, err := g.u32(fmt.Sprintf("value type of %q", key))
		if err != nil {
			return nil, err
		}
		v, err := g.value(typ, key)
		if err != nil {
			return nil, err
		}
		f.kv[key] = v
	}
	align := int64(ggufDefaultAlign)
	if v, ok := f.kv["general.alignment"]; ok {
		if v.typ != ggufUint32 || v.u == 0 || v.u > maxGGUFAlignment || v.u&(v.u-1) != 0 {
			return nil, fmt.Errorf("%w: GGUF general.alignment must be a uint32 power of two up to %d, got %s %d",
				ErrFormat, maxGGUFAlignment, v.typeName(), v.u)
		}
		align = int64(v.u)
	}
	// Every tensor info takes at least 8+4+8+4+8 bytes.
	if int64(nt)*32 > g.left() {
		return nil, fmt.Errorf("%w: GGUF declares %d tensors but only %d bytes follow the metadata",
			ErrTruncated, nt, g.left())
	}
	f.tensors = make([]ggufTensorInfo, nt)
	for i := range f.tensors {
		t := &f.tensors[i]
		if t.name, err = g.str(fmt.Sprintf("name of tensor %d", i), 1<<10); err != nil {
			return nil, err
		}
		if _, dup := f.byName[t.name]; dup {
			return nil, fmt.Errorf("%w: GGUF tensor %q appears twice", ErrFormat, t.name)
		}
		f.byName[t.name] = i
		nd, err := g.u32("dimension count of " + t.name)
		if err != nil {
			return nil, err
		}
		if nd == 0 || nd > maxGGUFDims {
			return nil, fmt.Errorf("%w: GGUF tensor %s has %d dimensions (1..%d allowed)", ErrFormat, t.name, nd, maxGGUFDims)
		}
		elems := int64(1)
		for d := range nd {
			n, err := g.u64(fmt.Sprintf("dimension %d of %s", d, t.name))
			if err != nil {
				return nil, err
			}
			if n == 0 || n > maxGGUFElems || elems > maxGGUFElems/int64(n) {
				return nil, fmt.Errorf("%w: GGUF tensor %s dimension %d is %d: zero, or more than %d elements in all",
					ErrFormat, t.name, d, n, int64(maxGGUFElems))
			}
			t.dims = append(t.dims, int64(n))
			elems *= int64(n)
		}
		if t.typ, err = g.u32("type of " + t.name); err != nil {
			return nil, err
		}
		off, err := g.u64("offset of " + t.name)
		if err != nil {
			return nil, err
		}
		switch t.typ {
		case ggmlF32:
			t.bytes = 4 * elems
		case ggmlF16:
			t.bytes = 2 * elems
		default:
			name := ggmlTypeNames[t.typ]
			if name == "" {
				name = "unknown"
			}
			return nil, fmt.Errorf("%w: GGUF tensor %s has ggml type %d (%s); only F32 (0) and F16 (1) are supported",
				ErrUnsupported, t.name, t.typ, name)
		}
		if off%uint64(align) != 0 {
			return nil, fmt.Errorf("%w: GGUF tensor %s has data offset %d, not a multiple of the alignment %d",
				ErrFormat, t.name, off, align)
		}
		if off > uint64(size) {
			return nil, fmt.Errorf("%w: GGUF tensor %s has data offset %d beyond the end of the %d-byte file",
				ErrTruncated, t.name, off, size)
		}
		t.off = int64(off)
	}
	f.dataOff = (g.off + align - 1) / align * align
	for _, t := range f.tensors {
		if avail := size - f.dataOff; f.dataOff > size || t.off > avail || t.bytes > avail-t.off {
			return nil, fmt.Errorf("%w: GGUF tensor %s needs bytes [%d, %d) of the data section at offset %d, the file has %d bytes",
				ErrTruncated, t.name, t.off, t.off+t.bytes, f.dataOff, size)
		}
	}
	return f, nil
}

// floats reads tensor t as float32, converting F16, and rejects NaN and
// infinite values.
func (f *ggufFile) floats(t ggufTensorInfo) ([]float32, error) {
	n := int(t.bytes / 4)
	if t.typ == ggmlF16 {
		n = int(t.bytes / 2)
	}
	out := make([]float32, 0, n)
	sr := io.NewSectionReader(f.ra, f.dataOff+t.off, t.bytes)
	buf := make([]byte, min(t.bytes, 1<<16))
	for int64(len(out)) < int64(n) {
		k, err := io.ReadFull(sr, buf[:min(int64(len(buf)), t.bytes-bytesRead(len(out), t.typ))])
		if err != nil {
			return nil, fmt.Errorf("%w: GGUF tensor %s at offset %d: %v", ErrTruncated, t.name, f.dataOff+t.off, err)
		}
		p := buf[:k]
		for len(p) > 0 {
			var v float32
			if t.typ == ggmlF16 {
				v = halfToFloat(binary.LittleEndian.Uint16(p))
				p = p[2:]
			} else {
				v = math.Float32frombits(binary.LittleEndian.Uint32(p))
				p = p[4:]
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: GGUF tensor %s has a non-finite value at element %d", ErrFormat, t.name, len(out))
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// bytesRead is the number of data bytes that n elements of ggml type typ take.
func bytesRead(n int, typ uint32) int64 {
	if typ == ggmlF16 {
		return 2 * int64(n)
	}
	return 4 * int64(n)
}

// halfToFloat converts an IEEE 754 binary16 value to float32 exactly.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
	case frac == 0: // zero
		return math.Float32frombits(sign)
	}
	// Subnormal half: value = frac · 2^-24, a normal float32.
	v := float32(frac) / (1 << 24)
	if sign != 0 {
		v = -v
	}
	return v
}

// equalBits reports whether a and b hold bitwise the same floats.
func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// IsGGUF reports whether head (the first bytes of a file) starts with the
// GGUF magic.
func IsGGUF(head []byte) bool { return bytes.HasPrefix(head, []byte(GGUFMagic)) }

// shapeString formats GGUF dims (ne0 first) like "[64 32]".
func shapeString(d []int64) string {
	s := make([]string, len(d))
	for i, v := range d {
		s[i] = fmt.Sprint(v)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// ReadGGUF reads a GGUF (version 2 or 3) file of architecture "llama" or
// "qwen2" with F32 or F16 tensors, such as llama.cpp's
// convert-llama2c-to-ggml output, from r, which holds size bytes. It
// returns the model and, when the file carries a vocabulary in
// tokenizer.ggml.*, its Tokenizer: for "llama" (SentencePiece) one
// equivalent to llama2.c's (see spTokenizer), for "gpt2" a byte-level BPE
// tokenizer (see bpeTokenizer); otherwise the tokenizer is nil.
//
// The config comes from the ARCH.* metadata: embedding_length,
// feed_forward_length, block_count, attention.head_count,
// attention.head_count_kv (default head_count), context_length (SeqLen),
// attention.layer_norm_rms_epsilon, rope.freq_base (default 10000) and
// rope.scaling.type ("none" or "linear" with rope.scaling.factor). A
// rope_freqs.weight tensor (llama.cpp's Llama 3.1+ frequency divisors) is
// taken as Llama 3 scaling when it matches one (see llama3Scaling). The
// vocabulary size is the row count of token_embd.weight, which must agree
// with ARCH.vocab_size and the tokenizer when they are present. "qwen2"
// models have q/k/v biases (blk.N.attn_{q,k,v}.bias).
//
// Weights are taken in the file's row order for "llama": GGUF files keep
// Meta's q/k rows (RoPE on adjacent pairs, llama.cpp's "llama" rope), so
// no permutation is undone. "qwen2" files keep Hugging Face's rows, which
// llama.cpp rotates by halves (NEOX); ReadGGUF undoes that permutation of
// the q and k weights and biases. When output.weight is absent, or
// bitwise equal to token_embd.weight (the converter writes a copy of
// llama2.c's shared table), the classifier is shared.
//
// Everything is validated before large allocations: counts and lengths
// against limits and the file size, tensor extents against the file,
// offsets against the alignment, each tensor's shape against the config
// (the error names the tensor and the metadata key), unknown tensors and
// types are rejected. Errors wrap ErrFormat, ErrTruncated, ErrConfig,
// ErrTokenizer or ErrUnsupported. Tensors are read straight from r, so
// the file is held in memory only once, as float32 weights.
func ReadGGUF(r io.ReaderAt, size int64) (*Model, *Tokenizer, error) {
	f, err := parseGGUF(r, size)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := f.llamaConfig()
	if err != nil {
		return nil, nil, err
	}
	var tok *Tokenizer
	if _, ok := f.kv["tokenizer.ggml.model"]; ok {
		if tok, err = f.tokenizer(); err != nil {
			return nil, nil, err
		}
		if tok.VocabSize() != cfg.VocabSize {
			return nil, nil, fmt.Errorf("%w: GGUF tokenizer.ggml.tokens has %d tokens, token_embd.weight has %d rows",
				ErrFormat, tok.VocabSize(), cfg.VocabSize)
		}
	}
	m, err := f.llamaWeights(&cfg)
	if err != nil {
		return nil, nil, err
	}
	return m, tok, nil
}

// uint reads an integer metadata value in [1, limit].
func (f *ggufFile) uint(key string, limit int, def int) (int, error) {
	v, ok := f.kv[key]
	if !ok {
		if def > 0 {
			return def, nil
		}
		return 0, fmt.Errorf("%w: GGUF metadata key %s is missing", ErrFormat, key)
	}
	switch v.typ {
	case ggufUint8, ggufUint16, ggufUint32, ggufUint64, ggufInt8, ggufInt16, ggufInt32, ggufInt64:
	default:
		return 0, fmt.Errorf("%w: GGUF metadata %s is a %s, want an integer", ErrFormat, key, v.typeName())
	}
	if v.i < 1 || v.i > int64(limit) {
		return 0, fmt.Errorf("%w: GGUF metadata %s = %d out of range [1, %d]", ErrConfig, key, v.i, limit)
	}
	return int(v.i), nil
}

// float reads a float metadata value.
func (f *ggufFile) float(key string, def float64) (float64, error) {
	v, ok := f.kv[key]
	if !ok {
		if def != 0 {
			return def, nil
		}
		return 0, fmt.Errorf("%w: GGUF metadata key %s is missing", ErrFormat, key)
	}
	if v.typ != ggufFloat32 && v.typ != ggufFloat64 {
		return 0, fmt.Errorf("%w: GGUF metadata %s is a %s, want a float", ErrFormat, key, v.typeName())
	}
	return v.f, nil
}

// llamaConfig builds the Config from the llama.* metadata.
func (f *ggufFile) llamaConfig() (Config, error) {
	var cfg Config
	arch, ok := f.kv["general.architecture"]
	if !ok || arch.typ != ggufString {
		return cfg, fmt.Errorf("%w: GGUF has no string general.architecture", ErrFormat)
	}
	if arch.s != "llama" && arch.s != "qwen2" {
		return cfg, fmt.Errorf("%w: GGUF architecture %q; only \"llama\" and \"qwen2\" are supported", ErrUnsupported, arch.s)
	}
	a := arch.s + "."
	cfg.QKVBias = arch.s == "qwen2"
	var err error
	ints := []struct {
		dst   *int
		key   string
		limit int
	}{
		{&cfg.Dim, a + "embedding_length", MaxDim},
		{&cfg.HiddenDim, a + "feed_forward_length", MaxHidden},
		{&cfg.NLayers, a + "block_count", MaxLayers},
		{&cfg.NHeads, a + "attention.head_count", MaxHeads},
		{&cfg.SeqLen, a + "context_length", MaxSeqLen},
	}
	for _, e := range ints {
		if *e.dst, err = f.uint(e.key, e.limit, 0); err != nil {
			return cfg, err
		}
	}
	if cfg.NKVHeads, err = f.uint(a+"attention.head_count_kv", MaxHeads, cfg.NHeads); err != nil {
		return cfg, err
	}
	eps, err := f.float(a+"attention.layer_norm_rms_epsilon", 0)
	if err != nil {
		return cfg, err
	}
	theta, err := f.float(a+"rope.freq_base", llama2cRopeTheta)
	if err != nil {
		return cfg, err
	}
	cfg.NormEps, cfg.RopeTheta = float32(eps), float32(theta)
	if v, ok := f.kv[a+"rope.scaling.type"]; ok {
		if v.typ != ggufString {
			return cfg, fmt.Errorf("%w: GGUF %srope.scaling.type is a %s, want a string", ErrFormat, a, v.typeName())
		}
		switch v.s {
		case "none":
		case RopeLinear:
			factor, err := f.float(a+"rope.scaling.factor", 0)
			if err != nil {
				return cfg, err
			}
			cfg.RopeScaling = RopeScaling{Type: RopeLinear, Factor: float32(factor)}
		default:
			return cfg, fmt.Errorf("%w: GGUF %srope.scaling.type %.40q; only \"none\" and \"linear\" (and Llama 3 rope_freqs.weight) are supported",
				ErrUnsupported, a, v.s)
		}
	}
	emb, ok := f.byName["token_embd.weight"]
	if !ok {
		return cfg, fmt.Errorf("%w: GGUF tensor token_embd.weight is missing", ErrFormat)
	}
	if d := f.tensors[emb].dims; len(d) == 2 && d[1] <= MaxVocab {
		cfg.VocabSize = int(d[1])
	} else {
		return cfg, fmt.Errorf("%w: GGUF tensor token_embd.weight has shape %s, want [%d vocab] with vocab ≤ %d",
			ErrFormat, shapeString(d), cfg.Dim, MaxVocab)
	}
	if _, ok := f.kv[a+"vocab_size"]; ok {
		n, err := f.uint(a+"vocab_size", MaxVocab, 0)
		if err != nil {
			return cfg, err
		}
		if n != cfg.VocabSize {
			return cfg, fmt.Errorf("%w: GGUF %svocab_size = %d but token_embd.weight has %d rows",
				ErrFormat, a, n, cfg.VocabSize)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("model: GGUF %s metadata: %w", arch.s, err)
	}
	if _, ok := f.kv[a+"rope.dimension_count"]; ok {
		n, err := f.uint(a+"rope.dimension_count", MaxDim, 0)
		if err != nil {
			return cfg, err
		}
		if n != cfg.HeadSize() {
			return cfg, fmt.Errorf("%w: GGUF %srope.dimension_count = %d; only RoPE over the whole head (%d) is supported",
				ErrUnsupported, a, n, cfg.HeadSize())
		}
	}
	return cfg, nil
}

// llamaWeights reads every tensor, checking its shape against cfg. It sets
// cfg.SharedClassifier.
func (f *ggufFile) llamaWeights(cfg *Config) (*Model, error) {
	d, kv, hid, v := int64(cfg.Dim), int64(cfg.KVDim()), int64(cfg.HiddenDim), int64(cfg.VocabSize)
	a := "llama."
	if cfg.QKVBias {
		a = "qwen2."
	}
	dimWhy := fmt.Sprintf("%sembedding_length=%d", a, d)
	kvWhy := fmt.Sprintf("%sattention.head_count_kv=%d", a, cfg.NKVHeads)
	hidWhy := fmt.Sprintf("%sfeed_forward_length=%d", a, hid)
	var ropeFreqs []float32
	type want struct {
		dims []int64
		why  string
		dst  *[]float32
	}
	m := &Model{Config: *cfg, Head: &Head{}, Blocks: make([]*Block, cfg.NLayers)}
	wants := map[string]want{
		"token_embd.weight":  {[]int64{d, v}, dimWhy, &m.Head.Embedding},
		"output_norm.weight": {[]int64{d}, dimWhy, &m.Head.FinalNorm},
		"output.weight":      {[]int64{d, v}, dimWhy, &m.Head.Classifier},
		"rope_freqs.weight":  {[]int64{int64(cfg.HeadSize() / 2)}, "the head size", &ropeFreqs},
	}
	for l := range m.Blocks {
		b := &Block{}
		m.Blocks[l] = b
		p := fmt.Sprintf("blk.%d.", l)
		wants[p+"attn_norm.weight"] = want{[]int64{d}, dimWhy, &b.AttNorm}
		wants[p+"attn_q.weight"] = want{[]int64{d, d}, dimWhy, &b.Wq}
		wants[p+"attn_k.weight"] = want{[]int64{d, kv}, kvWhy, &b.Wk}
		wants[p+"attn_v.weight"] = want{[]int64{d, kv}, kvWhy, &b.Wv}
		wants[p+"attn_output.weight"] = want{[]int64{d, d}, dimWhy, &b.Wo}
		wants[p+"ffn_norm.weight"] = want{[]int64{d}, dimWhy, &b.FFNNorm}
		wants[p+"ffn_gate.weight"] = want{[]int64{d, hid}, hidWhy, &b.W1}
		wants[p+"ffn_down.weight"] = want{[]int64{hid, d}, hidWhy, &b.W2}
		wants[p+"ffn_up.weight"] = want{[]int64{d, hid}, hidWhy, &b.W3}
		if cfg.QKVBias {
			wants[p+"attn_q.bias"] = want{[]int64{d}, dimWhy, &b.Bq}
			wants[p+"attn_k.bias"] = want{[]int64{kv}, kvWhy, &b.Bk}
			wants[p+"attn_v.bias"] = want{[]int64{kv}, kvWhy, &b.Bv}
		}
	}
	// Check names and shapes of every tensor before reading any data.
	for _, t := range f.tensors {
		w, ok := wants[t.name]
		if !ok {
			return nil, fmt.Errorf("%w: GGUF tensor %s is not part of a %d-block llama model", ErrUnsupported, t.name, cfg.NLayers)
		}
		if shapeString(t.dims) != shapeString(w.dims) {
			return nil, fmt.Errorf("%w: GGUF tensor %s has shape %s, want %s from %s",
				ErrFormat, t.name, shapeString(t.dims), shapeString(w.dims), w.why)
		}
	}
	for name := range wants {
		if _, ok := f.byName[name]; !ok && name != "output.weight" && name != "rope_freqs.weight" {
			return nil, fmt.Errorf("%w: GGUF tensor %s is missing", ErrFormat, name)
		}
	}
	for _, t := range f.tensors {
		data, err := f.floats(t)
		if err != nil {
			return nil, err
		}
		*wants[t.name].dst = data
	}
	if m.Head.Classifier == nil || equalBits(m.Head.Classifier, m.Head.Embedding) {
		m.Head.Classifier = nil
		m.Config.SharedClassifier = true
	}
	if cfg.QKVBias {
		// qwen2 GGUFs keep Hugging Face's q/k rows (llama.cpp runs them
		// with NEOX RoPE, rotating halves); this package rotates pairs.
		for _, b := range m.Blocks {
			b.Wq, b.Wk = unpermuteHF(b.Wq, cfg.NHeads, cfg.Dim), unpermuteHF(b.Wk, cfg.NKVHeads, cfg.Dim)
			b.Bq, b.Bk = unpermuteHF(b.Bq, cfg.NHeads, 1), unpermuteHF(b.Bk, cfg.NKVHeads, 1)
		}
	}
	if ropeFreqs != nil {
		if m.Config.RopeScaling.Type != "" {
			return nil, fmt.Errorf("%w: GGUF has both %srope.scaling.type and rope_freqs.weight", ErrFormat, a)
		}
		r, err := f.llama3Scaling(m.Config, a, ropeFreqs)
		if err != nil {
			return nil, err
		}
		m.Config.RopeScaling = r
	}
	*cfg = m.Config
	return m, nil
}

// llama3Scaling recognises a rope_freqs.weight tensor (llama.cpp's
// per-frequency divisors, which its converter writes for Llama 3.1+
// rope_scaling) as Llama 3 scaling: Factor is the largest divisor,
// LowFreqFactor 1 and HighFreqFactor 4 (every Llama 3.x release), and
// OriginalMaxPos the metadata's rope.scaling.original_context_length or
// 8192. Every divisor must agree with that scaling to 1e-4; otherwise the
// tensor is refused with ErrUnsupported, since arbitrary per-frequency
// factors are not part of Config.
func (f *ggufFile) llama3Scaling(cfg Config, a string, div []float32) (RopeScaling, error) {
	factor := float32(1)
	for _, d := range div {
		factor = max(factor, d)
	}
	if factor == 1 {
		return RopeScaling{}, nil
	}
	orig := 8192
	if _, ok := f.kv[a+"rope.scaling.original_context_length"]; ok {
		var err error
		if orig, err = f.uint(a+"rope.scaling.original_context_length", MaxSeqLen, 0); err != nil {
			return RopeScaling{}, err
		}
	}
	r := RopeScaling{Type: RopeLlama3, Factor: factor, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: orig}
	if err := r.Validate(); err != nil {
		return RopeScaling{}, fmt.Errorf("%w: GGUF rope_freqs.weight: %w", ErrUnsupported, err)
	}
	cfg.RopeScaling = RopeScaling{}
	base := make([]float32, len(div))
	cfg.RoPEFreqs(base)
	for p, d := range div {
		want := float64(base[p]) / llama3Freq(float64(base[p]), r)
		if math.Abs(float64(d)-want) > 1e-4*want || d <= 0 {
			return RopeScaling{}, fmt.Errorf("%w: GGUF rope_freqs.weight[%d] = %g, Llama 3 scaling (factor %g, low_freq_factor 1, high_freq_factor 4, original context %d) gives %g; other per-frequency RoPE factors are not supported",
				ErrUnsupported, p, d, factor, orig, want)
		}
	}
	return r, nil
}
