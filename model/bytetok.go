package model

import "fmt"

// byteTokWords seed ByteTokenizer's multi-byte pieces: frequent English
// words (with their leading space, SentencePiece style) and letter pairs.
var byteTokWords = []string{
	" the", " and", " a", " to", " was", " he", " she", " it", " of", " in",
	" they", " said", " his", " her", " with", " you", " that", " on", " for", " is",
	" day", " big", " time", " upon", " Once", " One", " happy", " play", " friend", " saw",
	" little", " girl", " boy", " named", " loved", " wanted", " there", " very", " had", " not",
	"th", "he", "in", "er", "an", "re", "on", "at", "en", "nd",
	"ti", "es", "or", "te", "of", "ed", "is", "it", "al", "ar",
	"st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le",
	"ve", "co", "me", "de", "hi", "ri", "ro", "ic", "ne", "ea",
	"ing", "ed.", "ly", "'s", ", ", ". ", "\n",
}

// ByteTokenizer returns a deterministic tokenizer of vocabSize tokens
// (at least MinTokenizerVocab), for synthetic models and tests: 0 "<unk>",
// 1 BOS "\n<s>\n", 2 EOS "\n</s>\n", 3..258 the byte pieces "<0x00>".."<0xFF>",
// then, while room remains: the printable ASCII characters, English words
// and letter pairs (each preceded by its missing prefixes, so greedy merges
// can build it), then all lowercase strings of length 2, 3, … in order.
// Merge pieces get scores 0, −1, −2, … by id. It panics if vocabSize is out
// of range.
func ByteTokenizer(vocabSize int) *Tokenizer {
	if vocabSize < MinTokenizerVocab || vocabSize > MaxVocab {
		panic(fmt.Sprintf("model: ByteTokenizer vocab size %d out of range [%d,%d]", vocabSize, MinTokenizerVocab, MaxVocab))
	}
	pieces := make([]string, 0, vocabSize)
	scores := make([]float32, 0, vocabSize)
	pieces = append(pieces, "<unk>", "\n<s>\n", "\n</s>\n")
	scores = append(scores, 0, 0, 0)
	for b := range 256 {
		pieces = append(pieces, fmt.Sprintf("<0x%02X>", b))
		scores = append(scores, 0)
	}
	seen := make(map[string]bool, vocabSize)
	for _, p := range pieces {
		seen[p] = true
	}
	add := func(p string) {
		if len(pieces) < vocabSize && !seen[p] {
			seen[p] = true
			scores = append(scores, -float32(len(pieces)-MinTokenizerVocab))
			pieces = append(pieces, p)
		}
	}
	for c := byte(0x20); c < 0x7f; c++ {
		add(string(rune(c)))
	}
	for _, w := range byteTokWords {
		for k := 2; k <= len(w); k++ {
			add(w[:k])
		}
	}
	// Exhaustive lowercase strings fill the rest: 26² + 26³ + … covers MaxVocab.
	buf := make([]byte, 0, 8)
	for l := 2; len(pieces) < vocabSize; l++ {
		buf = buf[:l]
		for i := range buf {
			buf[i] = 'a'
		}
		for len(pieces) < vocabSize {
			add(string(buf))
			k := l - 1
			for k >= 0 && buf[k] == 'z' {
				buf[k] = 'a'
				k--
			}
			if k < 0 {
				break
			}
			buf[k]++
		}
	}
	maxLen := 1
	for _, p := range pieces {
		maxLen = max(maxLen, len(p))
	}
	return newTokenizer(pieces, scores, maxLen)
}
