package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/testnet"
)

type testnetCmd struct {
	Nodes  int    `help:"Number of nodes (default: 4 training, 3 serving)."`
	Dir    string `help:"Directory for the nodes' repos and logs (default: a temporary directory, removed on exit)." type:"path"`
	NoHTTP bool   `name:"no-http" help:"Do not give each node an HTTP API."`

	Data         string  `help:"Directory of text files to train on, each node on its own slice of the files (default: the Go distribution's source tree, GOROOT/src)." type:"existingdir" group:"Federated training (the default)"`
	Rounds       int     `help:"Rounds in the run (0: no end)." default:"0" group:"Federated training (the default)"`
	Preset       string  `help:"Shape of the new model." default:"tiny" enum:"tiny,small" group:"Federated training (the default)"`
	LocalSteps   int     `name:"local-steps" help:"Local optimizer steps per round." default:"10" group:"Federated training (the default)"`
	RunBatch     int     `name:"run-batch" help:"Windows per local step." default:"4" group:"Federated training (the default)"`
	RunSeqLen    int     `name:"run-seq-len" help:"Bytes per window." default:"128" group:"Federated training (the default)"`
	RunLR        float32 `name:"run-lr" help:"Peak learning rate of local AdamW." default:"0.002" group:"Federated training (the default)"`
	RoundSeconds int     `name:"round-seconds" help:"A round that has not committed after this long is skipped." default:"90" group:"Federated training (the default)"`
	Rule         string  `help:"Aggregation rule: fedavg, median, trimmed-mean or centered-clip." default:"trimmed-mean" group:"Federated training (the default)"`
	Outer        string  `help:"Outer optimizer: sgd (FedAvg) or nesterov (DiLoCo)." default:"sgd" enum:"sgd,nesterov" group:"Federated training (the default)"`
	Codec        string  `help:"Update encoding." default:"int8" enum:"fp16,int8" group:"Federated training (the default)"`
	InitSeed     uint64  `name:"init-seed" help:"Seed of the new model's weights." default:"1" group:"Federated training (the default)"`
	Prompt       string  `help:"Prompt of the greedy sample printed after each commit." default:"func " group:"Federated training (the default)"`
	SampleSteps  int     `name:"sample-steps" help:"Positions of each sample, prompt included (0: no samples)." default:"48" group:"Federated training (the default)"`

	Serve     bool   `help:"Serve a model instead of training one: --model, or a seeded random-weight model (nothing to download)." group:"Serving"`
	Model     string `help:"llama2.c checkpoint or GGUF file to serve (implies --serve)." type:"existingfile" group:"Serving"`
	Tokenizer string `help:"llama2.c tokenizer for --model." type:"existingfile" group:"Serving"`
}

func (c *testnetCmd) Run(e *env) error {
	serve := c.Serve || c.Model != ""
	if serve && c.Data != "" {
		return errors.New("--data trains a model; it does not go with --serve or --model")
	}
	if c.Tokenizer != "" && c.Model == "" {
		return errors.New("--tokenizer goes with --model")
	}
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
	if serve {
		return c.serve(e, bin, dir)
	}
	return c.train(e, bin, dir)
}

// train runs a federated training mesh and prints its rounds as they
// commit, each followed by a greedy sample of the new version.
func (c *testnetCmd) train(e *env, bin, dir string) error {
	data := c.Data
	if data == "" {
		src, err := testnet.GoSource(e.ctx)
		if err != nil {
			return err
		}
		data = src
	}
	o := testnet.DefaultRunOptions()
	if c.Nodes > 0 {
		o.Nodes = c.Nodes
	}
	o.Dir, o.Data, o.HTTP = dir, data, !c.NoHTTP
	o.Preset, o.Rounds, o.LocalSteps, o.Batch, o.SeqLen, o.LR = c.Preset, c.Rounds, c.LocalSteps, c.RunBatch, c.RunSeqLen, c.RunLR
	o.RoundSeconds, o.Rule, o.Outer, o.Codec, o.InitSeed = c.RoundSeconds, c.Rule, c.Outer, c.Codec, c.InitSeed
	fmt.Fprintf(os.Stderr, "Starting %d nodes in %s; each reads its slice of %s ...\n", o.Nodes, dir, data)
	start := timeNow()
	ps, err := testnet.LaunchRun(e.ctx, bin, o)
	if err != nil {
		return err
	}
	defer ps.Stop()
	s := ps.Spec
	fmt.Printf("Strata testnet: %d nodes on loopback federated-training a new %s model on %s\n", len(ps.Nodes), c.Preset, data)
	fmt.Printf("run %s: %d local steps of %d×%d bytes per round, rule %s, outer %s, %s updates, %s\n\n",
		ps.Run, s.Steps, s.Batch, s.SeqLen, s.Rule, s.Outer, s.Codec, roundsText(s.Rounds))
	for _, p := range ps.Nodes {
		fmt.Printf("  node %d  %s  trains on files %d/%d\n", p.Index, p.Addr, p.Index, len(ps.Nodes))
		if p.HTTP != "" {
			fmt.Printf("          http://%s  (OpenAI-compatible /v1, status /api/status)\n", p.HTTP)
		}
		fmt.Printf("          log %s\n", filepath.Clean(p.Log))
	}
	first := ps.Nodes[0]
	fmt.Printf("\nEvery node serves the newest committed version; dial any of them, for example:\n\n")
	fmt.Printf("  strata generate --peer %s -n 128 --temperature 0 %q\n", first.Addr, c.Prompt)
	if first.HTTP != "" {
		fmt.Printf("  curl -s http://%s/v1/completions -d '{\"prompt\": %q, \"max_tokens\": 64, \"temperature\": 0}'\n", first.HTTP, c.Prompt)
	}
	fmt.Printf("  strata rounds --peer %s\n\nCtrl-C stops the testnet.\n\n", first.Addr)
	fmt.Printf("Rounds as they commit (nats per byte of the local training loss), each followed by a greedy sample of the new version:\n\n")

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	exited := anyDone(ps)
	go func() {
		select {
		case <-exited:
			cancel()
		case <-ctx.Done():
		}
	}()
	last := start
	ps.FollowRounds(ctx, time.Second, func(r node.RoundRecord) {
		now := timeNow()
		fmt.Println(commitLine(ps, r, now.Sub(last)))
		last = now
		if !r.Skipped && c.SampleSteps > 0 {
			sample(ctx, os.Stdout, ps, r, c.Prompt, c.SampleSteps)
		}
		if s.Rounds > 0 && r.Round == uint64(s.Rounds) {
			fmt.Printf("\nThe run is complete after %d rounds; the nodes go on serving its last version until Ctrl-C.\n", s.Rounds)
		}
	})
	if e.ctx.Err() != nil { // stopped by the user
		return nil
	}
	return fmt.Errorf("a node exited; see its log in %s", dir)
}

func roundsText(n int) string {
	if n == 0 {
		return "no end"
	}
	return fmt.Sprintf("%d rounds", n)
}

// commitLine describes a committed round: its loss, which nodes
// contributed, the new version and the time since the previous commit.
func commitLine(ps *testnet.Procs, r node.RoundRecord, since time.Duration) string {
	if r.Skipped {
		return fmt.Sprintf("round %4d  skipped (no quorum before the deadline); the next starts again from %s  (+%.1fs)",
			r.Round, r.Model, since.Seconds())
	}
	var idx []int
	var others []string
	for _, id := range r.Peers {
		if i := ps.Index(id); i >= 0 {
			idx = append(idx, i)
		} else {
			others = append(others, id)
		}
	}
	slices.Sort(idx)
	var who []string
	for _, i := range idx {
		who = append(who, strconv.Itoa(i))
	}
	who = append(who, others...)
	return fmt.Sprintf("round %4d  loss %7.4f  nodes %-8s  model %s  (+%.1fs)",
		r.Round, r.Loss, strings.Join(who, ","), r.Model, since.Seconds())
}

// sample prints a greedy continuation of prompt by round r's version,
// asked of one node through the mesh (a different node each round). A
// node still switching versions answers with the version it serves, and
// the line says so; a failed query prints its error.
func sample(outer context.Context, w io.Writer, ps *testnet.Procs, r node.RoundRecord, prompt string, steps int) {
	p := ps.Nodes[int(r.Round)%len(ps.Nodes)]
	ctx, cancel := context.WithTimeout(outer, 30*time.Second)
	defer cancel()
	req := infer.Request{Model: r.Model, Prompt: prompt, Steps: steps}
	text, err := generate(ctx, p.Addr, req)
	note := ""
	if errors.Is(err, infer.ErrModel) {
		req.Model = ""
		text, err = generate(ctx, p.Addr, req)
		note = "  (the node's current version: it does not serve this round's yet)"
	}
	if err != nil {
		if outer.Err() == nil { // not stopping
			fmt.Fprintf(w, "            node %d: %v\n", p.Index, err)
		}
		return
	}
	fmt.Fprintf(w, "            node %d: %q%s\n", p.Index, text, note)
}

func generate(ctx context.Context, addr string, req infer.Request) (string, error) {
	var b strings.Builder
	_, err := node.Query(ctx, addr, req, func(t infer.Token) error {
		b.Write(t.Piece)
		return nil
	}, quiet())
	return b.String(), err
}

// serve runs a mesh that serves a model: --model, or the seeded random one.
func (c *testnetCmd) serve(e *env, bin, dir string) error {
	if c.Model == "" {
		fmt.Fprintf(os.Stderr, "Serving a seeded random-weight model (%d blocks, dim %d); its text is noise.\n"+
			"For real text: --model stories260K.bin --tokenizer tok512.bin; to train one, leave out --serve.\n",
			testnet.DefaultConfig.NLayers, testnet.DefaultConfig.Dim)
	}
	nodes := c.Nodes
	if nodes <= 0 {
		nodes = 3
	}
	fmt.Fprintf(os.Stderr, "Starting %d nodes in %s ...\n", nodes, dir)
	ps, err := testnet.Launch(e.ctx, bin, testnet.Options{Nodes: nodes, Dir: dir, Checkpoint: c.Model, Tokenizer: c.Tokenizer, HTTP: !c.NoHTTP, Logger: e.log})
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
		return nil
	case <-anyDone(ps):
		if e.ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("a node exited; see its log in %s", dir)
	}
}

func anyDone(ps *testnet.Procs) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		cases := make(chan struct{}, len(ps.Nodes))
		for _, p := range ps.Nodes {
			go func() { <-p.Done(); cases <- struct{}{} }()
		}
		<-cases
		close(ch)
	}()
	return ch
}
