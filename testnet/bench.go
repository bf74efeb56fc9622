package testnet

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/model"
)

// BenchResult is one measured configuration.
type BenchResult struct {
	Name      string
	Tokens    int     // forward passes measured
	TokPerSec float64 // forward passes per second
	// Transfers is the number of network transfers of activations per
	// token (hops to remote peers plus the return to the entry).
	Transfers int
}

// MsPerToken is the mean time of one forward pass.
func (r BenchResult) MsPerToken() float64 { return 1e3 / r.TokPerSec }

// BenchLocal measures greedy generation in this process, without any
// network: the run.c loop over the whole model.
func BenchLocal(m *model.Model, steps, rounds int) BenchResult {
	st := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	sampler := model.NewSampler(m.Config.VocabSize, 0, 0, 1)
	steps = min(steps, m.Config.SeqLen)
	start := time.Now()
	for range rounds {
		st.Reset()
		token := model.BOS
		for pos := range steps {
			m.Step(st, token, pos, logits)
			token = sampler.Sample(logits)
		}
	}
	n := steps * rounds
	return BenchResult{Name: "single process", Tokens: n, TokPerSec: float64(n) / time.Since(start).Seconds()}
}

// BenchMesh starts an in-process mesh with the given spans on loopback and
// measures greedy generation requested by a client over libp2p, entering
// at the first node.
func BenchMesh(ctx context.Context, o Options, steps, rounds int) (BenchResult, error) {
	dir, err := os.MkdirTemp("", "strata-bench-")
	if err != nil {
		return BenchResult{}, err
	}
	defer os.RemoveAll(dir)
	o.Dir, o.Nodes = dir, len(o.Spans)
	net, err := Start(ctx, o)
	if err != nil {
		return BenchResult{}, err
	}
	defer net.Close()
	if err := net.WaitCovered(ctx); err != nil {
		return BenchResult{}, err
	}
	entry := net.Nodes[0]
	req := infer.Request{Steps: steps}
	// One warm-up request opens the connections along the chain.
	if _, err := entry.Generate(ctx, req, func(infer.Token) error { return nil }); err != nil {
		return BenchResult{}, err
	}
	var res BenchResult
	var total time.Duration
	for range rounds {
		st, err := entry.Generate(ctx, req, func(infer.Token) error { return nil })
		if err != nil {
			return res, err
		}
		total += time.Duration(st.Seconds * float64(time.Second))
		res.Tokens += st.Forward
		res.Transfers = transfers(entry.ID(), st.Chain)
	}
	res.Name = fmt.Sprintf("%d node(s), spans %v", len(o.Spans), o.Spans)
	res.TokPerSec = float64(res.Tokens) / total.Seconds()
	return res, nil
}

// transfers counts the network transfers per token of a chain entered at
// entry: one into each hop that is not the entry's own first hop, and the
// return from a remote last hop.
func transfers(entry string, chain []infer.Hop) int {
	n := 0
	for i, h := range chain {
		if i > 0 || h.Peer != entry {
			n++
		}
	}
	if last := chain[len(chain)-1]; last.Peer != entry {
		n++
	}
	return n
}

// HopMicros is the latency one network transfer adds to a token, derived
// from a chain of several hops and one without any.
func HopMicros(chain, alone BenchResult) float64 {
	if chain.Transfers == 0 {
		return 0
	}
	return (chain.MsPerToken() - alone.MsPerToken()) * 1e3 / float64(chain.Transfers)
}
