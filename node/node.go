package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/gossip"
	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// Version is reported in capacity adverts.
const Version = "0.1.0"

// IdentityFile is the name of the identity key inside a repo dir.
const IdentityFile = "identity.key"

// Node is one running Strata node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	store   *shards.Store
	mesh    *mesh.Mesh
	gossip  *gossip.Gossip
	fetcher *shards.Fetcher
	rng     *rand.Rand // placement jitter; used by the placement goroutine only
	// peerGone wakes the placement goroutine when gossip finds a peer gone,
	// so its blocks are picked up without waiting for the next re-check.
	peerGone chan struct{}

	// The version served; replaced as a training run commits new ones.
	v atomic.Pointer[version]

	mu       sync.Mutex
	infer    *infer.Service // nil until blocks are served
	span     infer.Span     // blocks served
	loading  infer.Span     // blocks being fetched before the first span is served
	capacity Capacity

	run *runner // nil unless the node takes part in a training run

	contentSent atomic.Int64 // bytes served over the content protocol
	fetches     fetchBoard   // fetches in progress, for the status

	mux    *infer.Mux     // the versions served, by model id
	prev   *infer.Service // the version served before infer, until retired
	spanMu sync.Mutex     // serialises loading spans and versions

	started time.Time
	http    *httpServer // nil without Config.HTTP
	metrics *metrics

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// version is one version of the served model. A version never changes;
// following a training run replaces the node's version by another with
// the same config.
type version struct {
	id   string
	man  *shards.Manifest
	head *model.Model // config, head and no blocks
	tok  *model.Tokenizer
}

// ver returns the served version; a zero version if there is none yet.
func (n *Node) ver() *version {
	if v := n.v.Load(); v != nil {
		return v
	}
	return &version{}
}

// Start opens the repo, joins the mesh, resolves the model (fetching its
// manifest, head and blocks from peers when the repo lacks them), starts
// serving its span and advertising. It returns once the node serves; Close
// stops it.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Run != nil && cfg.Model == "" {
		cfg.Model = cfg.Run.Spec.Genesis
	}
	n, ctx, err := open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var followSpec RunSpec
	var followFrom *consensus.Certificate
	if cfg.Follow != "" {
		if followSpec, followFrom, err = n.findRun(ctx, cfg.Follow); err != nil {
			n.Close()
			return nil, err
		}
		n.cfg.Model = followSpec.Genesis
		if followFrom != nil {
			n.cfg.Model = followFrom.Next()
		}
	}
	if err := n.resolve(ctx); err != nil {
		n.Close()
		return nil, err
	}
	if n.ver().man != nil {
		if err := n.initialSpan(ctx); err != nil {
			n.Close()
			return nil, err
		}
		if n.cfg.Blocks == "auto" {
			n.wg.Add(1)
			go n.replace(ctx)
		}
		n.announce(ctx)
	}
	if cfg.Follow != "" {
		if err := n.follow(ctx, followSpec, cfg.Follow, followFrom); err != nil {
			n.Close()
			return nil, err
		}
	}
	if cfg.Run != nil {
		if n.run, err = n.startRun(ctx, *cfg.Run); err != nil {
			n.Close()
			return nil, err
		}
	}
	if cfg.HTTP != "" {
		if err := n.startHTTP(ctx); err != nil {
			n.Close()
			return nil, err
		}
	}
	n.publish(ctx)
	lo, hi := n.Blocks()
	n.log.Info("node: started", "peer", n.mesh.ID(), "model", n.ver().id, "blocks", fmt.Sprintf("%d:%d", lo, hi),
		"gflops", fmt.Sprintf("%.2f", n.capacity.GFLOPS), "addrs", n.Addrs())
	return n, nil
}

// FetchResult says what Fetch did.
type FetchResult struct {
	Manifest *shards.Manifest
	// Bytes is what came over the network: objects already in the repo,
	// and chunks of interrupted fetches that verify, are not fetched again.
	Bytes int64
}

// Fetch joins the mesh as cfg describes, fetches into the repo the
// manifest, head and blocks (cfg.Blocks, default all) of model cfg.Model
// from peers, pins them and leaves. It serves nothing meanwhile but the
// content it already holds.
func Fetch(ctx context.Context, cfg Config) (res FetchResult, err error) {
	if cfg.Model == "" {
		return res, errors.New("node: fetch needs a model CID")
	}
	if cfg.Blocks == "auto" {
		return res, errors.New("node: fetch needs a block span LO:HI, not auto")
	}
	n, ctx, err := open(ctx, cfg)
	if err != nil {
		return res, err
	}
	defer n.Close()
	defer func() { res.Bytes = n.fetcher.BytesFetched() }()
	if err := n.resolve(ctx); err != nil {
		return res, err
	}
	lo, hi := 0, n.ver().man.Config.NLayers
	if cfg.Blocks != "" {
		if lo, hi, err = ParseBlocks(cfg.Blocks, hi); err != nil {
			return res, err
		}
	}
	if err := n.fetchSpan(ctx, infer.Span{Lo: lo, Hi: hi}); err != nil {
		return res, err
	}
	res.Manifest = n.ver().man
	return res, nil
}

// open starts everything a node needs before it has a model: the repo,
// the mesh with the content protocol, gossip and the advert loop.
func open(ctx context.Context, cfg Config) (*Node, context.Context, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	cfg.defaults()
	log := cfg.Logger
	n := &Node{cfg: cfg, log: log, started: time.Now()}
	n.metrics = newMetrics(n)
	n.mux = infer.NewMux(log)

	store, err := shards.Open(cfg.Repo, shards.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	n.store = store
	key, err := mesh.LoadIdentity(filepath.Join(cfg.Repo, IdentityFile))
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	n.cancel = cancel
	n.mesh, err = mesh.New(ctx, mesh.Config{
		Key: key, Listen: cfg.Listen, Bootstrap: cfg.Bootstrap, MDNS: cfg.MDNS, Logger: log, PSK: cfg.PSK,
		Protocols: append([]mesh.ProtocolLimit{
			{ID: infer.ProtocolID, StreamsInbound: 1024, StreamsOutbound: 1024, Memory: 1 << 30},
			{ID: infer.GenerateProtocolID, StreamsInbound: 256, StreamsOutbound: 64, Memory: 256 << 20},
			{ID: shards.ContentProtocol, StreamsInbound: 256, StreamsOutbound: 256, Memory: 512 << 20},
		}, queryLimits()...),
	})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	n.rng = rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seedOf(n.mesh.ID().String())))
	n.mesh.Handle(shards.ContentProtocol, func(rw io.ReadWriteCloser, remote string) {
		store.ServeContent(countingStream{rw, &n.contentSent}, remote)
	})
	n.mesh.Handle(RoundsProtocol, n.serveRounds)
	n.mesh.Handle(StatusProtocol, n.serveStatus)
	n.fetcher = &shards.Fetcher{Store: store, Opener: n.mesh, Logger: log}
	n.gossip, err = gossip.New(ctx, n.mesh.Host(), gossip.Config{Logger: log, TTL: cfg.PeerTTL})
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	n.peerGone = make(chan struct{}, 1)
	n.gossip.OnGone(func(string) {
		select {
		case n.peerGone <- struct{}{}:
		default:
		}
	})
	n.capacity = Measure(nil, 0, 0)
	n.wg.Add(1)
	go n.advertise(ctx)
	return n, ctx, nil
}

// resolve finds the model to serve and makes sure the repo holds its
// manifest, head and tokenizer.
func (n *Node) resolve(ctx context.Context) error {
	id := n.cfg.Model
	if id == "" {
		ids, err := models(n.store)
		if err != nil {
			return err
		}
		switch len(ids) {
		case 0:
			n.log.Info("node: repo holds no model and none was given; joining the mesh without serving")
			return nil
		case 1:
			id = ids[0].String()
		default:
			return fmt.Errorf("node: repo holds %d models; choose one with --model", len(ids))
		}
	}
	v, err := n.resolveVersion(ctx, id)
	if err != nil {
		return err
	}
	n.v.Store(v)
	return nil
}

// resolveVersion makes sure the repo holds the manifest, head and
// tokenizer of model id (fetching them from peers if not), pins them and
// loads the head.
func (n *Node) resolveVersion(ctx context.Context, id string) (*version, error) {
	c, err := shards.ParseCID(id)
	if err != nil {
		return nil, fmt.Errorf("node: model id %q is not a CID: %w", id, err)
	}
	if !n.store.Has(c) {
		if _, err := n.fetch(ctx, "manifest", c, func(provs []shards.Provider) error {
			_, err := n.fetcher.FetchManifest(ctx, c, provs)
			return err
		}, -1); err != nil {
			return nil, err
		}
	}
	man, err := shards.LoadManifest(n.store, c)
	if err != nil {
		return nil, fmt.Errorf("node: model %s: %w", id, err)
	}
	if !n.store.Has(man.Head.CID) {
		if _, err := n.fetch(ctx, "head", man.Head.CID, func(provs []shards.Provider) error {
			return n.fetcher.FetchRef(ctx, man, man.Head, provs, n.progress("head", man.Head.Size))
		}, -1); err != nil {
			return nil, err
		}
	}
	head, tok, _, err := shards.Load(n.store, c, 0, 0, true)
	if err != nil {
		return nil, fmt.Errorf("node: model %s: %w", id, err)
	}
	for _, o := range []cid.Cid{c, man.Head.CID} {
		if err := n.store.Pin(o); err != nil {
			return nil, err
		}
	}
	return &version{id: c.String(), man: man, head: head, tok: tok}, nil
}

// Bounds on fetching one object.
const (
	fetchAttempts = 5                      // rounds of providers tried before giving up
	fetchRetry    = 500 * time.Millisecond // pause between rounds
)

// fetch runs get with the providers of object c (block index b, or -1 for
// the manifest and head). It waits up to FindTimeout for providers to
// appear and tries several rounds of providers before it gives up.
func (n *Node) fetch(ctx context.Context, what string, c cid.Cid, get func([]shards.Provider) error, b int) ([]shards.Provider, error) {
	findBy := time.Now().Add(n.cfg.FindTimeout)
	var last error
	for attempt := 0; ; {
		provs := n.providers(ctx, c, b)
		switch {
		case len(provs) > 0:
			if last = get(provs); last == nil {
				return provs, nil
			}
			if attempt++; attempt == fetchAttempts {
				return nil, fmt.Errorf("node: fetching %s %s of model %s failed %d times: %w", what, c, n.ver().id, attempt, last)
			}
			n.log.Warn("node: fetch failed; retrying", "object", what, "cid", c, "err", last)
		case time.Now().After(findBy):
			return nil, fmt.Errorf("node: no peer provides %s %s of model %s (searched peer adverts and the DHT for %s); is a node serving it?",
				what, c, n.ver().id, n.cfg.FindTimeout)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node: fetching %s %s of model %s: %w", what, c, n.ver().id, ctx.Err())
		case <-time.After(fetchRetry):
		}
	}
}

// providers lists peers that should hold object c: servers of the model
// from the peer table (for block b, those whose span holds it) and
// providers found in the DHT.
func (n *Node) providers(ctx context.Context, c cid.Cid, b int) []shards.Provider {
	self := n.mesh.ID().String()
	seen := map[string]bool{self: true}
	var out []shards.Provider
	for _, a := range n.gossip.Table().Servers(n.ver().id) {
		id := a.Peer.String()
		if seen[id] || a.Loading || (b >= 0 && (b < a.Lo || b >= a.Hi)) {
			continue
		}
		seen[id] = true
		out = append(out, shards.Provider{Peer: id, Addrs: a.Addrs})
	}
	dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	found, err := n.mesh.FindProviders(dctx, c.String(), 16)
	if err != nil && ctx.Err() == nil {
		n.log.Debug("node: DHT lookup", "cid", c, "err", err)
	}
	for _, p := range found {
		if !seen[p.Peer] {
			seen[p.Peer] = true
			out = append(out, shards.Provider{Peer: p.Peer, Addrs: p.Addrs})
		}
	}
	return out
}

// progress reports a fetch's progress to the status and to
// Config.Progress, or logs it at most every two seconds.
func (n *Node) progress(what string, size int64) func(done, total int64) {
	if p := n.cfg.Progress; p != nil {
		return func(done, total int64) {
			n.fetches.note(what, done, total, time.Now())
			p(what, done, total)
		}
	}
	var last time.Time
	return func(done, total int64) {
		now := time.Now()
		n.fetches.note(what, done, total, now)
		if now.Sub(last) > 2*time.Second || done == total {
			last = now
			n.log.Info("node: fetching", "object", what, "done", done, "total", total)
		}
	}
}

// fetchSpan fetches the blocks of sp of the served version that the repo
// lacks, and pins them.
func (n *Node) fetchSpan(ctx context.Context, sp infer.Span) error {
	return n.fetchVersionSpan(ctx, n.ver(), sp)
}

// fetchVersionSpan fetches, one block at a time, the blocks of sp of
// version v that the repo lacks, and pins them.
func (n *Node) fetchVersionSpan(ctx context.Context, v *version, sp infer.Span) error {
	man := v.man
	for b := sp.Lo; b < sp.Hi; b++ {
		ref := man.Blocks[b]
		if n.store.Has(ref.CID) {
			continue
		}
		what := fmt.Sprintf("block %d", b)
		if _, err := n.fetch(ctx, what, ref.CID, func(provs []shards.Provider) error {
			return n.fetcher.FetchRef(ctx, man, ref, provs, n.progress(what, ref.Size))
		}, b); err != nil {
			return err
		}
	}
	for b := sp.Lo; b < sp.Hi; b++ {
		if err := n.store.Pin(man.Blocks[b].CID); err != nil {
			return err
		}
	}
	return nil
}

// loadSpan fetches the blocks of sp the repo lacks, loads them and serves
// them.
func (n *Node) loadSpan(ctx context.Context, sp infer.Span) error {
	return n.loadVersion(ctx, n.ver(), sp)
}

// loadVersion serves blocks sp of version v: it fetches the blocks the
// repo lacks, loads them and then switches at once. When v is a new
// version, its service joins the mux beside the old one, which finishes
// its sessions and is retired later (retire).
func (n *Node) loadVersion(ctx context.Context, v *version, sp infer.Span) error {
	n.spanMu.Lock()
	defer n.spanMu.Unlock()
	if err := n.fetchVersionSpan(ctx, v, sp); err != nil {
		return err
	}
	man := v.man
	c, _ := shards.ParseCID(v.id)
	loaded, _, _, err := shards.Load(n.store, c, sp.Lo, sp.Hi, false)
	if err != nil {
		return fmt.Errorf("node: loading blocks %d:%d of model %s: %w", sp.Lo, sp.Hi, v.id, err)
	}
	m := &model.Model{Config: man.Config, Head: v.head.Head, Blocks: loaded.Blocks}
	capacity := Measure(m, sp.Lo, sp.Hi)

	n.mu.Lock()
	defer n.mu.Unlock()
	if n.infer != nil && n.infer.ModelID() == v.id {
		if err := n.infer.SetServing(m, sp.Lo, sp.Hi); err != nil {
			return err
		}
	} else {
		svc, err := infer.New(infer.Config{
			ModelID: v.id, Model: m, Tokenizer: v.tok, Lo: sp.Lo, Hi: sp.Hi,
			Transport: transport{n.mesh}, Servers: n.servers, StepTimeout: n.cfg.StepTimeout, Logger: n.log,
			NoBatch: n.cfg.NoBatch, ForceBatch: n.cfg.ForceBatch, MaxRequests: n.cfg.MaxRequests, Observe: n.metrics.observe,
		})
		if err != nil {
			return err
		}
		if old := n.infer; old != nil {
			n.prev = old
			n.wg.Add(1)
			go n.retire(ctx, old, n.ver())
		} else {
			n.mesh.Handle(infer.ProtocolID, n.mux.HandleStream)
			n.mesh.Handle(infer.GenerateProtocolID, n.mux.HandleClient)
		}
		n.mux.Add(svc)
		n.infer = svc
	}
	n.v.Store(v)
	n.span, n.loading, n.capacity = sp, infer.Span{}, capacity
	n.log.Info("node: serving", "model", v.id, "blocks", fmt.Sprintf("%d:%d", sp.Lo, sp.Hi))
	return nil
}

// advertise publishes this node's capacity advert every period, and keeps
// the node connected to the peers it hears of, until ctx ends.
func (n *Node) advertise(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.AdvertEvery)
	defer t.Stop()
	for tick := 0; ; tick++ {
		n.publish(ctx) // the gossip service expires silent peers itself
		if tick%5 == 0 {
			n.keepConnected(ctx)
			n.measureRTT(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) publish(ctx context.Context) {
	if err := n.gossip.Publish(ctx, n.advert()); err != nil && ctx.Err() == nil {
		n.log.Warn("node: publishing advert", "err", err)
	}
}

// keepConnected dials peers known from adverts, so the mesh stays whole
// when a bootstrap peer leaves.
func (n *Node) keepConnected(ctx context.Context) {
	self := n.mesh.ID().String()
	for _, a := range n.gossip.Table().All() {
		if id := a.Peer.String(); id != self {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_ = n.mesh.ConnectAddrs(cctx, id, a.Addrs)
			cancel()
		}
	}
}

// measureRTT pings every peer in the table, so routes are planned on
// measured hop latencies.
func (n *Node) measureRTT(ctx context.Context) {
	self := n.mesh.ID().String()
	var wg sync.WaitGroup
	for _, a := range n.gossip.Table().All() {
		if id := a.Peer.String(); id != self {
			wg.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				_, _ = n.mesh.Ping(pctx, id)
			})
		}
	}
	wg.Wait()
}

func (n *Node) advert() gossip.Advert {
	n.mu.Lock()
	defer n.mu.Unlock()
	a := gossip.Advert{
		Addrs:       n.mesh.AddrStrings(),
		Cores:       runtime.NumCPU(),
		MemFree:     FreeMemory(),
		GFLOPS:      n.capacity.GFLOPS,
		BlockMillis: n.capacity.BlockMillis,
		Version:     Version,
		Started:     n.started.UnixMilli(),
	}
	switch {
	case n.span.Hi > n.span.Lo:
		a.Model, a.Lo, a.Hi = n.ver().id, n.span.Lo, n.span.Hi
		a.Load = float64(n.infer.Sessions()) / 64
	case n.loading.Hi > n.loading.Lo:
		a.Model, a.Lo, a.Hi, a.Loading = n.ver().id, n.loading.Lo, n.loading.Hi, true
	}
	return a
}

// servers turns the peer table into the planner's view of a model's
// servers; peers still loading are left out.
func (n *Node) servers(modelID string) []infer.Server {
	var out []infer.Server
	for _, a := range n.gossip.Table().Servers(modelID) {
		if a.Loading {
			continue
		}
		id := a.Peer.String()
		out = append(out, infer.Server{
			Peer: id, Addrs: a.Addrs, Lo: a.Lo, Hi: a.Hi,
			BlockMillis: a.BlockMillis, Load: a.Load, Started: a.Started,
			HopMillis: float64(n.mesh.RTT(id).Microseconds()) / 2e3, // one way
		})
	}
	return out
}

// ID is the node's peer id.
func (n *Node) ID() string { return n.mesh.ID().String() }

// Addrs are the node's full listening addresses, ending in /p2p/ID.
func (n *Node) Addrs() []string { return n.mesh.AddrStrings() }

// Model is the CID of the served model, or "".
func (n *Node) Model() string { return n.ver().id }

// Blocks is the served block span.
func (n *Node) Blocks() (lo, hi int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.span.Lo, n.span.Hi
}

// Peers is the number of peers in the peer table, this node included.
func (n *Node) Peers() int { return n.gossip.Table().Len() }

// Covered reports whether the peer table shows servers for every block of
// the node's model.
func (n *Node) Covered() bool {
	if n.ver().man == nil {
		return false
	}
	return len(infer.Missing(n.servers(n.ver().id), n.ver().man.Config.NLayers)) == 0
}

// Generate runs a request with this node as the entry.
func (n *Node) Generate(ctx context.Context, req infer.Request, emit func(infer.Token) error) (infer.Stats, error) {
	n.mu.Lock()
	svc := n.infer
	n.mu.Unlock()
	if svc == nil {
		return infer.Stats{}, errors.New("node: this node serves no model")
	}
	st, err := svc.Generate(ctx, req, emit)
	if errors.Is(err, infer.ErrNoRoute) && st.Forward == 0 && (req.Model == "" || req.Model == svc.ModelID()) {
		// Right after a switch the mesh may not cover the new version
		// yet: serve the request on the version before it.
		n.mu.Lock()
		prev := n.prev
		n.mu.Unlock()
		if prev != nil {
			req.Model = ""
			return prev.Generate(ctx, req, emit)
		}
	}
	return st, err
}

// Close stops the node: loops, streams, the host. It is safe to call
// more than once.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		if n.http != nil {
			err = errors.Join(err, n.stopHTTP())
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.gossip != nil {
			err = errors.Join(err, n.gossip.Close())
		}
		if n.mesh != nil {
			err = errors.Join(err, n.mesh.Close())
		}
	})
	return err
}

// transport adapts the mesh to infer.Transport.
type transport struct{ m *mesh.Mesh }

func (t transport) Self() string    { return t.m.ID().String() }
func (t transport) Addrs() []string { return t.m.AddrStrings() }
func (t transport) Open(ctx context.Context, peer string, addrs []string, proto string) (io.ReadWriteCloser, error) {
	return t.m.OpenProtected(ctx, peer, addrs, proto) // pipeline neighbours stay connected
}

// models lists the manifests in a repo.
func models(st *shards.Store) ([]cid.Cid, error) {
	all, err := st.List()
	if err != nil {
		return nil, err
	}
	var out []cid.Cid
	for _, c := range all {
		if _, err := shards.LoadManifest(st, c); err == nil {
			out = append(out, c)
		}
	}
	return out, nil
}

func seedOf(s string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}
