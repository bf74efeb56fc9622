package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/pnet"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultConnLow     = 64
	DefaultConnHigh    = 128
	DefaultConnGrace   = 30 * time.Second
	DefaultRetryMin    = time.Second
	DefaultRetryMax    = time.Minute
	DefaultDialTimeout = 15 * time.Second
	// DHTProtocolPrefix keeps the Kademlia DHT private to Strata: its
	// protocol is /strata/kad/1.0.0, so nodes never talk to the public
	// IPFS DHT, and no public bootstrap peers are ever configured.
	DHTProtocolPrefix = "/strata"
	// ProvideValidity is how long a node keeps a provider record it was
	// given. It is a mesh-wide constant, not a setting, so that every
	// node's ReprovideInterval can be checked against it.
	ProvideValidity = time.Hour
	// DefaultReprovideInterval is how often the mesh re-announces the CIDs
	// passed to Provide.
	DefaultReprovideInterval = 20 * time.Minute
	// DefaultKeepInterval is how often the connection keeper looks for
	// known peers to redial when the node has fewer than ConnLow
	// connections.
	DefaultKeepInterval  = 5 * time.Second
	MDNSServiceName      = "strata"
	maxProtocolLimits    = 64
	maxBootstrapPeers    = 256
	maxListenAddrs       = 32
	defaultUserAgentName = "strata"
)

// ProtocolLimit caps the streams and memory one stream protocol may use,
// across all peers and per peer. Zero per-peer fields leave libp2p's
// per-protocol-per-peer defaults in place.
type ProtocolLimit struct {
	ID              protocol.ID
	StreamsInbound  int
	StreamsOutbound int
	// Memory is the byte budget of all streams of this protocol.
	Memory int64
	// PeerStreamsInbound and PeerStreamsOutbound cap one peer's streams.
	PeerStreamsInbound  int
	PeerStreamsOutbound int
	// PeerStreamRate and PeerStreamBurst, if set, replace
	// Config.StreamRate and Config.StreamBurst for this protocol.
	PeerStreamRate  float64
	PeerStreamBurst int
}

// Config configures New. Key and Listen are required.
type Config struct {
	// Key is the node's identity (see LoadIdentity).
	Key crypto.PrivKey
	// Listen lists multiaddrs to listen on, for example
	// /ip4/0.0.0.0/tcp/4001 and /ip4/0.0.0.0/udp/4001/quic-v1.
	Listen []string
	// Bootstrap lists full peer addresses (ending in /p2p/<id>) to connect
	// to in the background.
	Bootstrap []string
	// MDNS enables LAN discovery with service name "strata".
	MDNS bool
	// Logger receives connection and discovery events; nil discards them.
	Logger *slog.Logger
	// Protocols registers resource-manager limits for stream protocols.
	Protocols []ProtocolLimit
	// ConnLow and ConnHigh are the connection manager's water marks.
	ConnLow, ConnHigh int
	// ConnGrace protects new connections from trimming for this long.
	ConnGrace time.Duration
	// RetryMin and RetryMax bound the bootstrap retry backoff.
	RetryMin, RetryMax time.Duration
	// PSK, if set, makes this a private swarm: only peers with the same
	// 32-byte key can connect. QUIC does not support private swarms, so
	// Listen must then hold TCP addresses only.
	PSK pnet.PSK
	// UserAgent is announced over identify; empty means "strata".
	UserAgent string
	// NoDHT disables the private Kademlia DHT. The DHT is on by default
	// and always runs in server mode; short-lived clients should set
	// NoDHT so they never enter other nodes' routing tables. With NoDHT,
	// Provide and FindProviders return ErrNoDHT.
	NoDHT bool
	// ReprovideInterval is how often CIDs given to Provide are announced
	// again; zero means DefaultReprovideInterval. It must be below
	// ProvideValidity.
	ReprovideInterval time.Duration
	// KeepInterval is how often known but disconnected peers are
	// considered for redialling; zero means DefaultKeepInterval.
	KeepInterval time.Duration
	// StreamRate and StreamBurst rate-limit the inbound streams of every
	// protocol registered with Handle: one token bucket per remote peer
	// and protocol, refilled at StreamRate tokens per second up to
	// StreamBurst; a stream arriving at an empty bucket is reset before
	// its handler runs. Zero means DefaultStreamRate and
	// DefaultStreamBurst. This comes on top of the resource manager's
	// limits, which bound concurrent streams, not their rate.
	StreamRate  float64
	StreamBurst int
}

// Validate reports whether the config can be used; errors wrap
// ErrInvalidConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if c.Key == nil {
		return bad("Key is nil; load one with LoadIdentity")
	}
	if len(c.Listen) == 0 {
		return bad("no Listen addresses")
	}
	if len(c.Listen) > maxListenAddrs {
		return bad("%d Listen addresses, limit %d", len(c.Listen), maxListenAddrs)
	}
	for _, s := range c.Listen {
		m, err := parseMultiaddr(s)
		if err != nil {
			return bad("listen address: %v", err)
		}
		if _, err := m.ValueForProtocol(ma.P_P2P); err == nil {
			return bad("listen address %q must not contain /p2p/", s)
		}
		if len(c.PSK) > 0 && isQUIC(m) {
			return bad("listen address %q: QUIC cannot be used with a private swarm key", s)
		}
	}
	if len(c.Bootstrap) > maxBootstrapPeers {
		return bad("%d Bootstrap peers, limit %d", len(c.Bootstrap), maxBootstrapPeers)
	}
	for _, s := range c.Bootstrap {
		info, err := ParseAddr(s)
		if err != nil {
			return bad("bootstrap address: %v", err)
		}
		if len(info.Addrs) == 0 {
			return bad("bootstrap address %q has no transport part before /p2p/", s)
		}
	}
	if len(c.Protocols) > maxProtocolLimits {
		return bad("%d protocol limits, limit %d", len(c.Protocols), maxProtocolLimits)
	}
	seen := make(map[protocol.ID]bool, len(c.Protocols))
	for _, p := range c.Protocols {
		switch {
		case p.ID == "":
			return bad("protocol limit with empty ID")
		case seen[p.ID]:
			return bad("protocol %s limited twice", p.ID)
		case p.StreamsInbound < 0 || p.StreamsOutbound < 0 || p.PeerStreamsInbound < 0 || p.PeerStreamsOutbound < 0:
			return bad("protocol %s: negative stream limit", p.ID)
		case p.StreamsInbound+p.StreamsOutbound == 0:
			return bad("protocol %s: stream limits are zero, which would block it entirely", p.ID)
		case p.Memory <= 0:
			return bad("protocol %s: Memory must be positive", p.ID)
		case !(p.PeerStreamRate >= 0) || p.PeerStreamBurst < 0:
			return bad("protocol %s: negative stream rate or burst", p.ID)
		}
		seen[p.ID] = true
	}
	if c.ConnLow < 0 || c.ConnHigh < 0 {
		return bad("negative connection water marks")
	}
	low, high := c.connWater()
	if low > high {
		return bad("ConnLow %d above ConnHigh %d", low, high)
	}
	if c.ConnGrace < 0 || c.RetryMin < 0 || c.RetryMax < 0 {
		return bad("negative duration")
	}
	if rmin, rmax := c.retry(); rmin > rmax {
		return bad("RetryMin %v above RetryMax %v", rmin, rmax)
	}
	if c.ReprovideInterval < 0 || c.KeepInterval < 0 {
		return bad("negative interval")
	}
	if r := c.reprovide(); r >= ProvideValidity {
		return bad("ReprovideInterval %v must be below ProvideValidity %v, or records expire before they are renewed", r, ProvideValidity)
	}
	if !(c.StreamRate >= 0) || c.StreamBurst < 0 {
		return bad("negative StreamRate or StreamBurst")
	}
	if len(c.PSK) != 0 && len(c.PSK) != 32 {
		return bad("PSK is %d bytes, want 32", len(c.PSK))
	}
	return nil
}

func (c *Config) connWater() (low, high int) {
	low, high = c.ConnLow, c.ConnHigh
	if low == 0 {
		low = DefaultConnLow
	}
	if high == 0 {
		high = max(DefaultConnHigh, low)
	}
	return low, high
}

func (c *Config) retry() (time.Duration, time.Duration) {
	rmin, rmax := c.RetryMin, c.RetryMax
	if rmin == 0 {
		rmin = DefaultRetryMin
	}
	if rmax == 0 {
		rmax = max(DefaultRetryMax, rmin)
	}
	return rmin, rmax
}

func (c *Config) reprovide() time.Duration {
	if c.ReprovideInterval == 0 {
		return DefaultReprovideInterval
	}
	return c.ReprovideInterval
}

func (c *Config) keep() time.Duration {
	if c.KeepInterval == 0 {
		return DefaultKeepInterval
	}
	return c.KeepInterval
}

// limits returns the stream rate limiter the config asks for.
func (c *Config) limits() *limiter {
	def := rateSpec{rate: c.StreamRate, burst: float64(c.StreamBurst)}
	if def.rate == 0 {
		def.rate = DefaultStreamRate
	}
	if def.burst == 0 {
		def.burst = DefaultStreamBurst
	}
	proto := make(map[protocol.ID]rateSpec)
	for _, p := range c.Protocols {
		if p.PeerStreamRate == 0 && p.PeerStreamBurst == 0 {
			continue
		}
		s := def
		if p.PeerStreamRate > 0 {
			s.rate = p.PeerStreamRate
		}
		if p.PeerStreamBurst > 0 {
			s.burst = float64(p.PeerStreamBurst)
		}
		proto[p.ID] = s
	}
	return newLimiter(def, proto)
}

func isQUIC(m ma.Multiaddr) bool {
	for _, c := range m {
		switch c.Protocol().Code {
		case ma.P_QUIC, ma.P_QUIC_V1:
			return true
		}
	}
	return false
}

var errNoListen = errors.New("mesh: host is not listening on any address")
