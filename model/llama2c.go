package model

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// llama2c header: seven little-endian int32 values.
const llama2cHeaderSize = 7 * 4

// Llama2C defaults: run.c hard-codes these.
const (
	llama2cNormEps   = 1e-5
	llama2cRopeTheta = 10000
)

// ReadLlama2C reads a llama2.c "legacy" (version 0) checkpoint: a header of
// seven int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len), then float32 arrays in llama2.c order: token embedding,
// rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3 (each stacked over layers),
// rms_final, the unused freq_cis_real/imag tables (seq_len·head_size/2
// floats each), and, when vocab_size is negative, a separate classifier
// [vocab][dim].
//
// The header is checked with Config.Validate before anything large is
// allocated. If r is an io.Seeker, its remaining length must equal the
// size the header implies (and arrays are allocated at their exact size);
// otherwise memory is allocated only as data actually arrives, so a lying
// header costs at most about twice the bytes really sent. A short input fails with ErrTruncated naming the missing
// array; extra bytes fail with ErrTrailing; NaN or infinite weights fail
// with ErrFormat. NormEps and RopeTheta are set to llama2.c's 1e-5 and
// 10000. Every block gets its own arrays (no sharing between blocks).
func ReadLlama2C(r io.Reader) (*Model, error) {
	var hdr [llama2cHeaderSize]byte
	if n, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: llama2.c header needs %d bytes, got %d", ErrTruncated, llama2cHeaderSize, n)
	}
	var h [7]int64
	for i := range h {
		h[i] = int64(int32(binary.LittleEndian.Uint32(hdr[4*i:])))
	}
	cfg := Config{
		Dim: int(h[0]), HiddenDim: int(h[1]), NLayers: int(h[2]), NHeads: int(h[3]),
		NKVHeads: int(h[4]), VocabSize: int(h[5]), SeqLen: int(h[6]),
		SharedClassifier: h[5] > 0,
		NormEps:          llama2cNormEps, RopeTheta: llama2cRopeTheta,
	}
	if h[5] < 0 {
		cfg.VocabSize = int(-h[5])
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: llama2.c header: %w", err)
	}
	want := Llama2CSize(cfg)
	if want > math.MaxInt {
		return nil, fmt.Errorf("%w: llama2.c checkpoint of %d bytes is too large for this platform", ErrConfig, want)
	}
	cr := &floatReader{r: r, off: llama2cHeaderSize}
	if s, ok := r.(io.Seeker); ok {
		sized, err := checkRemaining(s, want-llama2cHeaderSize)
		if err != nil {
			return nil, err
		}
		cr.sized = sized
	}
	m := &Model{Config: cfg, Head: &Head{}, Blocks: make([]*Block, cfg.NLayers)}
	for i := range m.Blocks {
		m.Blocks[i] = &Block{}
	}
	d, kv, hid, L := cfg.Dim, cfg.KVDim(), cfg.HiddenDim, cfg.NLayers
	var err error
	if m.Head.Embedding, err = cr.read("token_embedding_table", cfg.VocabSize*d); err != nil {
		return nil, err
	}
	perLayer := []struct {
		name string
		n    int
		dst  func(b *Block) *[]float32
	}{
		{"rms_att_weight", d, func(b *Block) *[]float32 { return &b.AttNorm }},
		{"wq", d * d, func(b *Block) *[]float32 { return &b.Wq }},
		{"wk", kv * d, func(b *Block) *[]float32 { return &b.Wk }},
		{"wv", kv * d, func(b *Block) *[]float32 { return &b.Wv }},
		{"wo", d * d, func(b *Block) *[]float32 { return &b.Wo }},
		{"rms_ffn_weight", d, func(b *Block) *[]float32 { return &b.FFNNorm }},
		{"w1", hid * d, func(b *Block) *[]float32 { return &b.W1 }},
		{"w2", d * hid, func(b *Block) *[]float32 { return &b.W2 }},
		{"w3", hid * d, func(b *Block) *[]float32 { return &b.W3 }},
	}
	for _, a := range perLayer {
		for l := range L {
			name := fmt.Sprintf("%s of layer %d", a.name, l)
			if *a.dst(m.Blocks[l]), err = cr.read(name, a.n); err != nil {
				return nil, err
			}
		}
	}
	if m.Head.FinalNorm, err = cr.read("rms_final_weight", d); err != nil {
		return nil, err
	}
	freqBytes := int64(cfg.SeqLen) * int64(cfg.HeadSize()) / 2 * 4
	for _, name := range []string{"freq_cis_real", "freq_cis_imag"} {
		if err := cr.skip(name, freqBytes); err != nil {
			return nil, err
		}
	}
	if !cfg.SharedClassifier {
		if m.Head.Classifier, err = cr.read("wcls (classifier)", cfg.VocabSize*d); err != nil {
			return nil, err
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n > 0 {
		return nil, fmt.Errorf("%w: llama2.c checkpoint continues past its expected size of %d bytes", ErrTrailing, want)
	}
	return m, nil
}

// Llama2CSize returns the exact byte size of a llama2.c legacy checkpoint
// for cfg (which must be valid).
func Llama2CSize(cfg Config) int64 {
	d, kv, hid, L := int64(cfg.Dim), int64(cfg.KVDim()), int64(cfg.HiddenDim), int64(cfg.NLayers)
	v := int64(cfg.VocabSize)
	n := v*d + L*(2*d+2*d*d+2*kv*d+3*hid*d) + d + int64(cfg.SeqLen)*int64(cfg.HeadSize())
	if !cfg.SharedClassifier {
		n += v * d
	}
	return llama2cHeaderSize + 4*n
}

// checkRemaining verifies that s holds exactly want more bytes, restoring
// its position. sized reports whether the check could be made.
func checkRemaining(s io.Seeker, want int64) (sized bool, err error) {
	cur, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return false, nil // not really seekable; fall back to streaming checks
	}
	end, err := s.Seek(0, io.SeekEnd)
	if err != nil {
		return false, nil
	}
	if _, err := s.Seek(cur, io.SeekStart); err != nil {
		return false, fmt.Errorf("model: llama2.c checkpoint: restoring read position: %w", err)
	}
	switch have := end - cur; {
	case have < want:
		return false, fmt.Errorf("%w: llama2.c checkpoint needs %d bytes after the header, has %d",
			ErrTruncated, want, have)
	case have > want:
		return false, fmt.Errorf("%w: llama2.c checkpoint has %d bytes after the header, expected %d",
			ErrTrailing, have, want)
	}
	return true, nil
}

// floatReader reads little-endian float32 arrays. Unless the input's size
// was verified (sized), an array grows only as its bytes arrive.
type floatReader struct {
	r     io.Reader
	off   int64
	buf   []byte
	sized bool
}

// chunkFloats bounds each read (and the initial allocation of an array).
const chunkFloats = 1 << 16

func (fr *floatReader) read(name string, n int) ([]float32, error) {
	if want := 4 * min(n, chunkFloats); len(fr.buf) < want {
		fr.buf = make([]byte, want)
	}
	initial := min(n, chunkFloats)
	if fr.sized {
		initial = n
	}
	out := make([]float32, 0, initial)
	for len(out) < n {
		k := min(n-len(out), chunkFloats)
		got, err := io.ReadFull(fr.r, fr.buf[:4*k])
		if err != nil {
			have := int64(len(out))*4 + int64(got)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("%w: %s needs %d bytes at offset %d, only %d present",
					ErrTruncated, name, int64(n)*4, fr.off, have)
			}
			return nil, fmt.Errorf("model: reading %s at offset %d: %w", name, fr.off, err)
		}
		for i := range k {
			v := math.Float32frombits(binary.LittleEndian.Uint32(fr.buf[4*i:]))
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: %s has a non-finite value at offset %d",
					ErrFormat, name, fr.off+int64(len(out)+i)*4)
			}
			out = append(out, v)
		}
	}
	fr.off += int64(n) * 4
	return out, nil
}

func (fr *floatReader) skip(name string, nbytes int64) error {
	got, err := io.CopyN(io.Discard, fr.r, nbytes)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: %s needs %d bytes at offset %d, only %d present",
				ErrTruncated, name, nbytes, fr.off, got)
		}
		return fmt.Errorf("model: reading %s at offset %d: %w", name, fr.off, err)
	}
	fr.off += nbytes
	return nil
}

// WriteLlama2C writes m, which must hold every block and the head, as a
// llama2.c legacy checkpoint that ReadLlama2C (and llama2.c's run.c) read
// back. The freq_cis tables, which run.c ignores, are filled with the RoPE
// cosines and sines llama2.c's exporter wrote.
func WriteLlama2C(w io.Writer, m *Model) error {
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("model: write llama2.c: %w", err)
	}
	if cfg.QKVBias || cfg.RopeScaling.Type != "" {
		return fmt.Errorf("%w: write llama2.c: the format has no q/k/v biases or RoPE scaling", ErrUnsupported)
	}
	if err := m.CheckSpan(0, cfg.NLayers); err != nil {
		return fmt.Errorf("model: write llama2.c: %w", err)
	}
	if m.Head == nil {
		return fmt.Errorf("%w: write llama2.c: model has no head", ErrFormat)
	}
	vocab := int32(cfg.VocabSize)
	if !cfg.SharedClassifier {
		vocab = -vocab
	}
	bw := &floatWriter{w: w}
	for _, v := range []int32{int32(cfg.Dim), int32(cfg.HiddenDim), int32(cfg.NLayers),
		int32(cfg.NHeads), int32(cfg.NKVHeads), vocab, int32(cfg.SeqLen)} {
		bw.u32(uint32(v))
	}
	bw.floats(m.Head.Embedding)
	for _, get := range []func(b *Block) []float32{
		func(b *Block) []float32 { return b.AttNorm }, func(b *Block) []float32 { return b.Wq },
		func(b *Block) []float32 { return b.Wk }, func(b *Block) []float32 { return b.Wv },
		func(b *Block) []float32 { return b.Wo }, func(b *Block) []float32 { return b.FFNNorm },
		func(b *Block) []float32 { return b.W1 }, func(b *Block) []float32 { return b.W2 },
		func(b *Block) []float32 { return b.W3 },
	} {
		for _, b := range m.Blocks {
			bw.floats(get(b))
		}
	}
	bw.floats(m.Head.FinalNorm)
	hs := cfg.HeadSize()
	for _, f := range []func(float64) float64{math.Cos, math.Sin} {
		for pos := range cfg.SeqLen {
			for p := range hs / 2 {
				freq := 1 / math.Pow(float64(cfg.RopeTheta), float64(2*p)/float64(hs))
				bw.u32(math.Float32bits(float32(f(float64(pos) * freq))))
			}
		}
	}
	if !cfg.SharedClassifier {
		bw.floats(m.Head.Classifier)
	}
	return bw.flush()
}

// floatWriter batches little-endian writes and remembers the first error.
type floatWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func (fw *floatWriter) u32(v uint32) {
	fw.buf = binary.LittleEndian.AppendUint32(fw.buf, v)
	if len(fw.buf) >= 1<<16 {
		fw.flush()
	}
}

func (fw *floatWriter) floats(fs []float32) {
	for _, v := range fs {
		fw.u32(math.Float32bits(v))
	}
}

func (fw *floatWriter) flush() error {
	if fw.err == nil && len(fw.buf) > 0 {
		if _, err := fw.w.Write(fw.buf); err != nil {
			fw.err = fmt.Errorf("model: write llama2.c: %w", err)
		}
	}
	fw.buf = fw.buf[:0]
	return fw.err
}
