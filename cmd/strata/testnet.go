package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-mesh/strata/testnet"
)

type testnetCmd struct {
	Nodes     int    `help:"Number of nodes." default:"3"`
	Model     string `help:"llama2.c checkpoint or GGUF file to serve (default: a seeded random-weight model, nothing to download)." type:"existingfile"`
	Tokenizer string `help:"llama2.c tokenizer for --model." type:"existingfile"`
	Dir       string `help:"Directory for the nodes' repos and logs (default: a temporary directory, removed on exit)." type:"path"`
	NoHTTP    bool   `name:"no-http" help:"Do not give each node an HTTP API."`
}

func (c *testnetCmd) Run(e *env) error {
	dir := c.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "strata-testnet-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	if c.Model == "" {
		fmt.Fprintf(os.Stderr, "No --model given: serving a seeded random-weight model (%d blocks, dim %d); its text is noise.\n"+
			"For real text: --model stories260K.bin --tokenizer tok512.bin\n", testnet.DefaultConfig.NLayers, testnet.DefaultConfig.Dim)
	}
	fmt.Fprintf(os.Stderr, "Starting %d nodes in %s ...\n", c.Nodes, dir)
	ps, err := testnet.Launch(e.ctx, bin, testnet.Options{Nodes: c.Nodes, Dir: dir, Checkpoint: c.Model, Tokenizer: c.Tokenizer, HTTP: !c.NoHTTP, Logger: e.log})
	if err != nil {
		return err
	}
	defer ps.Stop()
	fmt.Printf("Strata testnet: %d nodes on loopback serving model %s\n\n", len(ps.Nodes), ps.Model)
	for _, p := range ps.Nodes {
		fmt.Printf("  node %d  blocks %d:%d  %s\n", p.Index, p.Blocks[0], p.Blocks[1], p.Addr)
		if p.HTTP != "" {
			fmt.Printf("          http://%s  (OpenAI-compatible /v1, status /api/status)\n", p.HTTP)
		}
		fmt.Printf("          log %s\n", filepath.Clean(p.Log))
	}
	last := ps.Nodes[len(ps.Nodes)-1]
	fmt.Printf("\nDial any of them, for example:\n\n  strata generate --peer %s -n 64 --temperature 0 \"Once upon a time\"\n", last.Addr)
	if last.HTTP != "" {
		fmt.Printf("  curl -s http://%s/v1/completions -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 32, \"temperature\": 0}'\n", last.HTTP)
	}
	fmt.Printf("\nCtrl-C stops the testnet.\n")
	select {
	case <-e.ctx.Done():
	case <-anyDone(ps):
		return fmt.Errorf("a node exited; see its log in %s", dir)
	}
	return nil
}

func anyDone(ps *testnet.Procs) <-chan struct{} {
	ch := make(chan struct{}, len(ps.Nodes))
	for _, p := range ps.Nodes {
		go func() {
			<-p.Done()
			select {
			case ch <- struct{}{}:
			default:
			}
		}()
	}
	return ch
}
