package model

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestPreSplit(t *testing.T) {
	cases := []struct {
		pre, in string
		want    []string
	}{
		// GPT-2: optional space before a run of one class; a white-space
		// run gives its last space to the word after it.
		{PreGPT2, "Hello world", []string{"Hello", " world"}},
		{PreGPT2, "  hello", []string{" ", " hello"}},
		{PreGPT2, "I'm here", []string{"I", "'m", " here"}},
		{PreGPT2, "I'M", []string{"I", "'", "M"}},
		{PreGPT2, "x 123456 y", []string{"x", " 123456", " y"}},
		{PreGPT2, "hello\n\nworld", []string{"hello", "\n", "\n", "world"}},
		{PreGPT2, "a , b!!", []string{"a", " ,", " b", "!!"}},
		{PreGPT2, "end  ", []string{"end", "  "}},
		{PreGPT2, "x\t\t y", []string{"x", "\t\t", " y"}},
		{PreGPT2, "we'll 've", []string{"we", "'ll", " '", "ve"}},
		// Llama 3: a non-letter may lead a word, numbers in threes,
		// punctuation keeps its trailing newlines, newline runs split off.
		{PreLlama3, "Hello world", []string{"Hello", " world"}},
		{PreLlama3, "I'M", []string{"I", "'M"}},
		{PreLlama3, "'Sun", []string{"'S", "un"}},
		{PreLlama3, "12345", []string{"123", "45"}},
		{PreLlama3, " 100", []string{" ", "100"}},
		{PreLlama3, "$100", []string{"$", "100"}},
		{PreLlama3, "(hello)", []string{"(hello", ")"}},
		{PreLlama3, "a  b", []string{"a", " ", " b"}},
		{PreLlama3, "hello\n\nworld", []string{"hello", "\n\n", "world"}},
		{PreLlama3, "ok.\n\nNext", []string{"ok", ".\n\n", "Next"}},
		{PreLlama3, " ?!", []string{" ?!"}},
		{PreLlama3, "x  \n  y", []string{"x", "  \n", " ", " y"}},
		{PreLlama3, "tail \t", []string{"tail", " \t"}},
		{PreLlama3, "\tx", []string{"\tx"}},
		{PreLlama3, "\nx", []string{"\n", "x"}},
		{PreLlama3, "héllo wörld", []string{"héllo", " wörld"}},
		{PreLlama3, "日本語テキスト", []string{"日本語テキスト"}},
		{PreLlama3, "٣٤٥٦", []string{"٣٤٥", "٦"}},
		{PreLlama3, "a\xffb", []string{"a", "\xffb"}},
		// Qwen2: Llama 3 with one digit per chunk.
		{PreQwen2, "x=2024", []string{"x", "=", "2", "0", "2", "4"}},
		{PreQwen2, "Hello world", []string{"Hello", " world"}},
	}
	for _, c := range cases {
		var got []string
		preSplit(c.pre, c.in, func(s string) { got = append(got, s) })
		if !slices.Equal(got, c.want) {
			t.Errorf("%s split %q: got %q, want %q", c.pre, c.in, got, c.want)
		}
	}
}

// testBPEConfig learns merges on a small corpus, GPT-2 style: ids 0..255
// are the bytes, then one token per merge, then the special tokens.
func testBPEConfig(pre string, merges int) BPEConfig {
	corpus := strings.Repeat("the cat sat on the mat. The other cats, they'll sit there!\n"+
		"Über straße naïve café 2024 12345 — ok? yes: 'quoted' text\n\n", 3)
	var words [][]string
	preSplit(pre, corpus, func(s string) {
		w := make([]string, len(s))
		for i := range len(s) {
			w[i] = s[i : i+1]
		}
		words = append(words, w)
	})
	c := BPEConfig{Pre: pre, BOS: -1, EOS: -1}
	for b := range 256 {
		c.Tokens = append(c.Tokens, BPEToken{Text: ByteLevelEncode(string([]byte{byte(b)})), Kind: BPENormal})
	}
	for range merges {
		count := map[[2]string]int{}
		var best [2]string
		for _, w := range words {
			for i := 0; i+1 < len(w); i++ {
				p := [2]string{w[i], w[i+1]}
				count[p]++
				if count[p] > count[best] || (count[p] == count[best] && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1])) {
					best = p
				}
			}
		}
		if count[best] < 2 {
			break
		}
		c.Merges = append(c.Merges, [2]string{ByteLevelEncode(best[0]), ByteLevelEncode(best[1])})
		c.Tokens = append(c.Tokens, BPEToken{Text: ByteLevelEncode(best[0] + best[1]), Kind: BPENormal})
		for k, w := range words {
			var out []string
			for i := 0; i < len(w); i++ {
				if i+1 < len(w) && w[i] == best[0] && w[i+1] == best[1] {
					out = append(out, w[i]+w[i+1])
					i++
				} else {
					out = append(out, w[i])
				}
			}
			words[k] = out
		}
	}
	for _, s := range []string{"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|end|>"} {
		c.Tokens = append(c.Tokens, BPEToken{Text: s, Kind: BPESpecial})
	}
	n := len(c.Tokens)
	c.BOS, c.EOS, c.AddBOS, c.Stop = n-4, n-3, true, []int{n - 2}
	return c
}

// naiveBPE is Hugging Face's BPE word merge spelled out: repeatedly merge
// the adjacent pair of lowest rank (leftmost among equals).
func naiveBPE(c BPEConfig, chunk string) []int {
	ids := map[string]int{}
	for i, t := range c.Tokens {
		if t.Kind == BPENormal {
			ids[t.Text] = i
		}
	}
	rank := map[[2]string]int{}
	for r, m := range c.Merges {
		if _, ok := rank[m]; !ok {
			rank[m] = r
		}
	}
	var sym []string
	for i := range len(chunk) {
		sym = append(sym, ByteLevelEncode(chunk[i:i+1]))
	}
	sym = mergeByRank(sym, rank)
	out := make([]int, len(sym))
	for i, s := range sym {
		out[i] = ids[s]
	}
	return out
}

func randomText(r *rand.Rand, n int) string {
	parts := []string{"the", " cat", " sat", "The", "'ll", "'S", " ", "  ", "\n", "\n\n", "!", "?!", ",",
		"12", "345", "2024", "é", "ß", "Über", "café", "—", "日本", "\t", "<|end|>", "<|eot_id|>", "<|end", "\xff", "a"}
	var sb strings.Builder
	for range n {
		sb.WriteString(parts[r.IntN(len(parts))])
	}
	return sb.String()
}

func TestBPEMatchesNaive(t *testing.T) {
	for _, pre := range []string{PreGPT2, PreLlama3, PreQwen2} {
		c := testBPEConfig(pre, 120)
		tok, err := NewBPE(c)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for range 300 {
			text := randomText(r, r.IntN(30))
			got := tok.Encode(text, false, false)
			// Reference: split at special tokens, pre-tokenize, naive BPE.
			var want []int
			rest := text
			for rest != "" {
				i, sp := len(rest), ""
				for _, s := range []string{"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|end|>"} {
					if k := strings.Index(rest, s); k >= 0 && (k < i || k == i && len(s) > len(sp)) {
						i, sp = k, s
					}
				}
				preSplit(pre, rest[:i], func(ch string) { want = append(want, naiveBPE(c, ch)...) })
				if sp != "" {
					want = append(want, slices.IndexFunc(c.Tokens, func(b BPEToken) bool { return b.Text == sp }))
				}
				rest = rest[min(len(rest), i+len(sp)):]
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s Encode(%q) = %v, want %v", pre, text, got, want)
			}
			var dec strings.Builder
			for _, id := range got {
				dec.WriteString(tok.Decode(0, id))
			}
			if dec.String() != text {
				t.Fatalf("%s Decode(Encode(%q)) = %q", pre, text, dec.String())
			}
		}
	}
}

func TestBPEKnown(t *testing.T) {
	// A hand-made vocabulary: "Ġ t" then "h e" then "Ġt he" gives " the"
	// one token; "e r" is ranked after "h e", so "her" is "he" "r".
	c := BPEConfig{Pre: PreLlama3, BOS: -1, EOS: -1}
	for b := range 256 {
		c.Tokens = append(c.Tokens, BPEToken{Text: ByteLevelEncode(string([]byte{byte(b)})), Kind: BPENormal})
	}
	add := func(l, r string) {
		c.Merges = append(c.Merges, [2]string{l, r})
		c.Tokens = append(c.Tokens, BPEToken{Text: l + r, Kind: BPENormal})
	}
	add("Ġ", "t")                                                         // 256 " t"
	add("h", "e")                                                         // 257 "he"
	add("Ġt", "he")                                                       // 258 " the"
	add("e", "r")                                                         // 259 "er"
	add("Ġthe", "r")                                                      // 260 " ther"
	c.Tokens = append(c.Tokens, BPEToken{Text: "Ġhero", Kind: BPENormal}) // 261, no merge makes it
	tok, err := NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []struct {
		in   string
		want []int
	}{
		{"the", []int{'t', 257}},
		{" the", []int{258}},
		{" ther", []int{260}},
		{"her", []int{257, 'r'}},
		{" hero", []int{' ', 257, 'r', 'o'}},
	} {
		if got := tok.Encode(k.in, true, true); !slices.Equal(got, k.want) {
			t.Errorf("Encode(%q) = %v, want %v", k.in, got, k.want)
		}
	}
	// With ignore_merges a chunk that is a token is taken whole.
	c.IgnoreMerges = true
	tok, err = NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode(" hero", false, false); !slices.Equal(got, []int{261}) {
		t.Errorf("ignore_merges Encode(\" hero\") = %v, want [261]", got)
	}
	// The prefix space of GPT-2 style tokenizers.
	c.IgnoreMerges, c.AddPrefixSpace = false, true
	tok, _ = NewBPE(c)
	if got := tok.Encode("the", false, false); !slices.Equal(got, []int{258}) {
		t.Errorf("add_prefix_space Encode(\"the\") = %v, want [258]", got)
	}
}

func TestBPESpecialAndStop(t *testing.T) {
	c := testBPEConfig(PreLlama3, 60)
	tok, err := NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	n := len(c.Tokens)
	got := tok.Encode("<|eot_id|><|end|>x<|end", true, true)
	if got[0] != n-4 || got[1] != n-2 || got[2] != n-1 || got[len(got)-1] != n-3 {
		t.Fatalf("Encode with specials = %v; want BOS %d, <|eot_id|> %d, <|end|> %d first and EOS %d last", got, n-4, n-2, n-1, n-3)
	}
	if tok.BOS() != n-4 || !tok.IsStop(n-3) || !tok.IsStop(n-2) || !tok.IsStop(n-4) || tok.IsStop(n-1) || tok.IsStop('a') {
		t.Errorf("BOS %d, stops wrong: want BOS %d and stops {%d,%d,%d}", tok.BOS(), n-4, n-4, n-3, n-2)
	}
	if p := tok.Print(0, 0xC3); p != "\xc3" {
		t.Errorf("Print of byte token 0xC3 = %q, want the raw byte", p)
	}
	if tok.Format() != TokenizerBPE {
		t.Errorf("Format = %q", tok.Format())
	}
	c.AddBOS = false
	tok, _ = NewBPE(c)
	if tok.BOS() != -1 || tok.Encode("a", true, false)[0] != 'a' {
		t.Errorf("without AddBOS, Encode added a BOS")
	}
}

func TestBPEBinaryRoundTrip(t *testing.T) {
	c := testBPEConfig(PreQwen2, 80)
	c.IgnoreMerges, c.NFC = true, true
	c.Tokens = append(c.Tokens, BPEToken{}, BPEToken{}) // padding
	tok, err := NewBPE(c)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := tok.MarshalBinary()
	back, err := ReadTokenizerFormat(TokenizerBPE, data, len(c.Tokens))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := back.MarshalBinary()
	if string(again) != string(data) {
		t.Fatal("MarshalBinary(ReadBPE(b)) differs from b")
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		s := randomText(r, 20)
		if a, b := tok.Encode(s, true, true), back.Encode(s, true, true); !slices.Equal(a, b) {
			t.Fatalf("Encode(%q) after round trip = %v, want %v", s, b, a)
		}
	}
	// NFC: a decomposed é encodes as the composed one.
	if a, b := tok.Encode("cafe\u0301", false, false), tok.Encode("café", false, false); !slices.Equal(a, b) {
		t.Errorf("NFC: %v != %v", a, b)
	}
	if _, err := ReadBPE(data, len(c.Tokens)+1); !errors.Is(err, ErrTokenizer) {
		t.Errorf("ReadBPE with the wrong vocab size: %v", err)
	}
	if _, err := ReadTokenizer(data, len(c.Tokens)); err == nil {
		t.Error("ReadTokenizer accepted the BPE format")
	}
	for cut := 0; cut < len(data); cut += 1 + cut/3 {
		if _, err := ReadBPE(data[:cut], len(c.Tokens)); err == nil {
			t.Fatalf("ReadBPE accepted %d of %d bytes", cut, len(data))
		}
	}
	if _, err := ReadBPE(append(data, 0), len(c.Tokens)); !errors.Is(err, ErrTrailing) {
		t.Errorf("trailing byte: %v", err)
	}
}

func TestBPEBadInput(t *testing.T) {
	base := func() BPEConfig { return testBPEConfig(PreGPT2, 20) }
	cases := []struct {
		name string
		edit func(*BPEConfig)
		want string
	}{
		{"merge of unknown token", func(c *BPEConfig) { c.Merges = append(c.Merges, [2]string{"zzq", "t"}) }, `"zzq" is not a token`},
		{"merged token missing", func(c *BPEConfig) { c.Merges = append(c.Merges, [2]string{"q", "j"}) }, `merged token "qj" is not in the vocabulary`},
		{"missing byte", func(c *BPEConfig) { c.Tokens[0x41].Kind = BPEUnused }, "no token for byte 0x41"},
		{"not byte-level", func(c *BPEConfig) { c.Tokens[260].Text = "a b" }, "not in byte-level"},
		{"duplicate", func(c *BPEConfig) { c.Tokens[265] = c.Tokens[0x61] }, "are both"},
		{"bad pre", func(c *BPEConfig) { c.Pre = "bert" }, `pre-tokenizer "bert"`},
		{"bad EOS", func(c *BPEConfig) { c.EOS = 1 << 19 }, "EOS id"},
		{"bad stop", func(c *BPEConfig) { c.Stop = []int{-3} }, "stop id -3"},
		{"long token", func(c *BPEConfig) { c.Tokens[260].Text = strings.Repeat("a", MaxTokenLength+1) }, "bytes long"},
		{"empty special", func(c *BPEConfig) { c.Tokens[len(c.Tokens)-1].Text = "" }, "special token"},
		{"tiny vocab", func(c *BPEConfig) { c.Tokens = c.Tokens[:100] }, "100 tokens"},
	}
	for _, k := range cases {
		c := base()
		k.edit(&c)
		_, err := NewBPE(c)
		if err == nil || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%s: got %v, want an error containing %q", k.name, err, k.want)
		}
	}
}

func FuzzBPEEncode(f *testing.F) {
	for _, s := range []string{"", "hello world", "a  b\n\n", "<|eot_id|>x", "12345", "\xff\xfe", "日本語 テ"} {
		f.Add(s)
	}
	c := testBPEConfig(PreLlama3, 60)
	tok, err := NewBPE(c)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var dec strings.Builder
		for _, id := range tok.Encode(s, false, false) {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d", s, id)
			}
			dec.WriteString(tok.Decode(0, id))
		}
		if dec.String() != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, dec.String())
		}
		var n int
		preSplit(PreGPT2, s, func(ch string) {
			if ch == "" {
				t.Fatal("empty chunk")
			}
			n += len(ch)
		})
		if n != len(s) {
			t.Fatalf("chunks cover %d of %d bytes", n, len(s))
		}
	})
}

func FuzzReadBPE(f *testing.F) {
	c := testBPEConfig(PreLlama3, 30)
	tok, _ := NewBPE(c)
	data, _ := tok.MarshalBinary()
	f.Add(data, len(c.Tokens))
	f.Add(data[:40], len(c.Tokens))
	f.Add([]byte("SBPE\x01\x00\x00\x00"), 256)
	f.Fuzz(func(t *testing.T, data []byte, vocab int) {
		tok, err := ReadBPE(data, vocab)
		if err != nil {
			return
		}
		again, _ := tok.MarshalBinary()
		if _, err := ReadBPE(again, vocab); err != nil {
			t.Fatalf("re-read of MarshalBinary output failed: %v", err)
		}
		tok.Encode("hello <|eot_id|> 123 wörld", true, true)
	})
}

// BenchmarkBPEEncode encodes 64 KiB of mixed text with a Llama 3 style
// tokenizer of a few hundred merges (MB/s of input).
func BenchmarkBPEEncode(b *testing.B) {
	c := testBPEConfig(PreLlama3, 300)
	tok, err := NewBPE(c)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	var sb strings.Builder
	for sb.Len() < 64<<10 {
		sb.WriteString(randomText(r, 50))
	}
	text := sb.String()
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = len(tok.Encode(text, true, false))
	}
	b.ReportMetric(float64(len(text))/float64(n), "bytes/token")
}

// mergeByRank applies merges the naive way: again and again, the pair of
// lowest rank, leftmost first. Tests compare the tokenizers against it.
func mergeByRank(sym []string, rank map[[2]string]int) []string {
	for {
		best, at := -1, -1
		for i := 0; i+1 < len(sym); i++ {
			if r, ok := rank[[2]string{sym[i], sym[i+1]}]; ok && (best < 0 || r < best) {
				best, at = r, i
			}
		}
		if at < 0 {
			break
		}
		sym = append(sym[:at], append([]string{sym[at] + sym[at+1]}, sym[at+2:]...)...)
	}
	return sym
}
