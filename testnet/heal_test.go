package testnet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
)

// fastNode is a node config with short periods, so tests see adverts,
// expiry and re-placement within seconds.
func fastNode(repo string, bootstrap []string, model, blocks string, maxBlocks int) node.Config {
	return node.Config{
		Repo: repo, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: bootstrap,
		Model: model, Blocks: blocks, MaxBlocks: maxBlocks,
		AdvertEvery: 300 * time.Millisecond, PeerTTL: 2 * time.Second, RecheckEvery: time.Second,
		FindTimeout: 30 * time.Second,
	}
}

// seed imports stories260K into a repo and starts a node serving it with
// the given blocks setting.
func seed(t *testing.T, ctx context.Context, blocks string, maxBlocks int) (*node.Node, string) {
	t.Helper()
	o := Options{Nodes: 1, Dir: t.TempDir(), Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t)}
	id, _, err := Prepare(&o)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(ctx, fastNode(Repo(o.Dir, 0), nil, id, blocks, maxBlocks))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, id
}

// fresh starts count nodes with empty repos that know only the bootstrap
// address and the model id, placing themselves.
func fresh(t *testing.T, ctx context.Context, count int, bootstrap, model string, maxBlocks int) []*node.Node {
	t.Helper()
	nodes := make([]*node.Node, count)
	errs := make(chan error, count)
	for i := range count {
		go func() {
			n, err := node.Start(ctx, fastNode(t.TempDir(), []string{bootstrap}, model, "auto", maxBlocks))
			nodes[i] = n
			errs <- err
		}()
	}
	for range count {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		t.Cleanup(func() { n.Close() })
	}
	return nodes
}

// checkReference asks each node for REFERENCE.md Case 2. While the mesh
// re-places itself a block may briefly have no server; a request that
// finds no route is retried, as a client would, until ctx ends.
func checkReference(t *testing.T, ctx context.Context, via []*node.Node) {
	t.Helper()
	ref := reftest.Read(t)
	for i, n := range via {
		for {
			var out strings.Builder
			st, err := node.Query(ctx, n.Addrs()[0], infer.Request{Steps: 200}, func(tk infer.Token) error {
				out.Write(tk.Piece)
				return nil
			}, nil)
			if errors.Is(err, infer.ErrNoRoute) && ctx.Err() == nil {
				t.Logf("via node %d: %v; retrying", i, err)
				time.Sleep(200 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("via node %d: %v", i, err)
			}
			if out.String()+"\n" != ref.Case2Text {
				t.Errorf("via node %d (chain %v): text differs from REFERENCE.md Case 2:\n%s", i, st.Chain, out.String())
			}
			break
		}
	}
}

// TestFreshNodesJoin: a seed serves stories260K; three nodes with empty
// repos join with only a bootstrap address and the model id, fetch what
// they need from peers, place themselves, and serve the reference text.
func TestFreshNodesJoin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, id := seed(t, ctx, "", 0)
	start := time.Now()
	nodes := fresh(t, ctx, 3, s.Addrs()[0], id, 2)
	for i, n := range nodes {
		if lo, hi := n.Blocks(); hi-lo != 2 {
			t.Errorf("fresh node %d serves %d:%d, want 2 blocks", i, lo, hi)
		}
	}
	if err := wait(ctx, "all nodes see every block served", func() bool {
		for _, n := range append(nodes, s) {
			if !n.Covered() {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("three fresh nodes fetched, placed and served within %v", time.Since(start))
	checkReference(t, ctx, nodes)
}

// TestHeal kills the only server of some block; another node moves to
// serve it, and generation matches the reference again.
func TestHeal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, id := seed(t, ctx, "auto", 2) // the seed holds every shard but serves two blocks
	nodes := fresh(t, ctx, 3, s.Addrs()[0], id, 2)
	all := append([]*node.Node{s}, nodes...)
	// Wait for a stable, covered mesh.
	if err := wait(ctx, "mesh covered", func() bool { return nodes[0].Covered() }); err != nil {
		t.Fatal(err)
	}
	// Find a fresh node that alone serves some block.
	var victim *node.Node
	var block int
	for b := 0; b < 5 && victim == nil; b++ {
		var holders []*node.Node
		for _, n := range nodes {
			if lo, hi := n.Blocks(); lo <= b && b < hi {
				holders = append(holders, n)
			}
		}
		if lo, hi := s.Blocks(); len(holders) == 1 && !(lo <= b && b < hi) {
			victim, block = holders[0], b
		}
	}
	if victim == nil {
		for _, n := range all {
			lo, hi := n.Blocks()
			t.Logf("%s serves %d:%d", n.ID(), lo, hi)
		}
		t.Skip("no block has a single server in this placement; nothing to heal")
	}
	lo, hi := victim.Blocks()
	t.Logf("killing %s, the only server of block %d (it serves %d:%d)", victim.ID(), block, lo, hi)
	victim.Close()
	start := time.Now()
	var alive []*node.Node
	for _, n := range all {
		if n != victim {
			alive = append(alive, n)
		}
	}
	if err := wait(ctx, fmt.Sprintf("block %d served again", block), func() bool {
		for _, n := range alive {
			if lo, hi := n.Blocks(); lo <= block && block < hi {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("block %d served again after %v", block, time.Since(start))
	if err := wait(ctx, "survivors see full coverage", func() bool { return alive[0].Covered() }); err != nil {
		t.Fatal(err)
	}
	checkReference(t, ctx, alive[:1])
}
