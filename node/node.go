package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

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
	cfg    Config
	log    *slog.Logger
	store  *shards.Store
	mesh   *mesh.Mesh
	gossip *gossip.Gossip
	infer  *infer.Service // nil when the node serves no model

	modelID  string
	lo, hi   int
	capacity Capacity

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Start opens the repo, loads the model span, joins the mesh and starts
// advertising. It returns once the node is serving; Close stops it.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.AdvertEvery <= 0 {
		cfg.AdvertEvery = 2 * time.Second
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = max(15*time.Second, 3*cfg.AdvertEvery)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log}

	store, err := shards.Open(cfg.Repo)
	if err != nil {
		return nil, err
	}
	n.store = store
	key, err := mesh.LoadIdentity(filepath.Join(cfg.Repo, IdentityFile))
	if err != nil {
		return nil, err
	}
	m, tok, err := n.load()
	if err != nil {
		return nil, err
	}
	n.capacity = Measure(m, n.lo, n.hi)

	ctx, cancel := context.WithCancel(ctx)
	n.cancel = cancel
	n.mesh, err = mesh.New(ctx, mesh.Config{
		Key: key, Listen: cfg.Listen, Bootstrap: cfg.Bootstrap, MDNS: cfg.MDNS, Logger: log,
		Protocols: []mesh.ProtocolLimit{
			{ID: infer.ProtocolID, StreamsInbound: 1024, StreamsOutbound: 1024, Memory: 1 << 30},
			{ID: infer.GenerateProtocolID, StreamsInbound: 256, StreamsOutbound: 64, Memory: 256 << 20},
		},
	})
	if err != nil {
		cancel()
		return nil, err
	}
	n.gossip, err = gossip.New(ctx, n.mesh.Host(), gossip.Config{Logger: log, TTL: cfg.PeerTTL})
	if err != nil {
		n.Close()
		return nil, err
	}
	if m != nil {
		n.infer, err = infer.New(infer.Config{
			ModelID: n.modelID, Model: m, Tokenizer: tok, Lo: n.lo, Hi: n.hi,
			Transport: transport{n.mesh}, Servers: n.servers, StepTimeout: cfg.StepTimeout, Logger: log,
		})
		if err != nil {
			n.Close()
			return nil, err
		}
		n.mesh.Handle(infer.ProtocolID, n.infer.HandleStream)
		n.mesh.Handle(infer.GenerateProtocolID, n.infer.HandleClient)
	}
	n.wg.Add(1)
	go n.advertise(ctx)
	log.Info("node: started", "peer", n.mesh.ID(), "model", n.modelID, "blocks", fmt.Sprintf("%d:%d", n.lo, n.hi),
		"gflops", fmt.Sprintf("%.2f", n.capacity.GFLOPS), "addrs", n.Addrs())
	return n, nil
}

// load reads the model named by the config (or the repo's only model) and
// the blocks to serve.
func (n *Node) load() (*model.Model, *model.Tokenizer, error) {
	id := n.cfg.Model
	if id == "" {
		ids, err := models(n.store)
		if err != nil {
			return nil, nil, err
		}
		switch len(ids) {
		case 0:
			n.log.Info("node: repo holds no model; joining the mesh without serving")
			return nil, nil, nil
		case 1:
			id = ids[0].String()
		default:
			return nil, nil, fmt.Errorf("node: repo holds %d models; choose one with --model", len(ids))
		}
	}
	c, err := cid.Decode(id)
	if err != nil {
		return nil, nil, fmt.Errorf("node: model id %q is not a CID: %w", id, err)
	}
	man, err := shards.LoadManifest(n.store, c)
	if err != nil {
		return nil, nil, fmt.Errorf("node: model %s: %w", id, err)
	}
	lo, hi := 0, man.Config.NLayers
	if n.cfg.Blocks != "" {
		if lo, hi, err = ParseBlocks(n.cfg.Blocks, man.Config.NLayers); err != nil {
			return nil, nil, err
		}
	}
	m, tok, _, err := shards.Load(n.store, c, lo, hi, true)
	if err != nil {
		return nil, nil, fmt.Errorf("node: loading blocks %d:%d of model %s: %w", lo, hi, id, err)
	}
	n.modelID, n.lo, n.hi = c.String(), lo, hi
	return m, tok, nil
}

// advertise publishes this node's capacity advert now and every period,
// and expires silent peers, until ctx ends.
func (n *Node) advertise(ctx context.Context) {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.AdvertEvery)
	defer t.Stop()
	for {
		if err := n.gossip.Publish(ctx, n.advert()); err != nil && ctx.Err() == nil {
			n.log.Warn("node: publishing advert", "err", err)
		}
		for _, p := range n.gossip.Table().Expire(time.Now()) {
			n.log.Info("node: peer expired", "peer", p)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (n *Node) advert() gossip.Advert {
	a := gossip.Advert{
		Addrs:       n.mesh.AddrStrings(),
		Cores:       runtime.NumCPU(),
		MemFree:     FreeMemory(),
		GFLOPS:      n.capacity.GFLOPS,
		BlockMillis: n.capacity.BlockMillis,
		Version:     Version,
	}
	if n.infer != nil && n.hi > n.lo {
		a.Model, a.Lo, a.Hi = n.modelID, n.lo, n.hi
		a.Load = float64(n.infer.Sessions()) / 64
	}
	return a
}

// servers turns the peer table into the planner's view of a model's servers.
func (n *Node) servers(modelID string) []infer.Server {
	var out []infer.Server
	for _, a := range n.gossip.Table().Servers(modelID) {
		out = append(out, infer.Server{
			Peer: a.Peer.String(), Addrs: a.Addrs, Lo: a.Lo, Hi: a.Hi,
			BlockMillis: a.BlockMillis, Load: a.Load,
		})
	}
	return out
}

// ID is the node's peer id.
func (n *Node) ID() string { return n.mesh.ID().String() }

// Addrs are the node's full listening addresses, ending in /p2p/ID.
func (n *Node) Addrs() []string { return n.mesh.AddrStrings() }

// Model is the CID of the served model, or "".
func (n *Node) Model() string { return n.modelID }

// Blocks is the served block span.
func (n *Node) Blocks() (lo, hi int) { return n.lo, n.hi }

// Peers is the number of peers in the peer table, this node included.
func (n *Node) Peers() int { return len(n.gossip.Table().All()) }

// Covered reports whether the peer table shows servers for every block of
// the node's model.
func (n *Node) Covered() bool {
	if n.infer == nil {
		return false
	}
	return len(infer.Missing(n.servers(n.modelID), n.infer.Layers())) == 0
}

// Generate runs a request with this node as the entry.
func (n *Node) Generate(ctx context.Context, req infer.Request, emit func(infer.Token) error) (infer.Stats, error) {
	if n.infer == nil {
		return infer.Stats{}, errors.New("node: this node serves no model")
	}
	return n.infer.Generate(ctx, req, emit)
}

// Close stops the node: adverts, streams, the host. It is safe to call
// more than once.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
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
	return t.m.Open(ctx, peer, addrs, proto)
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
