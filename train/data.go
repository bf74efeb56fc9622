package train

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/strata-mesh/strata/model"
)

// MaxCorpusBytes bounds the total size of the texts of one corpus.
const MaxCorpusBytes = 1 << 30

// ByteVocab is the smallest vocabulary of a byte-level model: the
// token ids of model.ByteTokenizer's special tokens and byte pieces
// (0 unk, 1 BOS, 2 EOS, 3+b the byte b).
const ByteVocab = model.MinTokenizerVocab

// maxBadFraction is the share of invalid-UTF-8 or control bytes above
// which a text is taken for binary data.
const maxBadFraction = 0.10

// Options says how NewCorpus turns texts into documents and tokens.
type Options struct {
	// Tokenizer encodes documents for an imported model (llama2.c
	// Tokenizer.Encode with BOS). Nil means byte-level tokens for a new
	// model: BOS, then byte+3 for each byte — model.ByteTokenizer's ids.
	Tokenizer *model.Tokenizer
	// BlankLines splits each text into documents at blank lines (lines
	// of only spaces and tabs); otherwise each text is one document.
	BlankLines bool
}

// Corpus is tokenized training text: one token stream, the concatenation
// of its documents, each starting with BOS. It is immutable and safe for
// concurrent use; Split and HoldOut share its tokens.
type Corpus struct {
	toks  []int32
	docs  []int // start of each document in toks, ascending, docs[0] == 0
	vocab int   // token ids are < vocab
}

// ValidateText reports whether text looks like text: non-empty, not only
// whitespace, no NUL byte, and at most 10% of its bytes invalid UTF-8 or
// control characters other than tab, newline, carriage return, vertical
// tab and form feed. Errors wrap ErrEmpty or ErrBinary.
func ValidateText(text []byte) error {
	if len(bytes.TrimSpace(text)) == 0 {
		if len(text) == 0 {
			return fmt.Errorf("%w: the text is empty", ErrEmpty)
		}
		return fmt.Errorf("%w: the text is only whitespace (%d bytes)", ErrEmpty, len(text))
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		return fmt.Errorf("%w: NUL byte at offset %d; this is not a text file", ErrBinary, i)
	}
	bad := 0
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			bad++
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\v' && r != '\f',
			r == 0x7f, r >= 0x80 && r < 0xa0:
			bad += n
		}
		i += n
	}
	if float64(bad) > maxBadFraction*float64(len(text)) {
		return fmt.Errorf("%w: %d of %d bytes (%.0f%%) are invalid UTF-8 or control characters; this is not a text file",
			ErrBinary, bad, len(text), 100*float64(bad)/float64(len(text)))
	}
	return nil
}

// NewCorpus validates and tokenizes texts (typically one per file). A text
// that fails ValidateText fails the whole corpus, with its index in the
// error; so does a total above MaxCorpusBytes or no texts at all.
func NewCorpus(texts [][]byte, opt Options) (*Corpus, error) {
	if len(texts) == 0 {
		return nil, fmt.Errorf("%w: no texts", ErrEmpty)
	}
	total := 0
	for i, t := range texts {
		total += len(t)
		if total > MaxCorpusBytes {
			return nil, fmt.Errorf("%w: texts exceed %d bytes at text %d", ErrTooLarge, MaxCorpusBytes, i)
		}
		if err := ValidateText(t); err != nil {
			return nil, fmt.Errorf("train: text %d: %w", i, err)
		}
	}
	c := &Corpus{vocab: ByteVocab}
	if opt.Tokenizer != nil {
		c.vocab = opt.Tokenizer.VocabSize()
	} else {
		c.toks = make([]int32, 0, total+len(texts))
	}
	for _, t := range texts {
		docs := [][]byte{t}
		if opt.BlankLines {
			docs = splitBlankLines(t)
		}
		for _, d := range docs {
			c.docs = append(c.docs, len(c.toks))
			if opt.Tokenizer == nil {
				c.toks = append(c.toks, model.BOS)
				for _, b := range d {
					c.toks = append(c.toks, int32(b)+3)
				}
				continue
			}
			for _, id := range opt.Tokenizer.Encode(string(d), true, false) {
				c.toks = append(c.toks, int32(id))
			}
		}
	}
	return c, nil
}

// splitBlankLines cuts text into documents at runs of blank lines. Each
// document is a run of non-blank lines with their line endings; text
// that is only blank lines yields none (ValidateText rejected it).
func splitBlankLines(text []byte) [][]byte {
	var docs [][]byte
	start := -1 // start of the current document, or -1 between documents
	for off := 0; off < len(text); {
		end := bytes.IndexByte(text[off:], '\n')
		if end < 0 {
			end = len(text)
		} else {
			end += off + 1
		}
		line := text[off:end]
		blank := len(bytes.Trim(line, " \t\r\n")) == 0
		switch {
		case blank && start >= 0:
			docs = append(docs, text[start:off])
			start = -1
		case !blank && start < 0:
			start = off
		}
		off = end
	}
	if start >= 0 {
		docs = append(docs, text[start:])
	}
	return docs
}

// Tokens returns the number of tokens.
func (c *Corpus) Tokens() int { return len(c.toks) }

// Docs returns the number of documents.
func (c *Corpus) Docs() int { return len(c.docs) }

// Vocab returns the vocabulary size the tokens were encoded for (every
// token id is below it): ByteVocab for byte-level tokens, else the
// tokenizer's. A model trained on the corpus needs at least this many.
func (c *Corpus) Vocab() int { return c.vocab }

// Doc returns the tokens of document i (0 ≤ i < Docs()), BOS first, as
// ints ready for the model. It panics if i is out of range.
func (c *Corpus) Doc(i int) []int {
	end := len(c.toks)
	if i+1 < len(c.docs) {
		end = c.docs[i+1]
	}
	out := make([]int, end-c.docs[i])
	for j, t := range c.toks[c.docs[i]:end] {
		out[j] = int(t)
	}
	return out
}
