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
	var alone testnet.BenchResult
	for _, nodes := range []int{1, 2, 3, 5} {
		if nodes > cfg.NLayers {
			break
		}
		o.Spans = testnet.Split(cfg.NLayers, nodes)
		res, err := testnet.BenchMesh(e.ctx, o, c.Steps, c.Rounds)
		if err != nil {
			return err
		}
		if nodes == 1 {
			alone = res
			fmt.Printf("  %-44s %9.0f tok/s  %7.0f µs/token\n", "1 node, all blocks (the entry runs them)", res.TokPerSec, res.MsPerToken()*1e3)
			continue
		}
		fmt.Printf("  %-44s %9.0f tok/s  %7.0f µs/token  %d transfers/token, %.0f µs each\n",
			fmt.Sprintf("%d nodes over libp2p, spans %v", nodes, o.Spans), res.TokPerSec, res.MsPerToken()*1e3,
			res.Transfers, testnet.HopMicros(res, alone))
	}
	return nil
}
