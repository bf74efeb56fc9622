package consensus

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestRandomized runs the protocol under many seeds with message loss,
// delay, duplication and reordering, partitions, crashes and restarts from
// persisted state, and f < n/3 Byzantine members that equivocate, vote for
// random values in random views, forge, and send garbage. It checks safety
// (see sim.checkSafety) after every tick. Runs without loss or crashes
// also check that every round whose view-0 proposer is honest commits its
// proposal; the others heal the network after a while (GST) and check
// that every honest node then goes at least two rounds past the furthest
// any of them had reached (sim.checkRecovery).
func TestRandomized(t *testing.T) {
	seeds := uint64(1500)
	if testing.Short() || raceEnabled {
		seeds = 200
	}
	const batches = 4
	for b := range uint64(batches) {
		t.Run(fmt.Sprintf("batch%d", b), func(t *testing.T) {
			t.Parallel()
			for seed := b; seed < seeds; seed += batches {
				if err := randomRun(seed); err != nil {
					t.Fatalf("seed %d: %v (rerun with randomRun(%d))", seed, err, seed)
				}
			}
		})
	}
}

// raceEnabled is set by race_test.go under the race detector.
var raceEnabled bool

func randomRun(seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	n := 4 + rng.IntN(7)
	f := rng.IntN((n-1)/3 + 1)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%02d", i)
	}
	perm := rng.Perm(n)
	var byz []string
	for _, i := range perm[:f] {
		byz = append(byz, ids[i])
	}
	clean := rng.IntN(3) == 0
	s := newSim(ids, byz, rng)
	if f == 0 && rng.IntN(2) == 0 { // no Byzantine member: try a majority quorum too
		s.cfg.Quorum = n/2 + 1
		for _, id := range ids {
			s.start(id)
		}
	}
	if clean {
		s.maxDelay = rng.IntN(3)
		s.dup = rng.Float64() * 0.2
	} else {
		s.loss = rng.Float64() * 0.3
		s.dup = rng.Float64() * 0.2
		s.maxDelay = rng.IntN(8)
	}
	const steps, calm = 160, 240
	down := map[string]bool{}
	for step := range steps + calm {
		if step == steps && !clean {
			// The network heals: no more loss, partitions or crashes,
			// short delays. Byzantine members go on.
			s.loss, s.maxDelay, s.cut = 0, min(s.maxDelay, 2), nil
			for id := range down {
				delete(down, id)
				s.start(id)
			}
			s.gst = map[string]Round{}
			for _, id := range s.honest() {
				s.gst[id] = s.nodes[id].HardState().Round
			}
		}
		for _, id := range s.honest() {
			if s.nodes[id] != nil {
				r := s.nodes[id].HardState().Round
				for _, d := range []string{"x", "y", id} {
					s.contribute(id, r, fmt.Sprintf("d%d-%s", r, d))
				}
			}
		}
		if !clean && step < steps {
			if rng.IntN(40) == 0 {
				h := s.honest()
				if id := h[rng.IntN(len(h))]; !down[id] {
					s.crash(id)
					down[id] = true
				}
			}
			for id := range down {
				if rng.IntN(10) == 0 {
					delete(down, id)
					s.start(id)
				}
			}
			if s.cut == nil && rng.IntN(50) == 0 {
				s.partition(rng) // lasts until healed below or at GST
			} else if s.cut != nil && rng.IntN(25) == 0 {
				s.cut = nil
			}
		}
		for _, b := range byz {
			s.byzantine(b, rng)
		}
		s.tick()
		s.deliver()
		if err := s.checkSafety(); err != nil {
			return err
		}
		if clean && step+1 == steps {
			return s.checkLiveness(steps)
		}
		if step >= steps && s.checkRecovery() == nil {
			return nil
		}
	}
	return s.checkRecovery()
}

// partition splits the members in two groups that cannot reach each other.
func (s *sim) partition(rng *rand.Rand) {
	s.lossy = true
	s.cut = map[string]int{}
	for _, id := range s.roster {
		s.cut[id] = rng.IntN(2)
	}
}

// checkRecovery holds after the network healed (GST): every honest node
// committed at least two rounds past the furthest round any honest node had
// reached at GST, so the minority side of a partition, crashed nodes and
// nodes locked on different values all converge and go on.
func (s *sim) checkRecovery() error {
	var furthest Round
	for _, r := range s.gst {
		furthest = max(furthest, r)
	}
	for _, id := range s.honest() {
		if got := s.nodes[id].HardState().Round; got < furthest+2 {
			return fmt.Errorf("%s is in round %d (view %d) %d ticks after the network healed; rounds at GST %v",
				id, got, s.nodes[id].View(), s.now, s.gst)
		}
	}
	return nil
}

// byzantine makes member b misbehave: it only holds its own key.
func (s *sim) byzantine(b string, rng *rand.Rand) {
	h := s.honest()
	target := h[rng.IntN(len(h))]
	r, base := Round(1), testGenesis
	if hs, ok := s.hs[target]; ok {
		r, base = hs.Round, hs.Base
	}
	half := func() []string {
		var out []string
		for _, p := range h {
			if rng.IntN(2) == 0 {
				out = append(out, p)
			}
		}
		return out
	}
	randomDeltas := func() []string {
		return []string{fmt.Sprintf("d%d-evil%d", r, rng.IntN(4))}
	}
	view := uint32(rng.IntN(6))
	value := func() string {
		if rng.IntN(4) == 0 {
			return ""
		}
		return aggregate(base, "fedavg", randomDeltas())
	}
	switch rng.IntN(9) {
	case 0, 1: // equivocate in every view it proposes for, sometimes with a bogus proof of lock
		for v := uint32(0); v < 5; v++ {
			if Proposer(s.roster, r, v) != b {
				continue
			}
			a := half()
			for i, to := range [][]string{a, h} {
				m := Message{Kind: KindPropose, Round: r, View: v, From: b, Base: base,
					Deltas: []string{fmt.Sprintf("d%d-evil%d", r, i)}, Rule: "fedavg"}
				m.Result = aggregate(base, m.Rule, m.Deltas)
				if v > 0 && rng.IntN(3) == 0 {
					m.POL = uint32(1 + rng.IntN(int(v)))
					for id := range s.byz {
						m.Votes = append(m.Votes, Vote{From: id, Sig: sign(id, PrevoteBytes(r, m.POL-1, base, m.Result))})
					}
					m.Votes = append(m.Votes, Vote{From: target, Sig: []byte("forged")})
				}
				m.Sig = sign(b, ProposalBytes(m))
				s.broadcast(b, m, to)
			}
		}
	case 2: // prevote and precommit different values to different members
		for _, k := range []Kind{KindPrevote, KindPrecommit} {
			for _, to := range [][]string{half(), half()} {
				m := Message{Kind: k, Round: r, View: view, From: b, Base: base, Result: value()}
				bytes := PrevoteBytes
				if k == KindPrecommit {
					bytes = PrecommitBytes
				}
				m.Sig = sign(b, bytes(r, view, base, m.Result))
				s.broadcast(b, m, to)
			}
		}
	case 3: // forge an honest member's vote
		m := Message{Kind: KindPrecommit, Round: r, View: view, From: target, Base: base, Result: value()}
		m.Sig = sign(b, PrecommitBytes(r, view, base, m.Result))
		s.broadcast(b, m, h)
	case 4: // a certificate signed by the Byzantine members only
		c := Certificate{Round: r + Round(rng.IntN(3)), View: view, Base: base, Result: value()}
		for id := range s.byz {
			c.Votes = append(c.Votes, Vote{From: id, Sig: sign(id, PrecommitBytes(c.Round, view, c.Base, c.Result))})
		}
		c.Votes = append(c.Votes, Vote{From: target, Sig: []byte("forged")}, c.Votes[0])
		s.broadcast(b, certMessage(b, c), h)
	case 5: // votes far ahead, to drag honest members into later views
		m := Message{Kind: KindPrevote, Round: r, View: view + 10, From: b, Base: base, Result: value()}
		m.Sig = sign(b, PrevoteBytes(r, m.View, base, m.Result))
		s.broadcast(b, m, h)
	case 6: // garbage
		g := make([]byte, rng.IntN(64))
		for i := range g {
			g[i] = byte(rng.IntN(256))
		}
		if len(g) > 2 {
			g[0], g[1] = wireVersion, byte(1+rng.IntN(4))
		}
		s.enqueue(target, g)
	default: // silent
	}
}

// checkLiveness holds for runs without loss or crashes and with delays
// shorter than the collection time: every round whose view-0 proposer is
// honest commits a proposal in view 0, and a round reached early enough
// with an honest proposer is not left open.
func (s *sim) checkLiveness(steps int) error {
	for _, id := range s.honest() {
		for _, c := range s.commits[id] {
			if !s.byz[Proposer(s.roster, c.Round, 0)] && c.Skipped() {
				return fmt.Errorf("round %d with honest proposer %s was skipped", c.Round, Proposer(s.roster, c.Round, 0))
			}
		}
		hs := s.nodes[id].HardState()
		if p := Proposer(s.roster, hs.Round, 0); !s.byz[p] && s.entered[hs.Round] < steps-15 {
			return fmt.Errorf("round %d with honest proposer %s entered at %d has not committed by %d",
				hs.Round, p, s.entered[hs.Round], steps)
		}
	}
	if len(s.byz) == 0 {
		for _, id := range s.honest() {
			if got := len(s.commits[id]); got < steps/8 {
				return fmt.Errorf("%s committed %d rounds in %d ticks without faults", id, got, steps)
			}
		}
	}
	return nil
}

// BenchmarkRound measures fault-free rounds of seven members through the
// whole pipeline, wire encoding and HMAC signatures included.
func BenchmarkRound(b *testing.B) {
	s := newSim([]string{"a", "b", "c", "d", "e", "f", "g"}, nil, nil)
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		s.tick()
		for s.deliver() {
		}
		rounds = len(s.commits["a"])
	}
	b.ReportMetric(float64(rounds)/b.Elapsed().Seconds(), "rounds/s")
}
