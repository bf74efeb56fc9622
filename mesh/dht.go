package mesh

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Provider is a peer that announced it holds a CID, with the transport
// addresses (no /p2p/ suffix) it can be dialled at.
type Provider struct {
	Peer  string
	Addrs []string
}

const (
	// maxCIDLen bounds a CID string accepted by Provide and FindProviders.
	maxCIDLen = 256
	// maxProvided bounds the CIDs one node re-announces.
	maxProvided = 1 << 16
	// maxFindProviders caps the max argument of FindProviders.
	maxFindProviders = 256
	// defaultFindProviders is used when FindProviders gets max <= 0.
	defaultFindProviders = 20
	// findTimeout bounds a FindProviders call whose ctx has no deadline.
	findTimeout = time.Minute
	// announceTimeout bounds one background re-announcement.
	announceTimeout = 30 * time.Second
)

// newDHT starts the private Kademlia DHT on m's host: protocol prefix
// /strata, server mode, no public bootstrap peers (only boot, the
// configured ones), provider records kept for ProvideValidity.
func newDHT(m *Mesh, boot []peer.AddrInfo) (*dht.IpfsDHT, error) {
	d, err := dht.New(m.h,
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Mode(dht.ModeServer),
		dht.BootstrapPeers(boot...),
		dht.ProviderManagerOpts(
			records.ProvideValidity(ProvideValidity),
			records.ProviderAddrTTL(ProvideValidity),
		),
	)
	if err != nil {
		return nil, fmt.Errorf("mesh: start DHT: %w", err)
	}
	return d, nil
}

// parseCID parses a CID string from a caller or a peer.
func parseCID(s string) (cid.Cid, error) {
	if s == "" {
		return cid.Undef, fmt.Errorf("%w: empty", ErrBadCID)
	}
	if len(s) > maxCIDLen {
		return cid.Undef, fmt.Errorf("%w: %d bytes, limit %d", ErrBadCID, len(s), maxCIDLen)
	}
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("%w: %q: %v", ErrBadCID, s, err)
	}
	return c, nil
}

// provided is one CID this node announces, with when to announce it next.
type provided struct {
	next  time.Time
	fails int
}

// Provide announces on the DHT that this node holds c, and registers c so
// that the mesh re-announces it every ReprovideInterval (records expire on
// other nodes after ProvideValidity) until Unprovide or Close. Callers call
// Provide once per CID; re-providing is the mesh's job.
//
// If the announcement fails, for example because no DHT peer is connected
// yet (ErrNoDHTPeers), the error is returned but c stays registered and is
// announced in the background with backoff, so callers may ignore such
// errors at startup.
func (m *Mesh) Provide(ctx context.Context, c string) error {
	if m.isClosed() {
		return ErrClosed
	}
	if m.dht == nil {
		return ErrNoDHT
	}
	id, err := parseCID(c)
	if err != nil {
		return err
	}
	m.pmu.Lock()
	p, ok := m.provided[id]
	if !ok {
		if len(m.provided) >= maxProvided {
			m.pmu.Unlock()
			return fmt.Errorf("mesh: provide %s: already announcing %d CIDs, limit %d; Unprovide unused ones", id, maxProvided, maxProvided)
		}
		p = &provided{}
		m.provided[id] = p
	}
	m.pmu.Unlock()
	err = m.announce(ctx, id)
	m.scheduleProvide(id, err)
	return err
}

// Unprovide stops re-announcing c. Records already held by other nodes
// expire after ProvideValidity.
func (m *Mesh) Unprovide(c string) error {
	id, err := parseCID(c)
	if err != nil {
		return err
	}
	m.pmu.Lock()
	delete(m.provided, id)
	m.pmu.Unlock()
	return nil
}

// announce puts provider records for c on the peers closest to it.
func (m *Mesh) announce(ctx context.Context, c cid.Cid) error {
	if m.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("mesh: provide %s: %w yet; it will be announced once peers connect", c, ErrNoDHTPeers)
	}
	if err := m.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("mesh: provide %s: %w", c, err)
	}
	return nil
}

// scheduleProvide records the outcome of announcing c and wakes the
// reprovide loop so it sees the new due time.
func (m *Mesh) scheduleProvide(c cid.Cid, err error) {
	m.pmu.Lock()
	p, ok := m.provided[c]
	if ok {
		if err == nil {
			p.fails = 0
			p.next = time.Now().Add(m.reprovideEvery)
		} else {
			p.fails++
			p.next = time.Now().Add(backoff(m.rmin, m.rmax, p.fails))
		}
	}
	m.pmu.Unlock()
	select {
	case m.provideKick <- struct{}{}:
	default:
	}
}

// reprovideLoop re-announces registered CIDs when they fall due.
func (m *Mesh) reprovideLoop() {
	t := time.NewTimer(m.reprovideEvery)
	defer t.Stop()
	for {
		due, wait := m.dueProvides()
		for _, c := range due {
			ctx, cancel := context.WithTimeout(m.ctx, announceTimeout)
			err := m.announce(ctx, c)
			cancel()
			if m.ctx.Err() != nil {
				return
			}
			if err != nil && !errors.Is(err, ErrNoDHTPeers) {
				m.log.Debug("mesh: re-announce failed", "cid", c, "err", err)
			}
			m.scheduleProvide(c, err)
		}
		if len(due) > 0 {
			continue
		}
		t.Reset(wait)
		select {
		case <-m.ctx.Done():
			return
		case <-m.provideKick: // Reset above discards a pending tick
		case <-t.C:
		}
	}
}

// dueProvides returns the CIDs due now, or how long until the next one.
func (m *Mesh) dueProvides() ([]cid.Cid, time.Duration) {
	now := time.Now()
	wait := m.reprovideEvery
	var due []cid.Cid
	m.pmu.Lock()
	defer m.pmu.Unlock()
	for c, p := range m.provided {
		if d := p.next.Sub(now); d <= 0 {
			due = append(due, c)
			// Until scheduleProvide runs, do not hand it out again.
			p.next = now.Add(announceTimeout)
		} else if d < wait {
			wait = d
		}
	}
	return due, wait
}

// FindProviders looks up peers that announced cid on the DHT and returns
// at most max of them (max <= 0 means 20; at most 256), never this node.
// It stops at ctx's deadline, or after one minute if ctx has none, and
// returns what it found by then. Finding nothing is ErrNoProviders.
func (m *Mesh) FindProviders(ctx context.Context, c string, max int) ([]Provider, error) {
	if m.isClosed() {
		return nil, ErrClosed
	}
	if m.dht == nil {
		return nil, ErrNoDHT
	}
	id, err := parseCID(c)
	if err != nil {
		return nil, err
	}
	if max <= 0 {
		max = defaultFindProviders
	}
	max = min(max, maxFindProviders)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, findTimeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	self := m.h.ID()
	var out []Provider
	// Ask for one more than max: this node's own record, if it provides
	// c, is among the results and is dropped.
	for info := range m.dht.FindProvidersAsync(ctx, id, max+1) {
		if info.ID == self || len(out) == max {
			continue
		}
		out = append(out, m.provider(info))
		if len(out) == max {
			cancel() // enough; the channel closes soon after
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mesh: find providers of %s: %w; is a node serving it?", id, ErrNoProviders)
	}
	return out, nil
}

// provider converts a DHT result, filling missing addresses from the
// peerstore and bounding them.
func (m *Mesh) provider(info peer.AddrInfo) Provider {
	addrs := info.Addrs
	if len(addrs) == 0 {
		addrs = m.h.Peerstore().Addrs(info.ID)
	}
	p := Provider{Peer: info.ID.String()}
	for _, a := range addrs {
		if len(p.Addrs) == maxOpenAddrs {
			break
		}
		if tpt, _ := peer.SplitAddr(a); len(tpt) > 0 && isDirect(tpt) {
			p.Addrs = append(p.Addrs, ma.Multiaddr(tpt).String())
		}
	}
	return p
}
