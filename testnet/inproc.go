package testnet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-mesh/strata/node"
)

// Net is a mesh of nodes running in this process, on loopback.
type Net struct {
	Model string
	Nodes []*node.Node
}

// Start imports the model into each repo and starts the nodes in this
// process, each bootstrapping from the first. It returns once every node
// is running; use WaitCovered to wait for the peer tables.
func Start(ctx context.Context, o Options) (*Net, error) {
	id, spans, err := Prepare(&o)
	if err != nil {
		return nil, err
	}
	net := &Net{Model: id}
	for i := range o.Nodes {
		cfg := node.Config{
			Repo: Repo(o.Dir, i), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
			Model: id, Blocks: Blocks(spans[i]), Logger: o.Logger.With("node", i),
			AdvertEvery: 500 * time.Millisecond, NoBatch: o.NoBatch, ForceBatch: o.ForceBatch,
		}
		if i > 0 {
			cfg.Bootstrap = net.Nodes[0].Addrs()[:1]
		}
		n, err := node.Start(ctx, cfg)
		if err != nil {
			net.Close()
			return nil, fmt.Errorf("testnet: node %d: %w", i, err)
		}
		net.Nodes = append(net.Nodes, n)
	}
	return net, nil
}

// WaitCovered waits until every node's peer table covers all blocks.
func (n *Net) WaitCovered(ctx context.Context) error {
	return wait(ctx, "waiting for every node to see all blocks served", func() bool {
		for _, nd := range n.Nodes {
			if !nd.Covered() {
				return false
			}
		}
		return true
	})
}

// Close stops every node.
func (n *Net) Close() error {
	var err error
	for _, nd := range n.Nodes {
		err = errors.Join(err, nd.Close())
	}
	return err
}

func tick() <-chan time.Time { return time.After(50 * time.Millisecond) }
