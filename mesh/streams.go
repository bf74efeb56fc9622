package mesh

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// StreamHandler serves one inbound stream of a protocol from the peer whose
// id is remote. The stream is closed when the handler returns.
type StreamHandler func(rw io.ReadWriteCloser, remote string)

// Handle registers h for inbound streams of proto. Protocols above the mesh
// use it so that they need no libp2p types of their own. Inbound streams
// are rate-limited per remote peer (see Config.StreamRate): a stream over
// the limit is reset without reaching h.
func (m *Mesh) Handle(proto string, h StreamHandler) {
	id := protocol.ID(proto)
	if !m.limited[id] {
		m.log.Warn("mesh: protocol has no resource-manager limit of its own; add it to Config.Protocols", "protocol", proto)
	}
	m.h.SetStreamHandler(id, func(s network.Stream) {
		remote := s.Conn().RemotePeer()
		if ok, warn := m.lim.allow(remote, id, time.Now()); !ok {
			s.Reset()
			if warn > 0 {
				m.log.Warn("mesh: peer opens streams too fast; resetting them", "peer", remote, "protocol", proto, "refused", warn)
			}
			return
		}
		defer s.Close()
		h(s, remote.String())
	})
}

// StreamsRefused is the number of inbound streams reset so far because
// their peer exceeded its stream rate on a protocol (Refusals has them by
// protocol).
func (m *Mesh) StreamsRefused() uint64 { return m.lim.stats() }

// Open opens a stream of proto to the peer with id peerID, dialling addrs
// (multiaddrs, with or without the /p2p/ suffix) if there is no connection
// yet. Addresses often come from peer adverts, so at most maxOpenAddrs are
// used; malformed ones and ones naming another peer are skipped. A malformed
// peer id is an error wrapping ErrBadAddr.
func (m *Mesh) Open(ctx context.Context, peerID string, addrs []string, proto string) (io.ReadWriteCloser, error) {
	if m.isClosed() {
		return nil, ErrClosed
	}
	id, err := peer.Decode(peerID)
	if err != nil {
		return nil, fmt.Errorf("%w: peer id %q: %v", ErrBadAddr, peerID, err)
	}
	if id == m.h.ID() {
		return nil, fmt.Errorf("mesh: cannot open a %s stream to this node itself", proto)
	}
	known := addrsFor(id, addrs)
	if len(known) > 0 {
		m.h.Peerstore().AddAddrs(id, known, peerstore.TempAddrTTL)
	}
	s, err := m.h.NewStream(ctx, id, protocol.ID(proto))
	if err != nil {
		return nil, fmt.Errorf("mesh: open %s to %s: %w", proto, id, err)
	}
	return s, nil
}

// maxOpenAddrs bounds the addresses Open adds for one peer.
const maxOpenAddrs = 32

// AddrStrings returns Addrs as strings.
func (m *Mesh) AddrStrings() []string {
	as := m.Addrs()
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// NewEphemeralKey returns a fresh Ed25519 identity that is never stored,
// for short-lived clients.
func NewEphemeralKey() (crypto.PrivKey, error) {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mesh: generate key: %w", err)
	}
	return k, nil
}

// IDFromKey returns the peer id of an identity key.
func IDFromKey(k crypto.PrivKey) (string, error) {
	if k == nil {
		return "", fmt.Errorf("mesh: peer id of key: nil key")
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("mesh: peer id of key: %w", err)
	}
	return id.String(), nil
}

// Ping measures the round-trip time to a connected (or dialable) peer
// with the libp2p ping protocol; the result also updates the peer's
// latency average returned by RTT.
func (m *Mesh) Ping(ctx context.Context, peerID string) (time.Duration, error) {
	id, err := peer.Decode(peerID)
	if err != nil {
		return 0, fmt.Errorf("%w: peer id %q: %v", ErrBadAddr, peerID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, ok := <-ping.Ping(ctx, m.h, id)
	if !ok {
		return 0, ctx.Err()
	}
	if res.Error != nil {
		return 0, fmt.Errorf("mesh: ping %s: %w", id, res.Error)
	}
	return res.RTT, nil
}

// RTT is the moving average of round-trip times measured to a peer, or 0
// if none was measured.
func (m *Mesh) RTT(peerID string) time.Duration {
	id, err := peer.Decode(peerID)
	if err != nil {
		return 0
	}
	return m.h.Peerstore().LatencyEWMA(id)
}

// protectedStream keeps its peer's connection protected from the
// connection manager until the stream is closed.
type protectedStream struct {
	io.ReadWriteCloser
	m    *Mesh
	id   peer.ID
	tag  string
	once sync.Once
}

func (s *protectedStream) Close() error {
	s.once.Do(func() { s.m.cm.Unprotect(s.id, s.tag) })
	return s.ReadWriteCloser.Close()
}

// OpenProtected is Open for long-lived pipeline streams: the connection to
// the peer is protected from trimming by the connection manager while the
// stream is open.
func (m *Mesh) OpenProtected(ctx context.Context, peerID string, addrs []string, proto string) (io.ReadWriteCloser, error) {
	rw, err := m.Open(ctx, peerID, addrs, proto)
	if err != nil {
		return nil, err
	}
	s, ok := rw.(network.Stream)
	if !ok {
		return rw, nil
	}
	id := s.Conn().RemotePeer()
	tag := fmt.Sprintf("strata-pipeline-%s", s.ID())
	m.cm.Protect(id, tag)
	return &protectedStream{ReadWriteCloser: rw, m: m, id: id, tag: tag}, nil
}
