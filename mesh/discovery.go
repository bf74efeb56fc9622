package mesh

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// bootstrap dials info until connected, backing off exponentially between
// rmin and rmax with jitter. It returns when connected or when m stops.
func (m *Mesh) bootstrap(info peer.AddrInfo, rmin, rmax time.Duration) {
	delay := rmin
	for attempt := 1; ; attempt++ {
		if m.h.Network().Connectedness(info.ID) == network.Connected {
			m.log.Info("mesh: connected to bootstrap peer", "peer", info.ID)
			return
		}
		// This loop does its own backoff; the swarm's would make retries
		// fail instantly with "dial backoff".
		if sw, ok := m.h.Network().(*swarm.Swarm); ok {
			sw.Backoff().Clear(info.ID)
		}
		ctx, cancel := dialTimeout(m.ctx)
		err := m.h.Connect(ctx, info)
		cancel()
		if err == nil {
			m.log.Info("mesh: connected to bootstrap peer", "peer", info.ID, "attempt", attempt)
			return
		}
		if m.ctx.Err() != nil {
			return
		}
		// Jitter in [delay/2, delay] keeps restarted swarms from
		// dialling in lockstep.
		wait := delay/2 + rand.N(delay/2+1)
		m.log.Warn("mesh: bootstrap dial failed", "peer", info.ID, "addrs", info.Addrs,
			"attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, rmax)
	}
}

// notifee connects to peers found by mDNS.
type notifee struct{ m *Mesh }

// HandlePeerFound is called by the mDNS service on its own goroutines; the
// dial runs on a goroutine owned by the Mesh so Close can wait for it.
func (n notifee) HandlePeerFound(info peer.AddrInfo) {
	m := n.m
	if info.ID == m.h.ID() || len(info.Addrs) == 0 {
		return
	}
	if m.h.Network().Connectedness(info.ID) == network.Connected {
		return
	}
	m.spawn(func() {
		ctx, cancel := dialTimeout(m.ctx)
		defer cancel()
		if err := m.h.Connect(ctx, info); err != nil {
			if m.ctx.Err() == nil {
				m.log.Debug("mesh: mDNS peer dial failed", "peer", info.ID, "err", err)
			}
			return
		}
		m.log.Info("mesh: connected to mDNS peer", "peer", info.ID)
	})
}

// dialTimeout bounds one connection attempt.
func dialTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, DefaultDialTimeout)
}
