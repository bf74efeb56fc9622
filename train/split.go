package train

import (
	"fmt"
	"math"
	"sort"
)

// SplitMode says how Split divides a corpus among participants.
type SplitMode int

const (
	// ByDocuments gives part i the documents [i·D/parts, (i+1)·D/parts)
	// of the D documents, whole and in order.
	ByDocuments SplitMode = iota
	// ByRange gives part i the tokens [i·T/parts, (i+1)·T/parts) of the
	// T-token stream, cutting documents where the ranges fall.
	ByRange
)

func (m SplitMode) String() string {
	switch m {
	case ByDocuments:
		return "documents"
	case ByRange:
		return "range"
	}
	return fmt.Sprintf("SplitMode(%d)", int(m))
}

// minPartTokens is the fewest tokens of a usable part: one input token and
// its target.
const minPartTokens = 2

// Split returns part i of parts disjoint parts of c; together the parts
// cover every token exactly once, in order. It fails with ErrSplit if
// parts < 1, i is not in [0, parts), the mode is unknown, there are fewer
// documents than parts (ByDocuments), or a part would hold fewer than 2
// tokens.
func (c *Corpus) Split(parts, i int, mode SplitMode) (*Corpus, error) {
	if parts < 1 || i < 0 || i >= parts {
		return nil, fmt.Errorf("%w: part %d of %d", ErrSplit, i, parts)
	}
	var lo, hi int
	switch mode {
	case ByDocuments:
		d := len(c.docs)
		if d < parts {
			return nil, fmt.Errorf("%w: %d documents cannot be split into %d parts; split by range, or give more documents",
				ErrSplit, d, parts)
		}
		lo, hi = c.docStart(i*d/parts), c.docStart((i+1)*d/parts)
	case ByRange:
		t := len(c.toks)
		lo, hi = int(int64(i)*int64(t)/int64(parts)), int(int64(i+1)*int64(t)/int64(parts))
	default:
		return nil, fmt.Errorf("%w: unknown split mode %d", ErrSplit, int(mode))
	}
	if hi-lo < minPartTokens {
		return nil, fmt.Errorf("%w: part %d of %d by %s holds %d tokens; need at least %d",
			ErrSplit, i, parts, mode, hi-lo, minPartTokens)
	}
	return c.slice(lo, hi), nil
}

// HoldOut splits c into a training head and an evaluation tail holding the
// last ⌈frac·T⌉ tokens (frac in (0, 1)), e.g. 0.1 for the last 10%. Both
// must hold at least 2 tokens, else ErrSplit.
func (c *Corpus) HoldOut(frac float64) (trainPart, eval *Corpus, err error) {
	if !(frac > 0 && frac < 1) {
		return nil, nil, fmt.Errorf("%w: held-out fraction %g must be in (0, 1)", ErrSplit, frac)
	}
	t := len(c.toks)
	cut := t - int(math.Ceil(frac*float64(t)))
	if cut < minPartTokens || t-cut < minPartTokens {
		return nil, nil, fmt.Errorf("%w: holding out %g of %d tokens leaves %d for training and %d for evaluation; need at least %d each",
			ErrSplit, frac, t, cut, t-cut, minPartTokens)
	}
	return c.slice(0, cut), c.slice(cut, t), nil
}

// docStart returns the token offset of document k, or len(toks) for k ==
// Docs().
func (c *Corpus) docStart(k int) int {
	if k >= len(c.docs) {
		return len(c.toks)
	}
	return c.docs[k]
}

// slice returns the tokens [lo, hi) as a corpus sharing c's tokens; a
// document cut at lo starts a document there.
func (c *Corpus) slice(lo, hi int) *Corpus {
	first := sort.SearchInts(c.docs, lo+1) // documents starting after lo
	docs := []int{0}
	for _, s := range c.docs[first:] {
		if s >= hi {
			break
		}
		docs = append(docs, s-lo)
	}
	return &Corpus{toks: c.toks[lo:hi:hi], docs: docs, vocab: c.vocab}
}
