package gossip

import (
	"maps"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Peer score thresholds (GossipSub v1.1). A peer whose score falls below
// GossipThreshold gets no gossip from us and its gossip is ignored; below
// PublishThreshold we stop flood-publishing to it; below GraylistThreshold
// every message it sends is dropped unread. With the weights below, two
// invalid messages cross the gossip threshold, three the publish
// threshold and four the graylist threshold; the penalty halves in about
// four and a half minutes.
const (
	GossipThreshold   = -10
	PublishThreshold  = -50
	GraylistThreshold = -100
	// acceptPXThreshold: peer exchange is taken from any peer in good
	// standing. A higher bar would ignore the PX of a node's bootstrap
	// peer (score 0 on a fresh start), leaving a restarted node with one
	// connection until discovery finds the rest.
	acceptPXThreshold = 0
	// opportunisticGraftThreshold: when the median score of our mesh
	// falls below it, better-scored peers are grafted in.
	opportunisticGraftThreshold = 2
	// invalidWeight is the P4 weight: score += invalidWeight * count²
	// per topic, where count is the peer's decaying number of rejected
	// messages on that topic.
	invalidWeight = -10
	// invalidDecay is how long a rejected message weighs on a peer's
	// score: the count decays to 1% over it.
	invalidDecay = 30 * time.Minute
	// scoreInspectEvery is how often Scores is refreshed.
	scoreInspectEvery = time.Second
)

// scoreParams is the peer scoring policy of the whole PubSub: the advert
// topic is scored from the start and every Channel topic gets
// channelScoreParams when it is joined.
//
// The IP colocation penalty (P6) is off: volunteers behind one NAT and
// loopback test meshes share an address, and the resource manager
// already bounds connections per IP. Mesh delivery deficits (P3) are off
// too: run topics are quiet between rounds, and a deficit there would
// punish honest peers for having nothing to say.
func scoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{Topic: advertScoreParams()},
		TopicScoreCap:             20,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		IPColocationFactorWeight:  0,
		BehaviourPenaltyWeight:    -1,
		BehaviourPenaltyThreshold: 6,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:             pubsub.DefaultDecayInterval,
		DecayToZero:               pubsub.DefaultDecayToZero,
		// Keep the counters of a peer that disconnects, so reconnecting
		// does not wash a graylisted score clean.
		RetainScore: 10 * time.Minute,
	}
}

func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		GossipThreshold:             GossipThreshold,
		PublishThreshold:            PublishThreshold,
		GraylistThreshold:           GraylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraftThreshold,
	}
}

// advertScoreParams scores the advert topic, where every peer speaks
// every few seconds: first deliveries earn up to +10, time in the mesh up
// to +1, invalid messages cost invalidWeight·count².
func advertScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   0.5,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      20,
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidDecay),
	}
}

// channelScoreParams scores a Channel topic. Channels are sparse (a few
// messages a round), so a first delivery earns more and is remembered
// longer; invalid messages cost as much as on the advert topic.
func channelScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:      5,
		InvalidMessageDeliveriesWeight: invalidWeight,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(invalidDecay),
	}
}

// inspectScores records the router's latest peer scores and counts the
// peers that fell below GraylistThreshold since the last inspection.
func (g *Gossip) inspectScores(scores map[peer.ID]float64) {
	s := maps.Clone(scores)
	prev := g.scores.Swap(&s)
	for p, v := range s {
		if v >= GraylistThreshold {
			continue
		}
		if prev != nil {
			if old, ok := (*prev)[p]; ok && old < GraylistThreshold {
				continue
			}
		}
		g.graylistings.Add(1)
	}
}

// ScoreStats summarises the peer scores (see Scores) for operators.
type ScoreStats struct {
	// Peers is how many peers the router scores now.
	Peers int
	// Below counts the peers scored below each threshold now. The bands
	// nest: a graylisted peer is below the publish and gossip thresholds
	// too.
	BelowGossip, BelowPublish, Graylisted int
	// Graylistings counts the times a peer's score fell below
	// GraylistThreshold, as seen by inspections a second apart.
	Graylistings uint64
	// Lowest is the lowest score now, or 0 with no peers.
	Lowest float64
}

// ScoreStats returns the summary of the latest peer scores.
func (g *Gossip) ScoreStats() ScoreStats {
	st := ScoreStats{Graylistings: g.graylistings.Load()}
	s := g.scores.Load()
	if s == nil {
		return st
	}
	st.Peers = len(*s)
	for _, v := range *s {
		st.Lowest = min(st.Lowest, v)
		if v < GossipThreshold {
			st.BelowGossip++
		}
		if v < PublishThreshold {
			st.BelowPublish++
		}
		if v < GraylistThreshold {
			st.Graylisted++
		}
	}
	return st
}

// Scores returns the GossipSub score of every peer the router tracks, as
// of at most a second ago. A negative score means the peer misbehaved;
// below GraylistThreshold its messages are dropped.
func (g *Gossip) Scores() map[peer.ID]float64 {
	if s := g.scores.Load(); s != nil {
		return maps.Clone(*s)
	}
	return map[peer.ID]float64{}
}

// Score returns one peer's score (see Scores) and whether the router
// tracks it.
func (g *Gossip) Score(p peer.ID) (float64, bool) {
	if s := g.scores.Load(); s != nil {
		v, ok := (*s)[p]
		return v, ok
	}
	return 0, false
}
