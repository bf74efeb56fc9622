package model

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// Limits on a byte-level BPE tokenizer read from a file or a peer.
const (
	// MaxMerges bounds the merge list (Llama 3 has 280,147, Qwen2 151,387).
	MaxMerges = 1 << 22
	// minBPEVocab: every byte needs a token of its own.
	minBPEVocab = 256
)

// BPEKind is the kind of a byte-level BPE vocabulary entry.
type BPEKind uint8

const (
	// BPEUnused: an id with no token (padding up to the model's vocabulary,
	// reserved slots). Encode never produces it; it decodes to "".
	BPEUnused BPEKind = iota
	// BPENormal: Text is in GPT-2's byte-to-unicode form ("Ġthe" for
	// " the"); the token stands for the bytes it maps back to.
	BPENormal
	// BPESpecial: an added or control token ("<|begin_of_text|>"). Its Text
	// is verbatim; Encode matches it verbatim in the input before
	// pre-tokenizing, and Decode returns it.
	BPESpecial
)

// BPEToken is one vocabulary entry of a byte-level BPE tokenizer.
type BPEToken struct {
	Text string
	Kind BPEKind
}

// BPEConfig describes a byte-level BPE tokenizer (GPT-2, Llama 3, Qwen2).
// BOS and EOS are −1 when the vocabulary has none.
type BPEConfig struct {
	Tokens []BPEToken // by id; the vocabulary size is len(Tokens)
	// Merges by rank: each pair names two normal tokens whose
	// concatenation is a normal token.
	Merges [][2]string
	// Pre is the pre-tokenizer: PreGPT2, PreLlama3 or PreQwen2.
	Pre string
	// IgnoreMerges: a chunk that is a token as a whole becomes that token
	// without merging (Llama 3's tokenizer.json, tiktoken).
	IgnoreMerges bool
	// AddPrefixSpace: a space is put before text that does not start with
	// one (the ByteLevel pre-tokenizer option, GPT-2 style models).
	AddPrefixSpace bool
	// NFC: text between special tokens is put in Unicode normal form C
	// first (Qwen2's normalizer).
	NFC      bool
	BOS, EOS int   // −1 when the vocabulary has none
	AddBOS   bool  // Encode(text, true, …) puts BOS first
	Stop     []int // more ids that end generation (end of turn)
}

// bpe is the state of a byte-level BPE Tokenizer. Token bytes live in
// Tokenizer.pieces: the raw bytes of a normal token, the text of a special
// one, "" for an unused id.
type bpe struct {
	cfg    BPEConfig // Tokens and Merges nil: they live in kinds, pieces, mergeIDs
	kinds  []BPEKind
	lookup map[string]int32 // raw bytes → id of normal tokens
	byteID [256]int32
	merges map[uint64]bpeMerge // left<<32 | right
	// mergeIDs are the merges by rank as (left, right) ids, for MarshalBinary.
	mergeIDs [][2]int32
	// special[b] lists the special tokens starting with byte b, longest first.
	special [256][]int32
}

type bpeMerge struct{ rank, id int32 }

// byteToRune is GPT-2's bytes_to_unicode: the printable bytes '!'..'~',
// '¡'..'¬' and '®'..'ÿ' stand for themselves, the other 68 bytes for
// U+0100, U+0101, … in byte order; runeToByte is its inverse.
var byteToRune, runeToByte = func() (b2r [256]rune, r2b map[rune]byte) {
	r2b = make(map[rune]byte, 256)
	n := rune(0)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = 256 + n
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

// ByteLevelEncode maps raw bytes to GPT-2's byte-to-unicode form, the
// form of normal tokens in tokenizer.json and GGUF vocabularies.
func ByteLevelEncode(raw string) string {
	var sb strings.Builder
	for i := 0; i < len(raw); i++ {
		sb.WriteRune(byteToRune[raw[i]])
	}
	return sb.String()
}

// byteLevelDecode maps a token in byte-to-unicode form back to its bytes.
func byteLevelDecode(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := runeToByte[r]
		if !ok {
			return "", false
		}
		out = append(out, b)
	}
	return string(out), true
}

// NewBPE builds a byte-level BPE tokenizer. Everything is validated, so a
// vocabulary from a file or a peer cannot make Encode fail or loop: the
// size in [256, MaxVocab], merges at most MaxMerges, every text at most
// MaxTokenLength bytes, normal tokens in byte-to-unicode form and
// distinct, every byte a normal token of its own, special tokens
// non-empty, merges naming normal tokens whose concatenation is one,
// BOS, EOS and stop ids in range and not unused. Errors wrap
// ErrTokenizer and name the token or merge that is wrong.
func NewBPE(c BPEConfig) (*Tokenizer, error) {
	n := len(c.Tokens)
	if n < minBPEVocab || n > MaxVocab {
		return nil, fmt.Errorf("%w: BPE vocabulary has %d tokens, want %d..%d", ErrTokenizer, n, minBPEVocab, MaxVocab)
	}
	if len(c.Merges) > MaxMerges {
		return nil, fmt.Errorf("%w: BPE has %d merges, limit %d", ErrTokenizer, len(c.Merges), MaxMerges)
	}
	pieces := make([]string, n)
	kinds := make([]BPEKind, n)
	for i, t := range c.Tokens {
		if len(t.Text) > MaxTokenLength {
			return nil, fmt.Errorf("%w: BPE token %d is %d bytes long, limit %d", ErrTokenizer, i, len(t.Text), MaxTokenLength)
		}
		switch t.Kind {
		case BPEUnused:
		case BPENormal:
			raw, ok := byteLevelDecode(t.Text)
			if !ok || raw == "" {
				return nil, fmt.Errorf("%w: BPE token %d %.40q is not in byte-level (GPT-2 byte-to-unicode) form", ErrTokenizer, i, t.Text)
			}
			pieces[i] = raw
		case BPESpecial:
			if t.Text == "" {
				return nil, fmt.Errorf("%w: BPE special token %d is empty", ErrTokenizer, i)
			}
			pieces[i] = t.Text
		default:
			return nil, fmt.Errorf("%w: BPE token %d has unknown kind %d", ErrTokenizer, i, t.Kind)
		}
		kinds[i] = t.Kind
	}
	mergeIDs := make([][2]int32, 0, len(c.Merges))
	b, err := newBPE(c, pieces, kinds, func(lookup map[string]int32) ([][2]int32, error) {
		for r, m := range c.Merges {
			var ids [2]int32
			for k, s := range m {
				raw, ok := byteLevelDecode(s)
				id, found := lookup[raw]
				if !ok || !found {
					return nil, fmt.Errorf("%w: BPE merge %d (%.40q %.40q): %.40q is not a token of the vocabulary",
						ErrTokenizer, r, m[0], m[1], s)
				}
				ids[k] = id
			}
			mergeIDs = append(mergeIDs, ids)
		}
		return mergeIDs, nil
	})
	if err != nil {
		return nil, err
	}
	return &Tokenizer{pieces: pieces, bpe: b}, nil
}

// newBPE validates and indexes a vocabulary of raw pieces; merges returns
// the merge pairs as ids, given the lookup of normal tokens.
func newBPE(c BPEConfig, pieces []string, kinds []BPEKind, merges func(map[string]int32) ([][2]int32, error)) (*bpe, error) {
	n := len(pieces)
	switch c.Pre {
	case PreGPT2, PreLlama3, PreQwen2:
	default:
		return nil, fmt.Errorf("%w: BPE pre-tokenizer %q; known: %s, %s, %s", ErrUnsupported, c.Pre, PreGPT2, PreLlama3, PreQwen2)
	}
	b := &bpe{kinds: kinds, lookup: make(map[string]int32, n), merges: map[uint64]bpeMerge{}}
	for i, p := range pieces {
		switch kinds[i] {
		case BPENormal:
			if j, dup := b.lookup[p]; dup {
				return nil, fmt.Errorf("%w: BPE tokens %d and %d are both %.40q", ErrTokenizer, j, i, ByteLevelEncode(p))
			}
			b.lookup[p] = int32(i)
		case BPESpecial:
			b.special[p[0]] = append(b.special[p[0]], int32(i))
		}
	}
	for k := range b.special {
		slices.SortStableFunc(b.special[k], func(x, y int32) int { return len(pieces[y]) - len(pieces[x]) })
	}
	for by := range 256 {
		id, ok := b.lookup[byteStrings[by]]
		if !ok {
			return nil, fmt.Errorf("%w: BPE vocabulary has no token for byte 0x%02X (%q); byte-level BPE needs all 256",
				ErrTokenizer, by, string(byteToRune[by]))
		}
		b.byteID[by] = id
	}
	ids, err := merges(b.lookup)
	if err != nil {
		return nil, err
	}
	if len(ids) > MaxMerges {
		return nil, fmt.Errorf("%w: BPE has %d merges, limit %d", ErrTokenizer, len(ids), MaxMerges)
	}
	for r, m := range ids {
		for _, id := range m {
			if id < 0 || int(id) >= n || kinds[id] != BPENormal {
				return nil, fmt.Errorf("%w: BPE merge %d names token %d, not a normal token", ErrTokenizer, r, id)
			}
		}
		joined := pieces[m[0]] + pieces[m[1]]
		id, ok := b.lookup[joined]
		if !ok {
			return nil, fmt.Errorf("%w: BPE merge %d (%.40q %.40q): the merged token %.40q is not in the vocabulary",
				ErrTokenizer, r, ByteLevelEncode(pieces[m[0]]), ByteLevelEncode(pieces[m[1]]), ByteLevelEncode(joined))
		}
		key := uint64(m[0])<<32 | uint64(m[1])
		if _, dup := b.merges[key]; !dup { // the first (best) rank counts
			b.merges[key] = bpeMerge{rank: int32(r), id: id}
		}
	}
	b.mergeIDs = ids
	for _, s := range []struct {
		name string
		id   int
	}{{"BOS", c.BOS}, {"EOS", c.EOS}} {
		if s.id < -1 || s.id >= n || (s.id >= 0 && kinds[s.id] == BPEUnused) {
			return nil, fmt.Errorf("%w: BPE %s id %d is not a token of the %d-token vocabulary", ErrTokenizer, s.name, s.id, n)
		}
	}
	if c.AddBOS && c.BOS < 0 {
		return nil, fmt.Errorf("%w: BPE adds a BOS token but has none", ErrTokenizer)
	}
	if len(c.Stop) > 256 {
		return nil, fmt.Errorf("%w: BPE has %d stop tokens, limit 256", ErrTokenizer, len(c.Stop))
	}
	for _, id := range c.Stop {
		if id < 0 || id >= n || kinds[id] == BPEUnused {
			return nil, fmt.Errorf("%w: BPE stop id %d is not a token of the %d-token vocabulary", ErrTokenizer, id, n)
		}
	}
	b.cfg = c
	b.cfg.Tokens, b.cfg.Merges = nil, nil
	b.cfg.Stop = slices.Clone(c.Stop)
	slices.Sort(b.cfg.Stop)
	b.cfg.Stop = slices.Compact(b.cfg.Stop)
	return b, nil
}

// encode is Tokenizer.Encode for byte-level BPE: BOS (if bos and the
// tokenizer adds one), then for each stretch of text between special
// tokens (matched verbatim, leftmost, longest first) the optional prefix
// space, the pre-tokenizer's chunks and BPE within each chunk (lowest
// merge rank first, leftmost on a tie), then EOS if eos and there is one.
func (b *bpe) encode(pieces []string, text string, bos, eos bool) []int {
	toks := make([]int, 0, len(text)/3+2)
	if bos && b.cfg.AddBOS {
		toks = append(toks, b.cfg.BOS)
	}
	var scratch bpeScratch
	plain := func(s string) {
		if s == "" {
			return
		}
		if b.cfg.NFC {
			s = norm.NFC.String(s)
		}
		if b.cfg.AddPrefixSpace && s[0] != ' ' {
			s = " " + s
		}
		preSplit(b.cfg.Pre, s, func(chunk string) { toks = b.word(&scratch, pieces, chunk, toks) })
	}
	start := 0
	for i := 0; i < len(text); {
		id := b.specialAt(pieces, text, i)
		if id < 0 {
			i++
			continue
		}
		plain(text[start:i])
		toks = append(toks, int(id))
		i += len(pieces[id])
		start = i
	}
	plain(text[start:])
	if eos && b.cfg.EOS >= 0 {
		toks = append(toks, b.cfg.EOS)
	}
	return toks
}

// specialAt returns the longest special token at text[i:], or −1.
func (b *bpe) specialAt(pieces []string, text string, i int) int32 {
	for _, id := range b.special[text[i]] {
		if strings.HasPrefix(text[i:], pieces[id]) {
			return id
		}
	}
	return -1
}

// bpeScratch is reused across the chunks of one Encode.
type bpeScratch struct {
	ids, next, prev []int
	heap            mergeHeap
}

// word appends the tokens of one pre-tokenized chunk to toks.
func (b *bpe) word(s *bpeScratch, pieces []string, chunk string, toks []int) []int {
	if b.cfg.IgnoreMerges || len(chunk) == 1 {
		if id, ok := b.lookup[chunk]; ok {
			return append(toks, int(id))
		}
	}
	n := len(chunk)
	ids, next, prev := s.ids[:0], s.next[:0], s.prev[:0]
	for i := 0; i < n; i++ {
		ids = append(ids, int(b.byteID[chunk[i]]))
		next = append(next, i+1)
		prev = append(prev, i-1)
	}
	next[n-1] = -1
	h := s.heap[:0]
	push := func(i int) {
		if i < 0 || next[i] < 0 {
			return
		}
		m, ok := b.merges[uint64(ids[i])<<32|uint64(ids[next[i]])]
		if !ok {
			return
		}
		// Lower rank first: the heap puts the highest score first.
		h.push(mergeCand{score: -float32(m.rank), pos: i, left: ids[i], right: ids[next[i]], id: int(m.id)})
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	for len(h) > 0 {
		c := h.pop()
		i := c.pos
		j := next[i]
		if ids[i] != c.left || j < 0 || ids[j] != c.right || ids[i] < 0 {
			continue
		}
		ids[i] = c.id
		ids[j] = -1 // dead
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	for i := 0; i >= 0; i = next[i] {
		toks = append(toks, ids[i])
	}
	s.ids, s.next, s.prev, s.heap = ids, next, prev, h
	return toks
}

// bpeDecode returns what a byte-level BPE token stands for: the raw bytes
// of a normal token, the text of a special one, "" for an unused id.
func (t *Tokenizer) bpeDecode(tok int) string {
	if tok < 0 || tok >= len(t.pieces) {
		return ""
	}
	return t.pieces[tok]
}
