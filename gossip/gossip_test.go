package gossip

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func link(t *testing.T, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

func newGossip(t *testing.T, h host.Host, cfg Config) *Gossip {
	t.Helper()
	g, err := New(context.Background(), h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return g
}

func advertFor(h host.Host, version string) Advert {
	var addrs []string
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String())
	}
	return Advert{Addrs: addrs, Cores: 2, MemFree: 1 << 30, GFLOPS: 10, Version: version}
}

// eventually polls cond, running tick before each check, until the
// deadline passes.
func eventually(t *testing.T, d time.Duration, what string, tick func(), cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if tick != nil {
			tick()
		}
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestThreeNodesSeeEachOther(t *testing.T) {
	hs := []host.Host{newHost(t), newHost(t), newHost(t)}
	// A line: adverts between the ends must be forwarded by the middle node.
	link(t, hs[0], hs[1])
	link(t, hs[1], hs[2])
	var gs []*Gossip
	for _, h := range hs {
		gs = append(gs, newGossip(t, h, Config{}))
	}
	ctx := context.Background()
	if err := gs[0].Publish(ctx, advertFor(hs[0], "v")); err != nil {
		t.Fatal(err)
	}
	if _, ok := gs[0].Table().Get(hs[0].ID()); !ok {
		t.Fatal("own advert not in own table right after Publish")
	}
	publishAll := func() {
		for i, g := range gs {
			if err := g.Publish(ctx, advertFor(hs[i], "v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "every table to hold all three peers", publishAll, func() bool {
		for _, g := range gs {
			if g.Table().Len() != 3 {
				return false
			}
		}
		return true
	})
	for i, g := range gs {
		for j, h := range hs {
			ad, ok := g.Table().Get(h.ID())
			if !ok || ad.Peer != h.ID() || len(ad.Addrs) == 0 {
				t.Fatalf("node %d: advert of node %d = %+v, %v", i, j, ad, ok)
			}
		}
	}
}

// rogue is a host running plain GossipSub with no validator, so it can
// publish anything a modified client could.
type rogue struct {
	h     host.Host
	topic *pubsub.Topic
}

func newRogue(t *testing.T) *rogue {
	h := newHost(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(Topic)
	if err != nil {
		t.Fatal(err)
	}
	return &rogue{h: h, topic: topic}
}

func (r *rogue) waitPeers(t *testing.T, ids ...peer.ID) {
	t.Helper()
	eventually(t, 10*time.Second, "rogue to see the honest peers on the topic", nil, func() bool {
		have := map[peer.ID]bool{}
		for _, p := range r.topic.ListPeers() {
			have[p] = true
		}
		for _, id := range ids {
			if !have[id] {
				return false
			}
		}
		return true
	})
}

func (r *rogue) publish(t *testing.T, data []byte) {
	t.Helper()
	if err := r.topic.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

func TestImpersonationRejected(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	link(t, ha, hb)
	ga, gb := newGossip(t, ha, Config{}), newGossip(t, hb, Config{})
	r := newRogue(t)
	link(t, r.h, ha)
	link(t, r.h, hb)
	r.waitPeers(t, ha.ID(), hb.ID())

	forged := advertFor(r.h, "forged")
	forged.Peer, forged.Seq, forged.Time = ha.ID(), 1<<62, time.Now().UnixMilli()
	data, err := forged.Encode()
	if err != nil {
		t.Fatal(err)
	}
	r.publish(t, data)
	eventually(t, 10*time.Second, "both nodes to reject the forged advert", nil, func() bool {
		return ga.Stats().Rejected >= 1 && gb.Stats().Rejected >= 1
	})
	for name, g := range map[string]*Gossip{"a": ga, "b": gb} {
		for _, ad := range g.Table().All() {
			if ad.Version == "forged" {
				t.Fatalf("node %s holds forged advert %+v", name, ad)
			}
		}
	}
	// A's genuine adverts still reach B: the forged seq did not poison it.
	eventually(t, 10*time.Second, "A's genuine advert at B", func() {
		if err := ga.Publish(context.Background(), advertFor(ha, "genuine")); err != nil {
			t.Fatal(err)
		}
	}, func() bool {
		ad, ok := gb.Table().Get(ha.ID())
		return ok && ad.Version == "genuine"
	})
}

func TestMalformedDroppedNodeKeepsWorking(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	link(t, ha, hb)
	ga, gb := newGossip(t, ha, Config{}), newGossip(t, hb, Config{})
	r := newRogue(t)
	link(t, r.h, ha)
	r.waitPeers(t, ha.ID())

	for _, junk := range [][]byte{[]byte("not json"), []byte(`{"peer":1}`), make([]byte, MaxAdvertSize+1)} {
		r.publish(t, junk)
	}
	eventually(t, 10*time.Second, "A to reject the junk", nil, func() bool { return ga.Stats().Rejected >= 3 })
	// Later valid adverts, from the same misbehaving host and from A,
	// still arrive everywhere.
	honest := advertFor(r.h, "reformed")
	honest.Peer, honest.Seq = r.h.ID(), 1
	eventually(t, 20*time.Second, "valid adverts after the junk", func() {
		honest.Seq++
		honest.Time = time.Now().UnixMilli()
		data, err := honest.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r.publish(t, data)
		if err := ga.Publish(context.Background(), advertFor(ha, "a")); err != nil {
			t.Fatal(err)
		}
	}, func() bool {
		_, rogueAtA := ga.Table().Get(r.h.ID())
		_, aAtB := gb.Table().Get(ha.ID())
		return rogueAtA && aAtB
	})
	// A rejected the junk instead of forwarding it, so B never saw any.
	if n := gb.Stats().Rejected; n != 0 {
		t.Fatalf("B rejected %d messages; junk was forwarded by A", n)
	}
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestExpiryWithInjectedClock(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	cfg := Config{Clock: clock.Now, TTL: 15 * time.Second, ExpireEvery: 20 * time.Millisecond}
	ha, hb := newHost(t), newHost(t)
	link(t, ha, hb)
	ga, gb := newGossip(t, ha, cfg), newGossip(t, hb, cfg)
	var mu sync.Mutex
	var updates []peer.ID
	gb.OnUpdate(func(a Advert) {
		mu.Lock()
		updates = append(updates, a.Peer)
		mu.Unlock()
	})
	ctx := context.Background()
	eventually(t, 10*time.Second, "A's advert at B", func() {
		if err := ga.Publish(ctx, advertFor(ha, "a")); err != nil {
			t.Fatal(err)
		}
	}, func() bool { _, ok := gb.Table().Get(ha.ID()); return ok })
	// Let the adverts still in flight land, so none refreshes A after the
	// clock moves: publish once more and wait for exactly that one.
	if err := ga.Publish(ctx, advertFor(ha, "a")); err != nil {
		t.Fatal(err)
	}
	last, _ := ga.Table().Get(ha.ID())
	eventually(t, 10*time.Second, "A's last advert at B", nil, func() bool {
		ad, ok := gb.Table().Get(ha.ID())
		return ok && ad.Seq == last.Seq
	})

	clock.Advance(10 * time.Second)
	if _, ok := gb.Table().Get(ha.ID()); !ok {
		t.Fatal("A expired before its TTL")
	}
	clock.Advance(6 * time.Second)
	eventually(t, 10*time.Second, "B to expire silent A", nil, func() bool {
		_, ok := gb.Table().Get(ha.ID())
		return !ok
	})
	// A speaks again and comes back.
	eventually(t, 10*time.Second, "A's new advert at B", func() {
		if err := ga.Publish(ctx, advertFor(ha, "a")); err != nil {
			t.Fatal(err)
		}
	}, func() bool { _, ok := gb.Table().Get(ha.ID()); return ok })
	mu.Lock()
	defer mu.Unlock()
	if len(updates) < 2 {
		t.Fatalf("OnUpdate saw %v, want at least two updates for A", updates)
	}
}

func TestPublishAfterClose(t *testing.T) {
	h := newHost(t)
	g, err := New(context.Background(), h, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := g.Publish(context.Background(), advertFor(h, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: err = %v, want ErrClosed", err)
	}
}

func TestPublishInvalid(t *testing.T) {
	h := newHost(t)
	g := newGossip(t, h, Config{})
	bad := advertFor(h, "x")
	bad.Cores = 0
	if err := g.Publish(context.Background(), bad); !errors.Is(err, ErrInvalidAdvert) {
		t.Fatalf("err = %v, want ErrInvalidAdvert", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{TTL: -1}, {MaxPeers: -1}, {MaxMessageSize: 100}, {ExpireEvery: -time.Second}} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: err = %v, want ErrInvalidConfig", c, err)
		}
	}
}

func TestCloseReleasesGoroutines(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	link(t, ha, hb)
	before := runtime.NumGoroutine()
	for range 3 {
		ga, err := New(context.Background(), ha, Config{})
		if err != nil {
			t.Fatal(err)
		}
		gb, err := New(context.Background(), hb, Config{})
		if err != nil {
			t.Fatal(err)
		}
		_ = ga.Publish(context.Background(), advertFor(ha, "x"))
		ga.Close()
		gb.Close()
	}
	eventually(t, 10*time.Second, fmt.Sprintf("goroutines to return to %d", before), nil, func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

// TestGonePeerHidden checks the probe on lost connections: a peer that
// was only disconnected answers the redial and stays in the tables; a
// peer whose host closed (a crashed process) is hidden at once, long
// before the TTL, and OnGone names it.
func TestGonePeerHidden(t *testing.T) {
	hs := []host.Host{newHost(t), newHost(t), newHost(t)}
	link(t, hs[0], hs[1])
	link(t, hs[0], hs[2])
	link(t, hs[1], hs[2])
	var gs []*Gossip
	for _, h := range hs {
		gs = append(gs, newGossip(t, h, Config{TTL: time.Hour}))
	}
	var mu sync.Mutex
	var goneAt0 []string
	gs[0].OnGone(func(id string) {
		mu.Lock()
		goneAt0 = append(goneAt0, id)
		mu.Unlock()
	})
	ctx := context.Background()
	publishAll := func() {
		for i, g := range gs {
			if err := g.Publish(ctx, advertFor(hs[i], "v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	eventually(t, 20*time.Second, "every table to hold all three peers", publishAll, func() bool {
		return gs[0].Table().Len() == 3 && gs[1].Table().Len() == 3 && gs[2].Table().Len() == 3
	})

	// A dropped connection to a live peer: the probe reconnects.
	if err := hs[0].Network().ClosePeer(hs[1].ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "node 0 to reconnect to node 1", nil, func() bool {
		return hs[0].Network().Connectedness(hs[1].ID()) == network.Connected
	})
	time.Sleep(2 * probeLag)
	if _, ok := gs[0].Table().Get(hs[1].ID()); !ok {
		t.Error("a live peer whose connection was closed was hidden")
	}

	// A crashed peer: its host is gone, the redial is refused.
	gs[2].Close()
	hs[2].Close()
	eventually(t, 10*time.Second, "nodes 0 and 1 to hide node 2", nil, func() bool {
		_, at0 := gs[0].Table().Get(hs[2].ID())
		_, at1 := gs[1].Table().Get(hs[2].ID())
		return !at0 && !at1
	})
	mu.Lock()
	defer mu.Unlock()
	if len(goneAt0) != 1 || goneAt0[0] != hs[2].ID().String() {
		t.Errorf("OnGone at node 0 got %v, want only node 2", goneAt0)
	}
	if gs[0].Table().Len() != 2 {
		t.Errorf("node 0's table holds %d peers, want 2", gs[0].Table().Len())
	}
}
