package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/tensor"
)

// TestRopeScalingFreqs checks RoPEFreqs against values worked out by hand
// from the formulas of transformers' _compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters and
// _compute_llama3_parameters: theta 1e6 and head size 8 give base
// frequencies 1, 1e6^-1/4, 1e-3, 1e6^-3/4 (wavelengths 6.28, 198.7, 6283,
// 198692). With Llama 3 scaling (factor 8, low 1, high 4, original 8192)
// the bands are λ < 2048 (kept), λ > 8192 (divided by 8) and between:
// s = (8192/6283.185 − 1)/3 = 0.1012658, f = (1−s)·1e-3/8 + s·1e-3 =
// 2.136075e-4.
func TestRopeScalingFreqs(t *testing.T) {
	c := Config{Dim: 16, HiddenDim: 8, NLayers: 1, NHeads: 2, NKVHeads: 2, VocabSize: 300, SeqLen: 8, NormEps: 1e-5, RopeTheta: 1e6}
	cases := []struct {
		r    RopeScaling
		want []float64
	}{
		{RopeScaling{}, []float64{1, 0.0316227766, 1e-3, 3.16227766e-5}},
		{RopeScaling{Type: RopeLinear, Factor: 4}, []float64{0.25, 0.0316227766 / 4, 2.5e-4, 3.16227766e-5 / 4}},
		{RopeScaling{Type: RopeLlama3, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192},
			[]float64{1, 0.0316227766, 2.136075e-4, 3.952847e-6}},
	}
	for _, k := range cases {
		c.RopeScaling = k.r
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		got := make([]float32, 4)
		c.RoPEFreqs(got)
		for p, w := range k.want {
			if math.Abs(float64(got[p])-w) > 2e-6*w {
				t.Errorf("%+v: freq[%d] = %.7g, want %.7g", k.r, p, got[p], w)
			}
		}
	}
}

func TestRopeScalingValidate(t *testing.T) {
	for _, k := range []struct {
		r    RopeScaling
		want string
	}{
		{RopeScaling{Type: "yarn", Factor: 4}, `type "yarn" is not supported`},
		{RopeScaling{Type: RopeLinear, Factor: 0.5}, "linear factor 0.5"},
		{RopeScaling{Type: RopeLinear, Factor: float32(math.NaN())}, "linear factor NaN"},
		{RopeScaling{Factor: 2}, "has no type"},
		{RopeScaling{Type: RopeLlama3, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4}, "original_max_position_embeddings 0"},
		{RopeScaling{Type: RopeLlama3, Factor: 8, LowFreqFactor: 0, HighFreqFactor: 4, OriginalMaxPos: 8}, "low_freq_factor 0"},
	} {
		err := k.r.Validate()
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), k.want) {
			t.Errorf("%+v: got %v, want ErrConfig containing %q", k.r, err, k.want)
		}
	}
}

// TestConfigJSONUnchanged: the new fields are left out when zero, so the
// manifest (and CID) of every existing model is unchanged.
func TestConfigJSONUnchanged(t *testing.T) {
	b, _ := json.Marshal(ggufTestConfig)
	if s := string(b); strings.Contains(s, "qkv_bias") || strings.Contains(s, "rope_scaling") {
		t.Errorf("plain config JSON %s mentions the variant fields", s)
	}
	c := qwenTestConfig()
	b, _ = json.Marshal(c)
	var back Config
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Errorf("config %s did not round-trip: %+v, %v", b, back, err)
	}
}

// qwenTestConfig is a small Qwen2-like model: q/k/v biases, grouped-query
// attention, Llama 3 RoPE scaling whose bands all fall within head size 8
// (original context 64: λ < 16 kept, λ > 64 divided, between smoothed).
func qwenTestConfig() Config {
	return Config{Dim: 16, HiddenDim: 24, NLayers: 2, NHeads: 2, NKVHeads: 1, VocabSize: 300, SeqLen: 24,
		NormEps: 1e-6, RopeTheta: 100, QKVBias: true,
		RopeScaling: RopeScaling{Type: RopeLlama3, Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 64}}
}

// hfRefLogits is a float64 forward pass over the tensors of a Hugging Face
// checkpoint, written from transformers' modeling_qwen2 / modeling_llama:
// q = W_q·x + b_q (biases only for Qwen2), RoPE by rotate_half (the first
// and second halves of each head rotate together, inv_freq from
// rope_theta then rope_scaling), causal grouped-query attention, SwiGLU.
// It shares no code with the package's forward pass.
func hfRefLogits(t *testing.T, config, weights []byte, toks []int) [][]float64 {
	t.Helper()
	var hc struct {
		D     int            `json:"hidden_size"`
		H     int            `json:"intermediate_size"`
		L     int            `json:"num_hidden_layers"`
		NH    int            `json:"num_attention_heads"`
		NKV   int            `json:"num_key_value_heads"`
		V     int            `json:"vocab_size"`
		Eps   float64        `json:"rms_norm_eps"`
		Theta float64        `json:"rope_theta"`
		Rope  map[string]any `json:"rope_scaling"`
	}
	if err := json.Unmarshal(config, &hc); err != nil {
		t.Fatal(err)
	}
	f, err := parseSafetensors(bytes.NewReader(weights), int64(len(weights)))
	if err != nil {
		t.Fatal(err)
	}
	w := func(name string) []float64 {
		ts, ok := f.tensors[name]
		if !ok {
			return nil
		}
		v, err := f.floats(ts)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out
	}
	hs := hc.D / hc.NH
	inv := make([]float64, hs/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(hc.Theta, float64(2*i)/float64(hs))
		if hc.Rope == nil {
			continue
		}
		factor := hc.Rope["factor"].(float64)
		switch hc.Rope["rope_type"] {
		case "linear":
			inv[i] /= factor
		case "llama3":
			lo, hi := hc.Rope["low_freq_factor"].(float64), hc.Rope["high_freq_factor"].(float64)
			old := hc.Rope["original_max_position_embeddings"].(float64)
			wl := 2 * math.Pi / inv[i]
			switch {
			case wl > old/lo:
				inv[i] /= factor
			case wl >= old/hi:
				s := (old/wl - lo) / (hi - lo)
				inv[i] = (1-s)*inv[i]/factor + s*inv[i]
			}
		}
	}
	lin := func(wt, b, x []float64, rows int) []float64 {
		y := make([]float64, rows)
		for r := range rows {
			for c, v := range x {
				y[r] += wt[r*len(x)+c] * v
			}
			if b != nil {
				y[r] += b[r]
			}
		}
		return y
	}
	norm := func(x, g []float64) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+hc.Eps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = g[i] * x[i] * r
		}
		return y
	}
	rot := func(v []float64, pos int) {
		for h := 0; h < len(v); h += hs {
			for i := range hs / 2 {
				c, s := math.Cos(float64(pos)*inv[i]), math.Sin(float64(pos)*inv[i])
				a, b := v[h+i], v[h+i+hs/2]
				v[h+i], v[h+i+hs/2] = a*c-b*s, b*c+a*s
			}
		}
	}
	emb := w("model.embed_tokens.weight")
	xs := make([][]float64, len(toks))
	for p, tok := range toks {
		xs[p] = slices.Clone(emb[tok*hc.D : (tok+1)*hc.D])
	}
	kvd := hc.NKV * hs
	for l := range hc.L {
		pre := "model.layers." + itoa(l) + "."
		ks, vs := make([][]float64, len(toks)), make([][]float64, len(toks))
		qs := make([][]float64, len(toks))
		for p := range toks {
			xn := norm(xs[p], w(pre+"input_layernorm.weight"))
			qs[p] = lin(w(pre+"self_attn.q_proj.weight"), w(pre+"self_attn.q_proj.bias"), xn, hc.D)
			ks[p] = lin(w(pre+"self_attn.k_proj.weight"), w(pre+"self_attn.k_proj.bias"), xn, kvd)
			vs[p] = lin(w(pre+"self_attn.v_proj.weight"), w(pre+"self_attn.v_proj.bias"), xn, kvd)
			rot(qs[p], p)
			rot(ks[p], p)
		}
		for p := range toks {
			att := make([]float64, hc.D)
			for h := range hc.NH {
				kh := h / (hc.NH / hc.NKV) * hs
				sc := make([]float64, p+1)
				mx := math.Inf(-1)
				for u := 0; u <= p; u++ {
					for i := range hs {
						sc[u] += qs[p][h*hs+i] * ks[u][kh+i]
					}
					sc[u] /= math.Sqrt(float64(hs))
					mx = math.Max(mx, sc[u])
				}
				var sum float64
				for u := range sc {
					sc[u] = math.Exp(sc[u] - mx)
					sum += sc[u]
				}
				for u := range sc {
					for i := range hs {
						att[h*hs+i] += sc[u] / sum * vs[u][kh+i]
					}
				}
			}
			o := lin(w(pre+"self_attn.o_proj.weight"), nil, att, hc.D)
			for i := range o {
				xs[p][i] += o[i]
			}
			xn := norm(xs[p], w(pre+"post_attention_layernorm.weight"))
			g := lin(w(pre+"mlp.gate_proj.weight"), nil, xn, hc.H)
			u := lin(w(pre+"mlp.up_proj.weight"), nil, xn, hc.H)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := lin(w(pre+"mlp.down_proj.weight"), nil, g, hc.D)
			for i := range d {
				xs[p][i] += d[i]
			}
		}
	}
	head := w("lm_head.weight")
	if head == nil {
		head = emb
	}
	out := make([][]float64, len(toks))
	for p := range toks {
		out[p] = lin(head, nil, norm(xs[p], w("model.norm.weight")), hc.V)
	}
	return out
}

// TestQwen2AgainstReference: a synthetic Qwen2 model with biases, GQA and
// Llama 3 RoPE scaling, exported in Hugging Face's layout and read back,
// gives the logits of the independent float64 reference of that layout.
func TestQwen2AgainstReference(t *testing.T) {
	for _, rope := range []RopeScaling{qwenTestConfig().RopeScaling, {Type: RopeLinear, Factor: 2}, {}} {
		c := qwenTestConfig()
		c.RopeScaling = rope
		m := Synth(c, 11)
		config, weights, err := WriteHF(m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(config, []byte(HFQwen2Architecture)) {
			t.Fatalf("config.json does not name %s:\n%s", HFQwen2Architecture, config)
		}
		back, err := readHFBytes(config, weights)
		if err != nil {
			t.Fatal(err)
		}
		sameModel(t, back, m)
		if back.Config != c {
			t.Fatalf("config after round trip %+v, want %+v", back.Config, c)
		}
		toks := []int{1, 40, 7, 299, 3, 3, 150, 20, 21, 22, 90, 5, 6, 7, 8, 9, 10, 11, 200, 201}
		want := hfRefLogits(t, config, weights, toks)
		got := stepLogits(back, toks)
		var worst float64
		for p := range toks {
			for i := range want[p] {
				worst = math.Max(worst, math.Abs(float64(got[p][i])-want[p][i]))
			}
		}
		t.Logf("rope %+v: largest logit difference from the float64 reference %.3g", rope, worst)
		if worst > 1e-6 { // float32 rounding is ~5e-8 here; a wrong rotation or bias layout gives ~1e-4
			t.Errorf("rope %+v: largest logit difference from the reference %.3g, want ≤ 1e-6", rope, worst)
		}
		// Without the biases the logits must differ: they are really used.
		if rope.Type == "" {
			nb := Synth(c, 11)
			for _, b := range nb.Blocks {
				clear(b.Bq)
				clear(b.Bk)
				clear(b.Bv)
			}
			if slices.Equal(stepLogits(nb, toks[:3])[2], got[2]) {
				t.Error("zeroing the biases did not change the logits")
			}
		}
	}
}

// TestBiasBatchAndQuant: the package invariants hold for a model with
// biases: batched steps and the training forward equal single steps
// bitwise, a quantized model keeps its biases.
func TestBiasBatchAndQuant(t *testing.T) {
	c := qwenTestConfig()
	m := Synth(c, 3)
	toks := []int{5, 6, 7, 8, 9, 10}
	one := stepLogits(m, toks)
	s := m.NewState(0, c.NLayers)
	xs := make([]float32, len(toks)*c.Dim)
	for p, tok := range toks {
		m.Embed(tok, xs[p*c.Dim:(p+1)*c.Dim])
	}
	m.ForwardSeq(s, xs, 0, len(toks))
	xs = slices.Clone(xs) // Logits below normalizes its input in place
	last := slices.Clone(xs[(len(toks)-1)*c.Dim:])
	logits := make([]float32, c.VocabSize)
	m.Logits(last, logits)
	if !slices.Equal(logits, one[len(toks)-1]) {
		t.Error("ForwardSeq of a biased model differs from Step")
	}
	q, err := m.Quantize(tensor.Q8_0)
	if err != nil {
		t.Fatal(err)
	}
	if q.Blocks[0].Bq == nil || q.Blocks[0].Dequantize().Bk == nil {
		t.Fatal("quantizing dropped the biases")
	}
	norms, mats := q.Blocks[1].QuantTensors(c)
	b, err := BlockFromQuantTensors(c, norms, mats)
	if err != nil || !slices.Equal(b.Bv, m.Blocks[1].Bv) {
		t.Fatalf("BlockFromQuantTensors: %v", err)
	}
	if _, err := BlockFromQuantTensors(c, norms[:2], mats); !errors.Is(err, ErrFormat) {
		t.Errorf("quantized block without its biases: %v", err)
	}
	// Training runs the same function: ForwardSpan equals Forward bitwise.
	if err := m.CheckTrainable(0, c.NLayers); err != nil {
		t.Fatal(err)
	}
	tp := m.NewTape(0, c.NLayers, len(toks), false)
	in := make([]float32, len(toks)*c.Dim)
	for p, tok := range toks {
		m.Embed(tok, in[p*c.Dim:(p+1)*c.Dim])
	}
	out := make([]float32, len(in))
	m.ForwardSpan(tp, in, len(toks), out)
	if !slices.Equal(out, xs) {
		t.Error("ForwardSpan of a biased model differs from ForwardSeq")
	}
	if err := WriteLlama2C(&bytes.Buffer{}, m); !errors.Is(err, ErrUnsupported) {
		t.Errorf("WriteLlama2C of a biased model: %v, want ErrUnsupported", err)
	}
	// A bias of the wrong shape is named.
	ts := m.Blocks[0].Tensors(c)
	ts[10].Data, ts[10].Shape = ts[10].Data[:4], []int{4}
	if _, err := BlockFromTensors(c, ts); err == nil || !strings.Contains(err.Error(), `"bk" has shape [4], want [8]`) {
		t.Errorf("bias of the wrong shape: %v", err)
	}
}

func TestHFVariantConfigs(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"architectures": []string{"MistralForCausalLM"}, "hidden_size": 16, "intermediate_size": 24,
			"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 300,
			"max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 1e6}
	}
	cfgOf := func(m map[string]any) (Config, error) {
		b, _ := json.Marshal(m)
		return hfModelConfig(b)
	}
	m := base()
	m["sliding_window"] = 16
	c, err := cfgOf(m)
	if err != nil || c.SeqLen != 16 || c.RopeTheta != 1e6 || c.QKVBias {
		t.Errorf("Mistral with sliding_window 16: %+v, %v; want SeqLen 16", c, err)
	}
	m["sliding_window"] = nil
	if c, _ := cfgOf(m); c.SeqLen != 64 {
		t.Errorf("Mistral without a window: SeqLen %d, want 64", c.SeqLen)
	}
	m = base()
	m["architectures"] = []string{"Qwen2ForCausalLM"}
	m["sliding_window"], m["use_sliding_window"] = 16, false
	if c, err := cfgOf(m); err != nil || c.SeqLen != 64 || !c.QKVBias {
		t.Errorf("Qwen2 with use_sliding_window false: %+v, %v", c, err)
	}
	m = base()
	m["architectures"] = []string{"LlamaForCausalLM"}
	m["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
		"high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
	want := RopeScaling{Type: RopeLlama3, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPos: 8192}
	if c, err := cfgOf(m); err != nil || c.RopeScaling != want {
		t.Errorf("Llama 3.1 rope_scaling: %+v, %v", c.RopeScaling, err)
	}
	m["rope_scaling"] = map[string]any{"type": "dynamic", "factor": 2.0}
	if _, err := cfgOf(m); !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), `"dynamic"`) {
		t.Errorf("dynamic rope_scaling: %v", err)
	}
}
