package model

import "strings"

// Encode tokenizes text exactly as llama2.c run.c's encode():
//
//  1. BOS first if bos;
//  2. the token of " " (a dummy prefix) if text is non-empty, except for a
//     byte-level tokenizer (only the unk, BOS, EOS and 256 byte pieces:
//     ByteTokenizer(MinTokenizerVocab)), whose models are trained on raw
//     bytes after BOS;
//  3. each UTF-8 character (a lead byte plus up to three continuation
//     bytes) becomes its own token if it is a piece, else one byte-fallback
//     token (byte+3) per byte;
//  4. repeatedly, the adjacent pair whose concatenated pieces form the
//     piece of highest score (greater than −1e10; the leftmost pair on a tie)
//     is merged, until no pair merges;
//  5. EOS last if eos.
//
// As in C, text ends at its first NUL byte. Where run.c has undefined
// behaviour this differs: if " " is not a piece the dummy prefix is its
// byte-fallback token, and with duplicate pieces the lowest id is used.
//
// run.c rescans every pair after each merge (quadratic time); this finds
// the same merges in O(n log n) with a heap, so long inputs from clients
// are safe to encode.
//
// A byte-level BPE tokenizer (NewBPE) encodes as its Hugging Face
// tokenizer.json does instead (see BPEConfig): BOS only if it adds one,
// special tokens matched verbatim, the pre-tokenizer's chunks, merges by
// rank; text is not cut at a NUL byte.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int {
	if t.bpe != nil {
		return t.bpe.encode(t.pieces, text, bos, eos)
	}
	if i := strings.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	toks := make([]int, 0, len(text)+3)
	if bos {
		toks = append(toks, BOS)
	}
	if text != "" && !t.bytesOnly {
		if id, ok := t.lookup[" "]; ok {
			toks = append(toks, id)
		} else {
			toks = append(toks, ' '+3)
		}
	}
	var buf [4]byte
	n := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c&0xC0 != 0x80 {
			n = 0
		}
		buf[n] = c
		n++
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && n < 4 {
			continue
		}
		if id, ok := t.lookup[string(buf[:n])]; ok {
			toks = append(toks, id)
		} else {
			for _, b := range buf[:n] {
				toks = append(toks, int(b)+3)
			}
		}
		n = 0
	}
	toks = t.merge(toks)
	if eos {
		toks = append(toks, EOS)
	}
	return toks
}

// minMergeScore is run.c's initial best_score: merges scoring at or below
// it are never chosen.
const minMergeScore = -1e10

// mergeCand is a candidate merge of the pair starting at position pos
// (an index into the original token list) with tokens left, right.
type mergeCand struct {
	score       float32
	pos         int
	left, right int
	id          int
}

// mergeHeap is a binary max-heap of candidates: highest score first, then
// leftmost position. (Hand-written rather than container/heap to avoid
// boxing each candidate.)
type mergeHeap []mergeCand

func (h mergeHeap) before(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return h[i].pos < h[j].pos
}

func (h *mergeHeap) push(c mergeCand) {
	*h = append(*h, c)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q.before(i, p) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeCand {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		l, best := 2*i+1, i
		if l < n && q.before(l, best) {
			best = l
		}
		if r := l + 1; r < n && q.before(r, best) {
			best = r
		}
		if best == i {
			break
		}
		q[i], q[best] = q[best], q[i]
		i = best
	}
	*h = q
	return top
}

// merge applies run.c's greedy merges to toks. Positions keep their
// original order in a linked list, so "leftmost pair" is "smallest
// position"; a heap entry is stale once either end has changed.
func (t *Tokenizer) merge(toks []int) []int {
	n := len(toks)
	if n < 2 {
		return toks
	}
	next := make([]int, n)
	prev := make([]int, n)
	for i := range n {
		next[i], prev[i] = i+1, i-1
	}
	next[n-1] = -1
	h := make(mergeHeap, 0, n)
	var key []byte
	push := func(i int) {
		if i < 0 || next[i] < 0 {
			return
		}
		j := next[i]
		key = append(append(key[:0], t.pieces[toks[i]]...), t.pieces[toks[j]]...)
		id, ok := t.lookup[string(key)]
		if !ok || !(t.scores[id] > minMergeScore) {
			return
		}
		h.push(mergeCand{score: t.scores[id], pos: i, left: toks[i], right: toks[j], id: id})
	}
	for i := 0; i+1 < n; i++ {
		push(i)
	}
	dead := make([]bool, n)
	for len(h) > 0 {
		c := h.pop()
		i := c.pos
		j := next[i]
		if dead[i] || j < 0 || toks[i] != c.left || toks[j] != c.right {
			continue
		}
		toks[i] = c.id
		dead[j] = true
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	out := toks[:0]
	for i := 0; i >= 0; i = next[i] {
		out = append(out, toks[i])
	}
	return out
}
