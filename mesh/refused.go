package mesh

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Refusals counts what the host has refused to peers since it started.
// Operators read it to see abuse being pushed back; every map is keyed by
// a protocol id (or a libp2p service name), a bounded set.
type Refusals struct {
	// RateLimited counts inbound streams reset by the per-peer stream
	// rate limit of Handle, by protocol.
	RateLimited map[string]uint64
	// Blocked counts streams the resource manager refused when their
	// protocol was set (the protocol's limit or its per-peer limit was
	// reached), by protocol; streams of libp2p's own services are keyed
	// "service:" + the service name. Inbound and outbound streams both
	// count: a node that opens too many streams of a protocol itself is
	// refused by its own limits.
	Blocked map[string]uint64
	// BlockedStreams counts streams the resource manager refused before a
	// protocol was negotiated: the system, transient or peer stream limit
	// was reached.
	BlockedStreams uint64
	// BlockedConns counts connections the resource manager refused.
	BlockedConns uint64
	// BlockedPeers counts connections refused at their peer's scope (too
	// many connections or too much memory for one peer).
	BlockedPeers uint64
	// BlockedMemory counts memory reservations the resource manager
	// refused (a stream or connection asking for buffer space).
	BlockedMemory uint64
}

// Refusals returns the streams and connections refused so far.
func (m *Mesh) Refusals() Refusals {
	r := m.blocks.snapshot()
	r.RateLimited = m.lim.statsByProto()
	return r
}

// maxBlockKeys bounds the protocols blockCounter names; further ones are
// counted under "other".
const maxBlockKeys = 64

// blockCounter is the resource manager's metrics reporter: it counts the
// refusals (the Block* calls) and ignores the far more frequent Allow*
// calls, which are made on the hot path of every stream and reservation.
type blockCounter struct {
	streams, conns, peers, memory atomic.Uint64

	mu      sync.Mutex
	byProto map[string]uint64
}

var _ rcmgr.MetricsReporter = (*blockCounter)(nil)

func newBlockCounter() *blockCounter { return &blockCounter{byProto: make(map[string]uint64)} }

func (b *blockCounter) snapshot() Refusals {
	b.mu.Lock()
	blocked := maps.Clone(b.byProto)
	b.mu.Unlock()
	return Refusals{Blocked: blocked, BlockedStreams: b.streams.Load(), BlockedConns: b.conns.Load(),
		BlockedPeers: b.peers.Load(), BlockedMemory: b.memory.Load()}
}

func (b *blockCounter) count(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.byProto[key]; !ok && len(b.byProto) >= maxBlockKeys {
		key = "other"
	}
	b.byProto[key]++
}

func (b *blockCounter) AllowConn(network.Direction, bool)          {}
func (b *blockCounter) BlockConn(network.Direction, bool)          { b.conns.Add(1) }
func (b *blockCounter) AllowStream(peer.ID, network.Direction)     {}
func (b *blockCounter) BlockStream(peer.ID, network.Direction)     { b.streams.Add(1) }
func (b *blockCounter) AllowPeer(peer.ID)                          {}
func (b *blockCounter) BlockPeer(peer.ID)                          { b.peers.Add(1) }
func (b *blockCounter) AllowProtocol(protocol.ID)                  {}
func (b *blockCounter) BlockProtocol(p protocol.ID)                { b.count(string(p)) }
func (b *blockCounter) BlockProtocolPeer(p protocol.ID, _ peer.ID) { b.count(string(p)) }
func (b *blockCounter) AllowService(string)                        {}
func (b *blockCounter) BlockService(svc string)                    { b.count("service:" + svc) }
func (b *blockCounter) BlockServicePeer(svc string, _ peer.ID)     { b.count("service:" + svc) }
func (b *blockCounter) AllowMemory(int)                            {}
func (b *blockCounter) BlockMemory(int)                            { b.memory.Add(1) }
