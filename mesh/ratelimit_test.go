package mesh

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

func TestLimiterTokenBucket(t *testing.T) {
	l := newLimiter(rateSpec{rate: 2, burst: 3}, map[protocol.ID]rateSpec{"/fast": {rate: 100, burst: 10}})
	t0 := time.Unix(1000, 0)
	a, b := peer.ID("a"), peer.ID("b")
	steps := []struct {
		p     peer.ID
		proto protocol.ID
		at    time.Duration
		want  bool
	}{
		{a, "/x", 0, true}, {a, "/x", 0, true}, {a, "/x", 0, true}, // the burst
		{a, "/x", 0, false},                      // empty
		{b, "/x", 0, true},                       // another peer has its own bucket
		{a, "/y", 0, true},                       // and another protocol
		{a, "/x", 400 * time.Millisecond, false}, // 0.8 tokens
		{a, "/x", 500 * time.Millisecond, true},  // 1 token at 2/s
		{a, "/x", 500 * time.Millisecond, false},
		{a, "/x", time.Hour, true}, // refilled, but only to the burst
		{a, "/x", time.Hour, true},
		{a, "/x", time.Hour, true},
		{a, "/x", time.Hour, false},
		{a, "/x", time.Hour - time.Second, false}, // time going back adds nothing
	}
	for i, s := range steps {
		if got, _ := l.allow(s.p, s.proto, t0.Add(s.at)); got != s.want {
			t.Fatalf("step %d (%s %s at %v): allow = %v, want %v", i, s.p, s.proto, s.at, got, s.want)
		}
	}
	if got := l.stats(); got != 5 {
		t.Errorf("refused = %d, want 5", got)
	}
	if got := l.statsByProto(); len(got) != 1 || got["/x"] != 5 {
		t.Errorf("refused by protocol = %v, want map[/x:5]", got)
	}
	n := 0
	for range 20 {
		if ok, _ := l.allow(a, "/fast", t0); ok {
			n++
		}
	}
	if n != 10 {
		t.Errorf("override burst: %d of 20 allowed, want 10", n)
	}
}

func TestLimiterWarnsOncePerMinute(t *testing.T) {
	l := newLimiter(rateSpec{rate: 0.001, burst: 1}, nil)
	t0 := time.Unix(1000, 0)
	l.allow("p", "/x", t0)
	var warns []int
	for i := range 10 {
		if _, w := l.allow("p", "/x", t0.Add(time.Duration(i)*10*time.Second)); w > 0 {
			warns = append(warns, w)
		}
	}
	// Refusals at 0,10,...,90 s: a warning at 0 s for one, at 60 s for the six since.
	if len(warns) != 2 || warns[0] != 1 || warns[1] != 6 {
		t.Fatalf("warnings %v, want [1 6]", warns)
	}
}

func TestLimiterSweepsIdleBuckets(t *testing.T) {
	l := newLimiter(rateSpec{rate: 10, burst: 2}, nil)
	t0 := time.Unix(1000, 0)
	for i := range 3000 {
		l.allow(peer.ID(rune(i)), "/x", t0)
	}
	l.mu.Lock()
	n, at := len(l.buckets), l.sweepAt
	l.mu.Unlock()
	if n != 3000 || at <= n {
		t.Fatalf("%d buckets, next sweep at %d; want 3000 busy buckets kept and the sweep point above them", n, at)
	}
	// A second later every bucket is full again; new pairs up to the
	// sweep point trigger a sweep that forgets them.
	for i := 0; i <= at-n; i++ {
		l.allow(peer.ID(rune(10000+i)), "/x", t0.Add(time.Second))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range 3000 {
		if _, ok := l.buckets[limitKey{peer.ID(rune(i)), "/x"}]; ok {
			t.Fatalf("idle bucket %d kept after a sweep (%d buckets)", i, len(l.buckets))
		}
	}
}

// TestHandleRateLimit: streams beyond a peer's burst are reset before the
// handler runs, other peers are unaffected, and the bucket refills.
func TestHandleRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tcp := []string{"/ip4/127.0.0.1/tcp/0"}
	srv := newTestMesh(t, Config{Listen: tcp, NoDHT: true, StreamRate: 5, StreamBurst: 4})
	flood := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	calm := newTestMesh(t, Config{Listen: tcp, NoDHT: true})
	srv.Handle("/test/echo/1", func(rw io.ReadWriteCloser, _ string) { io.Copy(rw, rw) })

	echo := func(c *Mesh) error {
		rw, err := c.Open(ctx, srv.ID().String(), srv.AddrStrings(), "/test/echo/1")
		if err != nil {
			return err
		}
		defer rw.Close()
		if _, err := rw.Write([]byte("hi")); err != nil {
			return err
		}
		buf := make([]byte, 2)
		_, err = io.ReadFull(rw, buf)
		return err
	}
	start := time.Now()
	ok := 0
	for range 40 {
		if echo(flood) == nil {
			ok++
		}
	}
	elapsed := time.Since(start).Seconds()
	// Token bucket bound: the burst plus what refilled meanwhile.
	if bound := 4 + int(5*elapsed) + 1; ok > bound {
		t.Errorf("%d of 40 streams served in %.2fs, bucket allows at most %d", ok, elapsed, bound)
	}
	if srv.StreamsRefused() == 0 {
		t.Error("no stream refused")
	}
	if got, want := srv.Refusals().RateLimited["/test/echo/1"], srv.StreamsRefused(); got != want {
		t.Errorf("Refusals().RateLimited[/test/echo/1] = %d, want all %d refusals", got, want)
	}
	if err := echo(calm); err != nil {
		t.Errorf("another peer was limited too: %v", err)
	}
	waitFor(t, 10*time.Second, "the flooding peer's bucket to refill", func() bool { return echo(flood) == nil })
}

func TestConfigRejectsNegativeRates(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"rate":  func(c *Config) { c.StreamRate = -1 },
		"burst": func(c *Config) { c.StreamBurst = -1 },
		"proto rate": func(c *Config) {
			c.Protocols = []ProtocolLimit{{ID: "/p", StreamsInbound: 1, Memory: 1, PeerStreamRate: -1}}
		},
	} {
		c := Config{Key: testKey(t), Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
		mut(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}
