package mesh

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

var loopback = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

func newTestMesh(t testing.TB, cfg Config) *Mesh {
	t.Helper()
	if cfg.Key == nil {
		cfg.Key = testKey(t)
	}
	if cfg.Listen == nil {
		cfg.Listen = loopback
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	}
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return m
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func connected(a, b *Mesh) bool {
	return a.Host().Network().Connectedness(b.ID()) == network.Connected
}

func TestAddrsAreListeningAndDialable(t *testing.T) {
	m := newTestMesh(t, Config{})
	addrs := m.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs() = %v, want one TCP and one QUIC address", addrs)
	}
	var tcp, quic bool
	for _, a := range addrs {
		s := a.String()
		if !strings.HasSuffix(s, "/p2p/"+m.ID().String()) {
			t.Errorf("address %s lacks /p2p/%s", s, m.ID())
		}
		if strings.Contains(s, "/tcp/0/") || strings.Contains(s, "/udp/0/") {
			t.Errorf("address %s has an unresolved port", s)
		}
		tcp = tcp || strings.Contains(s, "/tcp/")
		quic = quic || strings.Contains(s, "/quic-v1/")
	}
	if !tcp || !quic {
		t.Fatalf("Addrs() = %v, want TCP and QUIC", addrs)
	}
	// Each transport must actually accept connections.
	for _, a := range addrs {
		c := newTestMesh(t, Config{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := c.Connect(ctx, a.String())
		cancel()
		if err != nil {
			t.Fatalf("Connect(%s): %v", a, err)
		}
		if info.ID != m.ID() {
			t.Fatalf("Connect returned %s, want %s", info.ID, m.ID())
		}
	}
}

func TestConnectErrors(t *testing.T) {
	m := newTestMesh(t, Config{})
	ctx := context.Background()
	if _, err := m.Connect(ctx, "/ip4/127.0.0.1/tcp/1"); !errors.Is(err, ErrBadAddr) {
		t.Fatalf("no /p2p/: err = %v, want ErrBadAddr", err)
	}
	if _, err := m.Connect(ctx, m.Addrs()[0].String()); !errors.Is(err, ErrBadAddr) {
		t.Fatalf("self dial: err = %v, want ErrBadAddr", err)
	}
}

func TestBootstrapThreeMeshes(t *testing.T) {
	a := newTestMesh(t, Config{})
	boot := []string{a.Addrs()[0].String()}
	b := newTestMesh(t, Config{Bootstrap: boot})
	c := newTestMesh(t, Config{Bootstrap: []string{a.Addrs()[1].String(), b.Addrs()[0].String()}})
	waitFor(t, 10*time.Second, "bootstrap connections", func() bool {
		return connected(b, a) && connected(c, a) && connected(c, b)
	})
}

func TestBootstrapRetriesUntilPeerAppears(t *testing.T) {
	// Reserve a port, learn the identity, then close so the first dials fail.
	key := testKey(t)
	first := newTestMesh(t, Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	addr := first.Addrs()[0]
	listen, _ := ma.SplitLast(addr)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	b := newTestMesh(t, Config{Bootstrap: []string{addr.String()}, Logger: logs.logger()})
	waitFor(t, 10*time.Second, "a failed bootstrap attempt to be logged", func() bool {
		return strings.Contains(logs.String(), "bootstrap dial failed")
	})
	a := newTestMesh(t, Config{Key: key, Listen: []string{listen.String()}})
	waitFor(t, 20*time.Second, "bootstrap retry to connect", func() bool { return connected(b, a) })
}

func TestProtect(t *testing.T) {
	m := newTestMesh(t, Config{})
	p := peer.ID("x")
	m.Protect(p, "pipeline")
	m.Protect(p, "other")
	if !m.Unprotect(p, "pipeline") {
		t.Fatal("Unprotect reported unprotected while another tag remains")
	}
	if m.Unprotect(p, "other") {
		t.Fatal("Unprotect reported protected after removing the last tag")
	}
}

func TestProtocolLimitsEnforced(t *testing.T) {
	const proto = "/strata/test-limited/1"
	srv := newTestMesh(t, Config{Protocols: []ProtocolLimit{{ID: proto, StreamsInbound: 1, StreamsOutbound: 1, Memory: 1 << 20}}})
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	srv.Host().SetStreamHandler(proto, func(s network.Stream) {
		entered <- struct{}{}
		<-release
		s.Close()
	})
	defer close(release)
	cli := newTestMesh(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Connect(ctx, srv.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	s1, err := cli.Host().NewStream(ctx, srv.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Reset()
	if _, err := s1.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-ctx.Done():
		t.Fatal("first stream never reached the handler")
	}
	// The second concurrent inbound stream exceeds the limit of one: the
	// server resets it, so a read fails instead of blocking.
	s2, err := cli.Host().NewStream(ctx, srv.ID(), proto)
	if err == nil {
		defer s2.Reset()
		_ = s2.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = s2.Write([]byte("y"))
		if err == nil {
			_, err = s2.Read(make([]byte, 1))
		}
	}
	if err == nil {
		t.Fatal("second stream over a 1-stream protocol limit succeeded")
	}
	if strings.Contains(err.Error(), "deadline") || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("second stream was not refused, it timed out: %v", err)
	}
}

func TestMDNSDiscovery(t *testing.T) {
	a := newTestMesh(t, Config{MDNS: true, Listen: []string{"/ip4/0.0.0.0/tcp/0"}})
	b := newTestMesh(t, Config{MDNS: true, Listen: []string{"/ip4/0.0.0.0/tcp/0"}})
	deadline := time.Now().Add(15 * time.Second)
	for !connected(a, b) {
		if time.Now().After(deadline) {
			t.Skip("mDNS found no peer within 15s; multicast is probably unavailable in this environment")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 3 {
		a := newTestMeshNoCleanup(t, Config{})
		b := newTestMeshNoCleanup(t, Config{Bootstrap: []string{a.Addrs()[0].String(), "/ip4/127.0.0.1/tcp/1/p2p/" + testID}})
		waitFor(t, 10*time.Second, "bootstrap", func() bool { return connected(b, a) })
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	// libp2p winds some goroutines down asynchronously after Close.
	waitFor(t, 10*time.Second, fmt.Sprintf("goroutines to return to %d", before), func() bool {
		return runtime.NumGoroutine() <= before+2
	})
}

func newTestMeshNoCleanup(t *testing.T, cfg Config) *Mesh {
	t.Helper()
	cfg.Key = testKey(t)
	cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
	cfg.RetryMin, cfg.RetryMax = 50*time.Millisecond, 500*time.Millisecond
	m, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
