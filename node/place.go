package node

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/infer"
)

// initialSpan decides the first span (fixed by --blocks, or placed) and
// loads it.
func (n *Node) initialSpan(ctx context.Context) error {
	layers := n.ver().man.Config.NLayers
	if n.cfg.Blocks != "auto" {
		lo, hi := 0, layers
		if n.cfg.Blocks != "" {
			var err error
			if lo, hi, err = ParseBlocks(n.cfg.Blocks, layers); err != nil {
				return err
			}
		}
		return n.loadSpan(ctx, infer.Span{Lo: lo, Hi: hi})
	}
	// Listen to the mesh for a moment, so the first choice already knows
	// what the others serve; jitter spreads nodes that start together.
	settle := 2*n.cfg.AdvertEvery + time.Duration(n.rng.Int64N(int64(n.cfg.AdvertEvery)))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(settle):
	}
	sp, _ := infer.Place(n.placement())
	n.mu.Lock()
	n.loading = sp
	n.mu.Unlock()
	n.publish(ctx) // others count this span while it loads
	n.log.Info("node: placed", "blocks", fmt.Sprintf("%d:%d", sp.Lo, sp.Hi), "max_blocks", n.maxBlocks())
	return n.loadSpan(ctx, sp)
}

// placement is the input of infer.Place from the peer table.
func (n *Node) placement() infer.Placement {
	self := n.mesh.ID().String()
	var others []infer.Server
	for _, a := range n.gossip.Table().Servers(n.ver().id) {
		if a.Peer.String() == self {
			continue
		}
		others = append(others, infer.Server{Peer: a.Peer.String(), Lo: a.Lo, Hi: a.Hi, BlockMillis: a.BlockMillis})
	}
	n.mu.Lock()
	cur := n.span
	n.mu.Unlock()
	return infer.Placement{Servers: others, Layers: n.ver().man.Config.NLayers, MaxBlocks: n.maxBlocks(), Self: self, Current: cur}
}

// maxBlocks is how many blocks this node holds: --max-blocks, else as
// many as half the free memory fits.
func (n *Node) maxBlocks() int {
	layers := n.ver().man.Config.NLayers
	if n.cfg.MaxBlocks > 0 {
		return min(n.cfg.MaxBlocks, layers)
	}
	var size int64
	for _, b := range n.ver().man.Blocks {
		size = max(size, b.Size)
	}
	free := int64(FreeMemory() / 2)
	if size == 0 || free <= 0 {
		return layers
	}
	return int(min(max(free/size, 1), int64(layers)))
}

// replace re-checks the placement every RecheckEvery (with jitter), and
// within half of that after gossip finds a peer gone, and moves to a
// better span when infer.Place says the gain is clear. The old span keeps
// serving until the new one is loaded.
func (n *Node) replace(ctx context.Context) {
	defer n.wg.Done()
	for {
		wait := n.cfg.RecheckEvery + time.Duration(n.rng.Int64N(int64(n.cfg.RecheckEvery)/2+1))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-n.peerGone:
			// Jitter spreads the nodes that lost the same peer, so the
			// first to move is seen by the others before they decide.
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(n.rng.Int64N(int64(n.cfg.RecheckEvery)/2 + 1))):
			}
		}
		sp, move := infer.Place(n.placement())
		if !move {
			continue
		}
		lo, hi := n.Blocks()
		n.log.Info("node: moving", "from", fmt.Sprintf("%d:%d", lo, hi), "to", fmt.Sprintf("%d:%d", sp.Lo, sp.Hi))
		if err := n.loadSpan(ctx, sp); err != nil {
			if ctx.Err() == nil {
				n.log.Warn("node: move failed; still serving the old span", "err", err)
			}
			continue
		}
		n.publish(ctx)
		n.announce(ctx)
	}
}

// announce registers in the DHT every object of the model this node
// holds, in the background; the mesh keeps re-announcing them.
func (n *Node) announce(ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.provideAll(ctx)
	}()
}

func (n *Node) provideAll(ctx context.Context) {
	c, _ := cid.Decode(n.ver().id)
	for _, o := range append([]cid.Cid{c}, n.ver().man.Objects()...) {
		if !n.store.Has(o) {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.mesh.Provide(pctx, o.String())
		cancel()
		if err != nil && ctx.Err() == nil {
			n.log.Debug("node: DHT provide", "cid", o, "err", err)
		}
	}
}
