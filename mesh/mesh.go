package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// Mesh is a running libp2p host with discovery. Its methods are safe for
// concurrent use.
type Mesh struct {
	h    host.Host
	cm   *connmgr.BasicConnMgr
	log  *slog.Logger
	mdns mdns.Service
	dht  *dht.IpfsDHT // nil with Config.NoDHT
	keep network.Notifiee
	lim  *limiter // per-peer stream rate limits of Handle

	private bool                 // Config.PSK was set
	blocks  *blockCounter        // the resource manager's refusals
	limited map[protocol.ID]bool // protocols with a resource limit of their own

	rmin, rmax     time.Duration // redial backoff bounds
	connLow        int
	keepEvery      time.Duration
	reprovideEvery time.Duration

	kmu      sync.Mutex // guards known
	known    map[peer.ID]*knownPeer
	keepKick chan struct{}

	pmu         sync.Mutex // guards provided
	provided    map[cid.Cid]*provided
	provideKick chan struct{}

	ctx    context.Context // cancelled by Close; parent of background work
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards closed and wg.Add
	closed bool

	closeOnce sync.Once
	closeErr  error
}

// New starts a libp2p host as described by cfg. Background work (bootstrap
// dialling, mDNS) stops when ctx is cancelled or Close is called; the host
// itself lives until Close.
func New(ctx context.Context, cfg Config) (*Mesh, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	blocks := newBlockCounter()
	rm, limited, err := resourceManager(cfg.Protocols, blocks)
	if err != nil {
		return nil, err
	}
	low, high := cfg.connWater()
	grace := cfg.ConnGrace
	if grace == 0 {
		grace = DefaultConnGrace
	}
	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("mesh: connection manager: %w", err)
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = defaultUserAgentName
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrStrings(cfg.Listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent(ua),
	}
	if len(cfg.PSK) > 0 {
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		cm.Close()
		rm.Close()
		return nil, fmt.Errorf("mesh: start host on %v: %w", cfg.Listen, err)
	}
	if len(h.Network().ListenAddresses()) == 0 {
		h.Close()
		return nil, errNoListen
	}
	bctx, cancel := context.WithCancel(ctx)
	rmin, rmax := cfg.retry()
	m := &Mesh{
		h: h, cm: cm, log: log, ctx: bctx, cancel: cancel,
		lim: cfg.limits(), blocks: blocks, limited: limited, private: len(cfg.PSK) > 0,
		rmin: rmin, rmax: rmax, connLow: low,
		keepEvery: cfg.keep(), reprovideEvery: cfg.reprovide(),
		known:    make(map[peer.ID]*knownPeer),
		keepKick: make(chan struct{}, 1),
		provided: make(map[cid.Cid]*provided), provideKick: make(chan struct{}, 1),
	}
	log.Info("mesh: host started", "peer", h.ID(), "addrs", h.Network().ListenAddresses())

	var boot []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		info, _ := ParseAddr(s) // validated above
		if info.ID == h.ID() {
			log.Debug("mesh: skipping bootstrap address of this node", "addr", s)
			continue
		}
		boot = append(boot, info)
		m.track(info.ID, info.Addrs, true)
	}
	if !cfg.NoDHT {
		if m.dht, err = newDHT(m, boot); err != nil {
			m.Close()
			return nil, err
		}
		m.spawn(m.reprovideLoop)
	}
	m.keep = m.keepNotifee()
	h.Network().Notify(m.keep)
	m.spawn(m.keepLoop)
	if cfg.MDNS {
		svc := mdns.NewMdnsService(h, MDNSServiceName, notifee{m})
		if err := svc.Start(); err != nil {
			m.Close()
			return nil, fmt.Errorf("mesh: start mDNS: %w", err)
		}
		m.mdns = svc
	}
	return m, nil
}

// spawn runs f in a goroutine owned by m, unless m is closed.
func (m *Mesh) spawn(f func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
	return true
}

// Host returns the underlying libp2p host. Do not close it; call Close.
func (m *Mesh) Host() host.Host { return m.h }

// ID returns this node's peer id.
func (m *Mesh) ID() peer.ID { return m.h.ID() }

// Addrs returns the addresses the host listens on, with unspecified
// addresses (0.0.0.0, ::) expanded to interface addresses, each ending in
// /p2p/<id>. Relay circuit listeners are omitted: they are not dialable
// without a relay.
func (m *Mesh) Addrs() []ma.Multiaddr {
	addrs, err := m.h.Network().InterfaceListenAddresses()
	if err != nil {
		addrs = m.h.Network().ListenAddresses()
	}
	var direct []ma.Multiaddr
	for _, a := range addrs {
		if isDirect(a) {
			direct = append(direct, a)
		}
	}
	out, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: m.h.ID(), Addrs: direct})
	if err != nil {
		m.log.Warn("mesh: cannot build /p2p/ addresses", "err", err)
		return nil
	}
	return out
}

// isDirect reports whether a is a dialable IP or DNS address (relay circuit
// listeners are not).
func isDirect(a ma.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	switch a[0].Protocol().Code {
	case ma.P_IP4, ma.P_IP6, ma.P_DNS, ma.P_DNS4, ma.P_DNS6:
	default:
		return false
	}
	for _, c := range a {
		if c.Protocol().Code == ma.P_CIRCUIT {
			return false
		}
	}
	return true
}

// Connect dials the full peer address addr (ending in /p2p/<id>) and returns
// the peer it connected to.
func (m *Mesh) Connect(ctx context.Context, addr string) (peer.AddrInfo, error) {
	info, err := ParseAddr(addr)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	return info, m.ConnectInfo(ctx, info)
}

// ConnectInfo connects to a peer whose addresses are already known.
//
// A failed security handshake wraps ErrHandshake. A host on the public mesh
// tries such a handshake handshakeTries times before it reports one: a node
// that is stopping or just restarting can drop a connection during the
// handshake too, and it is a node with a swarm key that refuses every time.
func (m *Mesh) ConnectInfo(ctx context.Context, info peer.AddrInfo) error {
	if m.isClosed() {
		return ErrClosed
	}
	if info.ID == m.h.ID() {
		return fmt.Errorf("%w: %s is this node's own id", ErrBadAddr, info.ID)
	}
	tries := 1
	if !m.private {
		tries = handshakeTries
	}
	var err error
	failed := 0 // handshakes that failed
	for i := range tries {
		if i > 0 {
			select {
			case <-ctx.Done():
				return m.handshakeError(info.ID, failed, err)
			case <-time.After(time.Duration(i) * handshakeRetry):
			}
			if sw, ok := m.h.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(info.ID) // else the retry fails at once with "dial backoff"
			}
		}
		err = m.h.Connect(ctx, info)
		switch {
		case err == nil:
			return nil
		case handshakeFailed(err):
			failed++
		case failed > 0 && ctx.Err() != nil:
			// Time ran out retrying a handshake that failed: that failure is the answer.
			return m.handshakeError(info.ID, failed, err)
		default:
			return fmt.Errorf("mesh: connect to %s: %w", info.ID, err)
		}
	}
	return m.handshakeError(info.ID, failed, err)
}

// handshakeError reports failed handshakes with p; last is the latest error.
func (m *Mesh) handshakeError(p peer.ID, failed int, last error) error {
	return fmt.Errorf("%w with %s (%s): %w", ErrHandshake, p, m.keyHint(failed), last)
}

// A public host tries a failing handshake this many times, waiting
// handshakeRetry longer before each retry, before it reports ErrHandshake.
const (
	handshakeTries = 3
	handshakeRetry = 250 * time.Millisecond
)

// handshakeFailed reports whether a dial error says the connection was
// made but its security handshake failed. libp2p reports that only in
// the text of its dial errors ("failed to negotiate security protocol",
// and "privnet:" for the private network's nonce exchange). A peer id
// mismatch is a completed handshake with another peer, not a key problem.
func handshakeFailed(err error) bool {
	s := err.Error()
	if strings.Contains(s, "peer id mismatch") {
		return false
	}
	return strings.Contains(s, "failed to negotiate security protocol") || strings.Contains(s, "privnet:")
}

// keyHint says what a failed handshake may mean for this host, after
// tries attempts.
func (m *Mesh) keyHint(tries int) string {
	if m.private {
		return "the peer is not on this private mesh: it holds another swarm key or none"
	}
	return fmt.Sprintf("%d attempts; if it runs a private mesh, dial it with its swarm key", tries)
}

// Protect marks the connection to p as important (for example a pipeline
// neighbour) so the connection manager never trims it while tag is set.
func (m *Mesh) Protect(p peer.ID, tag string) { m.cm.Protect(p, tag) }

// Unprotect removes tag from p and reports whether p is still protected by
// another tag.
func (m *Mesh) Unprotect(p peer.ID, tag string) bool { return m.cm.Unprotect(p, tag) }

func (m *Mesh) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Close stops discovery and bootstrap dialling, waits for their goroutines,
// and closes the host. It is safe to call more than once.
func (m *Mesh) Close() error {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.cancel()
		var errs []error
		if m.mdns != nil {
			if err := m.mdns.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mesh: close mDNS: %w", err))
			}
		}
		m.wg.Wait()
		if m.keep != nil {
			m.h.Network().StopNotify(m.keep)
		}
		if m.dht != nil {
			if err := m.dht.Close(); err != nil {
				errs = append(errs, fmt.Errorf("mesh: close DHT: %w", err))
			}
		}
		if err := m.h.Close(); err != nil {
			errs = append(errs, fmt.Errorf("mesh: close host: %w", err))
		}
		m.closeErr = errors.Join(errs...)
	})
	return m.closeErr
}
