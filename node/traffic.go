package node

import (
	"io"
	"sync/atomic"
	"time"
)

// countingStream counts the bytes a stream handler writes; it passes
// deadlines through so the handler's timeouts keep working.
type countingStream struct {
	io.ReadWriteCloser
	sent *atomic.Int64
}

func (c countingStream) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

func (c countingStream) SetReadDeadline(t time.Time) error {
	if d, ok := c.ReadWriteCloser.(interface{ SetReadDeadline(time.Time) error }); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

func (c countingStream) SetWriteDeadline(t time.Time) error {
	if d, ok := c.ReadWriteCloser.(interface{ SetWriteDeadline(time.Time) error }); ok {
		return d.SetWriteDeadline(t)
	}
	return nil
}

// RoundTraffic is what this node sent and received for one round of a
// run: updates and versions over the content protocol plus the run's
// gossip messages (as published, before GossipSub's relaying).
type RoundTraffic struct {
	Round    uint64 `json:"round"`
	Sent     int64  `json:"sent"`
	Received int64  `json:"received"`
	// PerStep is what sending fp32 gradients to the same n−1 peers at
	// every local step would have sent instead
	// (train.PerStepGradientBytes × (n−1)).
	PerStep int64 `json:"per_step_equivalent"`
}
