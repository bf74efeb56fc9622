package testnet

import (
	"context"
	"testing"

	"github.com/strata-mesh/strata/internal/reftest"
)

// BenchmarkMesh measures greedy stories260K generation through one node
// holding every block and through three nodes holding 0:2, 2:4 and 4:5,
// each requested through the entry node, and the latency one network
// transfer adds per token.
func BenchmarkMesh(b *testing.B) {
	ckpt, tok := reftest.Checkpoint(b), reftest.Tokenizer(b)
	ctx := context.Background()
	for b.Loop() {
		alone, err := BenchMesh(ctx, Options{Checkpoint: ckpt, Tokenizer: tok, Spans: [][2]int{{0, 5}}}, 200, 5)
		if err != nil {
			b.Fatal(err)
		}
		three, err := BenchMesh(ctx, Options{Checkpoint: ckpt, Tokenizer: tok, Spans: Split(5, 3)}, 200, 5)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(alone.TokPerSec, "tok/s-1node")
		b.ReportMetric(three.TokPerSec, "tok/s-3nodes")
		b.ReportMetric(HopMicros(three, alone), "µs/hop")
	}
}
