package gossip

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MaxChannelMessage bounds one message on a Channel.
const MaxChannelMessage = 256 << 10

// Channel is a GossipSub topic carrying another package's messages as
// opaque bytes. Every message is signed by its author (StrictSign), so the
// sender a handler sees is authenticated.
type Channel struct {
	g      *Gossip
	name   string
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// Join joins topic name. check runs on every message before it is relayed
// (our own included); a message it refuses is dropped and counts against
// the peer that sent it (a few refusals graylist the peer: see
// GraylistThreshold), so check must refuse only what an honest peer of
// the same protocol never sends. deliver is called, from one goroutine and in
// arrival order, with every accepted message from another peer; it must
// not block for long. Messages over maxSize bytes (at most
// MaxChannelMessage) are refused.
func (g *Gossip) Join(name string, maxSize int, check func(from string, data []byte) error, deliver func(from string, data []byte)) (*Channel, error) {
	if name == "" || name == Topic || maxSize <= 0 || maxSize > MaxChannelMessage || check == nil || deliver == nil {
		return nil, fmt.Errorf("%w: channel %q needs a name other than the advert topic, a size bound in 1..%d, check and deliver",
			ErrInvalidConfig, name, MaxChannelMessage)
	}
	validate := func(_ context.Context, _ peer.ID, msg *pubsub.Message) pubsub.ValidationResult {
		if len(msg.Data) > maxSize {
			g.log.Debug("gossip: channel message too large", "topic", name, "from", msg.GetFrom(), "bytes", len(msg.Data))
			return pubsub.ValidationReject
		}
		if err := check(msg.GetFrom().String(), msg.Data); err != nil {
			g.log.Debug("gossip: channel message rejected", "topic", name, "from", msg.GetFrom(), "err", err)
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	}
	if err := g.ps.RegisterTopicValidator(name, validate, pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("gossip: register validator for %s: %w", name, err)
	}
	topic, err := g.ps.Join(name)
	if err != nil {
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: join %s: %w", name, err)
	}
	if err := topic.SetScoreParams(channelScoreParams()); err != nil {
		topic.Close()
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: score %s: %w", name, err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		topic.Close()
		_ = g.ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("gossip: subscribe to %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(g.ctx)
	c := &Channel{g: g, name: name, topic: topic, sub: sub, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			if msg.GetFrom() == g.self {
				continue
			}
			deliver(msg.GetFrom().String(), msg.Data)
		}
	}()
	return c, nil
}

// Publish sends data to every subscriber of the channel.
func (c *Channel) Publish(ctx context.Context, data []byte) error {
	if err := c.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("gossip: publish on %s: %w", c.name, err)
	}
	return nil
}

// Peers is the number of peers subscribed to the channel that we know of.
func (c *Channel) Peers() int { return len(c.topic.ListPeers()) }

// Close leaves the channel and waits for the delivery goroutine to stop.
func (c *Channel) Close() error {
	var err error
	c.once.Do(func() {
		c.cancel()
		c.sub.Cancel()
		<-c.done
		err = errors.Join(c.topic.Close(), c.g.ps.UnregisterTopicValidator(c.name))
	})
	return err
}
