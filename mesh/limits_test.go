package mesh

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// TestEveryProtocolLimited: a host running the DHT and GossipSub, with a
// protocol registered through Handle and given a limit, answers no
// protocol without a resource-manager limit of its own; a protocol
// registered without one is reported.
func TestEveryProtocolLimited(t *testing.T) {
	m := newTestMesh(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Protocols: []ProtocolLimit{{ID: "/test/limited/1", StreamsInbound: 8, StreamsOutbound: 8, Memory: 1 << 20}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ps, err := pubsub.NewGossipSub(ctx, m.Host())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Join("t"); err != nil {
		t.Fatal(err)
	}
	m.Handle("/test/limited/1", func(io.ReadWriteCloser, string) {})
	if u := m.Unlimited(); len(u) != 0 {
		t.Errorf("Unlimited() = %v, want none (all of %v limited)", u, m.Host().Mux().Protocols())
	}
	m.Handle("/test/free/1", func(io.ReadWriteCloser, string) {})
	if u := m.Unlimited(); !slices.Equal(u, []string{"/test/free/1"}) {
		t.Errorf("Unlimited() = %v, want [/test/free/1]", u)
	}
}

// TestResourceLimitRefusals: streams beyond a protocol's per-peer limit are
// refused by the resource manager and counted by protocol.
func TestResourceLimitRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	const proto = "/test/hold/1"
	srv := newTestMesh(t, Config{Listen: tcp, NoDHT: true, Protocols: []ProtocolLimit{
		{ID: proto, StreamsInbound: 8, StreamsOutbound: 8, Memory: 1 << 20, PeerStreamsInbound: 1, PeerStreamsOutbound: 1}}})
	cli := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	release := make(chan struct{})
	defer close(release)
	srv.Handle(proto, func(rw io.ReadWriteCloser, _ string) {
		rw.Write([]byte{1})
		<-release
	})
	// The first stream is served and held open; the second is over the
	// peer's limit of one.
	first, err := cli.Open(ctx, srv.ID().String(), srv.AddrStrings(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	waitFor(t, 10*time.Second, "a second stream to be refused by the resource manager", func() bool {
		if rw, err := cli.Open(ctx, srv.ID().String(), nil, proto); err == nil {
			_, err = io.ReadFull(rw, make([]byte, 1))
			rw.Close()
			if err == nil {
				t.Fatal("a second concurrent stream was served over the per-peer limit of one")
			}
		}
		return srv.Refusals().Blocked[proto] > 0
	})
	if r := srv.Refusals(); r.RateLimited[proto] != 0 {
		t.Errorf("rate limit counted %d refusals, want 0 (the resource manager refused them)", r.RateLimited[proto])
	}
}
