package testnet

import (
	"context"
	"fmt"
	"testing"

	"github.com/strata-mesh/strata/internal/reftest"
)

// BenchmarkHops measures greedy stories260K generation (200 steps) through
// chains of 1, 2, 3 and 5 nodes on loopback, entered at the first node,
// and the latency each network transfer adds to a token compared with one
// node holding every block.
func BenchmarkHops(b *testing.B) {
	ckpt, tok := reftest.Checkpoint(b), reftest.Tokenizer(b)
	ctx := context.Background()
	alone, err := BenchMesh(ctx, Options{Checkpoint: ckpt, Tokenizer: tok, Spans: Split(5, 1)}, 200, 5)
	if err != nil {
		b.Fatal(err)
	}
	for _, nodes := range []int{1, 2, 3, 5} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var res BenchResult
			for b.Loop() {
				if res, err = BenchMesh(ctx, Options{Checkpoint: ckpt, Tokenizer: tok, Spans: Split(5, nodes)}, 200, 5); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(res.TokPerSec, "tok/s")
			b.ReportMetric(res.MsPerToken()*1e3, "µs/token")
			b.ReportMetric(float64(res.Transfers), "transfers/token")
			if res.Transfers > 0 {
				b.ReportMetric(HopMicros(res, alone), "µs/transfer")
			}
		})
	}
}
