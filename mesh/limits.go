package mesh

import (
	"fmt"
	"maps"
	"slices"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// hostProtocols limits the stream protocols every Strata host speaks
// besides those its node registers: the private DHT, which the mesh runs,
// and GossipSub, which the gossip package runs on the mesh's host (all the
// versions it negotiates). Config.Protocols may replace any of them.
//
// GossipSub keeps one long-lived stream per peer and direction, so a peer
// never needs more than a few; the totals leave room for ConnHigh peers
// many times over. A DHT peer sends a handful of concurrent queries.
var hostProtocols = []ProtocolLimit{
	{ID: DHTProtocolPrefix + "/kad/1.0.0", StreamsInbound: 512, StreamsOutbound: 512, Memory: 64 << 20,
		PeerStreamsInbound: 16, PeerStreamsOutbound: 16},
	gossipLimit("/meshsub/1.3.0"),
	gossipLimit("/meshsub/1.2.0"),
	gossipLimit("/meshsub/1.1.0"),
	gossipLimit("/meshsub/1.0.0"),
	gossipLimit("/floodsub/1.0.0"),
}

func gossipLimit(id protocol.ID) ProtocolLimit {
	return ProtocolLimit{ID: id, StreamsInbound: 1024, StreamsOutbound: 1024, Memory: 256 << 20,
		PeerStreamsInbound: 4, PeerStreamsOutbound: 4}
}

// resourceManager builds a resource manager from libp2p's auto-scaled
// defaults (including its limits for its own services: identify, ping,
// autonat, relay, hole punching), the host protocols' limits and the
// given per-protocol limits, which take precedence. It reports refusals
// to blocks and returns the protocols that got a limit of their own.
func resourceManager(protos []ProtocolLimit, blocks rcmgr.MetricsReporter) (network.ResourceManager, map[protocol.ID]bool, error) {
	limits := rcmgr.DefaultLimits
	// DefaultLimits is a package variable whose maps are shared; clone them
	// before adding entries so concurrent New calls never race.
	limits.ServiceLimits = maps.Clone(limits.ServiceLimits)
	limits.ServicePeerLimits = maps.Clone(limits.ServicePeerLimits)
	limits.ProtocolLimits = maps.Clone(limits.ProtocolLimits)
	limits.ProtocolPeerLimits = maps.Clone(limits.ProtocolPeerLimits)
	limits.PeerLimits = maps.Clone(limits.PeerLimits)
	libp2p.SetDefaultServiceLimits(&limits)
	all := make(map[protocol.ID]ProtocolLimit)
	for _, p := range hostProtocols {
		all[p.ID] = p
	}
	for _, p := range protos {
		all[p.ID] = p
	}
	for _, p := range all {
		limits.AddProtocolLimit(p.ID, rcmgr.BaseLimit{
			Streams:         p.StreamsInbound + p.StreamsOutbound,
			StreamsInbound:  p.StreamsInbound,
			StreamsOutbound: p.StreamsOutbound,
			Memory:          p.Memory,
		}, rcmgr.BaseLimitIncrease{})
		if p.PeerStreamsInbound > 0 || p.PeerStreamsOutbound > 0 {
			in := cmp(p.PeerStreamsInbound, p.StreamsInbound)
			out := cmp(p.PeerStreamsOutbound, p.StreamsOutbound)
			limits.AddProtocolPeerLimit(p.ID, rcmgr.BaseLimit{
				Streams:         in + out,
				StreamsInbound:  in,
				StreamsOutbound: out,
				Memory:          p.Memory,
			}, rcmgr.BaseLimitIncrease{})
		}
	}
	limited := make(map[protocol.ID]bool, len(limits.ProtocolLimits))
	for id := range limits.ProtocolLimits {
		limited[id] = true
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()), rcmgr.WithMetrics(blocks))
	if err != nil {
		return nil, nil, fmt.Errorf("mesh: resource manager: %w", err)
	}
	return rm, limited, nil
}

// cmp returns v if it is set, else the protocol-wide fallback.
func cmp(v, fallback int) int {
	if v > 0 {
		return v
	}
	return fallback
}

// Unlimited lists the protocols this host answers that have no
// resource-manager limit of their own, sorted. Their streams still count
// against libp2p's default per-protocol, per-peer and system limits, but
// those are sized for any protocol at all, not for this one; a protocol
// registered with Handle should appear in Config.Protocols.
func (m *Mesh) Unlimited() []string {
	var out []string
	for _, p := range m.h.Mux().Protocols() {
		if !m.limited[p] {
			out = append(out, string(p))
		}
	}
	slices.Sort(out)
	return out
}
