package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
)

// TestHolderRestartThenOtherDies: blocks 2:5 of stories260K have two
// holders. The one a request runs through dies mid-generation and is
// banned; it restarts; then the other holder dies. Generation through the entry
// still completes with REFERENCE Case 2's text.
func TestHolderRestartThenOtherDies(t *testing.T) {
	ref := reftest.Read(t)
	want := strings.TrimSuffix(ref.Case2Text, "\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	type repo struct{ dir, id string }
	var repos []repo
	for range 3 {
		dir, id := refRepo(t)
		repos = append(repos, repo{dir, id})
	}
	var entry *Node
	start := func(i int, span string) *Node {
		t.Helper()
		cfg := Config{Repo: repos[i].dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: repos[i].id, Blocks: span,
			AdvertEvery: 200 * time.Millisecond}
		if entry != nil {
			cfg.Bootstrap = entry.Addrs()[:1]
		}
		n, err := Start(ctx, cfg)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	entry = start(0, "0:2")
	holders := map[string]int{} // peer id → repo index
	byID := map[string]*Node{}
	for i := 1; i <= 2; i++ {
		n := start(i, "2:5")
		holders[n.ID()], byID[n.ID()] = i, n
	}
	// wait until the entry's table shows every holder with fresh adverts.
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if ctx.Err() != nil {
				t.Fatalf("waiting for %s: %v", what, ctx.Err())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// started is id's start time in the entry's table once it serves.
	started := func(id string) int64 {
		pid, err := peer.Decode(id)
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := entry.gossip.Table().Get(pid); ok && a.Model != "" && !a.Loading {
			return a.Started
		}
		return 0
	}
	waitFor("both holders in the entry's table", func() bool {
		for id := range holders {
			if started(id) == 0 {
				return false
			}
		}
		return true
	})
	// gen runs Case 2 through the entry; at token 20 it calls kill, if
	// set, and holds the token until kill returns.
	gen := func(kill func()) (string, infer.Stats, error) {
		var out strings.Builder
		count := 0
		st, err := entry.Generate(ctx, infer.Request{Steps: 200}, func(tk infer.Token) error {
			if count++; count == 20 && kill != nil {
				kill()
			}
			out.Write(tk.Piece)
			return nil
		})
		return out.String(), st, err
	}
	// The holder serving the request dies mid-generation: the entry fails
	// over to the other and bans it.
	var first, other string
	var before int64
	got, st, err := gen(func() {
		for id, n := range byID {
			if n.infer.Sessions() > 0 {
				first, before = id, started(id)
				n.Close()
			}
		}
	})
	if err != nil || got != want {
		t.Fatalf("a holder killed mid-generation: %v\n%s", err, got)
	}
	for id := range holders {
		if id != first {
			other = id
		}
	}
	if first == "" || len(st.Failovers) == 0 || !strings.Contains(st.Failovers[0], first) {
		t.Fatalf("killed %q; failovers %q, want one naming it", first, st.Failovers)
	}
	// It restarts on the same repo (the same peer id); once its advert
	// shows the restart, the other holder dies.
	back := start(holders[first], "2:5")
	if back.ID() != first {
		t.Fatalf("restarted as %s, want %s", back.ID(), first)
	}
	waitFor("the restarted holder's advert, serving", func() bool { return started(first) > before })
	byID[other].Close()
	got, st, err = gen(nil)
	if err != nil || got != want {
		t.Fatalf("%s back, %s dead: %v\n%s", first, other, err, got)
	}
	if last := st.Chain[len(st.Chain)-1].Peer; last != first {
		t.Errorf("chain %v, want it through the restarted %s", st.Chain, first)
	}
	if b := entry.infer.Banned(); slices.Contains(b, first) {
		t.Errorf("banned %v: the restarted %s is still among them", b, first)
	}
}
