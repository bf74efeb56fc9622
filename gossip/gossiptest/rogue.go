// Package gossiptest provides test doubles for the gossip package's
// users: a Rogue GossipSub peer that publishes what an honest node never
// would, so tests above gossip can check that a node scores it out.
package gossiptest

import (
	"context"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
)

// Rogue runs GossipSub on a host with no validators and no peer scoring:
// it publishes any bytes on any topic, as a modified client could. Its
// methods are safe for concurrent use.
type Rogue struct {
	ps     *pubsub.PubSub
	mu     sync.Mutex
	topics map[string]*pubsub.Topic
}

// NewRogue starts the rogue's GossipSub on h until ctx is cancelled.
func NewRogue(ctx context.Context, h host.Host) (*Rogue, error) {
	ps, err := pubsub.NewGossipSub(ctx, h, pubsub.WithFloodPublish(true))
	if err != nil {
		return nil, fmt.Errorf("gossiptest: start GossipSub: %w", err)
	}
	return &Rogue{ps: ps, topics: make(map[string]*pubsub.Topic)}, nil
}

// topic joins and subscribes to name once, so honest peers count the
// rogue as a peer of the topic.
func (r *Rogue) topic(name string) (*pubsub.Topic, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.topics[name]; ok {
		return t, nil
	}
	t, err := r.ps.Join(name)
	if err != nil {
		return nil, fmt.Errorf("gossiptest: join %s: %w", name, err)
	}
	if _, err := t.Subscribe(); err != nil {
		return nil, fmt.Errorf("gossiptest: subscribe to %s: %w", name, err)
	}
	r.topics[name] = t
	return t, nil
}

// Join subscribes the rogue to topic.
func (r *Rogue) Join(topic string) error {
	_, err := r.topic(topic)
	return err
}

// Peers returns how many peers the rogue sees on topic.
func (r *Rogue) Peers(topic string) int {
	t, err := r.topic(topic)
	if err != nil {
		return 0
	}
	return len(t.ListPeers())
}

// Publish sends data on topic, signed by the rogue's key but otherwise
// unchecked.
func (r *Rogue) Publish(ctx context.Context, topic string, data []byte) error {
	t, err := r.topic(topic)
	if err != nil {
		return err
	}
	return t.Publish(ctx, data)
}
