package consensus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// This file is the test network shared by the scenario scripts and the
// randomized test: honest Nodes, Byzantine actors holding only their own
// keys, a fake deterministic application and a lossy message queue.

const testGenesis = "genesis"

// key is peer p's secret; an actor can only sign with keys it is given.
func key(p string) []byte { return []byte("secret-key-of-" + p) }

func sign(p string, msg []byte) []byte {
	m := hmac.New(sha256.New, key(p))
	m.Write(msg)
	return m.Sum(nil)
}

func verify(p string, msg, sig []byte) bool { return hmac.Equal(sign(p, msg), sig) }

// aggregate is the fake application's deterministic aggregation.
func aggregate(base, rule string, deltas []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s", base, rule, strings.Join(deltas, ","))
	return "res-" + hex.EncodeToString(h.Sum(nil))[:12]
}

type envelope struct {
	to  string
	at  int // delivery time
	msg []byte
}

// ballotKey names one vote an honest node may cast: a phase in a view of
// a round.
type ballotKey struct {
	round Round
	view  uint32
	kind  Kind
}

type sim struct {
	roster  []string
	cfg     Config
	nodes   map[string]*Node // live honest nodes
	byz     map[string]bool
	hs      map[string]HardState                     // persisted
	commits map[string][]Certificate                 // per honest node, in order received
	sent    map[string]map[ballotKey]map[string]bool // values each honest node voted for
	queue   []envelope
	now     int
	rng     *rand.Rand // nil: no loss, delay or duplication

	loss, dup float64
	maxDelay  int
	cut       map[string]int   // partition: side of each member; nil when whole
	gst       map[string]Round // round of each honest node when the network healed
	lossy     bool             // any message was lost or a node crashed
	entered   map[Round]int

	certs   map[Round]Certificate // every certificate an honest node accepted
	checked map[string]int        // commits per node already checked
}

func newSim(ids, byz []string, rng *rand.Rand) *sim {
	s := &sim{roster: slices.Clone(ids), nodes: map[string]*Node{}, byz: map[string]bool{},
		hs: map[string]HardState{}, commits: map[string][]Certificate{},
		sent: map[string]map[ballotKey]map[string]bool{}, rng: rng, entered: map[Round]int{},
		certs: map[Round]Certificate{}, checked: map[string]int{}}
	slices.Sort(s.roster)
	s.cfg = Config{Roster: s.roster, Rule: "fedavg", Verify: verify, CollectTicks: 3, ViewTicks: 10, RoundTicks: 40}
	for _, b := range byz {
		s.byz[b] = true
	}
	for _, id := range s.roster {
		if !s.byz[id] {
			s.start(id)
		}
	}
	return s
}

func (s *sim) start(id string) {
	c := s.cfg
	c.ID = id
	c.Sign = func(msg []byte) []byte { return sign(id, msg) }
	n, err := NewNode(c, testGenesis, s.hs[id])
	if err != nil {
		panic(err)
	}
	s.nodes[id] = n
	s.process(id)
}

func (s *sim) crash(id string) {
	delete(s.nodes, id)
	s.lossy = true
}

func (s *sim) honest() []string {
	var out []string
	for _, id := range s.roster {
		if !s.byz[id] {
			out = append(out, id)
		}
	}
	return out
}

// broadcast puts m on the wire to every roster member but from.
func (s *sim) broadcast(from string, m Message, to []string) {
	b, err := m.MarshalBinary()
	if err != nil {
		panic(err)
	}
	if to == nil {
		to = s.roster
	}
	for _, p := range to {
		if p != from {
			s.enqueueFrom(from, p, b)
		}
	}
}

func (s *sim) enqueue(to string, b []byte) {
	s.enqueueFrom("", to, b)
}

func (s *sim) enqueueFrom(from, to string, b []byte) {
	if s.cut != nil && from != "" && s.cut[from] != s.cut[to] {
		return
	}
	if s.rng == nil {
		s.queue = append(s.queue, envelope{to: to, at: s.now, msg: b})
		return
	}
	if s.rng.Float64() < s.loss {
		s.lossy = true
		return
	}
	copies := 1
	if s.rng.Float64() < s.dup {
		copies = 2
	}
	for range copies {
		s.queue = append(s.queue, envelope{to: to, at: s.now + s.rng.IntN(s.maxDelay+1), msg: b})
	}
}

// process drains a node's Ready the way a driver would: persist, store
// commits, send, then answer the app requests.
func (s *sim) process(id string) {
	n := s.nodes[id]
	for n != nil && n.HasReady() {
		rd := n.Ready()
		if rd.MustPersist {
			s.hs[id] = rd.HardState
		}
		s.commits[id] = append(s.commits[id], rd.Commits...)
		for _, m := range rd.Messages {
			if m.Kind == KindPrevote || m.Kind == KindPrecommit {
				k := ballotKey{m.Round, m.View, m.Kind}
				if s.sent[id] == nil {
					s.sent[id] = map[ballotKey]map[string]bool{}
				}
				if s.sent[id][k] == nil {
					s.sent[id][k] = map[string]bool{}
				}
				s.sent[id][k][valueKey(m.Result, m.Nil)] = true
			}
			s.broadcast(id, m, nil)
		}
		round := n.HardState().Round
		n.Advance()
		for _, a := range rd.Aggregate {
			a.Result = aggregate(a.Base, a.Rule, a.Deltas)
			n.Step(a)
		}
		for _, p := range rd.Checks {
			n.Step(Message{Kind: KindChecked, Round: p.Round, Result: p.Result,
				OK: aggregate(p.Base, p.Rule, p.Deltas) == p.Result})
		}
		if _, ok := s.entered[round]; !ok {
			s.entered[round] = s.now
		}
	}
}

// deliver hands every message due by now to its live recipient; it
// reports whether it delivered anything.
func (s *sim) deliver() bool {
	var due, later []envelope
	for _, e := range s.queue {
		if e.at <= s.now {
			due = append(due, e)
		} else {
			later = append(later, e)
		}
	}
	s.queue = later
	if s.rng != nil {
		s.rng.Shuffle(len(due), func(i, j int) { due[i], due[j] = due[j], due[i] })
	}
	for _, e := range due {
		n := s.nodes[e.to]
		if n == nil {
			continue
		}
		m, err := Unmarshal(e.msg)
		if err != nil {
			continue
		}
		n.Step(m)
		s.process(e.to)
	}
	return len(due) > 0
}

func (s *sim) tick() {
	s.now++

	for _, id := range s.roster {
		if n := s.nodes[id]; n != nil {
			n.Tick()
			s.process(id)
		}
	}
}

func (s *sim) contribute(id string, r Round, delta string) {
	if n := s.nodes[id]; n != nil {
		n.Step(Message{Kind: KindContribution, Round: r, Deltas: []string{delta}})
		s.process(id)
	}
}

// checkSafety verifies the invariants that must hold at every moment:
// no honest member sent two different votes of one phase in a view, every
// certificate an honest node accepted is valid and holds votes from at
// least Quorum-f honest members who really cast them, no two honest
// nodes hold different certificates for one round, and each honest
// node's history is increasing and chained.
func (s *sim) checkSafety() error {
	if err := s.checkVotes(); err != nil {
		return err
	}
	return s.checkCerts()
}

// checkVotes reports an honest member that cast two different votes of
// one phase in one view.
func (s *sim) checkVotes() error {
	for id, byKey := range s.sent {
		for k, vals := range byKey {
			if len(vals) > 1 {
				return fmt.Errorf("honest %s cast %d different %vs in round %d view %d", id, len(vals), k.kind, k.round, k.view)
			}
		}
	}
	return nil
}

func (s *sim) checkCerts() error {
	q := quorumOf(len(s.roster), s.cfg.Quorum)
	byRound := s.certs
	for _, id := range s.honest() {
		var prev *Certificate
		if k := s.checked[id]; k > 0 {
			prev = &s.commits[id][k-1]
		}
		for _, c := range s.commits[id][s.checked[id]:] {
			s.checked[id]++
			if err := VerifyCertificate(s.roster, s.cfg.Quorum, c, verify); err != nil {
				return fmt.Errorf("%s accepted %v", id, err)
			}
			honestVotes := 0
			for _, v := range c.Votes {
				if !s.byz[v.From] && s.sent[v.From][ballotKey{c.Round, c.View, KindPrecommit}][c.Result] {
					honestVotes++
				}
			}
			if honestVotes < q-len(s.byz) {
				return fmt.Errorf("round %d certificate has %d honest votes, want >= %d", c.Round, honestVotes, q-len(s.byz))
			}
			if o, ok := byRound[c.Round]; ok && (o.Result != c.Result || o.Base != c.Base) {
				return fmt.Errorf("two commits for round %d: %q and %q", c.Round, o.Result, c.Result)
			}
			byRound[c.Round] = c
			if prev != nil {
				if c.Round <= prev.Round {
					return fmt.Errorf("%s history goes from round %d to %d", id, prev.Round, c.Round)
				}
				if c.Round == prev.Round+1 && c.Base != prev.Next() {
					return fmt.Errorf("%s round %d starts from %q, not %q", id, c.Round, c.Base, prev.Next())
				}
			}
			prev = &c
		}
	}
	return nil
}
