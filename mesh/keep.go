package mesh

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

const (
	// maxKnown bounds the peers the keeper remembers.
	maxKnown = 1024
	// maxKnownFails is how many dials in a row a learned (non-bootstrap)
	// peer may fail before the keeper forgets it. Bootstrap peers are
	// never forgotten.
	maxKnownFails = 8
	// maxDialsPerRound bounds the dials one keeper round starts.
	maxDialsPerRound = 8
)

// knownPeer is a peer the keeper tries to stay connected to.
type knownPeer struct {
	addrs   []ma.Multiaddr // transport addresses, may be empty (peerstore)
	boot    bool           // a configured bootstrap peer: always redialled
	fails   int            // dials failed in a row
	next    time.Time      // no dial before this
	dialing bool
}

// backoff returns the jittered delay before retry number fails (>= 1):
// exponential from rmin, capped at rmax, then uniformly in [d/2, d] so
// peers that lost the same node do not redial it in lockstep.
func backoff(rmin, rmax time.Duration, fails int) time.Duration {
	d := rmin
	for i := 1; i < fails && d < rmax; i++ {
		d *= 2
	}
	d = min(d, rmax)
	return d/2 + rand.N(d/2+1)
}

// track adds or refreshes a peer the keeper should keep connected. It
// reports false if the table is full.
func (m *Mesh) track(id peer.ID, addrs []ma.Multiaddr, boot bool) bool {
	m.kmu.Lock()
	defer m.kmu.Unlock()
	k, ok := m.known[id]
	if !ok {
		if len(m.known) >= maxKnown {
			return false
		}
		k = &knownPeer{}
		m.known[id] = k
	}
	k.boot = k.boot || boot
	if len(addrs) > 0 {
		k.addrs = addrs
	}
	return true
}

// kickKeeper wakes the keeper loop without blocking.
func (m *Mesh) kickKeeper() {
	select {
	case m.keepKick <- struct{}{}:
	default:
	}
}

// keepNotifee watches connections: a lost connection to a known peer
// wakes the keeper, which redials with backoff.
func (m *Mesh) keepNotifee() network.Notifiee {
	return &network.NotifyBundle{
		DisconnectedF: func(n network.Network, c network.Conn) {
			id := c.RemotePeer()
			if n.Connectedness(id) == network.Connected {
				return // another connection remains
			}
			m.kmu.Lock()
			k, ok := m.known[id]
			if ok && len(k.addrs) == 0 {
				// Remember where it listened while the peerstore still
				// has its identify addresses.
				k.addrs = transportAddrs(m.h.Peerstore().Addrs(id))
			}
			m.kmu.Unlock()
			if ok {
				m.kickKeeper()
			}
		},
	}
}

// keepLoop keeps bootstrap peers connected at all times, and, while the
// node has fewer than ConnLow connections, redials other known peers
// (learned through ConnectAddrs, mDNS or the DHT routing table). Every
// peer has its own jittered exponential backoff between RetryMin and
// RetryMax, so a dead peer is never hammered.
func (m *Mesh) keepLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.keepKick:
		case <-t.C:
		}
		wait := m.keepRound()
		t.Reset(wait)
	}
}

// keepRound starts the dials that are due and returns when to look again.
func (m *Mesh) keepRound() time.Duration {
	now := time.Now()
	wait := m.keepEvery/2 + rand.N(m.keepEvery/2+1)
	net := m.h.Network()
	room := m.connLow - len(net.Peers())
	if m.dht != nil && room > 0 {
		for _, id := range m.dht.RoutingTable().ListPeers() {
			if net.Connectedness(id) != network.Connected {
				m.track(id, nil, false)
			}
		}
	}
	var dials []peer.ID
	m.kmu.Lock()
	for id, k := range m.known {
		if k.dialing || net.Connectedness(id) == network.Connected {
			continue
		}
		if !k.boot && room <= 0 {
			continue
		}
		if d := k.next.Sub(now); d > 0 {
			wait = min(wait, d)
			continue
		}
		if len(dials) == maxDialsPerRound {
			wait = 0
			break
		}
		k.dialing = true
		dials = append(dials, id)
		if !k.boot {
			room--
		}
	}
	m.kmu.Unlock()
	for _, id := range dials {
		if !m.spawn(func() { m.redial(id) }) {
			break
		}
	}
	return max(wait, time.Millisecond)
}

// redial makes one attempt to reconnect to a known peer and reschedules it.
func (m *Mesh) redial(id peer.ID) {
	m.kmu.Lock()
	k := m.known[id]
	var info peer.AddrInfo
	boot := false
	if k != nil {
		info = peer.AddrInfo{ID: id, Addrs: k.addrs}
		boot = k.boot
	}
	m.kmu.Unlock()
	if k == nil {
		return
	}
	err := m.dial(m.ctx, info)
	if m.ctx.Err() != nil {
		return
	}
	forget := false
	m.kmu.Lock()
	attempt := k.fails + 1
	k.dialing = false
	if err == nil {
		k.fails = 0
		k.next = time.Time{}
	} else {
		k.fails++
		k.next = time.Now().Add(backoff(m.rmin, m.rmax, k.fails))
		if !k.boot && k.fails >= maxKnownFails {
			delete(m.known, id)
			forget = true
		}
	}
	retry := time.Until(k.next)
	m.kmu.Unlock()
	if forget && m.dht != nil {
		// Otherwise the next round would learn it again from the routing
		// table and the dialling would never end.
		m.dht.RoutingTable().RemovePeer(id)
	}
	switch {
	case err == nil && boot:
		m.log.Info("mesh: connected to bootstrap peer", "peer", id, "attempt", attempt)
	case err == nil:
		m.log.Debug("mesh: reconnected to known peer", "peer", id, "attempt", attempt)
	case boot:
		m.log.Warn("mesh: bootstrap dial failed", "peer", id, "addrs", info.Addrs,
			"attempt", attempt, "retry_in", retry.Round(time.Millisecond), "err", err)
	default:
		m.log.Debug("mesh: known peer dial failed", "peer", id, "attempt", attempt, "err", err)
	}
	m.kickKeeper()
}

// dial connects to info with the dial timeout. The keeper does its own
// backoff, so the swarm's is cleared first; otherwise retries would fail
// at once with "dial backoff".
func (m *Mesh) dial(ctx context.Context, info peer.AddrInfo) error {
	if sw, ok := m.h.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(info.ID)
	}
	ctx, cancel := dialTimeout(ctx)
	defer cancel()
	return m.h.Connect(ctx, info)
}

// ConnectAddrs connects to peer (a peer id string) at addrs (multiaddrs
// with or without /p2p/<peer>, typically from a gossip advert) and keeps
// the peer known: if the connection later drops while the node has fewer
// than ConnLow connections, the mesh redials it with backoff, and forgets
// it after repeated failures. At most 32 addresses are used; malformed
// ones and ones naming another peer are skipped.
func (m *Mesh) ConnectAddrs(ctx context.Context, peerID string, addrs []string) error {
	if m.isClosed() {
		return ErrClosed
	}
	id, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("%w: peer id %q: %v", ErrBadAddr, peerID, err)
	}
	if id == m.h.ID() {
		return fmt.Errorf("%w: %s is this node's own id", ErrBadAddr, id)
	}
	known := addrsFor(id, addrs)
	if len(known) == 0 && len(m.h.Peerstore().Addrs(id)) == 0 {
		return fmt.Errorf("%w: no usable address for %s among %d given", ErrBadAddr, id, len(addrs))
	}
	if len(known) > 0 {
		m.h.Peerstore().AddAddrs(id, known, peerstore.AddressTTL)
	}
	if !m.track(id, known, false) {
		m.log.Debug("mesh: known-peer table full; not tracking", "peer", id)
	}
	if m.h.Network().Connectedness(id) == network.Connected {
		return nil
	}
	if err := m.dial(ctx, peer.AddrInfo{ID: id, Addrs: known}); err != nil {
		m.kmu.Lock()
		if k, ok := m.known[id]; ok && !k.dialing {
			k.fails++
			k.next = time.Now().Add(backoff(m.rmin, m.rmax, k.fails))
		}
		m.kmu.Unlock()
		return fmt.Errorf("mesh: connect to %s: %w", id, err)
	}
	return nil
}

// addrsFor parses up to maxOpenAddrs addresses of peer id, skipping
// malformed ones and ones naming another peer.
func addrsFor(id peer.ID, addrs []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range addrs {
		if len(out) == maxOpenAddrs {
			break
		}
		a, err := parseMultiaddr(s)
		if err != nil {
			continue
		}
		tpt, owner := peer.SplitAddr(a)
		if (owner != "" && owner != id) || len(tpt) == 0 {
			continue
		}
		out = append(out, tpt)
	}
	return out
}

// transportAddrs keeps up to maxOpenAddrs direct addresses.
func transportAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if len(out) == maxOpenAddrs {
			break
		}
		if isDirect(a) {
			out = append(out, a)
		}
	}
	return out
}
