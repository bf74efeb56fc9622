package node

import (
	"cmp"
	"slices"
)

// GuardStatus is what a node has refused to peers and what it thinks of
// them: streams refused, GossipSub scores, bans. It is the part of Status
// that shows abuse being pushed back.
type GuardStatus struct {
	// RateLimited counts inbound streams reset by the per-peer stream rate
	// limit, by protocol.
	RateLimited map[string]uint64 `json:"rate_limited,omitempty"`
	// Blocked counts streams the resource manager refused at a protocol's
	// limits, by protocol ("service:NAME" for libp2p's own services),
	// inbound and outbound.
	Blocked map[string]uint64 `json:"blocked,omitempty"`
	// BlockedStreams, BlockedConns: streams refused before a protocol was
	// known, and connections refused, by the resource manager.
	BlockedStreams uint64 `json:"blocked_streams"`
	BlockedConns   uint64 `json:"blocked_conns"`
	// ScoredPeers is how many peers GossipSub scores now; the Below
	// counts nest (a graylisted peer is below the other thresholds too).
	ScoredPeers  int `json:"scored_peers"`
	BelowGossip  int `json:"below_gossip"`
	BelowPublish int `json:"below_publish"`
	Graylisted   int `json:"graylisted"`
	// Graylistings counts the times a peer fell below the graylist
	// threshold since the node started.
	Graylistings uint64 `json:"graylistings"`
	// Worst lists the peers with a negative score, lowest first, at most
	// maxWorst of them.
	Worst []PeerScore `json:"worst,omitempty"`
	// FetchBans counts providers caught sending bytes that fail
	// verification (the fetcher's record keeps at most 1024).
	FetchBans int `json:"fetch_bans"`
}

// PeerScore is one peer's GossipSub score.
type PeerScore struct {
	Peer  string  `json:"peer"`
	Score float64 `json:"score"`
}

// maxWorst bounds GuardStatus.Worst.
const maxWorst = 8

// guard returns the node's GuardStatus, or nil before its mesh runs.
func (n *Node) guard() *GuardStatus {
	if n.mesh == nil || n.gossip == nil {
		return nil
	}
	r := n.mesh.Refusals()
	s := n.gossip.ScoreStats()
	g := &GuardStatus{
		RateLimited: r.RateLimited, Blocked: r.Blocked, BlockedStreams: r.BlockedStreams, BlockedConns: r.BlockedConns,
		ScoredPeers: s.Peers, BelowGossip: s.BelowGossip, BelowPublish: s.BelowPublish, Graylisted: s.Graylisted,
		Graylistings: s.Graylistings,
	}
	for p, v := range n.gossip.Scores() {
		if v < 0 {
			g.Worst = append(g.Worst, PeerScore{Peer: p.String(), Score: v})
		}
	}
	slices.SortFunc(g.Worst, func(a, b PeerScore) int { return cmp.Or(cmp.Compare(a.Score, b.Score), cmp.Compare(a.Peer, b.Peer)) })
	if len(g.Worst) > maxWorst {
		g.Worst = g.Worst[:maxWorst]
	}
	if n.fetcher != nil {
		g.FetchBans = len(n.fetcher.Banned())
	}
	return g
}
