package node

import (
	"context"
	"time"

	"github.com/strata-mesh/strata/infer"
)

// onVersion is called with every version a run commits, once its objects
// are in the repo: a node that serves switches to it.
func (n *Node) onVersion(ctx context.Context, b *baseState) {
	n.log.Info("node: new model version", "model", b.id, "round", b.round-1)
	if err := n.SwitchVersion(ctx, b.id); err != nil && ctx.Err() == nil {
		n.log.Warn("node: switching to the new version failed; still serving the old one", "model", b.id, "err", err)
	}
}

// SwitchVersion makes the node serve model id, a version of the served
// model (same config), on the blocks it serves now: it fetches and loads
// them one block at a time, then switches at once. Requests and sessions
// already running finish on the version they started with; new ones get
// id. A node that serves nothing just takes id as its model.
func (n *Node) SwitchVersion(ctx context.Context, id string) error {
	cur := n.ver()
	if cur.id == id {
		return nil
	}
	v, err := n.resolveVersion(ctx, id)
	if err != nil {
		return err
	}
	if cur.man != nil && v.man.Config != cur.man.Config {
		n.log.Warn("node: not switching to a version with another config", "model", id)
		return nil
	}
	n.mu.Lock()
	sp := n.span
	n.mu.Unlock()
	if sp.Hi <= sp.Lo {
		n.v.Store(v)
		return nil
	}
	start := time.Now()
	if err := n.loadVersion(ctx, v, sp); err != nil {
		return err
	}
	n.log.Info("node: switched version", "model", id, "took", time.Since(start).Round(time.Millisecond))
	n.publish(ctx)
	n.announce(ctx)
	return nil
}

// retire drops a replaced version from the mux once it has no sessions
// or requests left and peers have had time to learn of the switch (their
// routes planned on the old version still reach it meanwhile). Then its
// shards that the served version does not share stop being announced in
// the DHT, so a long run does not re-announce every version it made. They
// stay in the repo: the history of a run is read from the manifest chain.
func (n *Node) retire(ctx context.Context, old *infer.Service, oldV *version) {
	defer n.wg.Done()
	grace := time.Now().Add(n.cfg.PeerTTL)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Now().Before(grace) || old.Sessions() > 0 || old.Requests() > 0 {
			continue
		}
		n.mu.Lock()
		if n.infer != old { // not switched back to it meanwhile
			n.mux.Remove(old.ModelID())
			if n.prev == old {
				n.prev = nil
			}
		}
		n.mu.Unlock()
		n.log.Info("node: retired version", "model", old.ModelID())
		n.release(oldV)
		return
	}
}

// release stops announcing the shards of v that the served version and
// the run's current base do not use.
func (n *Node) release(v *version) {
	if v == nil || v.man == nil {
		return
	}
	keep := map[string]bool{}
	for _, cur := range []*version{n.ver(), n.runBase()} {
		if cur != nil && cur.man != nil {
			for _, o := range cur.man.Objects() {
				keep[o.String()] = true
			}
		}
	}
	for _, o := range v.man.Objects() {
		if keep[o.String()] {
			continue
		}
		if err := n.mesh.Unprovide(o.String()); err != nil {
			n.log.Debug("node: unannouncing a retired shard", "cid", o, "err", err)
		}
	}
}

// runBase is the base of the run's current round, if the node trains.
func (n *Node) runBase() *version {
	if n.run == nil {
		return nil
	}
	n.run.cmu.Lock()
	defer n.run.cmu.Unlock()
	return n.run.baseVer
}
