package model

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// WriteGGUF exports a whole model as a GGUF version 3 file of
// architecture "llama" with F32 tensors, the layout ReadGGUF reads: q/k
// rows in llama2.c order, no output.weight when the classifier is shared,
// llama.context_length = SeqLen. When tok is not nil its vocabulary is
// written as a "llama" (SentencePiece) tokenizer in tokenizer.ggml.*, with
// the piece mapping ReadGGUF undoes (space → "▁", llama2.c's "\n<s>\n"
// and "\n</s>\n" → "<s>" and "</s>"). ReadGGUF of the output gives back
// bitwise the same weights and config, and a tokenizer with the same
// pieces and scores. The bytes depend only on m and tok.
//
// A model with q/k/v biases is written as llama.cpp's "qwen2"
// architecture (q/k rows and biases in Hugging Face's layout, which
// llama.cpp rotates by halves); linear RoPE scaling as rope.scaling.type
// and factor; Llama 3 scaling as llama.cpp's rope_freqs.weight divisors
// (only with low_freq_factor 1 and high_freq_factor 4, which ReadGGUF
// recognises). A byte-level BPE tokenizer is written as a "gpt2"
// vocabulary (see bpeTokenizer); its NFC flag and stop ids beyond two are
// not recorded, and a prefix-space tokenizer is refused.
func WriteGGUF(w io.Writer, m *Model, tok *Tokenizer) error {
	if err := checkWhole(m); err != nil {
		return err
	}
	c := m.Config
	gw := &ggufWriter{w: bufio.NewWriterSize(w, 1<<20)}
	type kv struct {
		key string
		val any
	}
	arch := "llama"
	if c.QKVBias {
		arch = "qwen2"
	}
	a := arch + "."
	kvs := []kv{
		{"general.architecture", arch},
		{"general.alignment", uint32(ggufDefaultAlign)},
		{a + "context_length", uint32(c.SeqLen)},
		{a + "embedding_length", uint32(c.Dim)},
		{a + "feed_forward_length", uint32(c.HiddenDim)},
		{a + "block_count", uint32(c.NLayers)},
		{a + "attention.head_count", uint32(c.NHeads)},
		{a + "attention.head_count_kv", uint32(c.NKVHeads)},
		{a + "attention.layer_norm_rms_epsilon", c.NormEps},
		{a + "rope.freq_base", c.RopeTheta},
		{a + "rope.dimension_count", uint32(c.HeadSize())},
		{a + "vocab_size", uint32(c.VocabSize)},
	}
	var ropeFreqs []float32
	switch r := c.RopeScaling; r.Type {
	case RopeLinear:
		kvs = append(kvs, kv{a + "rope.scaling.type", RopeLinear}, kv{a + "rope.scaling.factor", r.Factor})
	case RopeLlama3:
		if r.LowFreqFactor != 1 || r.HighFreqFactor != 4 {
			return fmt.Errorf("%w: GGUF export: Llama 3 RoPE scaling with low_freq_factor %g and high_freq_factor %g; GGUF readers assume 1 and 4",
				ErrUnsupported, r.LowFreqFactor, r.HighFreqFactor)
		}
		kvs = append(kvs, kv{a + "rope.scaling.original_context_length", uint32(r.OriginalMaxPos)})
		ropeFreqs = make([]float32, c.HeadSize()/2)
		plain := c
		plain.RopeScaling = RopeScaling{}
		plain.RoPEFreqs(ropeFreqs)
		for p, f := range ropeFreqs {
			ropeFreqs[p] = float32(float64(f) / llama3Freq(float64(f), r))
		}
	}
	if tok != nil && tok.bpe != nil {
		if tok.VocabSize() != c.VocabSize {
			return fmt.Errorf("%w: GGUF export: tokenizer has %d tokens, the model %d", ErrTokenizer, tok.VocabSize(), c.VocabSize)
		}
		bkv, err := tok.ggufBPE()
		if err != nil {
			return err
		}
		for _, e := range bkv {
			kvs = append(kvs, kv{e.key, e.val})
		}
		tok = nil
	}
	if tok != nil {
		if tok.VocabSize() != c.VocabSize {
			return fmt.Errorf("%w: GGUF export: tokenizer has %d tokens, the model %d", ErrTokenizer, tok.VocabSize(), c.VocabSize)
		}
		n := tok.VocabSize()
		pieces := make([]string, n)
		scores := make([]float32, n)
		types := make([]int32, n)
		for i := range n {
			p := tok.Piece(i)
			if strings.Contains(p, "\u2581") {
				return fmt.Errorf("%w: GGUF export: token %d %q contains U+2581, which GGUF uses for a space", ErrTokenizer, i, p)
			}
			types[i] = 1 // normal
			switch {
			case i == BOS && p == "\n<s>\n":
				p, types[i] = "<s>", 3 // control
			case i == EOS && p == "\n</s>\n":
				p, types[i] = "</s>", 3
			case (i == BOS && p == "<s>") || (i == EOS && p == "</s>"):
				return fmt.Errorf("%w: GGUF export: token %d %q would read back as llama2.c's control piece", ErrTokenizer, i, p)
			case i >= 3 && i < 3+256:
				types[i] = ggufTokByte
			}
			pieces[i] = strings.ReplaceAll(p, " ", "\u2581")
			scores[i] = tok.Score(i)
		}
		kvs = append(kvs,
			kv{"tokenizer.ggml.model", "llama"},
			kv{"tokenizer.ggml.tokens", pieces},
			kv{"tokenizer.ggml.scores", scores},
			kv{"tokenizer.ggml.token_type", types},
			kv{"tokenizer.ggml.bos_token_id", uint32(BOS)},
			kv{"tokenizer.ggml.eos_token_id", uint32(EOS)},
		)
	}
	type tensor struct {
		name string
		dims []uint64 // ne0 first
		data []float32
	}
	d, kvd, hid, v := uint64(c.Dim), uint64(c.KVDim()), uint64(c.HiddenDim), uint64(c.VocabSize)
	ts := []tensor{
		{"token_embd.weight", []uint64{d, v}, m.Head.Embedding},
		{"output_norm.weight", []uint64{d}, m.Head.FinalNorm},
	}
	if !c.SharedClassifier {
		ts = append(ts, tensor{"output.weight", []uint64{d, v}, m.Head.Classifier})
	}
	if ropeFreqs != nil {
		ts = append(ts, tensor{"rope_freqs.weight", []uint64{uint64(len(ropeFreqs))}, ropeFreqs})
	}
	for l, b := range m.Blocks {
		p := fmt.Sprintf("blk.%d.", l)
		wq, wk := b.Wq, b.Wk
		if c.QKVBias {
			wq, wk = permuteHF(wq, c.NHeads, c.Dim), permuteHF(wk, c.NKVHeads, c.Dim)
			ts = append(ts,
				tensor{p + "attn_q.bias", []uint64{d}, permuteHF(b.Bq, c.NHeads, 1)},
				tensor{p + "attn_k.bias", []uint64{kvd}, permuteHF(b.Bk, c.NKVHeads, 1)},
				tensor{p + "attn_v.bias", []uint64{kvd}, b.Bv},
			)
		}
		ts = append(ts,
			tensor{p + "attn_norm.weight", []uint64{d}, b.AttNorm},
			tensor{p + "attn_q.weight", []uint64{d, d}, wq},
			tensor{p + "attn_k.weight", []uint64{d, kvd}, wk},
			tensor{p + "attn_v.weight", []uint64{d, kvd}, b.Wv},
			tensor{p + "attn_output.weight", []uint64{d, d}, b.Wo},
			tensor{p + "ffn_norm.weight", []uint64{d}, b.FFNNorm},
			tensor{p + "ffn_gate.weight", []uint64{d, hid}, b.W1},
			tensor{p + "ffn_down.weight", []uint64{hid, d}, b.W2},
			tensor{p + "ffn_up.weight", []uint64{d, hid}, b.W3},
		)
	}
	gw.raw([]byte(GGUFMagic))
	gw.u32(3)
	gw.u64(uint64(len(ts)))
	gw.u64(uint64(len(kvs)))
	for _, e := range kvs {
		gw.str(e.key)
		switch x := e.val.(type) {
		case uint32:
			gw.u32(ggufUint32)
			gw.u32(x)
		case float32:
			gw.u32(ggufFloat32)
			gw.u32(math.Float32bits(x))
		case string:
			gw.u32(ggufString)
			gw.str(x)
		case bool:
			gw.u32(ggufBool)
			if x {
				gw.raw([]byte{1})
			} else {
				gw.raw([]byte{0})
			}
		case []string:
			gw.array(ggufString, len(x))
			for _, s := range x {
				gw.str(s)
			}
		case []float32:
			gw.array(ggufFloat32, len(x))
			for _, f := range x {
				gw.u32(math.Float32bits(f))
			}
		case []int32:
			gw.array(ggufInt32, len(x))
			for _, i := range x {
				gw.u32(uint32(i))
			}
		}
	}
	const align = ggufDefaultAlign
	pad := func(n uint64) uint64 { return (n + align - 1) / align * align }
	var off uint64
	for _, t := range ts {
		gw.str(t.name)
		gw.u32(uint32(len(t.dims)))
		for _, x := range t.dims {
			gw.u64(x)
		}
		gw.u32(ggmlF32)
		gw.u64(off)
		off = pad(off + 4*uint64(len(t.data)))
	}
	gw.zeros(pad(gw.n) - gw.n)
	start := gw.n
	for _, t := range ts {
		for _, f := range t.data {
			gw.u32(math.Float32bits(f))
		}
		gw.zeros(pad(gw.n-start) - (gw.n - start))
	}
	if gw.err != nil {
		return fmt.Errorf("model: GGUF export: %w", gw.err)
	}
	if err := gw.w.Flush(); err != nil {
		return fmt.Errorf("model: GGUF export: %w", err)
	}
	return nil
}

// ggufWriter writes little-endian GGUF fields, remembering the first
// error and the byte count.
type ggufWriter struct {
	w   *bufio.Writer
	n   uint64
	err error
	buf [8]byte
}

func (g *ggufWriter) raw(p []byte) {
	if g.err != nil {
		return
	}
	_, g.err = g.w.Write(p)
	g.n += uint64(len(p))
}

func (g *ggufWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(g.buf[:4], v)
	g.raw(g.buf[:4])
}

func (g *ggufWriter) u64(v uint64) {
	binary.LittleEndian.PutUint64(g.buf[:], v)
	g.raw(g.buf[:])
}

func (g *ggufWriter) str(s string) {
	g.u64(uint64(len(s)))
	g.raw([]byte(s))
}

func (g *ggufWriter) array(elem uint32, n int) {
	g.u32(ggufArray)
	g.u32(elem)
	g.u64(uint64(n))
}

func (g *ggufWriter) zeros(n uint64) {
	for range n {
		g.raw([]byte{0})
	}
}

// ggufEntry is one metadata entry WriteGGUF writes.
type ggufEntry struct {
	key string
	val any
}

// ggufBPE gives the tokenizer.ggml.* entries of a byte-level BPE
// tokenizer, as llama.cpp's converter writes them for a "gpt2" vocabulary.
func (t *Tokenizer) ggufBPE() ([]ggufEntry, error) {
	b := t.bpe
	pre := map[string]string{PreGPT2: "gpt-2", PreLlama3: "llama-bpe", PreQwen2: "qwen2"}[b.cfg.Pre]
	if ggufPre[pre].ignoreMerges != b.cfg.IgnoreMerges {
		return nil, fmt.Errorf("%w: GGUF export: a %s tokenizer with ignore_merges %v has no GGUF pre-tokenizer name", ErrUnsupported, b.cfg.Pre, b.cfg.IgnoreMerges)
	}
	if b.cfg.AddPrefixSpace {
		return nil, fmt.Errorf("%w: GGUF export: a BPE tokenizer that adds a prefix space has no GGUF form", ErrUnsupported)
	}
	n := len(t.pieces)
	tokens := make([]string, n)
	types := make([]int32, n)
	for i, p := range t.pieces {
		switch b.kinds[i] {
		case BPENormal:
			tokens[i], types[i] = ByteLevelEncode(p), ggufTokNormal
		case BPESpecial:
			tokens[i], types[i] = p, ggufTokControl
		default:
			tokens[i], types[i] = fmt.Sprintf("[PAD%d]", i), ggufTokUnused
		}
	}
	merges := make([]string, len(b.mergeIDs))
	for r, m := range b.mergeIDs {
		merges[r] = ByteLevelEncode(t.pieces[m[0]]) + " " + ByteLevelEncode(t.pieces[m[1]])
	}
	kvs := []ggufEntry{
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", pre},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
		{"tokenizer.ggml.add_bos_token", b.cfg.AddBOS},
	}
	for _, e := range []struct {
		key string
		id  int
	}{{"tokenizer.ggml.bos_token_id", b.cfg.BOS}, {"tokenizer.ggml.eos_token_id", b.cfg.EOS}} {
		if e.id >= 0 {
			kvs = append(kvs, ggufEntry{e.key, uint32(e.id)})
		}
	}
	for k, key := range []string{"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"} {
		if k < len(b.cfg.Stop) {
			kvs = append(kvs, ggufEntry{key, uint32(b.cfg.Stop[k])})
		}
	}
	if tmpl, ok := chatTemplates[t.chat]; ok {
		kvs = append(kvs, ggufEntry{"tokenizer.chat_template", tmpl})
	}
	return kvs, nil
}

// chatTemplates are Jinja chat templates of the chat formats, written into
// exported GGUF files; each lays messages out as RenderChat does.
var chatTemplates = map[string]string{
	ChatML: "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}" +
		"{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
	ChatLlama3: "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + " +
		"message['content'] | trim + '<|eot_id|>' }}{% endfor %}" +
		"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
}
