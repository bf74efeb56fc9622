package model

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// Tokenizer formats, as a head shard names them.
const (
	// TokenizerLlama2C is llama2.c's tokenizer.bin (ReadTokenizer).
	TokenizerLlama2C = "llama2c"
	// TokenizerBPE is this package's byte-level BPE format (ReadBPE).
	TokenizerBPE = "bpe"
)

// bpeMagic starts the byte-level BPE format. Read as llama2.c's int32
// max_token_length it is far beyond MaxTokenLength, so neither reader
// accepts the other's bytes.
const bpeMagic = "SBPE"

const bpeVersion = 1

// Flags of the BPE format.
const (
	bpeFlagIgnoreMerges = 1 << iota
	bpeFlagPrefixSpace
	bpeFlagAddBOS
	bpeFlagNFC
)

// Format returns the tokenizer's format name: TokenizerBPE for byte-level
// BPE, TokenizerLlama2C otherwise.
func (t *Tokenizer) Format() string {
	if t.bpe != nil {
		return TokenizerBPE
	}
	return TokenizerLlama2C
}

// ReadTokenizerFormat reads a tokenizer in the named format (Format's
// names) for a model of vocabSize tokens.
func ReadTokenizerFormat(format string, data []byte, vocabSize int) (*Tokenizer, error) {
	switch format {
	case TokenizerLlama2C:
		return ReadTokenizer(data, vocabSize)
	case TokenizerBPE:
		return ReadBPE(data, vocabSize)
	}
	return nil, fmt.Errorf("%w: tokenizer format %.40q; known: %q, %q", ErrTokenizer, format, TokenizerLlama2C, TokenizerBPE)
}

// marshalBPE encodes a byte-level BPE tokenizer, little-endian:
//
//	"SBPE", uint32 version (1)
//	uint8 pre-tokenizer (0 gpt2, 1 llama3, 2 qwen2), uint8 flags
//	  (1 ignore merges, 2 prefix space, 4 add BOS, 8 NFC), 2 zero bytes
//	int32 BOS, int32 EOS (−1: none)
//	uint32 n, n × uint32 stop ids (ascending)
//	uint32 vocabulary size, per token: uint8 kind (0 unused, 1 normal,
//	  2 special), uint32 length, the raw bytes (normal) or text (special)
//	uint32 merges, per merge by rank: uint32 left id, uint32 right id
//
// The output depends only on the tokenizer, so equal tokenizers give equal
// bytes (and equal head shard CIDs).
func (t *Tokenizer) marshalBPE() []byte {
	b := t.bpe
	size := 28 + 4*len(b.cfg.Stop) + 8*len(b.mergeIDs)
	for _, p := range t.pieces {
		size += 5 + len(p)
	}
	out := make([]byte, 0, size)
	out = append(out, bpeMagic...)
	out = binary.LittleEndian.AppendUint32(out, bpeVersion)
	var flags byte
	if b.cfg.IgnoreMerges {
		flags |= bpeFlagIgnoreMerges
	}
	if b.cfg.AddPrefixSpace {
		flags |= bpeFlagPrefixSpace
	}
	if b.cfg.AddBOS {
		flags |= bpeFlagAddBOS
	}
	if b.cfg.NFC {
		flags |= bpeFlagNFC
	}
	out = append(out, byte(slices.Index(preTokenizerCode, b.cfg.Pre)), flags, 0, 0)
	out = binary.LittleEndian.AppendUint32(out, uint32(int32(b.cfg.BOS)))
	out = binary.LittleEndian.AppendUint32(out, uint32(int32(b.cfg.EOS)))
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.cfg.Stop)))
	for _, id := range b.cfg.Stop {
		out = binary.LittleEndian.AppendUint32(out, uint32(id))
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(t.pieces)))
	for i, p := range t.pieces {
		out = append(out, byte(b.kinds[i]))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	out = binary.LittleEndian.AppendUint32(out, uint32(len(b.mergeIDs)))
	for _, m := range b.mergeIDs {
		out = binary.LittleEndian.AppendUint32(out, uint32(m[0]))
		out = binary.LittleEndian.AppendUint32(out, uint32(m[1]))
	}
	return out
}

// bpeReader reads the BPE format with every length checked first.
type bpeReader struct {
	data []byte
	off  int
	err  error
}

func (r *bpeReader) u32(what string) uint32 {
	if r.err != nil {
		return 0
	}
	if len(r.data)-r.off < 4 {
		r.err = fmt.Errorf("%w: BPE tokenizer %s at offset %d needs 4 bytes, %d left", ErrTruncated, what, r.off, len(r.data)-r.off)
		return 0
	}
	v := binary.LittleEndian.Uint32(r.data[r.off:])
	r.off += 4
	return v
}

// count reads a uint32 count of items of at least size bytes each, at
// most limit.
func (r *bpeReader) count(what string, size, limit int) int {
	n := r.u32(what)
	if r.err != nil {
		return 0
	}
	if int64(n) > int64(limit) {
		r.err = fmt.Errorf("%w: BPE tokenizer has %d %s, limit %d", ErrTokenizer, n, what, limit)
		return 0
	}
	if int64(n)*int64(size) > int64(len(r.data)-r.off) {
		r.err = fmt.Errorf("%w: BPE tokenizer declares %d %s of %d+ bytes, %d bytes left", ErrTruncated, n, what, size, len(r.data)-r.off)
		return 0
	}
	return int(n)
}

// ReadBPE parses the byte-level BPE format MarshalBinary writes for a
// model of vocabSize tokens (the format's own size must equal it). Counts
// are bounded by the limits of NewBPE and by the bytes present before
// anything is allocated, and the result is validated as NewBPE validates
// (every byte a token, merges of tokens into a token, special ids in
// range). Errors wrap ErrTokenizer, ErrTruncated, ErrTrailing or
// ErrUnsupported.
func ReadBPE(data []byte, vocabSize int) (*Tokenizer, error) {
	if len(data) < 16 || string(data[:4]) != bpeMagic {
		return nil, fmt.Errorf("%w: not a BPE tokenizer (want magic %q and a 16-byte header)", ErrTokenizer, bpeMagic)
	}
	r := &bpeReader{data: data, off: 4}
	if v := r.u32("version"); v != bpeVersion {
		return nil, fmt.Errorf("%w: BPE tokenizer version %d; only %d is known", ErrUnsupported, v, bpeVersion)
	}
	code, flags := int(data[8]), data[9]
	r.off = 12
	if code >= len(preTokenizerCode) {
		return nil, fmt.Errorf("%w: BPE pre-tokenizer code %d is unknown", ErrUnsupported, code)
	}
	if flags&^(bpeFlagIgnoreMerges|bpeFlagPrefixSpace|bpeFlagAddBOS|bpeFlagNFC) != 0 || data[10] != 0 || data[11] != 0 {
		return nil, fmt.Errorf("%w: BPE tokenizer flags %#x %#x %#x: unknown bits", ErrTokenizer, flags, data[10], data[11])
	}
	c := BPEConfig{
		Pre: preTokenizerCode[code], IgnoreMerges: flags&bpeFlagIgnoreMerges != 0,
		AddPrefixSpace: flags&bpeFlagPrefixSpace != 0, AddBOS: flags&bpeFlagAddBOS != 0, NFC: flags&bpeFlagNFC != 0,
	}
	c.BOS = int(int32(r.u32("BOS id")))
	c.EOS = int(int32(r.u32("EOS id")))
	ns := r.count("stop ids", 4, 256)
	for range ns {
		c.Stop = append(c.Stop, int(r.u32("stop id")))
	}
	n := r.count("tokens", 5, MaxVocab)
	if r.err != nil {
		return nil, r.err
	}
	if n != vocabSize {
		return nil, fmt.Errorf("%w: BPE tokenizer has %d tokens, the model %d", ErrTokenizer, n, vocabSize)
	}
	pieces := make([]string, n)
	kinds := make([]BPEKind, n)
	for i := range n {
		if len(data)-r.off < 5 {
			return nil, fmt.Errorf("%w: BPE token %d at offset %d needs 5 bytes, %d left", ErrTruncated, i, r.off, len(data)-r.off)
		}
		k := BPEKind(data[r.off])
		r.off++
		l := r.u32("token length")
		if l > MaxTokenLength {
			return nil, fmt.Errorf("%w: BPE token %d is %d bytes long, limit %d", ErrTokenizer, i, l, MaxTokenLength)
		}
		if int(l) > len(data)-r.off {
			return nil, fmt.Errorf("%w: BPE token %d needs %d bytes at offset %d, %d left", ErrTruncated, i, l, r.off, len(data)-r.off)
		}
		p := string(data[r.off : r.off+int(l)])
		r.off += int(l)
		switch {
		case k > BPESpecial:
			return nil, fmt.Errorf("%w: BPE token %d has unknown kind %d", ErrTokenizer, i, k)
		case k == BPEUnused && p != "":
			return nil, fmt.Errorf("%w: BPE token %d is unused but has %d bytes", ErrTokenizer, i, len(p))
		case k != BPEUnused && p == "":
			return nil, fmt.Errorf("%w: BPE token %d is empty", ErrTokenizer, i)
		}
		pieces[i], kinds[i] = p, k
	}
	nm := r.count("merges", 8, MaxMerges)
	if r.err != nil {
		return nil, r.err
	}
	ids := make([][2]int32, nm)
	for i := range ids {
		ids[i] = [2]int32{int32(r.u32("merge")), int32(r.u32("merge"))}
		for _, id := range ids[i] {
			if id < 0 || int(id) >= n {
				return nil, fmt.Errorf("%w: BPE merge %d names token %d, outside the %d-token vocabulary", ErrTokenizer, i, uint32(id), n)
			}
		}
	}
	if r.off != len(data) {
		return nil, fmt.Errorf("%w: BPE tokenizer has %d bytes after its last merge", ErrTrailing, len(data)-r.off)
	}
	b, err := newBPE(c, pieces, kinds, func(map[string]int32) ([][2]int32, error) { return ids, nil })
	if err != nil {
		return nil, err
	}
	return &Tokenizer{pieces: pieces, bpe: b}, nil
}
