package main

import (
	"fmt"
	"os"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/testnet"
)

// presets are model shapes for synthetic models. "llama7b" is Llama-2-7B's
// block shape (the layer count is set with --layers).
var presets = map[string]model.Config{
	"testnet": testnet.DefaultConfig,
	"llama7b": {Dim: 4096, HiddenDim: 11008, NLayers: 32, NHeads: 32, NKVHeads: 32, VocabSize: 32000, SeqLen: 2048,
		SharedClassifier: false, NormEps: 1e-5, RopeTheta: 10000},
	"400m": {Dim: 1024, HiddenDim: 2816, NLayers: 8, NHeads: 16, NKVHeads: 4, VocabSize: 8192, SeqLen: 1024,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000},
	"1b": {Dim: 2048, HiddenDim: 5632, NLayers: 22, NHeads: 32, NKVHeads: 4, VocabSize: 32000, SeqLen: 2048,
		SharedClassifier: false, NormEps: 1e-5, RopeTheta: 10000},
}

type synthCmd struct {
	Repo   string `help:"Repo dir." required:"" type:"path"`
	Preset string `help:"Shape: testnet (the testnet default), 400m (about 400 MB of float32), 1b (TinyLlama-1.1B shapes) or llama7b (Llama-2-7B shapes)." default:"testnet" enum:"testnet,400m,1b,llama7b"`
	Layers int    `help:"Number of blocks (default: the preset's)."`
	Seed   int64  `help:"Weight seed; the same seed and shape give the same model CID." default:"1"`
	Name   string `help:"Model name in the manifest (default: synth-PRESET-LAYERS-SEED)."`
}

func (c *synthCmd) Run(e *env) error {
	cfg := presets[c.Preset]
	if c.Layers > 0 {
		cfg.NLayers = c.Layers
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	st, err := shards.Open(c.Repo)
	if err != nil {
		return err
	}
	name := c.Name
	if name == "" {
		name = fmt.Sprintf("synth-%s-%d-%d", c.Preset, cfg.NLayers, c.Seed)
	}
	m := model.Synth(cfg, c.Seed)
	fmt.Fprintf(os.Stderr, "synthetic model %s: %.1fM parameters, %.2f GB of float32\n",
		name, float64(m.ParamCount())/1e6, float64(m.ParamCount())*4/1e9)
	id, _, err := shards.ImportModel(st, m, model.ByteTokenizer(cfg.VocabSize), name)
	if err != nil {
		return err
	}
	if err := st.Pin(id); err != nil { // an imported model stays until unpinned
		return err
	}
	fmt.Println(id)
	return nil
}
