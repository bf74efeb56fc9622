package model

import (
	"unicode"
	"unicode/utf8"
)

// Pre-tokenizers of byte-level BPE tokenizers. Each splits text into the
// chunks BPE merges within, exactly as one regular expression does with
// leftmost-first alternation and backtracking. Go's regexp has no
// lookahead (\s+(?!\S)), so each pattern is matched by hand below; the
// tests check every alternative and its backtracking case.
const (
	// PreGPT2 is GPT-2's pattern (also the Hugging Face ByteLevel
	// pre-tokenizer with use_regex):
	//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
	PreGPT2 = "gpt2"
	// PreLlama3 is Llama 3's pattern:
	//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
	PreLlama3 = "llama3"
	// PreQwen2 is Qwen2's pattern: Llama 3's with \p{N} (one digit per
	// chunk) instead of \p{N}{1,3}.
	PreQwen2 = "qwen2"
)

// The patterns as they appear in tokenizer.json files (Split pre-tokenizer
// with a Regex pattern), mapped to the splitters that implement them.
var preTokenizerRegex = map[string]string{
	`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`:                                          PreGPT2,
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: PreLlama3,
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      PreQwen2,
}

// preTokenizerCode numbers the splitters in the binary tokenizer format.
var preTokenizerCode = []string{PreGPT2, PreLlama3, PreQwen2}

// runeAt decodes the rune at s[i:]; an invalid byte is one rune of width
// 1 (utf8.RuneError), which is in no class but "other".
func runeAt(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isL(r rune) bool  { return r >= 0 && unicode.IsLetter(r) }
func isN(r rune) bool  { return r >= 0 && unicode.IsNumber(r) }
func isWS(r rune) bool { return r >= 0 && unicode.IsSpace(r) }
func isNL(r rune) bool { return r == '\r' || r == '\n' }

// isOther is [^\s\p{L}\p{N}].
func isOther(r rune) bool { return r >= 0 && !isWS(r) && !isL(r) && !isN(r) }

// run returns the end of the longest run of runes from i satisfying f,
// taking at most max runes (max < 0: no limit).
func run(s string, i int, f func(rune) bool, max int) int {
	for n := 0; max < 0 || n < max; n++ {
		r, w := runeAt(s, i)
		if w == 0 || !f(r) {
			break
		}
		i += w
	}
	return i
}

// contraction matches 's|'t|'re|'ve|'m|'ll|'d at i (fold: case-insensitive).
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return 0
	}
	low := func(c byte) byte {
		if fold && 'A' <= c && c <= 'Z' {
			return c + 'a' - 'A'
		}
		return c
	}
	switch low(s[i+1]) {
	case 's', 't', 'm', 'd':
		return 2
	}
	if i+2 < len(s) {
		switch string([]byte{low(s[i+1]), low(s[i+2])}) {
		case "re", "ve", "ll":
			return 3
		}
	}
	return 0
}

// spaceTail matches \s+(?!\S)|\s+ at i, where s[i] is white space: the
// white-space run, less its last rune when a non-space follows and the
// run is longer than one rune.
func spaceTail(s string, i int) int {
	j := run(s, i, isWS, -1)
	if j == len(s) {
		return j
	}
	// Back off one rune so the lookahead sees white space.
	_, lastW := utf8.DecodeLastRuneInString(s[i:j])
	if j-lastW > i {
		return j - lastW
	}
	return j
}

// splitGPT2 returns the length of the GPT-2 chunk at s[i:] (len(s) > i).
func splitGPT2(s string, i int) int {
	if n := contraction(s, i, false); n > 0 {
		return n
	}
	r0, w0 := runeAt(s, i)
	start := i
	if r0 == ' ' {
		r1, _ := runeAt(s, i+w0)
		if isL(r1) || isN(r1) || isOther(r1) {
			start, r0 = i+w0, r1
		}
	}
	switch {
	case isL(r0):
		return run(s, start, isL, -1) - i
	case isN(r0):
		return run(s, start, isN, -1) - i
	case isOther(r0):
		return run(s, start, isOther, -1) - i
	}
	return spaceTail(s, i) - i
}

// splitLlama3 returns the length of the Llama 3 chunk at s[i:]; digits
// is the longest run of numbers one chunk takes (3 for Llama 3, 1 for
// Qwen2).
func splitLlama3(s string, i, digits int) int {
	if n := contraction(s, i, true); n > 0 {
		return n
	}
	r0, w0 := runeAt(s, i)
	r1, w1 := runeAt(s, i+w0)
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r0) {
		return run(s, i, isL, -1) - i
	}
	if !isNL(r0) && !isN(r0) && isL(r1) {
		return run(s, i+w0, isL, -1) - i
	}
	// \p{N}{1,digits}
	if isN(r0) {
		return run(s, i, isN, digits) - i
	}
	// ' '?[^\s\p{L}\p{N}]+[\r\n]*
	if r0 == ' ' && isOther(r1) {
		j := run(s, i+w0+w1, isOther, -1)
		return run(s, j, isNL, -1) - i
	}
	if isOther(r0) {
		j := run(s, i+w0, isOther, -1)
		return run(s, j, isNL, -1) - i
	}
	// \s*[\r\n]+: up to the last line break of the white-space run.
	j := run(s, i, isWS, -1)
	last := -1
	for k := i; k < j; {
		r, w := runeAt(s, k)
		if isNL(r) {
			last = k + w
		}
		k += w
	}
	if last > 0 {
		return last - i
	}
	return spaceTail(s, i) - i
}

// preSplit calls f with each chunk of s under the pre-tokenizer pre.
func preSplit(pre string, s string, f func(chunk string)) {
	for i := 0; i < len(s); {
		var n int
		switch pre {
		case PreLlama3:
			n = splitLlama3(s, i, 3)
		case PreQwen2:
			n = splitLlama3(s, i, 1)
		default:
			n = splitGPT2(s, i)
		}
		if n <= 0 { // cannot happen: every rune is L, N, other or space
			_, n = runeAt(s, i)
		}
		f(s[i : i+n])
		i += n
	}
}
