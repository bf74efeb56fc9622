package node

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/strata-mesh/strata/gossip"
	"github.com/strata-mesh/strata/gossip/gossiptest"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/shards"
)

// TestGuardRogueFlood: a rogue floods a node with invalid adverts and
// garbage content streams. The node graylists it and rate-limits its
// streams, and an operator sees both in GET /api/status (guard, and the
// rogue among the worst scores) and in /metrics. The node answers on
// every protocol it registers under a resource limit of its own.
func TestGuardRogueFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a node for a few seconds")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, id := tinyRepo(t)
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, HTTP: "127.0.0.1:0",
		AdvertEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if u := n.mesh.Unlimited(); len(u) > 0 {
		t.Errorf("protocols without a resource limit of their own: %v", u)
	}
	base := "http://" + n.HTTPAddr()

	key, err := mesh.NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	rm, err := mesh.New(ctx, mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rm.Close() })
	rogue, err := gossiptest.NewRogue(ctx, rm.Host())
	if err != nil {
		t.Fatal(err)
	}
	if err := rogue.Join(gossip.Topic); err != nil {
		t.Fatal(err)
	}
	if err := rm.ConnectAddrs(ctx, n.ID(), n.Addrs()); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 15*time.Second, "the rogue to see the node on the advert topic", func() bool { return rogue.Peers(gossip.Topic) == 1 })

	floodCtx, stopFlood := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for floodCtx.Err() == nil {
			// A fresh buffer each time: Publish keeps the bytes it signed.
			junk := make([]byte, 200)
			rand.Read(junk)
			rogue.Publish(floodCtx, gossip.Topic, junk)
		}
	}()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			garbage := make([]byte, 64)
			for floodCtx.Err() == nil {
				if rw, err := rm.Open(floodCtx, n.ID(), nil, shards.ContentProtocol); err == nil {
					rw.Write(garbage)
					rw.Close()
				}
			}
		}()
	}
	var st Status
	pollUntil(t, time.Minute, "the node to graylist the rogue and rate-limit its streams", func() bool {
		r := do(t, ctx, "GET", base+"/api/status", "")
		st = Status{}
		if r.status != http.StatusOK || json.Unmarshal(r.body, &st) != nil || st.Guard == nil {
			return false
		}
		g := st.Guard
		return g.RateLimited[shards.ContentProtocol] > 0 && g.Graylisted >= 1 && g.Graylistings >= 1
	})
	stopFlood()
	wg.Wait()

	g := st.Guard
	t.Logf("guard: %+v", *g)
	if len(g.Worst) == 0 || g.Worst[0].Peer != rm.ID().String() || g.Worst[0].Score >= gossip.GraylistThreshold {
		t.Errorf("worst scores %+v, want the rogue %s first, below %d", g.Worst, rm.ID(), gossip.GraylistThreshold)
	}
	if g.BelowGossip < g.BelowPublish || g.BelowPublish < g.Graylisted || g.ScoredPeers < g.BelowGossip {
		t.Errorf("score bands do not nest: %+v", *g)
	}

	fams := scrape(t, ctx, base)
	for _, m := range []struct {
		name   string
		labels []string
	}{
		{"strata_streams_refused_total", []string{"protocol", shards.ContentProtocol, "by", "rate_limit"}},
		{"strata_gossip_peers_below_threshold", []string{"threshold", "graylist"}},
		{"strata_gossip_graylistings_total", nil},
		{"strata_gossip_scored_peers", nil},
		{"strata_gossip_messages_total", []string{"type", "advert", "verdict", "rejected"}},
	} {
		if v, ok := value(fams, m.name, m.labels...); !ok || v < 1 {
			t.Errorf("%s%v = %v (present %v), want at least 1", m.name, m.labels, v, ok)
		}
	}
	if v, ok := value(fams, "strata_gossip_lowest_score"); !ok || v >= gossip.GraylistThreshold {
		t.Errorf("strata_gossip_lowest_score = %v (present %v), want below %d", v, ok, gossip.GraylistThreshold)
	}
	for _, scope := range []string{"stream", "conn"} {
		if _, ok := value(fams, "strata_resource_blocked_total", "scope", scope); !ok {
			t.Errorf("no series strata_resource_blocked_total{scope=%q}", scope)
		}
	}
}

// pollUntil calls cond every 50 ms until it holds, failing the test after d.
func pollUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}
