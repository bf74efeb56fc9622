package model

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// naiveEncode is run.c's encode() transcribed literally (quadratic rescans
// after each merge); Encode must agree with it.
func naiveEncode(t *Tokenizer, text string, bos, eos bool) []int {
	if i := strings.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	var toks []int
	if bos {
		toks = append(toks, BOS)
	}
	if text != "" {
		id, ok := t.lookup[" "]
		if !ok {
			id = ' ' + 3
		}
		toks = append(toks, id)
	}
	var buf []byte
	for i := 0; i < len(text); i++ {
		if text[i]&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, text[i])
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.lookup[string(buf)]; ok {
			toks = append(toks, id)
		} else {
			for _, b := range buf {
				toks = append(toks, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestIdx := float32(-1e10), -1, -1
		for i := 0; i+1 < len(toks); i++ {
			id, ok := t.lookup[t.pieces[toks[i]]+t.pieces[toks[i+1]]]
			if ok && t.scores[id] > best {
				best, bestID, bestIdx = t.scores[id], id, i
			}
		}
		if bestIdx < 0 {
			break
		}
		toks[bestIdx] = bestID
		toks = slices.Delete(toks, bestIdx+1, bestIdx+2)
	}
	if eos {
		toks = append(toks, EOS)
	}
	return toks
}

func tok512(t testing.TB) (*Tokenizer, []byte) {
	data, err := os.ReadFile(filepath.Join(refDir(t), "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ReadTokenizer(data, 512)
	if err != nil {
		t.Fatal(err)
	}
	return tok, data
}

var encodeSamples = []string{
	"", " ", "Once upon a time", "Lily's mom said, \"Lily, let's go to the park.\"",
	"héllo wörld — ünïcode ✓ 日本語 🙂", "\xff\xfe broken \x80\x80\x80\x80\x80 utf8 \xc3",
	"  double  spaces\n\nnewlines\ttabs", "a\x00after NUL", strings.Repeat("the ", 50),
}

func TestEncodeMatchesRunC(t *testing.T) {
	toks := map[string]*Tokenizer{"byte512": ByteTokenizer(512), "byte259": ByteTokenizer(259), "byte5000": ByteTokenizer(5000)}
	if tk, _ := tok512Maybe(); tk != nil {
		toks["tok512"] = tk
	}
	r := rand.New(rand.NewPCG(1, 1))
	samples := slices.Clone(encodeSamples)
	alphabet := []string{"a", "b", "e", "h", "t", " ", "th", "he", "é", "\xff", "\n", "!", "O", "n", "c"}
	for range 200 {
		var b strings.Builder
		for range r.IntN(40) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		samples = append(samples, b.String())
	}
	for name, tk := range toks {
		for _, s := range samples {
			for _, flags := range [][2]bool{{true, false}, {false, true}} {
				got := tk.Encode(s, flags[0], flags[1])
				want := naiveEncode(tk, s, flags[0], flags[1])
				if tk.bytesOnly && s != "" && !strings.HasPrefix(s, "\x00") {
					// A byte-level tokenizer leaves out the dummy prefix.
					want = slices.Delete(want, btoi(flags[0]), btoi(flags[0])+1)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s Encode(%q) = %v, run.c algorithm gives %v", name, s, got, want)
				}
			}
		}
	}
}

func tok512Maybe() (*Tokenizer, error) {
	dir, ok := refPath()
	if !ok {
		return nil, os.ErrNotExist
	}
	data, err := os.ReadFile(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		return nil, err
	}
	return ReadTokenizer(data, 512)
}

func TestDecodeRules(t *testing.T) {
	tk, _ := tok512(t)
	if got := tk.Decode(BOS, 403); got != "Once" {
		t.Errorf("Decode(BOS, 403) = %q, want %q (leading space stripped after BOS)", got, "Once")
	}
	if got := tk.Decode(5, 403); got != " Once" {
		t.Errorf("Decode(5, 403) = %q, want %q", got, " Once")
	}
	if got := tk.Decode(5, 13); got != "\n" { // <0x0A>
		t.Errorf("Decode(<0x0A>) = %q, want newline", got)
	}
	if got := tk.Decode(5, 3); got != "" { // <0x00> is an empty C string
		t.Errorf("Decode(<0x00>) = %q, want empty", got)
	}
	if got := tk.Decode(5, 3+0xE9); got != "\xe9" {
		t.Errorf("Decode(<0xE9>) = %q, want raw byte 0xE9", got)
	}
	for _, bad := range []int{-1, 512, math.MaxInt} {
		if got := tk.Decode(5, bad); got != "" {
			t.Errorf("Decode(%d) = %q, want empty", bad, got)
		}
	}
}

// TestPrintKeepsUTF8Bytes checks that the byte-fallback tokens of a
// character outside the vocabulary print as its UTF-8 bytes, which run.c's
// safe_printf would drop, while control bytes are still dropped.
func TestPrintKeepsUTF8Bytes(t *testing.T) {
	tk, _ := tok512(t)
	var out string
	prev := 5
	for _, b := range []byte("😀é") {
		tok := 3 + int(b) // <0xXX>
		out += tk.Print(prev, tok)
		prev = tok
	}
	if out != "😀é" {
		t.Errorf("byte tokens of %q printed %q", "😀é", out)
	}
	for _, b := range []byte{0x01, 0x1b, 0x7f} {
		if got := tk.Print(5, 3+int(b)); got != "" {
			t.Errorf("Print(<0x%02X>) = %q, want nothing (a control byte)", b, got)
		}
	}
	if got := tk.Print(5, 13); got != "\n" {
		t.Errorf("Print(<0x0A>) = %q, want a newline", got)
	}
}

func TestSafePrint(t *testing.T) {
	cases := map[string]string{
		"": "", "a": "a", " ": " ", "\n": "\n", "\x01": "", "\x7f": "", "\xe9": "",
		"ab": "ab", "\xe9\x80": "\xe9\x80", "a\x00b": "a", "\x00": "",
	}
	for in, want := range cases {
		if got := SafePrint(in); got != want {
			t.Errorf("SafePrint(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseBytePiece(t *testing.T) {
	cases := []struct {
		in string
		b  byte
		ok bool
	}{
		{"<0x41>", 0x41, true}, {"<0xff>", 0xff, true}, {"<0x7>", 7, true}, {"<0x414>", 0x41, true},
		{"<0x-1>", 0xff, true}, {"<0x +A>", 0x0a, true}, {"<0x>", 0, false}, {"<0xZZ>", 0, false},
		{"<0x", 0, false}, {"0x41", 0, false}, {"<0x-", 0, false},
	}
	for _, c := range cases {
		b, ok := parseBytePiece(c.in)
		if ok != c.ok || (ok && b != c.b) {
			t.Errorf("parseBytePiece(%q) = %#x, %v; want %#x, %v", c.in, b, ok, c.b, c.ok)
		}
	}
}

func tokRecord(score float32, piece string) []byte {
	b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(score))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(piece)))
	return append(b, piece...)
}

func TestReadTokenizerErrors(t *testing.T) {
	good, err := ByteTokenizer(300).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTokenizer(good, 300); err != nil {
		t.Fatalf("valid tokenizer: %v", err)
	}
	for n := range len(good) {
		if _, err := ReadTokenizer(good[:n], 300); !errors.Is(err, ErrTruncated) {
			t.Fatalf("prefix %d/%d: err = %v, want ErrTruncated", n, len(good), err)
		}
	}
	withRecord := func(maxLen int32, rec []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(maxLen))
		b = append(b, rec...)
		// 258 more valid one-byte records
		for range 258 {
			b = append(b, tokRecord(0, "x")...)
		}
		return b
	}
	cases := map[string]struct {
		data  []byte
		vocab int
		want  error
	}{
		"trailing":         {append(slices.Clone(good), 0), 300, ErrTrailing},
		"vocab too small":  {good, 258, ErrTokenizer},
		"vocab too large":  {good, MaxVocab + 1, ErrTokenizer},
		"vocab > data":     {good, 100000, ErrTruncated},
		"max len 0":        {withRecord(0, tokRecord(0, "")), 259, ErrTokenizer},
		"max len negative": {withRecord(-5, tokRecord(0, "")), 259, ErrTokenizer},
		"max len huge":     {withRecord(1<<30, tokRecord(0, "")), 259, ErrTokenizer},
		"NaN score":        {withRecord(4, tokRecord(float32(math.NaN()), "ab")), 259, ErrTokenizer},
		"piece > max len":  {withRecord(1, tokRecord(0, "ab")), 259, ErrTokenizer},
		"NUL in piece":     {withRecord(4, tokRecord(0, "a\x00")), 259, ErrTokenizer},
		"negative length":  {withRecord(4, binary.LittleEndian.AppendUint32(tokRecord(0, "")[:4], 0xffffffff)), 259, ErrTokenizer},
		"length past end":  {binary.LittleEndian.AppendUint32(tokRecord(0, "")[:4], 4)[:0], 259, ErrTruncated},
	}
	for name, c := range cases {
		if _, err := ReadTokenizer(c.data, c.vocab); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", name, err, c.want)
		}
	}
}

func TestByteTokenizer(t *testing.T) {
	for _, n := range []int{259, 260, 400, 512, 32000, 100000} {
		tk := ByteTokenizer(n)
		if tk.VocabSize() != n {
			t.Fatalf("ByteTokenizer(%d).VocabSize() = %d", n, tk.VocabSize())
		}
		if len(tk.lookup) != n {
			t.Fatalf("ByteTokenizer(%d) has %d distinct pieces, want all distinct", n, len(tk.lookup))
		}
		data, err := tk.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ReadTokenizer(data, n)
		if err != nil {
			t.Fatalf("ByteTokenizer(%d) does not re-read: %v", n, err)
		}
		if !slices.Equal(back.pieces, tk.pieces) || !slices.Equal(back.scores, tk.scores) {
			t.Fatalf("ByteTokenizer(%d) round trip differs", n)
		}
		// Encode then decode gives back the text (printable ASCII and UTF-8).
		for _, s := range []string{"Once upon a time, the little girl said hi.", "é ✓ 🙂\nthe end"} {
			ids := tk.Encode(s, true, false)
			var b strings.Builder
			for i := 1; i < len(ids); i++ {
				b.WriteString(tk.Decode(ids[i-1], ids[i]))
			}
			// A byte-level tokenizer adds no dummy prefix; the others add
			// " ", which decode strips after BOS as run.c does.
			want := s
			if b.String() != want {
				t.Errorf("ByteTokenizer(%d): decode(encode(%q)) = %q", n, s, b.String())
			}
		}
	}
	if a, b := ByteTokenizer(600), ByteTokenizer(600); !slices.Equal(a.pieces, b.pieces) {
		t.Error("ByteTokenizer is not deterministic")
	}
	tk := ByteTokenizer(512)
	if ids := tk.Encode(" the", false, false); len(ids) != 2 || tk.Piece(ids[0]) != " " || tk.Piece(ids[1]) != " the" {
		t.Errorf("Encode(\" the\") = %v, want the dummy prefix then the merged piece \" the\"", ids)
	}
}

func FuzzReadTokenizer(f *testing.F) {
	good, _ := ByteTokenizer(259).MarshalBinary()
	f.Add(good, 259)
	f.Add(good[:100], 259)
	f.Add([]byte{7, 0, 0, 0}, 300)
	f.Add(append(slices.Clone(good), 1, 2, 3), 259)
	if dir, ok := refPath(); ok {
		if data, err := os.ReadFile(filepath.Join(dir, "tok512.bin")); err == nil {
			f.Add(data, 512)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, vocab int) {
		tk, err := ReadTokenizer(data, vocab)
		if err != nil {
			return
		}
		out, err := tk.MarshalBinary()
		if err != nil || string(out) != string(data) {
			t.Fatalf("accepted tokenizer does not round-trip")
		}
		ids := tk.Encode("Once upon a time é\xff", true, true)
		for i := 1; i < len(ids); i++ {
			if ids[i] < 0 || ids[i] >= tk.VocabSize() {
				t.Fatalf("Encode produced token %d outside the vocabulary", ids[i])
			}
			SafePrint(tk.Decode(ids[i-1], ids[i]))
		}
	})
}

func FuzzEncode(f *testing.F) {
	for _, s := range encodeSamples {
		f.Add(s)
	}
	tk := ByteTokenizer(700)
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 2000 {
			return
		}
		got, want := tk.Encode(s, true, true), naiveEncode(tk, s, true, true)
		if !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v, run.c algorithm gives %v", s, got, want)
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestByteLevelEncode: a byte-level tokenizer encodes text as the byte
// ids a byte-level model was trained on, BOS then byte+3, with no dummy
// prefix.
func TestByteLevelEncode(t *testing.T) {
	got := ByteTokenizer(MinTokenizerVocab).Encode("func é", true, false)
	want := []int{BOS}
	for _, b := range []byte("func é") {
		want = append(want, int(b)+3)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Encode = %v, want %v", got, want)
	}
}
