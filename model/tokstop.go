package model

import "slices"

// BOS returns the id Encode puts first when asked for BOS: llama2.c's BOS,
// or a byte-level BPE tokenizer's BOS if it adds one; −1 if none is added.
func (t *Tokenizer) BOS() int {
	if t.bpe != nil {
		if !t.bpe.cfg.AddBOS {
			return -1
		}
		return t.bpe.cfg.BOS
	}
	return BOS
}

// IsStop reports whether sampling id ends a generation. For a llama2.c
// tokenizer that is BOS, as in run.c (its models put BOS between
// documents); for byte-level BPE it is BOS, EOS or one of the stop ids
// (end of turn, end of message).
func (t *Tokenizer) IsStop(id int) bool {
	b := t.bpe
	if b == nil {
		return id == BOS
	}
	if id < 0 {
		return false
	}
	if id == b.cfg.BOS || id == b.cfg.EOS {
		return true
	}
	_, ok := slices.BinarySearch(b.cfg.Stop, id)
	return ok
}

// Print returns the text a generator shows for token tok after prev. For
// byte-level BPE it is the token's bytes unfiltered, since one character
// may take several tokens of one byte each. For a SentencePiece-style
// (llama2.c or GGUF "llama") tokenizer it is what run.c prints
// (SafePrint(Decode(prev, tok))), except that a byte-fallback token of a
// byte 0x80 or above is kept: run.c drops it, losing every character the
// vocabulary spells in bytes (an emoji is four such tokens), while a
// client joining the pieces gets the UTF-8 text back. Control bytes are
// still dropped, as run.c does.
func (t *Tokenizer) Print(prev, tok int) string {
	if t.bpe != nil {
		return t.bpeDecode(tok)
	}
	piece := t.Decode(prev, tok)
	if len(piece) == 1 && piece[0] >= 0x80 {
		return piece
	}
	return SafePrint(piece)
}
