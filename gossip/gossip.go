package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic is the GossipSub topic carrying capacity adverts.
const Topic = "/strata/adverts/1"

// Defaults applied for zero Config fields.
const (
	DefaultMaxSkew        = 30 * time.Second
	DefaultMaxMessageSize = 64 << 10
)

// Config configures New. The zero value is valid.
type Config struct {
	// Logger receives validation and lifecycle events; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// TTL is how long a silent peer stays in the table (default 15s).
	TTL time.Duration
	// MaxSkew is how far an advert's timestamp may lie in the past or the
	// future of Clock before the advert is ignored as stale (default 30s).
	MaxSkew time.Duration
	// MaxPeers bounds the table (default 4096).
	MaxPeers int
	// MaxMessageSize is the largest GossipSub message this host accepts on
	// any topic (default 64 KiB; adverts themselves are capped at 8 KiB).
	MaxMessageSize int
	// ExpireEvery is how often the receive goroutine expires silent peers
	// (default TTL/4).
	ExpireEvery time.Duration
}

// Validate reports whether c can be used; errors wrap ErrInvalidConfig.
func (c *Config) Validate() error {
	switch {
	case c.TTL < 0, c.MaxSkew < 0, c.ExpireEvery < 0:
		return fmt.Errorf("%w: negative duration", ErrInvalidConfig)
	case c.MaxPeers < 0:
		return fmt.Errorf("%w: negative MaxPeers", ErrInvalidConfig)
	case c.MaxMessageSize < 0:
		return fmt.Errorf("%w: negative MaxMessageSize", ErrInvalidConfig)
	case c.MaxMessageSize > 0 && c.MaxMessageSize < MaxAdvertSize+1024:
		return fmt.Errorf("%w: MaxMessageSize %d cannot carry an %d-byte advert with its envelope", ErrInvalidConfig, c.MaxMessageSize, MaxAdvertSize)
	}
	return nil
}

// Gossip publishes this node's adverts and maintains the peer table from
// everyone's. Its methods are safe for concurrent use.
type Gossip struct {
	ps    *pubsub.PubSub
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	table *Table
	self  peer.ID
	log   *slog.Logger
	clock func() time.Time

	maxSkew     time.Duration
	expireEvery time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	pubMu    sync.Mutex // serialises Publish so Seq order matches send order
	mu       sync.Mutex // guards seq and closed
	seq      uint64
	closed   bool
	cbMu     sync.Mutex // serialises onUpdate calls
	onUpdate func(Advert)
	onGone   func(string)

	host    host.Host
	notifee network.Notifiee
	probeMu sync.Mutex
	probing map[peer.ID]bool // peers with a probe running
	probes  sync.WaitGroup

	accepted, rejected, ignored atomic.Uint64
	scores                      atomic.Pointer[map[peer.ID]float64]
	graylistings                atomic.Uint64

	closeOnce sync.Once
}

// Stats counts validator verdicts on received and published adverts.
type Stats struct {
	Accepted, Rejected, Ignored uint64
}

// Stats returns the validator verdict counts so far.
func (g *Gossip) Stats() Stats {
	return Stats{Accepted: g.accepted.Load(), Rejected: g.rejected.Load(), Ignored: g.ignored.Load()}
}

// New starts GossipSub on h (StrictSign, peer exchange, flood publish,
// peer scoring: see GraylistThreshold),
// registers the advert validator, subscribes to Topic and starts the
// receive goroutine. Only one Gossip (one PubSub) may run per host. The
// service stops when ctx is cancelled or Close is called.
func New(ctx context.Context, h host.Host, cfg Config) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, fmt.Errorf("%w: nil host", ErrInvalidConfig)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := cfg.Clock
	if clock == nil {
		clock = time.Now
	}
	ttl := cfg.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	g := &Gossip{
		table:       NewTable(ttl, cfg.MaxPeers),
		self:        h.ID(),
		log:         log,
		clock:       clock,
		maxSkew:     orDefault(cfg.MaxSkew, DefaultMaxSkew),
		expireEvery: orDefault(cfg.ExpireEvery, ttl/4),
		done:        make(chan struct{}),
		host:        h,
		probing:     make(map[peer.ID]bool),
	}
	g.ctx, g.cancel = context.WithCancel(ctx)
	maxMsg := cfg.MaxMessageSize
	if maxMsg == 0 {
		maxMsg = DefaultMaxMessageSize
	}
	ps, err := pubsub.NewGossipSub(g.ctx, h,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithPeerExchange(true),
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(maxMsg),
		pubsub.WithPeerScore(scoreParams(), scoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.inspectScores), scoreInspectEvery),
		pubsub.WithLogger(log.With("component", "pubsub")),
	)
	if err != nil {
		g.cancel()
		return nil, fmt.Errorf("gossip: start GossipSub: %w", err)
	}
	g.ps = ps
	fail := func(what string, err error) (*Gossip, error) {
		g.cancel()
		return nil, fmt.Errorf("gossip: %s %s: %w", what, Topic, err)
	}
	if err := ps.RegisterTopicValidator(Topic, g.validate, pubsub.WithValidatorInline(true)); err != nil {
		return fail("register validator for", err)
	}
	if g.topic, err = ps.Join(Topic); err != nil {
		return fail("join", err)
	}
	if g.sub, err = g.topic.Subscribe(pubsub.WithBufferSize(256)); err != nil {
		return fail("subscribe to", err)
	}
	// Seq starts at the clock in milliseconds so a restarted node's adverts
	// are newer than the ones peers remember from before the restart.
	g.seq = uint64(max(clock().UnixMilli(), 0))
	g.notifee = &network.NotifyBundle{DisconnectedF: func(n network.Network, c network.Conn) {
		if id := c.RemotePeer(); n.Connectedness(id) != network.Connected {
			g.probe(id)
		}
	}}
	h.Network().Notify(g.notifee)
	go g.run()
	return g, nil
}

// Probe timing: how long after its last connection closed a peer in the
// table is dialled again, and how long that dial may take.
const (
	probeLag     = 250 * time.Millisecond
	probeTimeout = 3 * time.Second
)

// probe checks a peer whose last connection closed: unless it is
// connected again by then, it is dialled once, and if that fails it is
// marked gone in the table (Table.MarkGone) and OnGone runs. A process
// that crashed or quit refuses the dial at once, so the mesh stops routing
// to it and re-covers its blocks in well under a second instead of after
// the TTL. A peer that is alive but was only disconnected (say by a
// connection limit) answers the dial and stays.
func (g *Gossip) probe(id peer.ID) {
	if id == g.self {
		return
	}
	if _, ok := g.table.Get(id); !ok {
		return
	}
	g.probeMu.Lock()
	if g.probing[id] || g.ctx.Err() != nil {
		g.probeMu.Unlock()
		return
	}
	g.probing[id] = true
	g.probes.Add(1)
	g.probeMu.Unlock()
	go func() {
		defer g.probes.Done()
		defer func() {
			g.probeMu.Lock()
			delete(g.probing, id)
			g.probeMu.Unlock()
		}()
		select {
		case <-g.ctx.Done():
			return
		case <-time.After(probeLag):
		}
		if g.host.Network().Connectedness(id) == network.Connected {
			return
		}
		ctx, cancel := context.WithTimeout(g.ctx, probeTimeout)
		err := g.host.Connect(ctx, peer.AddrInfo{ID: id})
		cancel()
		if err == nil || g.ctx.Err() != nil {
			return
		}
		if g.table.MarkGone(id) {
			g.log.Info("gossip: peer unreachable after its connection closed; hiding its advert", "peer", id, "err", err)
			g.cbMu.Lock()
			f := g.onGone
			g.cbMu.Unlock()
			if f != nil {
				f(id.String())
			}
		}
	}()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// PubSub returns the host's PubSub so other packages can join their own
// topics (registering their own validators).
func (g *Gossip) PubSub() *pubsub.PubSub { return g.ps }

// Table returns the peer table.
func (g *Gossip) Table() *Table { return g.table }

// OnUpdate sets a function called with every advert that changes the
// table, including this node's own. Calls are serialised; f must not block
// for long. Passing nil removes the callback.
func (g *Gossip) OnUpdate(f func(Advert)) {
	g.cbMu.Lock()
	g.onUpdate = f
	g.cbMu.Unlock()
}

// OnGone sets a function called with the id of each peer the table hides
// because its connection closed and a redial failed (see Table.MarkGone).
// f must not block for long. Passing nil removes the callback.
func (g *Gossip) OnGone(f func(peer string)) {
	g.cbMu.Lock()
	g.onGone = f
	g.cbMu.Unlock()
}

// Publish fills in a's Peer, Seq and Time, validates it, publishes it and
// records it in the table.
func (g *Gossip) Publish(ctx context.Context, a Advert) error {
	g.pubMu.Lock()
	defer g.pubMu.Unlock()
	now := g.clock()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrClosed
	}
	g.seq = max(g.seq+1, uint64(max(now.UnixMilli(), 0)))
	a.Seq = g.seq
	g.mu.Unlock()
	a.Peer = g.self
	a.Time = now.UnixMilli()
	data, err := a.Encode()
	if err != nil {
		return err
	}
	if err := g.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("gossip: publish advert: %w", err)
	}
	g.record(a, now)
	return nil
}

// record puts a into the table and runs the callback if it changed.
func (g *Gossip) record(a Advert, now time.Time) {
	g.cbMu.Lock()
	defer g.cbMu.Unlock()
	if g.table.Update(a, now) && g.onUpdate != nil {
		g.onUpdate(clone(a))
	}
}

// validate is the topic validator; see the package doc for its policy.
func (g *Gossip) validate(ctx context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	r := g.verdict(ctx, from, msg)
	switch r {
	case pubsub.ValidationAccept:
		g.accepted.Add(1)
	case pubsub.ValidationReject:
		g.rejected.Add(1)
	default:
		g.ignored.Add(1)
	}
	return r
}

func (g *Gossip) verdict(_ context.Context, from peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
	author := msg.GetFrom()
	ad, err := DecodeAdvert(msg.GetData())
	if err != nil {
		g.log.Debug("gossip: rejecting malformed advert", "from", from, "author", author, "err", err)
		return pubsub.ValidationReject
	}
	if ad.Peer != author {
		g.log.Debug("gossip: rejecting advert signed by another peer", "from", from, "author", author, "claims", ad.Peer)
		return pubsub.ValidationReject
	}
	now := g.clock()
	if skew := now.Sub(time.UnixMilli(ad.Time)); skew > g.maxSkew || skew < -g.maxSkew {
		g.log.Debug("gossip: ignoring advert with stale time", "author", author, "skew", skew)
		return pubsub.ValidationIgnore
	}
	if seq, ok := g.table.seq(ad.Peer); ok && ad.Seq <= seq {
		return pubsub.ValidationIgnore
	}
	msg.ValidatorData = ad
	return pubsub.ValidationAccept
}

// run moves validated adverts into the table and expires silent peers.
func (g *Gossip) run() {
	defer close(g.done)
	lastExpire := time.Now()
	for {
		ctx, cancel := context.WithTimeout(g.ctx, g.expireEvery)
		msg, err := g.sub.Next(ctx)
		cancel()
		if err == nil {
			if ad, ok := msg.ValidatorData.(Advert); ok {
				g.record(ad, g.clock())
			}
		} else if g.ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			if g.ctx.Err() == nil {
				g.log.Warn("gossip: advert subscription ended", "err", err)
			}
			return
		}
		if time.Since(lastExpire) >= g.expireEvery {
			lastExpire = time.Now()
			if gone := g.table.Expire(g.clock()); len(gone) > 0 {
				g.log.Info("gossip: peers expired", "peers", gone)
			}
		}
	}
}

// Close unsubscribes, stops GossipSub and waits for the receive
// goroutine. It is safe to call more than once.
func (g *Gossip) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closed = true
		g.mu.Unlock()
		g.host.Network().StopNotify(g.notifee)
		g.sub.Cancel()
		// Cancelling the context stops GossipSub itself, which releases
		// the topic and its stream handlers.
		g.cancel()
		<-g.done
		g.probeMu.Lock()   // no probe starts once ctx is cancelled
		g.probeMu.Unlock() //nolint:staticcheck // orders Add before Wait
		g.probes.Wait()
	})
	return nil
}
