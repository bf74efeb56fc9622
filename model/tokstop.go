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

// Print returns the text a generator shows for token tok after prev:
// SafePrint(Decode(prev, tok)) for a llama2.c tokenizer, as run.c prints;
// for byte-level BPE the token's bytes unfiltered, since one character
// may take several tokens of one byte each.
func (t *Tokenizer) Print(prev, tok int) string {
	if t.bpe != nil {
		return t.bpeDecode(tok)
	}
	return SafePrint(t.Decode(prev, tok))
}
