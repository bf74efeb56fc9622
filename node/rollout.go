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
// routes planned on the old version still reach it meanwhile).
func (n *Node) retire(ctx context.Context, old *infer.Service) {
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
		return
	}
}
