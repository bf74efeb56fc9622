package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Hugging Face architecture names ReadHF accepts.
const (
	HFArchitecture        = "LlamaForCausalLM"
	HFMistralArchitecture = "MistralForCausalLM"
	HFQwen2Architecture   = "Qwen2ForCausalLM"
)

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
	AttnBias      *bool           `json:"attention_bias"`
	MLPBias       *bool           `json:"mlp_bias"`
	SlidingWindow *int            `json:"sliding_window"`
	UseSliding    *bool           `json:"use_sliding_window"`
	BOS           json.RawMessage `json:"bos_token_id"`
	EOS           json.RawMessage `json:"eos_token_id"`
}

// hfRope is config.json's rope_scaling.
type hfRope struct {
	Type     string   `json:"type"`
	RopeType string   `json:"rope_type"` // newer name of type
	Factor   *float64 `json:"factor"`
	Low      *float64 `json:"low_freq_factor"`
	High     *float64 `json:"high_freq_factor"`
	OrigMax  *int     `json:"original_max_position_embeddings"`
}

// ropeScaling turns rope_scaling into a RopeScaling: null or type
// "default" is plain RoPE, "linear" needs factor, "llama3" needs factor,
// low_freq_factor, high_freq_factor and original_max_position_embeddings.
// Other types (yarn, dynamic, longrope) are refused with ErrUnsupported.
func (hc *hfConfig) ropeScaling() (RopeScaling, error) {
	var r RopeScaling
	if len(hc.RopeScaling) == 0 || string(bytes.TrimSpace(hc.RopeScaling)) == "null" {
		return r, nil
	}
	var h hfRope
	if err := json.Unmarshal(hc.RopeScaling, &h); err != nil {
		return r, fmt.Errorf("%w: config.json rope_scaling: %v", ErrFormat, err)
	}
	typ := h.RopeType
	if typ == "" {
		typ = h.Type
	}
	need := func(name string, p *float64) (float32, error) {
		if p == nil {
			return 0, fmt.Errorf("%w: config.json rope_scaling type %q has no %s", ErrFormat, typ, name)
		}
		return float32(*p), nil
	}
	var err error
	switch typ {
	case "default", "":
		return r, nil
	case RopeLinear:
		r.Type = RopeLinear
		r.Factor, err = need("factor", h.Factor)
	case RopeLlama3:
		r.Type = RopeLlama3
		if r.Factor, err = need("factor", h.Factor); err != nil {
			return r, err
		}
		if r.LowFreqFactor, err = need("low_freq_factor", h.Low); err != nil {
			return r, err
		}
		if r.HighFreqFactor, err = need("high_freq_factor", h.High); err != nil {
			return r, err
		}
		if h.OrigMax == nil {
			return r, fmt.Errorf("%w: config.json rope_scaling type llama3 has no original_max_position_embeddings", ErrFormat)
		}
		r.OriginalMaxPos = *h.OrigMax
	default:
		return r, fmt.Errorf("%w: config.json rope_scaling type %.40q; only %q and %q are supported", ErrUnsupported, typ, RopeLinear, RopeLlama3)
	}
	return r, err
}

// hfTokenIDs reads bos_token_id or eos_token_id: null, an integer or a
// list of integers.
func hfTokenIDs(raw json.RawMessage, name string) ([]int, error) {
	if len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	var one int
	if json.Unmarshal(raw, &one) == nil {
		return []int{one}, nil
	}
	var list []int
	if err := json.Unmarshal(raw, &list); err != nil || len(list) > 256 {
		return nil, fmt.Errorf("%w: config.json %s %.40s is not an id or a list of up to 256 ids", ErrFormat, name, raw)
	}
	return list, nil
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
	arch := ""
	for _, a := range []string{HFArchitecture, HFMistralArchitecture, HFQwen2Architecture} {
		if slices.Contains(hc.Architectures, a) {
			arch = a
		}
	}
	if arch == "" {
		return cfg, fmt.Errorf("%w: config.json architectures %q; only %q, %q and %q are supported",
			ErrUnsupported, hc.Architectures, HFArchitecture, HFMistralArchitecture, HFQwen2Architecture)
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
	cfg.QKVBias = arch == HFQwen2Architecture
	if hc.AttnBias != nil && *hc.AttnBias && arch != HFQwen2Architecture {
		return cfg, fmt.Errorf("%w: config.json attention_bias true (biases on q, k, v and o_proj); only Qwen2's q/k/v biases are supported", ErrUnsupported)
	}
	if hc.MLPBias != nil && *hc.MLPBias {
		return cfg, fmt.Errorf("%w: config.json mlp_bias true; MLP biases are not supported", ErrUnsupported)
	}
	// Sliding-window attention equals full attention while the context is
	// no longer than the window, so the context is cut to the window.
	sliding := hc.SlidingWindow != nil && (arch == HFMistralArchitecture || hc.UseSliding != nil && *hc.UseSliding)
	if sliding && *hc.SlidingWindow < cfg.SeqLen {
		if *hc.SlidingWindow < 1 {
			return cfg, fmt.Errorf("%w: config.json sliding_window %d", ErrConfig, *hc.SlidingWindow)
		}
		cfg.SeqLen = *hc.SlidingWindow
	}
	var err error
	if cfg.RopeScaling, err = hc.ropeScaling(); err != nil {
		return cfg, err
	}
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
	return cfg, nil
}

// ReadHF reads a Hugging Face Llama-family checkpoint: config (the bytes
// of config.json, whose architectures must contain "LlamaForCausalLM",
// "MistralForCausalLM" or "Qwen2ForCausalLM") and a model.safetensors
// file of size bytes read from weights. Tensors may be F32, F16 or BF16;
// they are converted to float32 exactly.
//
// The config maps hidden_size → Dim, intermediate_size → HiddenDim,
// num_hidden_layers, num_attention_heads, num_key_value_heads (default
// num_attention_heads), vocab_size, max_position_embeddings → SeqLen,
// rms_norm_eps, rope_theta (default 10000), rope_scaling (linear or
// llama3, see RopeScaling; other types are refused) and
// tie_word_embeddings → SharedClassifier (default false; when true
// lm_head.weight may be absent). Qwen2 has q/k/v biases (QKVBias,
// tensors self_attn.{q,k,v}_proj.bias). A sliding window (Mistral's
// sliding_window, Qwen2's when use_sliding_window) shorter than
// max_position_embeddings becomes SeqLen: attention within the window is
// full attention, so the model is exact up to that context and refuses
// longer ones. attention_bias (Llama's o_proj bias) and mlp_bias are
// refused.
//
// Hugging Face stores q_proj and k_proj with each head's rows permuted so
// that RoPE rotates the two halves of the head (rotate_half) rather than
// adjacent pairs as llama2.c and this package do: row h·hs+j·hs/2+i of the
// file is row h·hs+2i+j of the Meta layout (transformers'
// convert_llama_weights_to_hf permute), and so are Qwen2's q and k
// biases. ReadHF undoes it, so the model's forward pass equals the
// checkpoint's.
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
	ts := make(map[string]stRef, len(f.tensors))
	for name, t := range f.tensors {
		ts[name] = stRef{f, t}
	}
	return readHFTensors(cfg, ts)
}

// stRef is a tensor and the safetensors file holding it.
type stRef struct {
	f *stFile
	t stTensor
}

// readHFTensors builds the model of cfg from the tensors of a checkpoint,
// one file or several: shapes and names are checked first, then the data
// is read.
func readHFTensors(cfg Config, tensors map[string]stRef) (*Model, error) {
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
		if cfg.QKVBias {
			wants[p+"self_attn.q_proj.bias"] = want{[]int64{d}, &b.Bq}
			wants[p+"self_attn.k_proj.bias"] = want{[]int64{kv}, &b.Bk}
			wants[p+"self_attn.v_proj.bias"] = want{[]int64{kv}, &b.Bv}
		}
	}
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		names = append(names, name)
	}
	slices.Sort(names) // deterministic error for the first bad tensor
	for _, name := range names {
		t := tensors[name].t
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
		if _, ok := tensors[name]; !ok && !(name == "lm_head.weight" && cfg.SharedClassifier) {
			return nil, fmt.Errorf("%w: safetensors tensor %s is missing", ErrFormat, name)
		}
	}
	for _, name := range names {
		r := tensors[name]
		data, err := r.f.floats(r.t)
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
		if cfg.QKVBias {
			b.Bq = unpermuteHF(b.Bq, cfg.NHeads, 1)
			b.Bk = unpermuteHF(b.Bk, cfg.NKVHeads, 1)
		}
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
	Architectures []string   `json:"architectures"`
	ModelType     string     `json:"model_type"`
	Hidden        int        `json:"hidden_size"`
	Intermediate  int        `json:"intermediate_size"`
	Layers        int        `json:"num_hidden_layers"`
	Heads         int        `json:"num_attention_heads"`
	KVHeads       int        `json:"num_key_value_heads"`
	Vocab         int        `json:"vocab_size"`
	MaxPos        int        `json:"max_position_embeddings"`
	NormEps       hfFloat    `json:"rms_norm_eps"`
	RopeTheta     hfFloat    `json:"rope_theta"`
	RopeScaling   *hfRopeOut `json:"rope_scaling,omitempty"`
	Tie           bool       `json:"tie_word_embeddings"`
	HiddenAct     string     `json:"hidden_act"`
	BOS           int        `json:"bos_token_id"`
	EOS           int        `json:"eos_token_id"`
	TorchDtype    string     `json:"torch_dtype"`
}

// hfRopeOut is rope_scaling as WriteHF writes it.
type hfRopeOut struct {
	RopeType string  `json:"rope_type"`
	Factor   hfFloat `json:"factor"`
	Low      hfFloat `json:"low_freq_factor,omitempty"`
	High     hfFloat `json:"high_freq_factor,omitempty"`
	OrigMax  int     `json:"original_max_position_embeddings,omitempty"`
}

// WriteHF exports a whole model as a Hugging Face Llama checkpoint
// (Qwen2ForCausalLM with q/k/v biases when QKVBias): the bytes of
// config.json and of model.safetensors (F32, q_proj and k_proj and their
// biases permuted to Hugging Face's layout, no lm_head.weight when the
// classifier is shared, rope_scaling when set). The output depends only on m, so ReadHF of it
// gives back bitwise the same weights.
func WriteHF(m *Model) (config []byte, weights []byte, err error) {
	config, ts, err := hfExport(m)
	if err != nil {
		return nil, nil, err
	}
	weights, err = writeSafetensors(ts, map[string]string{"format": "pt"})
	if err != nil {
		return nil, nil, err
	}
	return config, weights, nil
}

// hfExport returns config.json and the tensors of model.safetensors as
// WriteHF writes them: the head's first, then block by block.
func hfExport(m *Model) (config []byte, ts []Tensor, err error) {
	if err := checkWhole(m); err != nil {
		return nil, nil, err
	}
	c := m.Config
	arch, mt := HFArchitecture, "llama"
	if c.QKVBias {
		arch, mt = HFQwen2Architecture, "qwen2"
	}
	var rope *hfRopeOut
	if r := c.RopeScaling; r.Type != "" {
		rope = &hfRopeOut{RopeType: r.Type, Factor: hfFloat(r.Factor), Low: hfFloat(r.LowFreqFactor),
			High: hfFloat(r.HighFreqFactor), OrigMax: r.OriginalMaxPos}
	}
	config, err = json.MarshalIndent(hfConfigOut{
		Architectures: []string{arch}, ModelType: mt, RopeScaling: rope,
		Hidden: c.Dim, Intermediate: c.HiddenDim, Layers: c.NLayers, Heads: c.NHeads, KVHeads: c.NKVHeads,
		Vocab: c.VocabSize, MaxPos: c.SeqLen, NormEps: hfFloat(c.NormEps), RopeTheta: hfFloat(c.RopeTheta),
		Tie: c.SharedClassifier, HiddenAct: "silu", BOS: BOS, EOS: EOS, TorchDtype: "float32",
	}, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("model: config.json: %w", err)
	}
	config = append(config, '\n')
	d, kv, hid, v := c.Dim, c.KVDim(), c.HiddenDim, c.VocabSize
	ts = []Tensor{
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
		if c.QKVBias {
			ts = append(ts,
				Tensor{Name: p + "self_attn.q_proj.bias", Shape: []int{d}, Data: permuteHF(b.Bq, c.NHeads, 1)},
				Tensor{Name: p + "self_attn.k_proj.bias", Shape: []int{kv}, Data: permuteHF(b.Bk, c.NKVHeads, 1)},
				Tensor{Name: p + "self_attn.v_proj.bias", Shape: []int{kv}, Data: b.Bv},
			)
		}
	}
	return config, ts, nil
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
