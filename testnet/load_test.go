package testnet

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
)

// LoadResult summarises concurrent streaming sessions.
type loadResult struct {
	tokens   int
	wall     time.Duration
	gaps     []time.Duration // time between consecutive tokens of a session
	failures []string
}

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.gaps) == 0 {
		return 0
	}
	g := slices.Clone(r.gaps)
	slices.Sort(g)
	return g[min(len(g)-1, int(p*float64(len(g))))]
}

// load runs sessions concurrent copies of req from clients over libp2p, spread over the entries, and checks every text
// against want.
func load(ctx context.Context, entries []*node.Node, sessions int, req infer.Request, want string) loadResult {
	var mu sync.Mutex
	var res loadResult
	var wg sync.WaitGroup
	start := time.Now()
	for i := range sessions {
		wg.Go(func() {
			entry := entries[i%len(entries)]
			var out bytes.Buffer
			var gaps []time.Duration
			last := time.Now()
			st, err := node.Query(ctx, entry.Addrs()[0], req, func(t infer.Token) error {
				now := time.Now()
				gaps = append(gaps, now.Sub(last))
				last = now
				out.Write(t.Piece)
				return nil
			}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.failures = append(res.failures, fmt.Sprintf("session %d: %v", i, err))
			case out.String() != want:
				res.failures = append(res.failures, fmt.Sprintf("session %d: text differs: %q", i, out.String()))
			}
			res.tokens += st.Forward
			if len(gaps) > 1 {
				res.gaps = append(res.gaps, gaps[1:]...) // the first gap includes connecting
			}
		})
	}
	wg.Wait()
	res.wall = time.Since(start)
	return res
}

// BenchmarkLoad runs 32 concurrent streaming sessions of 200 greedy
// steps through a three-node mesh, with continuous batching and without,
// on stories260K and on the default synthetic model (whose weights do not
// fit in cache, so batching shares their loads), and reports the
// aggregate tokens/s and the per-token latency a client sees.
func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"stories260K", "synthetic"} {
		for _, batch := range []bool{true, false} {
			b.Run(fmt.Sprintf("model=%s/batching=%v", name, batch), func(b *testing.B) {
				ctx := context.Background()
				o := Options{Nodes: 3, Dir: b.TempDir(), NoBatch: !batch, ForceBatch: batch}
				if name == "stories260K" {
					o.Checkpoint, o.Tokenizer = reftest.Checkpoint(b), reftest.Tokenizer(b)
				}
				net := startCovered(b, ctx, o)
				req := infer.Request{Prompt: "Once upon a time", Steps: 200}
				var want bytes.Buffer // what one session alone prints
				if _, err := net.Nodes[0].Generate(ctx, req, func(t infer.Token) error {
					want.Write(t.Piece)
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				var res loadResult
				for b.Loop() {
					res = load(ctx, net.Nodes, 32, req, want.String())
					if len(res.failures) > 0 {
						b.Fatal(res.failures[0])
					}
				}
				b.ReportMetric(float64(res.tokens)/res.wall.Seconds(), "tok/s")
				b.ReportMetric(float64(res.percentile(0.5).Microseconds())/1e3, "p50-ms/token")
				b.ReportMetric(float64(res.percentile(0.95).Microseconds())/1e3, "p95-ms/token")
			})
		}
	}
}

// TestConcurrentSessions runs 32 streaming sessions at once through a
// three-node stories260K mesh: every one must print the reference text,
// and afterwards no node may hold a session or a request.
func TestConcurrentSessions(t *testing.T) {
	ref := reftest.Read(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	net := startCovered(t, ctx, Options{Nodes: 3, Dir: t.TempDir(), Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t)})
	want := ref.Case2Text[:len(ref.Case2Text)-1]
	res := load(ctx, net.Nodes, 32, infer.Request{Steps: 200}, want)
	for _, f := range res.failures {
		t.Error(f)
	}
	t.Logf("32 sessions: %d tokens in %v, %.0f tok/s; per-token latency p50 %v, p95 %v",
		res.tokens, res.wall.Round(time.Millisecond), float64(res.tokens)/res.wall.Seconds(), res.percentile(0.5), res.percentile(0.95))
	if err := wait(ctx, "every node idle", func() bool {
		for _, n := range net.Nodes {
			if st := n.Status(); st.Sessions != 0 || st.Requests != 0 {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}
