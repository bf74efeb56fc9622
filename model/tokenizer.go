package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Special token ids of llama2.c tokenizers.
const (
	BOS = 1
	EOS = 2
)

// Tokenizer limits for input from files and peers.
const (
	// MaxTokenLength bounds the max_token_length field of a tokenizer file.
	MaxTokenLength = 1 << 12
	// MinTokenizerVocab is the smallest vocabulary a Tokenizer accepts: the
	// three special tokens and the 256 byte-fallback pieces (ids 3..258),
	// which Encode emits for bytes that have no piece of their own.
	MinTokenizerVocab = 259
)

// Tokenizer is a llama2.c tokenizer: one piece (byte string) and score per
// token id, and the max_token_length field of its file. It is immutable
// after construction and safe for concurrent use.
type Tokenizer struct {
	pieces    []string
	scores    []float32
	maxTokLen int
	lookup    map[string]int // piece → lowest id with that piece
	// bytesOnly: the vocabulary is exactly unk, BOS, EOS and the 256 byte
	// pieces, the tokenizer of byte-level models (see Encode).
	bytesOnly bool
	// bpe is set for a byte-level BPE tokenizer (NewBPE, ReadBPE), which
	// Encode, Decode and MarshalBinary then follow; pieces hold each
	// token's bytes, scores and lookup are unused.
	bpe *bpe
	// chat is the chat format (see SetChat), "" for none. It is not part
	// of MarshalBinary; shards keep it in the head's metadata.
	chat string
}

// newTokenizer builds the lookup table. Pieces must be NUL-free.
func newTokenizer(pieces []string, scores []float32, maxTokLen int) *Tokenizer {
	t := &Tokenizer{pieces: pieces, scores: scores, maxTokLen: maxTokLen,
		lookup: make(map[string]int, len(pieces))}
	t.bytesOnly = len(pieces) == MinTokenizerVocab
	for b := 0; t.bytesOnly && b < 256; b++ {
		t.bytesOnly = pieces[3+b] == byteNames[b]
	}
	for i, p := range pieces {
		if _, dup := t.lookup[p]; !dup {
			t.lookup[p] = i
		}
	}
	return t
}

// ReadTokenizer parses a llama2.c tokenizer export (tokenizer.bin,
// tok512.bin): int32 max_token_length, then vocabSize records of float32
// score, int32 length and that many bytes. The vocabulary size is not in
// the file; it comes from the model.
//
// The input is validated: vocabSize in [MinTokenizerVocab, MaxVocab],
// max_token_length in [1, MaxTokenLength], every length in
// [0, max_token_length] and within the remaining bytes, no NaN score, no
// NUL byte in a piece (run.c treats pieces as C strings), and no bytes
// after the last record. Errors wrap ErrTokenizer or ErrTruncated.
func ReadTokenizer(data []byte, vocabSize int) (*Tokenizer, error) {
	if vocabSize < MinTokenizerVocab || vocabSize > MaxVocab {
		return nil, fmt.Errorf("%w: vocab size %d out of range [%d,%d]", ErrTokenizer, vocabSize, MinTokenizerVocab, MaxVocab)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: tokenizer needs a 4-byte max_token_length, got %d bytes", ErrTruncated, len(data))
	}
	maxLen := int64(int32(binary.LittleEndian.Uint32(data)))
	if maxLen < 1 || maxLen > MaxTokenLength {
		return nil, fmt.Errorf("%w: max_token_length %d out of range [1,%d]", ErrTokenizer, maxLen, MaxTokenLength)
	}
	// Every record takes at least 8 bytes: reject an impossible vocabulary
	// before allocating for it.
	if int64(len(data)-4) < 8*int64(vocabSize) {
		return nil, fmt.Errorf("%w: tokenizer of %d bytes cannot hold %d tokens (8 bytes each at least)",
			ErrTruncated, len(data), vocabSize)
	}
	pieces := make([]string, vocabSize)
	scores := make([]float32, vocabSize)
	off := 4
	for i := range vocabSize {
		if len(data)-off < 8 {
			return nil, fmt.Errorf("%w: token %d record header at offset %d needs 8 bytes, %d left",
				ErrTruncated, i, off, len(data)-off)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int64(int32(binary.LittleEndian.Uint32(data[off+4:])))
		off += 8
		if math.IsNaN(float64(score)) {
			return nil, fmt.Errorf("%w: token %d has a NaN score", ErrTokenizer, i)
		}
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("%w: token %d length %d out of range [0,%d]", ErrTokenizer, i, n, maxLen)
		}
		if int64(len(data)-off) < n {
			return nil, fmt.Errorf("%w: token %d needs %d bytes at offset %d, %d left",
				ErrTruncated, i, n, off, len(data)-off)
		}
		p := string(data[off : off+int(n)])
		off += int(n)
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("%w: token %d contains a NUL byte", ErrTokenizer, i)
		}
		pieces[i], scores[i] = p, score
	}
	if off != len(data) {
		return nil, fmt.Errorf("%w: tokenizer has %d bytes after token %d", ErrTrailing, len(data)-off, vocabSize-1)
	}
	return newTokenizer(pieces, scores, int(maxLen)), nil
}

// MarshalBinary encodes t in the llama2.c tokenizer format ReadTokenizer
// reads; a file read by ReadTokenizer is reproduced byte for byte. A
// byte-level BPE tokenizer is encoded in the format ReadBPE reads (see
// Format).
func (t *Tokenizer) MarshalBinary() ([]byte, error) {
	if t.bpe != nil {
		return t.marshalBPE(), nil
	}
	size := 4
	for _, p := range t.pieces {
		size += 8 + len(p)
	}
	out := make([]byte, 0, size)
	out = binary.LittleEndian.AppendUint32(out, uint32(t.maxTokLen))
	for i, p := range t.pieces {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(t.scores[i]))
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out, nil
}

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.pieces) }

// Piece returns the raw piece of token id (empty if id is out of range).
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Score returns the merge score of token id (0 if id is out of range).
func (t *Tokenizer) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// Decode returns the text of token tok following token prev, exactly as
// run.c's decode(): after BOS a leading space is dropped; a piece of the
// form "<0xHH>" stands for the raw byte 0xHH. Like run.c, the result is a C
// string: byte 0x00 decodes to "". A token outside the vocabulary decodes
// to "" (run.c would read out of bounds). A byte-level BPE token decodes
// to its raw bytes (a special token to its text) whatever prev is.
func (t *Tokenizer) Decode(prev, tok int) string {
	if t.bpe != nil {
		return t.bpeDecode(tok)
	}
	if tok < 0 || tok >= len(t.pieces) {
		return ""
	}
	p := t.pieces[tok]
	if prev == BOS && len(p) > 0 && p[0] == ' ' {
		p = p[1:]
	}
	if b, ok := parseBytePiece(p); ok {
		if b == 0 {
			return ""
		}
		return byteStrings[b]
	}
	return p
}

// byteStrings[b] is the one-byte string holding b.
var byteStrings = func() (t [256]string) {
	for i := range t {
		t[i] = string([]byte{byte(i)})
	}
	return t
}()

// parseBytePiece mimics run.c's sscanf(piece, "<0x%02hhX>", &b) == 1: the
// literal "<0x", optional white space, then a hexadecimal conversion of at
// most two characters (an optional sign counts as one) yielding at least
// one digit. What follows is not checked, as in C.
func parseBytePiece(p string) (byte, bool) {
	if !strings.HasPrefix(p, "<0x") {
		return 0, false
	}
	s := p[3:]
	for len(s) > 0 && isCSpace(s[0]) {
		s = s[1:]
	}
	width, neg := 2, false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s, width = s[1:], 1
	}
	var v, digits int
	for ; digits < width && digits < len(s); digits++ {
		d := hexVal(s[digits])
		if d < 0 {
			break
		}
		v = v*16 + d
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return byte(v), true
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// SafePrint returns what run.c's safe_printf prints for piece: nothing for
// an empty piece or for a single byte that is neither printable ASCII nor
// white space, the piece up to its first NUL byte otherwise.
func SafePrint(piece string) string {
	if i := strings.IndexByte(piece, 0); i >= 0 {
		piece = piece[:i]
	}
	if len(piece) == 1 {
		c := piece[0]
		if !((c >= 0x20 && c < 0x7f) || isCSpace(c)) {
			return ""
		}
	}
	return piece
}

// byteNames are the byte pieces "<0x00>" … "<0xFF>".
var byteNames = func() (names [256]string) {
	const hex = "0123456789ABCDEF"
	for b := range names {
		names[b] = "<0x" + string(hex[b>>4]) + string(hex[b&15]) + ">"
	}
	return names
}()
