package mesh

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// notifee connects to peers found by mDNS.
type notifee struct{ m *Mesh }

// HandlePeerFound is called by the mDNS service on its own goroutines; the
// dial runs on a goroutine owned by the Mesh so Close can wait for it.
func (n notifee) HandlePeerFound(info peer.AddrInfo) {
	m := n.m
	if info.ID == m.h.ID() || len(info.Addrs) == 0 {
		return
	}
	m.track(info.ID, transportAddrs(info.Addrs), false)
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
