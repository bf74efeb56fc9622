package train

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
)

// Position is where a Batches stream stands: the next window is number
// Index of epoch Epoch's shuffled order. Saved in a Checkpoint, it lets a
// restarted run continue with exactly the batch it would have drawn next.
type Position struct {
	Epoch uint64 `json:"epoch"`
	Index uint64 `json:"index"`
}

// Batches draws training windows from a corpus in a seeded, shuffled
// order. The token stream is cut into W = (T−1)/seqLen windows; window k
// is tokens [k·seqLen, k·seqLen+seqLen) and its targets are the same
// range shifted by one token. Each epoch visits every window once, in a
// Fisher–Yates permutation driven by a PCG generator seeded with
// (seed, epoch) — so the order depends only on the seed, the epoch and
// W, and is the same on every machine and Go version (the permutation
// uses the generator's specified 64-bit outputs, not library shuffles).
//
// Batches is used by one goroutine at a time.
type Batches struct {
	c       *Corpus
	seed    uint64
	seqLen  int
	windows int
	pos     Position
	perm    []int32 // order of epoch permEpoch; nil until needed
	permOf  uint64
	tokens  []int
	targets []int
}

// Batches returns a window stream over c at position {0, 0}. seqLen must
// be at least 1 and leave at least one window (T ≥ seqLen+1), else
// ErrSplit.
func (c *Corpus) Batches(seed uint64, seqLen int) (*Batches, error) {
	if seqLen < 1 {
		return nil, fmt.Errorf("%w: sequence length %d must be at least 1", ErrSplit, seqLen)
	}
	w := (len(c.toks) - 1) / seqLen
	if w < 1 {
		return nil, fmt.Errorf("%w: %d tokens hold no window of %d tokens plus a target; use a shorter sequence or more text",
			ErrSplit, len(c.toks), seqLen)
	}
	return &Batches{c: c, seed: seed, seqLen: seqLen, windows: w,
		tokens: make([]int, seqLen), targets: make([]int, seqLen)}, nil
}

// Windows returns the number of windows in an epoch.
func (b *Batches) Windows() int { return b.windows }

// Position returns the position of the next window.
func (b *Batches) Position() Position { return b.pos }

// Seek moves to p, typically from a Checkpoint. p.Index must be below
// Windows(), else ErrSplit (the checkpoint was made with another corpus or
// sequence length).
func (b *Batches) Seek(p Position) error {
	if p.Index >= uint64(b.windows) {
		return fmt.Errorf("%w: position %d of epoch %d is beyond the %d windows of this corpus; was it saved with other data or sequence length?",
			ErrSplit, p.Index, p.Epoch, b.windows)
	}
	b.pos = p
	return nil
}

// Next returns the next window's tokens and targets and advances the
// position (to the next epoch after the last window). The slices belong
// to b and are overwritten by the next call.
func (b *Batches) Next() (tokens, targets []int) {
	if b.perm == nil || b.permOf != b.pos.Epoch {
		b.perm = permutation(b.perm, b.windows, b.seed, b.pos.Epoch)
		b.permOf = b.pos.Epoch
	}
	start := int(b.perm[b.pos.Index]) * b.seqLen
	src := b.c.toks[start : start+b.seqLen+1]
	for j := range b.seqLen {
		b.tokens[j], b.targets[j] = int(src[j]), int(src[j+1])
	}
	b.pos.Index++
	if b.pos.Index == uint64(b.windows) {
		b.pos = Position{Epoch: b.pos.Epoch + 1}
	}
	return b.tokens, b.targets
}

// permutation fills dst (reallocated if short) with a permutation of
// [0, n): the Fisher–Yates shuffle (Knuth, TAOCP vol. 2, Algorithm P),
// drawing from PCG(seed, epoch).
func permutation(dst []int32, n int, seed, epoch uint64) []int32 {
	if cap(dst) < n {
		dst = make([]int32, n)
	}
	dst = dst[:n]
	for i := range dst {
		dst[i] = int32(i)
	}
	r := rand.NewPCG(seed, epoch)
	for i := n - 1; i > 0; i-- {
		j := uniform(r, uint64(i)+1)
		dst[i], dst[j] = dst[j], dst[i]
	}
	return dst
}

// uniform returns an unbiased integer in [0, n) from r, by Lemire's
// multiply-and-reject method ("Fast random integer generation in an
// interval", 2019).
func uniform(r *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(r.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), n)
		}
	}
	return hi
}
