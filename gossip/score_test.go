package gossip

import (
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestScorePolicy checks the arithmetic the package doc promises, from the
// parameters themselves (GossipSub v1.1 score function, P1, P2 and P4):
// even a peer with the highest positive score the topics allow crosses the
// gossip, publish and graylist thresholds after two, three and four
// rejected messages on one topic.
func TestScorePolicy(t *testing.T) {
	params := scoreParams()
	for name, p := range map[string]*pubsub.TopicScoreParams{"advert": advertScoreParams(), "channel": channelScoreParams()} {
		// Positive contributions of all topics together are capped.
		best := params.TopicScoreCap
		score := func(rejected float64) float64 {
			return best + p.TopicWeight*p.InvalidMessageDeliveriesWeight*rejected*rejected
		}
		for _, c := range []struct {
			rejected  float64
			threshold float64
		}{{2, GossipThreshold}, {3, PublishThreshold}, {4, GraylistThreshold}} {
			if s := score(c.rejected); s >= c.threshold {
				t.Errorf("%s: %v rejections leave the best peer at %.1f, want below %v", name, c.rejected, s, c.threshold)
			}
		}
		if s := score(1) - best; s < GossipThreshold {
			t.Errorf("%s: one rejection alone costs %.1f, below the gossip threshold", name, s)
		}
		// The penalty decays to 1% over invalidDecay: half of it is gone
		// within a sixth of that time.
		ticks := float64((invalidDecay / 6) / params.DecayInterval)
		left := 1.0
		for range int(ticks) {
			left *= p.InvalidMessageDeliveriesDecay
		}
		if left > 0.5 {
			t.Errorf("%s: %.2f of the rejection count left after %v", name, left, invalidDecay/6)
		}
	}
	if th := scoreThresholds(); th.GraylistThreshold > th.PublishThreshold || th.PublishThreshold > th.GossipThreshold || th.GossipThreshold > 0 {
		t.Errorf("thresholds out of order: %+v", th)
	}
	if params.RetainScore < 5*time.Minute {
		t.Errorf("RetainScore %v lets a graylisted peer reconnect clean too soon", params.RetainScore)
	}
}

func TestScoresBeforeInspection(t *testing.T) {
	g := newGossip(t, newHost(t), Config{})
	if _, ok := g.Score("nobody"); ok {
		t.Error("Score of an unknown peer reported ok")
	}
	if s := g.Scores(); s == nil {
		t.Error("Scores returned nil")
	}
}

// TestScoreStats: the bands nest, and a peer counts as graylisted once per
// fall below the threshold, however many inspections it stays there.
func TestScoreStats(t *testing.T) {
	// No router: the steps feed inspectScores themselves.
	g := &Gossip{}
	if st := g.ScoreStats(); st != (ScoreStats{}) {
		t.Fatalf("fresh ScoreStats = %+v", st)
	}
	steps := []struct {
		scores map[peer.ID]float64
		want   ScoreStats
	}{
		{map[peer.ID]float64{"a": 5, "b": -20, "c": -200},
			ScoreStats{Peers: 3, BelowGossip: 2, BelowPublish: 1, Graylisted: 1, Graylistings: 1, Lowest: -200}},
		{map[peer.ID]float64{"a": 5, "b": -150, "c": -190}, // b falls, c stays
			ScoreStats{Peers: 3, BelowGossip: 2, BelowPublish: 2, Graylisted: 2, Graylistings: 2, Lowest: -190}},
		{map[peer.ID]float64{"a": 5, "b": -90}, // b recovers, c is forgotten
			ScoreStats{Peers: 2, BelowGossip: 1, BelowPublish: 1, Graylistings: 2, Lowest: -90}},
		{map[peer.ID]float64{"a": 5, "b": -101}, // b falls again
			ScoreStats{Peers: 2, BelowGossip: 1, BelowPublish: 1, Graylisted: 1, Graylistings: 3, Lowest: -101}},
	}
	for i, s := range steps {
		g.inspectScores(s.scores)
		if got := g.ScoreStats(); got != s.want {
			t.Errorf("step %d: got %+v, want %+v", i, got, s.want)
		}
	}
}
