// Package gossip spreads signed capacity adverts over GossipSub and keeps
// the resulting peer table.
//
// Contract:
//
//   - Adverts travel on topic "/strata/adverts/1" as JSON of at most
//     MaxAdvertSize bytes. DecodeAdvert accepts only adverts that pass
//     Advert.Validate; unknown JSON fields are ignored so newer versions can
//     add fields.
//   - Every message is signed by its author's host key (GossipSub StrictSign)
//     and the topic validator additionally requires Advert.Peer to equal the
//     message author, so no peer can speak for another. Malformed, oversized
//     and impersonating messages are rejected (misbehaviour, penalised by
//     GossipSub); stale ones (timestamp outside ±MaxSkew of the local clock,
//     or Seq not newer than the last accepted from that peer) are ignored.
//   - GossipSub peer scoring is on for every topic: the advert topic with
//     advertScoreParams, every Channel with channelScoreParams. A rejected
//     message costs its sender 10·n² (n: its decaying count of rejected
//     messages on the topic, back to 1% after 30 minutes), so two
//     rejections cross GossipThreshold (no gossip to or from it), three
//     PublishThreshold (no flood publishing to it) and four
//     GraylistThreshold, below which every RPC from the peer is dropped
//     unread, valid messages included. Scores are kept 10 minutes after a
//     peer disconnects; Scores reports them. Validators must therefore
//     Reject only what an honest peer never sends (malformed, oversized,
//     impersonating); stale or unwanted messages are Ignored.
//   - Table is a pure, mutex-guarded map from peer to newest advert: it takes
//     the time as an argument, keeps only the highest Seq per peer, holds at
//     most MaxPeers peers, and forgets peers silent for longer than its TTL
//     (measured from local receipt, not from the advert's own timestamp).
//     Table.MarkGone hides a peer until it sends a newer advert.
//   - Gossip owns one PubSub instance for its host and one goroutine, which
//     moves validated adverts into the Table and expires silent peers. When
//     the last connection to a peer in the table closes, a short-lived probe
//     dials it again a moment later; if the dial fails the peer is marked
//     gone and OnGone runs, so a crashed node leaves the tables of its
//     neighbours at once rather than after the TTL. Close stops all of them
//     and waits. A node's own published adverts enter its table too. Other
//     packages may join further topics through PubSub().
//
// Time is injected through Config.Clock so expiry and staleness are testable.
package gossip
