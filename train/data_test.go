package train

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/model"
)

func TestValidateText(t *testing.T) {
	for _, tc := range []struct {
		name string
		text []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"whitespace", []byte(" \n\t\r\n"), ErrEmpty},
		{"nul", []byte("hello\x00world"), ErrBinary},
		{"invalid utf-8", append([]byte("ab"), bytes.Repeat([]byte{0xff, 0xfe}, 5)...), ErrBinary},
		{"control bytes", []byte("abcdefgh\x01\x02\x03"), ErrBinary},
		{"text", []byte("First Citizen:\nBefore we proceed any further, hear me speak.\n"), nil},
		{"unicode", []byte("naïve café — ünïcödé ✓\n"), nil},
		// 1 bad byte in 20 is 5%: still text.
		{"some bad bytes", append([]byte("nineteen characters"), 0xff), nil},
		{"tabs and form feeds", []byte("a\tb\fc\vd\r\n"), nil},
	} {
		err := ValidateText(tc.text)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestNewCorpusErrors(t *testing.T) {
	if _, err := NewCorpus(nil, Options{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("no texts: got %v, want ErrEmpty", err)
	}
	_, err := NewCorpus([][]byte{[]byte("fine"), {}, []byte("also fine")}, Options{})
	if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "text 1") {
		t.Errorf("empty second text: got %v, want ErrEmpty naming text 1", err)
	}
	_, err = NewCorpus([][]byte{[]byte("fine"), []byte("\x7fELF\x02\x01\x01\x00\x00")}, Options{})
	if !errors.Is(err, ErrBinary) || !strings.Contains(err.Error(), "text 1") {
		t.Errorf("binary second text: got %v, want ErrBinary naming text 1", err)
	}
}

func TestByteLevelEncoding(t *testing.T) {
	c, err := NewCorpus([][]byte{[]byte("Hi"), []byte("é\n")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Docs() != 2 || c.Tokens() != 7 || c.Vocab() != ByteVocab {
		t.Fatalf("docs %d tokens %d vocab %d, want 2, 7, %d", c.Docs(), c.Tokens(), c.Vocab(), ByteVocab)
	}
	want := [][]int{{model.BOS, 'H' + 3, 'i' + 3}, {model.BOS, 0xc3 + 3, 0xa9 + 3, '\n' + 3}}
	tok := model.ByteTokenizer(ByteVocab)
	for i, w := range want {
		got := c.Doc(i)
		if !equalInts(got, w) {
			t.Errorf("doc %d = %v, want %v", i, got, w)
		}
		// The ids are ByteTokenizer's byte pieces.
		var text []byte
		for k := 1; k < len(got); k++ {
			text = append(text, tok.Decode(got[k-1], got[k])...)
		}
		if orig := []string{"Hi", "é\n"}[i]; string(text) != orig {
			t.Errorf("doc %d decodes with ByteTokenizer to %q, want %q", i, text, orig)
		}
	}
}

func TestBlankLineDocuments(t *testing.T) {
	text := "\n\nFirst:\nspeak.\n\n \t\nSecond:\nno.\r\n\r\nThird"
	c, err := NewCorpus([][]byte{[]byte(text)}, Options{BlankLines: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"First:\nspeak.\n", "Second:\nno.\r\n", "Third"}
	if c.Docs() != len(want) {
		t.Fatalf("%d documents, want %d", c.Docs(), len(want))
	}
	for i, w := range want {
		if got := decodeBytes(c.Doc(i)); got != w {
			t.Errorf("doc %d = %q, want %q", i, got, w)
		}
	}
}

func TestTokenizerEncoding(t *testing.T) {
	_, tok := reftest.Load(t)
	texts := []string{"Once upon a time, there was a little girl.", "The cat sat."}
	c, err := NewCorpus([][]byte{[]byte(texts[0]), []byte(texts[1])}, Options{Tokenizer: tok})
	if err != nil {
		t.Fatal(err)
	}
	if c.Vocab() != tok.VocabSize() {
		t.Errorf("vocab %d, want %d", c.Vocab(), tok.VocabSize())
	}
	for i, s := range texts {
		if got, want := c.Doc(i), tok.Encode(s, true, false); !equalInts(got, want) {
			t.Errorf("doc %d = %v, want Encode's %v", i, got, want)
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// decodeBytes turns byte-level tokens back into text, skipping BOS.
func decodeBytes(toks []int) string {
	var b []byte
	for _, t := range toks {
		if t >= 3 {
			b = append(b, byte(t-3))
		}
	}
	return string(b)
}

// FuzzNewCorpus feeds arbitrary bytes as a training file: NewCorpus must
// either refuse them with ErrEmpty or ErrBinary, or tokenize every byte.
func FuzzNewCorpus(f *testing.F) {
	for _, s := range []string{"", "hello", "a\n\nb\n", "\x00", "\xff\xfe\xfd", "x\n \n\ty", strings.Repeat("ab\n\n", 5)} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, blank bool) {
		c, err := NewCorpus([][]byte{data}, Options{BlankLines: blank})
		if err != nil {
			if !errors.Is(err, ErrEmpty) && !errors.Is(err, ErrBinary) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		n := 0
		for i := range c.Docs() {
			d := c.Doc(i)
			if d[0] != model.BOS || len(d) < 2 {
				t.Fatalf("doc %d = %v: want BOS and at least one byte", i, d)
			}
			n += len(d) - 1
		}
		if !blank && n != len(data) {
			t.Fatalf("%d byte tokens for %d bytes", n, len(data))
		}
	})
}
