package node

import "context"

// onVersion is called with every version a run commits, once its objects
// are in the repo.
func (n *Node) onVersion(ctx context.Context, b *baseState) {
	n.log.Info("node: new model version", "model", b.id, "round", b.round-1)
}
