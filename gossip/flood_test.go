package gossip_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/strata-mesh/strata/gossip"
	"github.com/strata-mesh/strata/mesh"
)

// This file tests gossip and mesh together, the way a node composes them:
// peer scoring on the gossip side, stream rate limits on the mesh side.

const (
	echoProto = "/strata/test/echo/1"
	floodChan = "/strata/test/flood/1"
	// The honest peers' stream limits: below the defaults, so that a
	// rogue slowed down by the race detector still runs into them, and
	// above what the honest echo measurements need.
	streamRate  = 20
	streamBurst = 40
	// echoes new-stream echoes per phase: within the burst, so the
	// honest client is never limited itself.
	echoes = 20
	// trips is the least number of round trips on one open stream per
	// phase; tripEvery paces them, so the measuring adds little load.
	trips     = 200
	tripEvery = 5 * time.Millisecond
	tripSize  = 64
)

type honest struct {
	m      *mesh.Mesh
	g      *gossip.Gossip
	ch     *gossip.Channel
	served sync.Map // peer id string -> *atomic.Int64: echo streams handled
	mu     sync.Mutex
	got    map[string][]string // channel messages delivered, by sender
}

func newHonest(t *testing.T) *honest {
	t.Helper()
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mesh.New(context.Background(), mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true,
		StreamRate: streamRate, StreamBurst: streamBurst})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	n := &honest{m: m, got: map[string][]string{}}
	m.Handle(echoProto, func(rw io.ReadWriteCloser, remote string) {
		c, _ := n.served.LoadOrStore(remote, new(atomic.Int64))
		c.(*atomic.Int64).Add(1)
		io.Copy(rw, io.LimitReader(rw, 1<<20))
	})
	if n.g, err = gossip.New(context.Background(), m.Host(), gossip.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.g.Close() })
	n.ch, err = n.g.Join(floodChan, 1024, func(_ string, data []byte) error {
		if len(data) < 2 || string(data[:2]) != "ok" {
			return errors.New("not ok")
		}
		return nil
	}, func(from string, data []byte) {
		n.mu.Lock()
		n.got[from] = append(n.got[from], string(data))
		n.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ch.Close() })
	return n
}

func (n *honest) delivered(from peer.ID, msg string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.got[from.String()], msg)
}

func (n *honest) servedFor(p peer.ID) int64 {
	if c, ok := n.served.Load(p.String()); ok {
		return c.(*atomic.Int64).Load()
	}
	return 0
}

// rogue runs GossipSub with no validators and no scoring, so it can
// publish anything a modified client could, on the advert topic and on
// the test channel.
type rogue struct {
	m            *mesh.Mesh
	adverts, chn *pubsub.Topic
}

func newRogue(t *testing.T) *rogue {
	t.Helper()
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mesh.New(context.Background(), mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ps, err := pubsub.NewGossipSub(ctx, m.Host(), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	r := &rogue{m: m}
	if r.adverts, err = ps.Join(gossip.Topic); err != nil {
		t.Fatal(err)
	}
	if r.chn, err = ps.Join(floodChan); err != nil {
		t.Fatal(err)
	}
	// Subscribing makes the honest peers count the rogue as a topic peer.
	for _, tp := range []*pubsub.Topic{r.adverts, r.chn} {
		if _, err := tp.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// advert publishes a genuine, well-formed advert of the rogue itself.
func (r *rogue) advert(t *testing.T, version string, seq uint64) {
	t.Helper()
	a := gossip.Advert{Peer: r.m.ID(), Seq: seq, Time: time.Now().UnixMilli(), Addrs: r.m.AddrStrings(),
		Cores: 1, MemFree: 1 << 30, GFLOPS: 1, Version: version}
	data, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.adverts.Publish(context.Background(), data); err != nil {
		t.Fatal(err)
	}
}

func poll(t *testing.T, d time.Duration, what string, tick func(), cond func() bool) {
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

// echoRTTs runs n echo round trips from a to b, each on a new stream, and
// returns their durations sorted; any failure is fatal.
func echoRTTs(t *testing.T, a, b *mesh.Mesh, n int) []time.Duration {
	t.Helper()
	msg := make([]byte, tripSize)
	buf := make([]byte, tripSize)
	var rtts []time.Duration
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		rw, err := a.Open(ctx, b.ID().String(), b.AddrStrings(), echoProto)
		if err == nil {
			if _, err = rw.Write(msg); err == nil {
				_, err = io.ReadFull(rw, buf)
			}
			rw.Close()
		}
		cancel()
		if err != nil {
			t.Fatalf("honest echo %d of %d: %v", i+1, n, err)
		}
		rtts = append(rtts, time.Since(start))
	}
	slices.Sort(rtts)
	return rtts
}

// tripper measures echo round trips from a to b on one open stream, the
// way a pipeline hop exchanges activations, paced by tripEvery. Each
// sample is filed under the phase current when it started.
type tripper struct {
	a, b    *mesh.Mesh
	phase   atomic.Int32
	mu      sync.Mutex
	samples map[int32][]time.Duration
	err     error // the first failure
}

func (tr *tripper) count(phase int32) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.samples[phase])
}

func (tr *tripper) sorted(phase int32) []time.Duration {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	d := slices.Clone(tr.samples[phase])
	slices.Sort(d)
	return d
}

// run measures until ctx ends. A stream carries up to 1,000 trips (well
// within the echo handler's 1 MiB), then a new one is opened.
func (tr *tripper) run(ctx context.Context) {
	msg := make([]byte, tripSize)
	buf := make([]byte, tripSize)
	fail := func(err error) {
		tr.mu.Lock()
		if tr.err == nil {
			tr.err = err
		}
		tr.mu.Unlock()
	}
	for ctx.Err() == nil {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		rw, err := tr.a.Open(octx, tr.b.ID().String(), tr.b.AddrStrings(), echoProto)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("open an echo stream: %w", err))
			}
			return
		}
		for range 1000 {
			if ctx.Err() != nil {
				break
			}
			phase := tr.phase.Load()
			start := time.Now()
			if _, err = rw.Write(msg); err == nil {
				_, err = io.ReadFull(rw, buf)
			}
			if err != nil {
				fail(fmt.Errorf("echo round trip: %w", err))
				rw.Close()
				return
			}
			d := time.Since(start)
			tr.mu.Lock()
			tr.samples[phase] = append(tr.samples[phase], d)
			tr.mu.Unlock()
			time.Sleep(tripEvery)
		}
		rw.Close()
	}
}

// quantile returns the q-quantile of sorted durations by the nearest-rank
// method: the smallest sample with at least a fraction q of the samples
// at or below it.
func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))].Round(time.Microsecond)
}

func summary(d []time.Duration) string {
	if len(d) == 0 {
		return "no samples"
	}
	return fmt.Sprintf("n=%d p50 %v p90 %v p99 %v max %v", len(d), quantile(d, 0.5), quantile(d, 0.9), quantile(d, 0.99), quantile(d, 1))
}

// TestRogueScoredOutAndRateLimited: a rogue floods invalid gossip on the
// advert topic and on a channel, and opens garbage streams as fast as it
// can. Its score falls below the graylist threshold at both honest peers,
// which then drop even its valid messages; its streams are reset by the
// rate limit; honest request/response traffic keeps working throughout:
// every honest round trip must succeed, and its latency quantiles are
// logged (never asserted) for the quiet mesh, the flood before the rogue is
// scored out and the flood after.
func TestRogueScoredOutAndRateLimited(t *testing.T) {
	if testing.Short() {
		t.Skip("floods a loopback mesh for a few seconds")
	}
	a, b := newHonest(t), newHonest(t)
	r := newRogue(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, pair := range [][2]*mesh.Mesh{{a.m, b.m}, {r.m, a.m}, {r.m, b.m}} {
		if err := pair[0].ConnectAddrs(ctx, pair[1].ID().String(), pair[1].AddrStrings()); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, 15*time.Second, "the rogue to see both honest peers on both topics", nil, func() bool {
		return len(r.adverts.ListPeers()) == 2 && len(r.chn.ListPeers()) == 2
	})

	// Before the flood the rogue's valid messages are delivered like
	// anyone's.
	seq := uint64(1)
	poll(t, 15*time.Second, "the rogue's valid advert and channel message at both peers", func() {
		seq++
		r.advert(t, "before", seq)
		r.chn.Publish(ctx, []byte("ok before"))
	}, func() bool {
		for _, n := range []*honest{a, b} {
			if ad, ok := n.g.Table().Get(r.m.ID()); !ok || ad.Version != "before" || !n.delivered(r.m.ID(), "ok before") {
				return false
			}
		}
		return true
	})
	// Honest latency on the quiet mesh: round trips on one open stream
	// (as a pipeline hop sends activations), and new-stream echoes (as a
	// client's request opens one).
	const (
		quiet = iota
		flooding
		scoredOut
		stopped
	)
	tr := &tripper{a: a.m, b: b.m, samples: map[int32][]time.Duration{}}
	tripCtx, stopTrips := context.WithCancel(ctx)
	tripsDone := make(chan struct{})
	go func() { defer close(tripsDone); tr.run(tripCtx) }()
	defer func() { stopTrips(); <-tripsDone }()
	enough := func(phase int32) func() bool {
		return func() bool {
			tr.mu.Lock()
			err := tr.err
			tr.mu.Unlock()
			if err != nil {
				t.Fatalf("honest traffic failed: %v", err)
			}
			return tr.count(phase) >= trips
		}
	}
	poll(t, time.Minute, fmt.Sprintf("%d round trips on the quiet mesh", trips), nil, enough(quiet))
	before := echoRTTs(t, a.m, b.m, echoes)

	// The flood: invalid messages on both topics, garbage streams to both
	// honest peers, until both have graylisted the rogue.
	tr.phase.Store(flooding)
	floodCtx, stopFlood := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var junkSent, streamsOpened atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A fresh buffer for every message: Publish signs the bytes and
		// keeps them until they are sent, so overwriting them would turn
		// the flood into one of bad signatures, which never reaches the
		// validators.
		junk := func() []byte {
			b := make([]byte, 200)
			rand.Read(b)
			return b
		}
		for floodCtx.Err() == nil {
			if r.adverts.Publish(floodCtx, junk()) == nil {
				junkSent.Add(1)
			}
			if r.chn.Publish(floodCtx, junk()) == nil {
				junkSent.Add(1)
			}
		}
	}()
	floodStart := time.Now()
	for _, target := range []*mesh.Mesh{a.m, b.m} {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				garbage := make([]byte, 1024)
				for floodCtx.Err() == nil {
					rw, err := r.m.Open(floodCtx, target.ID().String(), nil, echoProto)
					if err != nil {
						continue
					}
					streamsOpened.Add(1)
					rw.Write(garbage)
					rw.Close()
				}
			}()
		}
	}
	poll(t, time.Minute, "both honest peers to graylist the rogue and reset its streams", nil, func() bool {
		if a.m.StreamsRefused() == 0 || b.m.StreamsRefused() == 0 {
			return false
		}
		sa, oka := a.g.Score(r.m.ID())
		sb, okb := b.g.Score(r.m.ID())
		return oka && okb && sa < gossip.GraylistThreshold && sb < gossip.GraylistThreshold
	})
	tr.phase.Store(scoredOut)
	scoredOutAfter := time.Since(floodStart)
	// The rogue goes on flooding while honest traffic is measured again.
	poll(t, time.Minute, fmt.Sprintf("%d round trips while the scored-out rogue floods", trips), nil, enough(scoredOut))
	during := echoRTTs(t, a.m, b.m, echoes)
	tr.phase.Store(stopped)
	stopFlood()
	wg.Wait()
	stopTrips()
	<-tripsDone
	floodSecs := time.Since(floodStart).Seconds()

	sa, _ := a.g.Score(r.m.ID())
	sb, _ := b.g.Score(r.m.ID())
	t.Logf("flood: %d invalid messages and %d garbage streams opened in %.1fs; rogue graylisted and limited at both after %.1fs; score %.0f at A, %.0f at B (graylist %d)",
		junkSent.Load(), streamsOpened.Load(), floodSecs, scoredOutAfter.Seconds(), sa, sb, gossip.GraylistThreshold)
	for name, n := range map[string]*honest{"A": a, "B": b} {
		refused, served := n.m.StreamsRefused(), n.servedFor(r.m.ID())
		t.Logf("%s: %d rogue streams reset by the rate limit, %d served; %d invalid adverts rejected before the rogue was graylisted",
			name, refused, served, n.g.Stats().Rejected)
		if refused == 0 {
			t.Errorf("%s reset none of the rogue's streams", name)
		}
		if st := n.g.Stats(); st.Rejected == 0 {
			t.Errorf("%s's advert validator rejected none of the rogue's messages (%+v)", name, st)
		}
		// The operator's view: refusals by protocol, and the score bands.
		if got := n.m.Refusals().RateLimited[echoProto]; got != refused {
			t.Errorf("%s: Refusals().RateLimited[%s] = %d, want %d", name, echoProto, got, refused)
		}
		// The score summary is refreshed every second: wait for the
		// inspection that follows the graylisting.
		poll(t, 15*time.Second, name+"'s score summary to show the rogue graylisted", nil, func() bool {
			st := n.g.ScoreStats()
			return st.Graylisted >= 1 && st.Graylistings >= 1
		})
		if st := n.g.ScoreStats(); st.BelowGossip != 1 || st.Graylisted != 1 || st.Lowest >= gossip.GraylistThreshold {
			t.Errorf("%s: ScoreStats %+v, want the rogue alone below the gossip threshold, graylisted", name, st)
		}
		// One token bucket: at most its burst plus what refilled meanwhile.
		if bound := int64(streamBurst + streamRate*(floodSecs+1)); served > bound {
			t.Errorf("%s served %d rogue streams in %.1fs, the rate limit allows %d", name, served, floodSecs, bound)
		}
		if hs, ok := n.g.Score(map[string]*mesh.Mesh{"A": b.m, "B": a.m}[name].ID()); ok && hs < 0 {
			t.Errorf("%s scores its honest peer %.1f, want >= 0", name, hs)
		}
	}
	// Latency is logged, never asserted: it depends on the machine's load.
	t.Logf("honest A->B round trips on one open stream (%d B, one per %v):", tripSize, tripEvery)
	t.Logf("  quiet:                          %s", summary(tr.sorted(quiet)))
	t.Logf("  flood, before the rogue is out: %s", summary(tr.sorted(flooding)))
	t.Logf("  flood, rogue scored out:        %s", summary(tr.sorted(scoredOut)))
	t.Logf("honest A->B echoes on a new stream each (%d B):", tripSize)
	t.Logf("  quiet:                          %s", summary(before))
	t.Logf("  flood, rogue scored out:        %s", summary(during))

	// Scored out: the rogue's valid messages no longer get through, while
	// honest messages published after them still do.
	r.advert(t, "after", seq+1000)
	if err := r.chn.Publish(ctx, []byte("ok after")); err != nil {
		t.Fatal(err)
	}
	var bseq int
	poll(t, 15*time.Second, "B's advert and channel message at A after the flood", func() {
		bseq++
		if err := b.g.Publish(ctx, gossip.Advert{Addrs: b.m.AddrStrings(), Cores: 1, MemFree: 1 << 30, GFLOPS: 1, Version: "honest"}); err != nil {
			t.Fatal(err)
		}
		if err := b.ch.Publish(ctx, []byte("ok honest")); err != nil {
			t.Fatal(err)
		}
	}, func() bool {
		ad, ok := a.g.Table().Get(b.m.ID())
		return ok && ad.Version == "honest" && a.delivered(b.m.ID(), "ok honest")
	})
	for name, n := range map[string]*honest{"A": a, "B": b} {
		if ad, ok := n.g.Table().Get(r.m.ID()); ok && ad.Version == "after" {
			t.Errorf("%s accepted the graylisted rogue's advert", name)
		}
		if n.delivered(r.m.ID(), "ok after") {
			t.Errorf("%s delivered the graylisted rogue's channel message", name)
		}
	}
}
