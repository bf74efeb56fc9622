package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func TestBackoffBounds(t *testing.T) {
	rmin, rmax := 100*time.Millisecond, 2*time.Second
	for fails := 1; fails <= 12; fails++ {
		ceil := rmin << (fails - 1)
		if fails > 6 {
			ceil = rmax
		}
		ceil = min(ceil, rmax)
		for range 200 {
			d := backoff(rmin, rmax, fails)
			if d < ceil/2 || d > ceil {
				t.Fatalf("backoff(fails=%d) = %v, want in [%v, %v]", fails, d, ceil/2, ceil)
			}
		}
	}
}

// gossipAddrs returns m's addresses the way a capacity advert carries
// them: transport addresses without /p2p/.
func gossipAddrs(m *Mesh) []string {
	var out []string
	for _, a := range m.Addrs() {
		tpt, _ := ma.SplitLast(a)
		out = append(out, tpt.String())
	}
	return out
}

func TestBootstrapPeerRestartReconnects(t *testing.T) {
	key := testKey(t)
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	// NoDHT everywhere: only b's keeper can bring the connection back.
	a := newTestMesh(t, Config{Key: key, Listen: tcp, NoDHT: true})
	addr := a.Addrs()[0]
	listen, _ := ma.SplitLast(addr)
	var logs lockedBuffer
	b := newTestMesh(t, Config{Listen: tcp, Bootstrap: []string{addr.String()}, NoDHT: true, Logger: logs.logger()})
	waitFor(t, 10*time.Second, "bootstrap connection", func() bool { return connected(b, a) })

	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b to see the bootstrap peer gone", func() bool { return !connected(b, a) })
	waitFor(t, 10*time.Second, "a failed redial to be logged", func() bool {
		return strings.Contains(logs.String(), "bootstrap dial failed")
	})
	a2 := newTestMesh(t, Config{Key: key, Listen: []string{listen.String()}, NoDHT: true})
	waitFor(t, 20*time.Second, "b to reconnect to the restarted bootstrap peer", func() bool { return connected(b, a2) })
}

func TestConnectAddrsAfterMiddleNodeDies(t *testing.T) {
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	// A strict line a - mid - c without the DHT, so a and c are never
	// connected to each other directly until they choose to be.
	mid := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	a := newTestMesh(t, Config{Listen: tcp, NoDHT: true, Bootstrap: []string{mid.AddrStrings()[0]}})
	c := newTestMesh(t, Config{Listen: tcp, NoDHT: true, Bootstrap: []string{mid.AddrStrings()[0]}})
	waitFor(t, 10*time.Second, "line", func() bool { return connected(a, mid) && connected(c, mid) })
	if connected(a, c) {
		t.Fatal("a and c connected before learning of each other")
	}
	// a learned c's advert through gossip while mid was alive.
	cAddrs := gossipAddrs(c)
	if err := mid.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "mid to be gone", func() bool { return !connected(a, mid) && !connected(c, mid) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.ConnectAddrs(ctx, c.ID().String(), cAddrs); err != nil {
		t.Fatalf("ConnectAddrs: %v", err)
	}
	if !connected(a, c) {
		t.Fatal("not connected after ConnectAddrs returned")
	}
	// The connection drops (c closes it): a keeps c known and redials.
	if err := c.Host().Network().ClosePeer(a.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a to redial c", func() bool { return connected(a, c) })
}

func TestKeeperForgetsDeadLearnedPeer(t *testing.T) {
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	a := newTestMesh(t, Config{Listen: tcp, NoDHT: true, RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond, KeepInterval: 20 * time.Millisecond})
	gone := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.ConnectAddrs(ctx, gone.ID().String(), gossipAddrs(gone)); err != nil {
		t.Fatal(err)
	}
	if err := gone.Close(); err != nil {
		t.Fatal(err)
	}
	known := func() bool {
		a.kmu.Lock()
		defer a.kmu.Unlock()
		_, ok := a.known[gone.ID()]
		return ok
	}
	waitFor(t, 20*time.Second, "the dead peer to be forgotten after repeated failures", func() bool { return !known() })
}

func TestConnectAddrsErrors(t *testing.T) {
	m := newTestMesh(t, Config{NoDHT: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cases := map[string]struct {
		peer  string
		addrs []string
		want  error
	}{
		"bad id":       {"nope", []string{"/ip4/127.0.0.1/tcp/1"}, ErrBadAddr},
		"self":         {m.ID().String(), m.AddrStrings(), ErrBadAddr},
		"no addrs":     {testID, nil, ErrBadAddr},
		"junk addrs":   {testID, []string{"junk", strings.Repeat("/", 5000)}, ErrBadAddr},
		"other's addr": {testID, []string{m.AddrStrings()[0]}, ErrBadAddr},
	}
	for name, tc := range cases {
		if err := m.ConnectAddrs(ctx, tc.peer, tc.addrs); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	if err := m.ConnectAddrs(ctx, testID, []string{"/ip4/127.0.0.1/tcp/1"}); err == nil {
		t.Error("ConnectAddrs to a closed port succeeded")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.ConnectAddrs(ctx, testID, []string{"/ip4/127.0.0.1/tcp/1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: err = %v, want ErrClosed", err)
	}
}

// TestKeeperDropsDeadRoutingTablePeer checks that a dead peer learned from
// the DHT routing table is not redialled forever.
func TestKeeperDropsDeadRoutingTablePeer(t *testing.T) {
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	a := newTestMesh(t, Config{Listen: tcp, RetryMin: 10 * time.Millisecond, RetryMax: 40 * time.Millisecond, KeepInterval: 20 * time.Millisecond})
	b := newTestMesh(t, Config{Listen: tcp, Bootstrap: []string{a.AddrStrings()[0]}})
	waitFor(t, 10*time.Second, "b in a's routing table", func() bool { return a.dht.RoutingTable().Find(b.ID()) != "" })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the dead peer to leave the routing table and the keeper", func() bool {
		a.kmu.Lock()
		_, known := a.known[b.ID()]
		a.kmu.Unlock()
		return !known && a.dht.RoutingTable().Find(b.ID()) == ""
	})
}
