package main

import (
	"fmt"

	"github.com/strata-mesh/strata/testnet"
)

type benchCmd struct {
	Model     string `help:"llama2.c checkpoint (default: the seeded random testnet model)." type:"existingfile"`
	Tokenizer string `help:"llama2.c tokenizer for --model." type:"existingfile"`
	Steps     int    `help:"Greedy steps per generation." default:"200"`
	Rounds    int    `help:"Generations per configuration." default:"5"`
	Nodes     int    `help:"Nodes in the split configuration." default:"3"`
}

func (c *benchCmd) Run(e *env) error {
	m, _, name, err := testnet.LoadModel(c.Model, c.Tokenizer)
	if err != nil {
		return err
	}
	cfg := m.Config
	fmt.Printf("model %s: dim %d, %d blocks, %d heads (%d kv), vocab %d, %.2fM parameters\n",
		name, cfg.Dim, cfg.NLayers, cfg.NHeads, cfg.NKVHeads, cfg.VocabSize, float64(m.ParamCount())/1e6)
	fmt.Printf("greedy, %d steps, %d rounds per configuration\n\n", c.Steps, c.Rounds)

	local := testnet.BenchLocal(m, c.Steps, c.Rounds)
	fmt.Printf("  %-44s %9.0f tok/s\n", local.Name, local.TokPerSec)
	o := testnet.Options{Checkpoint: c.Model, Tokenizer: c.Tokenizer}
	o.Spans = [][2]int{{0, cfg.NLayers}}
	alone, err := testnet.BenchMesh(e.ctx, o, c.Steps, c.Rounds)
	if err != nil {
		return err
	}
	fmt.Printf("  %-44s %9.0f tok/s\n", "1 node, all blocks (entry runs them)", alone.TokPerSec)
	o.Spans = testnet.Split(cfg.NLayers, c.Nodes)
	split, err := testnet.BenchMesh(e.ctx, o, c.Steps, c.Rounds)
	if err != nil {
		return err
	}
	fmt.Printf("  %-44s %9.0f tok/s  (%d network transfers per token)\n",
		fmt.Sprintf("%d nodes over libp2p, spans %v", c.Nodes, o.Spans), split.TokPerSec, split.Transfers)
	fmt.Printf("  %-44s %9.0f µs\n", "added latency per network hop", testnet.HopMicros(split, alone))
	return nil
}
