package train

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testCorpus returns a byte-level corpus of n documents of varied length.
func testCorpus(t testing.TB, n int) *Corpus {
	t.Helper()
	texts := make([][]byte, n)
	for i := range texts {
		texts[i] = []byte(fmt.Sprintf("document %d: %s\n", i, strings.Repeat("word ", i%7+1)))
	}
	c, err := NewCorpus(texts, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSplitCoverage checks that the parts of every split are disjoint,
// in order, and together are the whole corpus.
func TestSplitCoverage(t *testing.T) {
	c := testCorpus(t, 23)
	for _, mode := range []SplitMode{ByDocuments, ByRange} {
		for _, parts := range []int{1, 2, 3, 7, 23} {
			var all []int32
			docs := 0
			for i := range parts {
				p, err := c.Split(parts, i, mode)
				if err != nil {
					t.Fatalf("%s %d/%d: %v", mode, i, parts, err)
				}
				if p.Tokens() < 2 {
					t.Errorf("%s %d/%d: %d tokens", mode, i, parts, p.Tokens())
				}
				all = append(all, p.toks...)
				docs += p.Docs()
				if mode == ByDocuments && p.toks[0] != 1 {
					t.Errorf("%s %d/%d does not start with BOS", mode, i, parts)
				}
			}
			if len(all) != c.Tokens() {
				t.Fatalf("%s into %d: parts hold %d tokens, corpus %d", mode, parts, len(all), c.Tokens())
			}
			for k := range all {
				if all[k] != c.toks[k] {
					t.Fatalf("%s into %d: token %d differs; parts overlap or skip", mode, parts, k)
				}
			}
			if mode == ByDocuments && docs != c.Docs() {
				t.Errorf("%s into %d: %d documents in parts, %d in corpus", mode, parts, docs, c.Docs())
			}
		}
	}
}

func TestSplitDocumentsWhole(t *testing.T) {
	c := testCorpus(t, 10)
	p, err := c.Split(3, 1, ByDocuments)
	if err != nil {
		t.Fatal(err)
	}
	// Part 1 of 3 of 10 documents is documents 3, 4, 5.
	if p.Docs() != 3 {
		t.Fatalf("%d documents, want 3", p.Docs())
	}
	for k := range 3 {
		if got, want := p.Doc(k), c.Doc(3+k); !equalInts(got, want) {
			t.Errorf("doc %d = %v, want corpus doc %d %v", k, got, 3+k, want)
		}
	}
}

func TestSplitErrors(t *testing.T) {
	c := testCorpus(t, 4)
	for _, tc := range []struct {
		parts, i int
		mode     SplitMode
	}{
		{0, 0, ByRange}, {3, 3, ByRange}, {3, -1, ByDocuments}, {5, 0, ByDocuments},
		{c.Tokens(), 0, ByRange}, {2, 0, SplitMode(9)},
	} {
		if _, err := c.Split(tc.parts, tc.i, tc.mode); !errors.Is(err, ErrSplit) {
			t.Errorf("Split(%d, %d, %s): got %v, want ErrSplit", tc.parts, tc.i, tc.mode, err)
		}
	}
}

func TestHoldOut(t *testing.T) {
	c := testCorpus(t, 12)
	tr, ev, err := c.HoldOut(0.1)
	if err != nil {
		t.Fatal(err)
	}
	wantEval := (c.Tokens() + 9) / 10 // ⌈T/10⌉
	if ev.Tokens() != wantEval || tr.Tokens()+ev.Tokens() != c.Tokens() {
		t.Errorf("train %d + eval %d tokens of %d; want eval %d", tr.Tokens(), ev.Tokens(), c.Tokens(), wantEval)
	}
	if ev.toks[0] != c.toks[tr.Tokens()] || ev.toks[ev.Tokens()-1] != c.toks[c.Tokens()-1] {
		t.Error("eval part is not the tail of the corpus")
	}
	for _, f := range []float64{0, 1, -0.1, 2} {
		if _, _, err := c.HoldOut(f); !errors.Is(err, ErrSplit) {
			t.Errorf("HoldOut(%g): got %v, want ErrSplit", f, err)
		}
	}
	small, err := NewCorpus([][]byte{[]byte("ab")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := small.HoldOut(0.5); !errors.Is(err, ErrSplit) {
		t.Errorf("HoldOut of 3 tokens: got %v, want ErrSplit", err)
	}
}
