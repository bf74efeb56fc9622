package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// testCID returns the raw-codec CIDv1 of s, like a shard id.
func testCID(t testing.TB, s string) string {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

// newLine starts n meshes where mesh i bootstraps to mesh i-1 only, and
// waits until every DHT routing table has a peer.
func newLine(t testing.TB, n int) []*Mesh {
	t.Helper()
	ms := make([]*Mesh, n)
	for i := range ms {
		var cfg Config
		cfg.Listen = []string{"/ip4/127.0.0.1/tcp/0"}
		if i > 0 {
			cfg.Bootstrap = []string{ms[i-1].AddrStrings()[0]}
		}
		ms[i] = newTestMesh(t, cfg)
	}
	waitFor(t, 10*time.Second, "routing tables to fill", func() bool {
		for _, m := range ms {
			if m.dht.RoutingTable().Size() == 0 {
				return false
			}
		}
		return true
	})
	return ms
}

func TestDHTUsesPrivatePrefix(t *testing.T) {
	m := newTestMesh(t, Config{})
	var kad []string
	for _, p := range m.Host().Mux().Protocols() {
		if strings.Contains(string(p), "/kad/") {
			kad = append(kad, string(p))
		}
	}
	if len(kad) != 1 || kad[0] != DHTProtocolPrefix+"/kad/1.0.0" {
		t.Fatalf("kad protocols = %v, want only %s/kad/1.0.0 (server mode, never /ipfs/kad)", kad, DHTProtocolPrefix)
	}
}

func TestProvideFindAcrossLine(t *testing.T) {
	ms := newLine(t, 3)
	c := testCID(t, "block 7")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ms[0].Provide(ctx, c); err != nil {
		t.Fatalf("Provide: %v", err)
	}
	// The asker joins last, knowing only the end of the line, so the
	// lookup has to go through peers that are not the provider.
	asker := newTestMesh(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{ms[2].AddrStrings()[0]}})
	waitFor(t, 10*time.Second, "asker's routing table", func() bool { return asker.dht.RoutingTable().Size() > 0 })
	if connected(asker, ms[0]) {
		t.Log("asker already connected to the provider (routing-table refresh); the lookup is still exercised")
	}
	provs, err := asker.FindProviders(ctx, c, 5)
	if err != nil {
		t.Fatalf("FindProviders: %v", err)
	}
	if len(provs) != 1 || provs[0].Peer != ms[0].ID().String() {
		t.Fatalf("got providers %v, want only %s", provs, ms[0].ID())
	}
	if len(provs[0].Addrs) == 0 {
		t.Fatalf("provider %s came without addresses", provs[0].Peer)
	}
	for _, a := range provs[0].Addrs {
		if strings.Contains(a, "/p2p/") {
			t.Errorf("provider address %s has a /p2p/ suffix; want transport addresses", a)
		}
	}
	// The addresses must be usable by a fresh node that knows nothing else.
	fresh := newTestMesh(t, Config{NoDHT: true})
	if err := fresh.ConnectAddrs(ctx, provs[0].Peer, provs[0].Addrs); err != nil {
		t.Fatalf("dialling the provider at its advertised addresses: %v", err)
	}
	// The provider never lists itself.
	if got, err := ms[0].FindProviders(ctx, c, 5); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("provider's own lookup = %v, %v; want ErrNoProviders (self excluded)", got, err)
	}
}

func TestFindProvidersSeveralAndMax(t *testing.T) {
	ms := newLine(t, 4)
	c := testCID(t, "head")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range ms[:3] {
		if err := m.Provide(ctx, c); err != nil {
			t.Fatalf("Provide: %v", err)
		}
	}
	// Provider records spread through the DHT asynchronously: a lookup
	// right after Provide may see only some of them, so ask until all
	// three show up.
	var provs []Provider
	var err error
	for {
		provs, err = ms[3].FindProviders(ctx, c, 10)
		if err == nil && len(provs) == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("got %d providers %v (%v), want 3", len(provs), provs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if provs, err := ms[3].FindProviders(ctx, c, 2); err != nil || len(provs) != 2 {
		t.Fatalf("max 2: got %v, %v; want 2 providers", provs, err)
	}
	// A provider asking sees the other two, never itself.
	provs, err = ms[1].FindProviders(ctx, c, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range provs {
		if p.Peer == ms[1].ID().String() {
			t.Fatalf("FindProviders returned the asking node itself: %v", provs)
		}
	}
	if len(provs) != 2 {
		t.Fatalf("got %d providers %v, want 2", len(provs), provs)
	}
}

// TestProvideBeforePeersIsAnnouncedLater checks the background announce: a
// CID provided by a node that has no DHT peer yet is announced once one
// connects.
func TestProvideBeforePeersIsAnnouncedLater(t *testing.T) {
	lone := newTestMesh(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	c := testCID(t, "early")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := lone.Provide(ctx, c); !errors.Is(err, ErrNoDHTPeers) {
		t.Fatalf("Provide with no peers: err = %v, want ErrNoDHTPeers", err)
	}
	b := newTestMesh(t, Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: []string{lone.AddrStrings()[0]}})
	id, err := cid.Decode(c)
	if err != nil {
		t.Fatal(err)
	}
	// Check b's own provider store: a lookup would also find the record
	// by asking lone itself, which proves nothing about announcing.
	waitFor(t, 15*time.Second, "the record to be announced to b in the background", func() bool {
		provs, err := b.dht.ProviderStore().GetProviders(ctx, id.Hash())
		return err == nil && len(provs) == 1 && provs[0].ID == lone.ID()
	})
	if err := lone.Unprovide(c); err != nil {
		t.Fatal(err)
	}
	lone.pmu.Lock()
	n := len(lone.provided)
	lone.pmu.Unlock()
	if n != 0 {
		t.Fatalf("%d CIDs still registered after Unprovide, want 0", n)
	}
}

func TestDHTErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	off := newTestMesh(t, Config{NoDHT: true})
	if err := off.Provide(ctx, testCID(t, "x")); !errors.Is(err, ErrNoDHT) {
		t.Fatalf("Provide with NoDHT: err = %v, want ErrNoDHT", err)
	}
	if _, err := off.FindProviders(ctx, testCID(t, "x"), 1); !errors.Is(err, ErrNoDHT) {
		t.Fatalf("FindProviders with NoDHT: err = %v, want ErrNoDHT", err)
	}
	m := newTestMesh(t, Config{})
	for _, bad := range []string{"", "not a cid", "bafk" + strings.Repeat("a", maxCIDLen)} {
		if err := m.Provide(ctx, bad); !errors.Is(err, ErrBadCID) {
			t.Errorf("Provide(%q): err = %v, want ErrBadCID", bad, err)
		}
		if _, err := m.FindProviders(ctx, bad, 1); !errors.Is(err, ErrBadCID) {
			t.Errorf("FindProviders(%q): err = %v, want ErrBadCID", bad, err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Provide(ctx, testCID(t, "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Provide after Close: err = %v, want ErrClosed", err)
	}
	if _, err := m.FindProviders(ctx, testCID(t, "x"), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("FindProviders after Close: err = %v, want ErrClosed", err)
	}
}

// BenchmarkFindProviders measures one lookup from one end of a 5-node line
// to a record provided at the other end.
func BenchmarkFindProviders(b *testing.B) {
	ms := newLine(b, 5)
	c := testCID(b, fmt.Sprint("bench ", time.Now().UnixNano()))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ms[0].Provide(ctx, c); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		provs, err := ms[4].FindProviders(ctx, c, 1)
		if err != nil || len(provs) != 1 {
			b.Fatalf("FindProviders = %v, %v", provs, err)
		}
		n++
	}
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(n), "ms/lookup")
}
