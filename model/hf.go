package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// HFArchitecture is the Hugging Face architecture name ReadHF accepts.
const HFArchitecture = "LlamaForCausalLM"

// hfConfig is the part of a Hugging Face config.json that describes a
// Llama model. Pointers tell a missing field from a zero one.
type hfConfig struct {
	Architectures []string        `json:"architectures"`
	Hidden        *int            `json:"hidden_size"`
	Intermediate  *int            `json:"intermediate_size"`
	Layers        *int            `json:"num_hidden_layers"`
	Heads         *int            `json:"num_attention_heads"`
	KVHeads       *int            `json:"num_key_value_heads"`
	Vocab         *int            `json:"vocab_size"`
	MaxPos        *int            `json:"max_position_embeddings"`
	NormEps       *float64        `json:"rms_norm_eps"`
	RopeTheta     *float64        `json:"rope_theta"`
	Tie           *bool           `json:"tie_word_embeddings"`
	HiddenAct     *string         `json:"hidden_act"`
	HeadDim       *int            `json:"head_dim"`
	RopeScaling   json.RawMessage `json:"rope_scaling"`
}

// maxHFConfig bounds config.json.
const maxHFConfig = 1 << 20

// hfModelConfig turns config.json into a Config (SharedClassifier from
// tie_word_embeddings, default false as in transformers' LlamaConfig).
func hfModelConfig(data []byte) (Config, error) {
	var cfg Config
	if len(data) > maxHFConfig {
		return cfg, fmt.Errorf("%w: config.json is %d bytes, limit %d", ErrFormat, len(data), maxHFConfig)
	}
	var hc hfConfig
	if err := json.Unmarshal(data, &hc); err != nil {
		return cfg, fmt.Errorf("%w: config.json: %v", ErrFormat, err)
	}
	if !slices.Contains(hc.Architectures, HFArchitecture) {
		return cfg, fmt.Errorf("%w: config.json architectures %q; only %q is supported",
			ErrUnsupported, hc.Architectures, HFArchitecture)
	}
	for _, f := range []struct {
		p    *int
		name string
		dst  *int
	}{
		{hc.Hidden, "hidden_size", &cfg.Dim},
		{hc.Intermediate, "intermediate_size", &cfg.HiddenDim},
		{hc.Layers, "num_hidden_layers", &cfg.NLayers},
		{hc.Heads, "num_attention_heads", &cfg.NHeads},
		{hc.Vocab, "vocab_size", &cfg.VocabSize},
		{hc.MaxPos, "max_position_embeddings", &cfg.SeqLen},
	} {
		if f.p == nil {
			return cfg, fmt.Errorf("%w: config.json has no %s", ErrFormat, f.name)
		}
		*f.dst = *f.p
	}
	cfg.NKVHeads = cfg.NHeads
	if hc.KVHeads != nil {
		cfg.NKVHeads = *hc.KVHeads
	}
	if hc.NormEps == nil {
		return cfg, fmt.Errorf("%w: config.json has no rms_norm_eps", ErrFormat)
	}
	cfg.NormEps = float32(*hc.NormEps)
	cfg.RopeTheta = llama2cRopeTheta
	if hc.RopeTheta != nil {
		cfg.RopeTheta = float32(*hc.RopeTheta)
	}
	cfg.SharedClassifier = hc.Tie != nil && *hc.Tie
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("model: config.json: %w", err)
	}
	if hc.HiddenAct != nil && *hc.HiddenAct != "silu" {
		return cfg, fmt.Errorf("%w: config.json hidden_act %q; only \"silu\" is supported", ErrUnsupported, *hc.HiddenAct)
	}
	if hc.HeadDim != nil && *hc.HeadDim != cfg.HeadSize() {
		return cfg, fmt.Errorf("%w: config.json head_dim %d; only hidden_size/num_attention_heads = %d is supported",
			ErrUnsupported, *hc.HeadDim, cfg.HeadSize())
	}
	if len(hc.RopeScaling) > 0 && string(bytes.TrimSpace(hc.RopeScaling)) != "null" {
		return cfg, fmt.Errorf("%w: config.json rope_scaling %s; only plain RoPE is supported", ErrUnsupported, hc.RopeScaling)
	}
	return cfg, nil
}

// ReadHF reads a Hugging Face Llama checkpoint: config (the bytes of
// config.json, whose architectures must contain "LlamaForCausalLM") and a
// model.safetensors file of size bytes read from weights. Tensors may be
// F32, F16 or BF16; they are converted to float32 exactly.
//
// The config maps hidden_size → Dim, intermediate_size → HiddenDim,
// num_hidden_layers, num_attention_heads, num_key_value_heads (default
// num_attention_heads), vocab_size, max_position_embeddings → SeqLen,
// rms_norm_eps, rope_theta (default 10000) and tie_word_embeddings →
// SharedClassifier (default false; when true lm_head.weight may be absent).
//
// Hugging Face stores q_proj and k_proj with each head's rows permuted so
// that RoPE rotates the two halves of the head (rotate_half) rather than
// adjacent pairs as llama2.c and this package do: row h·hs+j·hs/2+i of the
// file is row h·hs+2i+j of the Meta layout (transformers'
// convert_llama_weights_to_hf permute). ReadHF undoes it, so the model's
// forward pass equals the checkpoint's.
//
// Every tensor's shape is checked against the config before any data is
// read (the error names the tensor, its shape and the expected one);
// missing and unknown tensors are named. Errors wrap ErrFormat,
// ErrTruncated, ErrConfig or ErrUnsupported.
func ReadHF(config []byte, weights io.ReaderAt, size int64) (*Model, error) {
	cfg, err := hfModelConfig(config)
	if err != nil {
		return nil, err
	}
	f, err := parseSafetensors(weights, size)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, Head: &Head{}, Blocks: make([]*Block, cfg.NLayers)}
	type want struct {
		shape []int64
		dst   *[]float32
	}
	d, kv, hid, v := int64(cfg.Dim), int64(cfg.KVDim()), int64(cfg.HiddenDim), int64(cfg.VocabSize)
	wants := map[string]want{
		"model.embed_tokens.weight": {[]int64{v, d}, &m.Head.Embedding},
		"model.norm.weight":         {[]int64{d}, &m.Head.FinalNorm},
	}
	var lmHead []float32
	wants["lm_head.weight"] = want{[]int64{v, d}, &lmHead}
	for l := range m.Blocks {
		b := &Block{}
		m.Blocks[l] = b
		p := fmt.Sprintf("model.layers.%d.", l)
		wants[p+"input_layernorm.weight"] = want{[]int64{d}, &b.AttNorm}
		wants[p+"self_attn.q_proj.weight"] = want{[]int64{d, d}, &b.Wq}
		wants[p+"self_attn.k_proj.weight"] = want{[]int64{kv, d}, &b.Wk}
		wants[p+"self_attn.v_proj.weight"] = want{[]int64{kv, d}, &b.Wv}
		wants[p+"self_attn.o_proj.weight"] = want{[]int64{d, d}, &b.Wo}
		wants[p+"post_attention_layernorm.weight"] = want{[]int64{d}, &b.FFNNorm}
		wants[p+"mlp.gate_proj.weight"] = want{[]int64{hid, d}, &b.W1}
		wants[p+"mlp.down_proj.weight"] = want{[]int64{d, hid}, &b.W2}
		wants[p+"mlp.up_proj.weight"] = want{[]int64{hid, d}, &b.W3}
	}
	names := make([]string, 0, len(f.tensors))
	for name := range f.tensors {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic error for the first bad tensor
	for _, name := range names {
		t := f.tensors[name]
		w, ok := wants[name]
		if !ok {
			return nil, fmt.Errorf("%w: safetensors tensor %s is not part of a %d-layer Llama model", ErrUnsupported, name, cfg.NLayers)
		}
		if !slices.Equal(t.shape, w.shape) {
			return nil, fmt.Errorf("%w: safetensors tensor %s has shape %v, want %v from config.json", ErrFormat, name, t.shape, w.shape)
		}
	}
	wantNames := make([]string, 0, len(wants))
	for name := range wants {
		wantNames = append(wantNames, name)
	}
	slices.Sort(wantNames)
	for _, name := range wantNames {
		if _, ok := f.tensors[name]; !ok && !(name == "lm_head.weight" && cfg.SharedClassifier) {
			return nil, fmt.Errorf("%w: safetensors tensor %s is missing", ErrFormat, name)
		}
	}
	for _, name := range names {
		data, err := f.floats(f.tensors[name])
		if err != nil {
			return nil, err
		}
		*wants[name].dst = data
	}
	if !cfg.SharedClassifier {
		m.Head.Classifier = lmHead
	} else if lmHead != nil && !equalBits(lmHead, m.Head.Embedding) {
		return nil, fmt.Errorf("%w: config.json says tie_word_embeddings but lm_head.weight differs from model.embed_tokens.weight", ErrFormat)
	}
	for _, b := range m.Blocks {
		b.Wq = unpermuteHF(b.Wq, cfg.NHeads, cfg.Dim)
		b.Wk = unpermuteHF(b.Wk, cfg.NKVHeads, cfg.Dim)
	}
	return m, nil
}

// permuteHF reorders the rows of w (nHeads heads of rows, each row cols
// wide) from the Meta/llama2.c layout to Hugging Face's: within each head
// of hs rows, Meta row 2i+j goes to row j·hs/2+i. It is
// w.view(n_heads, hs/2, 2, cols).transpose(1, 2).reshape(rows, cols).
func permuteHF(w []float32, nHeads, cols int) []float32 {
	return permuteRows(w, nHeads, cols, true)
}

// unpermuteHF is the inverse of permuteHF.
func unpermuteHF(w []float32, nHeads, cols int) []float32 {
	return permuteRows(w, nHeads, cols, false)
}

func permuteRows(w []float32, nHeads, cols int, toHF bool) []float32 {
	out := make([]float32, len(w))
	hs := len(w) / cols / nHeads
	half := hs / 2
	for h := range nHeads {
		for i := range half {
			for j := range 2 {
				meta := (h*hs + 2*i + j) * cols
				hf := (h*hs + j*half + i) * cols
				if toHF {
					copy(out[hf:hf+cols], w[meta:meta+cols])
				} else {
					copy(out[meta:meta+cols], w[hf:hf+cols])
				}
			}
		}
	}
	return out
}

// hfFloat marshals a float32 config value with the fewest digits that
// read back to the same float32.
type hfFloat float32

func (f hfFloat) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(f), 'g', -1, 32), nil
}

// hfConfigOut is config.json as WriteHF writes it, in a fixed field order.
type hfConfigOut struct {
	Architectures []string `json:"architectures"`
	ModelType     string   `json:"model_type"`
	Hidden        int      `json:"hidden_size"`
	Intermediate  int      `json:"intermediate_size"`
	Layers        int      `json:"num_hidden_layers"`
	Heads         int      `json:"num_attention_heads"`
	KVHeads       int      `json:"num_key_value_heads"`
	Vocab         int      `json:"vocab_size"`
	MaxPos        int      `json:"max_position_embeddings"`
	NormEps       hfFloat  `json:"rms_norm_eps"`
	RopeTheta     hfFloat  `json:"rope_theta"`
	Tie           bool     `json:"tie_word_embeddings"`
	HiddenAct     string   `json:"hidden_act"`
	BOS           int      `json:"bos_token_id"`
	EOS           int      `json:"eos_token_id"`
	TorchDtype    string   `json:"torch_dtype"`
}

// WriteHF exports a whole model as a Hugging Face Llama checkpoint: the
// bytes of config.json and of model.safetensors (F32, q_proj and k_proj
// permuted to Hugging Face's layout, no lm_head.weight when the
// classifier is shared). The output depends only on m, so ReadHF of it
// gives back bitwise the same weights.
func WriteHF(m *Model) (config []byte, weights []byte, err error) {
	if err := checkWhole(m); err != nil {
		return nil, nil, err
	}
	c := m.Config
	config, err = json.MarshalIndent(hfConfigOut{
		Architectures: []string{HFArchitecture}, ModelType: "llama",
		Hidden: c.Dim, Intermediate: c.HiddenDim, Layers: c.NLayers, Heads: c.NHeads, KVHeads: c.NKVHeads,
		Vocab: c.VocabSize, MaxPos: c.SeqLen, NormEps: hfFloat(c.NormEps), RopeTheta: hfFloat(c.RopeTheta),
		Tie: c.SharedClassifier, HiddenAct: "silu", BOS: BOS, EOS: EOS, TorchDtype: "float32",
	}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("model: config.json: %w", err)
	}
	config = append(config, '\n')
	d, kv, hid, v := c.Dim, c.KVDim(), c.HiddenDim, c.VocabSize
	ts := []Tensor{
		{Name: "model.embed_tokens.weight", Shape: []int{v, d}, Data: m.Head.Embedding},
		{Name: "model.norm.weight", Shape: []int{d}, Data: m.Head.FinalNorm},
	}
	if !c.SharedClassifier {
		ts = append(ts, Tensor{Name: "lm_head.weight", Shape: []int{v, d}, Data: m.Head.Classifier})
	}
	for l, b := range m.Blocks {
		p := fmt.Sprintf("model.layers.%d.", l)
		ts = append(ts,
			Tensor{Name: p + "input_layernorm.weight", Shape: []int{d}, Data: b.AttNorm},
			Tensor{Name: p + "self_attn.q_proj.weight", Shape: []int{d, d}, Data: permuteHF(b.Wq, c.NHeads, d)},
			Tensor{Name: p + "self_attn.k_proj.weight", Shape: []int{kv, d}, Data: permuteHF(b.Wk, c.NKVHeads, d)},
			Tensor{Name: p + "self_attn.v_proj.weight", Shape: []int{kv, d}, Data: b.Wv},
			Tensor{Name: p + "self_attn.o_proj.weight", Shape: []int{d, d}, Data: b.Wo},
			Tensor{Name: p + "post_attention_layernorm.weight", Shape: []int{d}, Data: b.FFNNorm},
			Tensor{Name: p + "mlp.gate_proj.weight", Shape: []int{hid, d}, Data: b.W1},
			Tensor{Name: p + "mlp.down_proj.weight", Shape: []int{d, hid}, Data: b.W2},
			Tensor{Name: p + "mlp.up_proj.weight", Shape: []int{hid, d}, Data: b.W3},
		)
	}
	weights, err = writeSafetensors(ts, map[string]string{"format": "pt"})
	if err != nil {
		return nil, nil, err
	}
	return config, weights, nil
}

// checkWhole reports whether m holds every weight of its config with the
// right lengths, as an exporter needs.
func checkWhole(m *Model) error {
	if m == nil || m.Head == nil {
		return fmt.Errorf("%w: export needs a whole model; the head is missing", ErrSpan)
	}
	if err := m.Config.Validate(); err != nil {
		return err
	}
	if len(m.Blocks) != m.Config.NLayers {
		return fmt.Errorf("%w: export: %d blocks, config says %d", ErrSpan, len(m.Blocks), m.Config.NLayers)
	}
	c := m.Config
	check := func(ts []Tensor, what string) error {
		for _, t := range ts {
			n := 1
			for _, s := range t.Shape {
				n *= s
			}
			if len(t.Data) != n {
				return fmt.Errorf("%w: export: %s tensor %s has %d values, want %d", ErrFormat, what, t.Name, len(t.Data), n)
			}
		}
		return nil
	}
	if err := check(m.Head.Tensors(c), "head"); err != nil {
		return err
	}
	for l, b := range m.Blocks {
		if b == nil {
			return fmt.Errorf("%w: export needs a whole model; block %d is not loaded", ErrSpan, l)
		}
		if err := check(b.Tensors(c), fmt.Sprintf("block %d", l)); err != nil {
			return err
		}
	}
	return nil
}
