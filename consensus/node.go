package consensus

import (
	"io"
	"log/slog"
	"slices"
)

// Node is one member's consensus state machine. It is not safe for
// concurrent use; a driver goroutine owns it.
type Node struct {
	cfg    Config
	log    *slog.Logger
	member map[string]bool
	hs     HardState

	view       uint32
	ticksRound int
	ticksView  int
	asked      bool // aggregation requested in this view

	contribs  map[string]bool
	proposals map[uint32]Message           // first valid proposal per view
	checked   map[uint32]bool              // views whose proposal the app rejected
	votes     map[string]map[string][]byte // result -> voter -> sig
	voterVals map[string]int               // distinct results seen per voter
	last      *Certificate                 // latest certificate known

	rd    Ready
	dirty bool
}

// NewNode returns a node that resumes from hs; a zero hs starts round 1
// from genesis. It returns ErrConfig if cfg is invalid.
func NewNode(cfg Config, genesis string, hs HardState) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Roster = slices.Clone(cfg.Roster)
	slices.Sort(cfg.Roster)
	n := &Node{cfg: cfg, log: cfg.Logger, member: map[string]bool{}}
	if n.log == nil {
		n.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, p := range cfg.Roster {
		n.member[p] = true
	}
	if hs.Round == 0 {
		hs = HardState{Round: 1, Base: genesis}
	}
	n.hs = hs
	n.resetRound()
	return n, nil
}

// HardState returns the node's current durable state.
func (n *Node) HardState() HardState { return n.hs }

// View returns the current view within the current round.
func (n *Node) View() uint32 { return n.view }

func (n *Node) resetRound() {
	n.view, n.ticksRound, n.ticksView, n.asked = 0, 0, 0, false
	n.contribs = map[string]bool{}
	n.proposals = map[uint32]Message{}
	n.checked = map[uint32]bool{}
	n.votes = map[string]map[string][]byte{}
	n.voterVals = map[string]int{}
	if n.hs.Voted {
		n.record(n.cfg.ID, n.hs.VoteResult, n.hs.VoteSig)
	}
}

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	n.ticksRound++
	n.ticksView++
	if n.ticksView >= n.cfg.ViewTicks && n.view+1 < MaxViews {
		n.view++
		n.ticksView, n.asked = 0, false
		n.log.Debug("view change", "round", n.hs.Round, "view", n.view)
		n.rebroadcast()
		n.requestCheck(n.view)
	}
	if n.ticksRound >= n.cfg.RoundTicks && !n.hs.Voted &&
		(!n.checkPending() || n.ticksRound >= n.cfg.RoundTicks+n.cfg.ViewTicks) {
		n.log.Info("round deadline, voting to skip", "round", n.hs.Round)
		n.vote("", nil, "")
		return
	}
	if !n.asked && n.ticksView >= n.cfg.CollectTicks && n.ticksRound < n.cfg.RoundTicks &&
		Proposer(n.cfg.Roster, n.hs.Round, n.view) == n.cfg.ID {
		n.asked = true
		if n.hs.Voted {
			if n.hs.VoteResult != "" { // locked: re-propose what we voted for
				n.propose(n.hs.VoteDeltas, n.hs.VoteRule, n.hs.VoteResult)
			}
			return
		}
		deltas := make([]string, 0, len(n.contribs))
		for d := range n.contribs {
			deltas = append(deltas, d)
		}
		slices.Sort(deltas)
		n.rd.Aggregate = append(n.rd.Aggregate, Message{Kind: KindAggregated, Round: n.hs.Round,
			View: n.view, From: n.cfg.ID, Base: n.hs.Base, Deltas: deltas, Rule: n.cfg.Rule})
	}
}

// checkPending reports whether the app is still re-aggregating a proposal
// of a view the node has reached. At the round deadline such a node waits
// up to one more view for the answer before it votes to skip: voting skip
// while its check would have passed is how a round's votes split between
// a proposal and skip, which no later view can repair.
func (n *Node) checkPending() bool {
	for v := range n.proposals {
		if v <= n.view && !n.checked[v] {
			return true
		}
	}
	return false
}

// rebroadcast resends our vote, the proposal we voted for and our latest
// certificate, which repairs message loss and lets laggards catch up.
func (n *Node) rebroadcast() {
	for v := range uint32(MaxViews) {
		if p, ok := n.proposals[v]; ok && n.hs.Voted && p.Result == n.hs.VoteResult {
			n.send(p)
			break
		}
	}
	if n.hs.Voted {
		n.send(Message{Kind: KindVote, Round: n.hs.Round, From: n.cfg.ID, Base: n.hs.Base,
			Result: n.hs.VoteResult, Sig: n.hs.VoteSig})
	}
	if n.last != nil {
		n.send(certMessage(n.cfg.ID, *n.last))
	}
}

func (n *Node) send(m Message) { n.rd.Messages = append(n.rd.Messages, m) }

// Step feeds one message, from a peer or from the application, to the
// node. Invalid, stale and duplicate messages are dropped silently (at
// debug level): a peer cannot make Step fail.
func (n *Node) Step(m Message) {
	switch m.Kind {
	case KindContribution:
		if m.Round == n.hs.Round && len(m.Deltas) == 1 && validID(m.Deltas[0]) && len(n.contribs) < MaxDeltas {
			n.contribs[m.Deltas[0]] = true
		}
	case KindAggregated:
		n.stepAggregated(m)
	case KindChecked:
		p, ok := n.proposals[m.View]
		if m.Round != n.hs.Round || !ok || p.Result != m.Result || n.checked[m.View] {
			return
		}
		n.checked[m.View] = true
		if m.OK && !n.hs.Voted {
			n.vote(p.Result, p.Deltas, p.Rule)
		}
	case KindPropose:
		n.stepPropose(m)
	case KindVote:
		n.stepVote(m)
	case KindCommit:
		n.stepCommit(m)
	default:
		n.log.Debug("dropping message of unknown kind", "kind", m.Kind, "from", m.From)
	}
}

func validID(s string) bool { return s != "" && len(s) <= MaxID }

func (n *Node) stepAggregated(m Message) {
	if m.Round != n.hs.Round || m.View != n.view || !n.asked || n.hs.Voted || !validID(m.Result) ||
		!validID(m.Rule) || len(m.Deltas) > MaxDeltas || !sortedUnique(m.Deltas) ||
		Proposer(n.cfg.Roster, n.hs.Round, n.view) != n.cfg.ID || n.ticksRound >= n.cfg.RoundTicks {
		return
	}
	n.propose(m.Deltas, m.Rule, m.Result)
	n.vote(m.Result, m.Deltas, m.Rule)
}

func (n *Node) propose(deltas []string, rule, result string) {
	p := Message{Kind: KindPropose, Round: n.hs.Round, View: n.view, From: n.cfg.ID, Base: n.hs.Base,
		Deltas: slices.Clone(deltas), Rule: rule, Result: result}
	p.Sig = n.cfg.Sign(ProposalBytes(p))
	n.proposals[n.view] = p
	n.checked[n.view] = true
	n.log.Info("proposing", "round", p.Round, "view", p.View, "result", result, "deltas", len(deltas))
	n.send(p)
}

func (n *Node) stepPropose(m Message) {
	if m.Round != n.hs.Round || m.Base != n.hs.Base || m.View >= MaxViews || !validID(m.Result) ||
		len(m.Deltas) > MaxDeltas || !validID(m.Rule) || !sortedUnique(m.Deltas) {
		return
	}
	if _, dup := n.proposals[m.View]; dup || m.View > n.view+1 {
		return // first proposal per view wins; a second one is equivocation
	}
	if Proposer(n.cfg.Roster, m.Round, m.View) != m.From || !n.cfg.Verify(m.From, ProposalBytes(m), m.Sig) {
		n.log.Debug("dropping proposal with bad proposer or signature", "from", m.From, "round", m.Round)
		return
	}
	n.proposals[m.View] = m
	if m.View <= n.view {
		n.requestCheck(m.View)
	}
}

// requestCheck asks the app to re-aggregate the proposal of view v, unless
// the node already voted. A proposal for a view the node has not reached
// yet waits for it, so an early proposer of a later view cannot pre-empt
// the proposer of the current one.
func (n *Node) requestCheck(v uint32) {
	p, ok := n.proposals[v]
	if !ok || n.checked[v] {
		return
	}
	if n.hs.Voted {
		n.checked[v] = true
		return
	}
	p.Deltas = slices.Clone(p.Deltas)
	n.rd.Checks = append(n.rd.Checks, p)
}

func sortedUnique(s []string) bool {
	for i, d := range s {
		if !validID(d) || (i > 0 && s[i-1] >= d) {
			return false
		}
	}
	return true
}

// vote casts the node's one vote of the round and persists it first.
func (n *Node) vote(result string, deltas []string, rule string) {
	sig := n.cfg.Sign(VoteBytes(n.hs.Round, n.hs.Base, result))
	n.hs.Voted, n.hs.VoteResult, n.hs.VoteDeltas, n.hs.VoteRule, n.hs.VoteSig =
		true, result, slices.Clone(deltas), rule, sig
	n.dirty = true
	n.send(Message{Kind: KindVote, Round: n.hs.Round, From: n.cfg.ID, Base: n.hs.Base, Result: result, Sig: sig})
	n.record(n.cfg.ID, result, sig)
}

func (n *Node) stepVote(m Message) {
	if m.Round != n.hs.Round || m.Base != n.hs.Base || !n.member[m.From] || len(m.Result) > MaxID ||
		len(m.Sig) > MaxSig {
		return
	}
	if _, dup := n.votes[m.Result][m.From]; dup || n.voterVals[m.From] >= 2 {
		return // each voter may be counted for at most two values: bounds memory under equivocation
	}
	if !n.cfg.Verify(m.From, VoteBytes(m.Round, m.Base, m.Result), m.Sig) {
		n.log.Debug("dropping vote with bad signature", "from", m.From, "round", m.Round)
		return
	}
	n.record(m.From, m.Result, m.Sig)
}

func (n *Node) record(from, result string, sig []byte) {
	vs := n.votes[result]
	if vs == nil {
		vs = map[string][]byte{}
		n.votes[result] = vs
	}
	if _, dup := vs[from]; dup {
		return
	}
	vs[from] = sig
	n.voterVals[from]++
	if len(vs) < Quorum(len(n.cfg.Roster)) {
		return
	}
	c := Certificate{Round: n.hs.Round, Base: n.hs.Base, Result: result}
	for p, s := range vs {
		c.Votes = append(c.Votes, Vote{From: p, Sig: s})
	}
	slices.SortFunc(c.Votes, func(a, b Vote) int {
		if a.From < b.From {
			return -1
		}
		return 1
	})
	n.commit(c)
}

func (n *Node) stepCommit(m Message) {
	if m.Round < n.hs.Round {
		return
	}
	c := Certificate{Round: m.Round, Base: m.Base, Result: m.Result, Votes: m.Votes}
	if err := VerifyCertificate(n.cfg.Roster, c, n.cfg.Verify); err != nil {
		n.log.Debug("dropping invalid certificate", "from", m.From, "err", err)
		return
	}
	if m.Round > n.hs.Round {
		n.log.Info("catching up by certificate", "from", n.hs.Round, "to", m.Round)
	}
	n.commit(c)
}

func (n *Node) commit(c Certificate) {
	n.log.Info("round committed", "round", c.Round, "result", c.Result, "skipped", c.Skipped(), "votes", len(c.Votes))
	n.last = &c
	n.rd.Commits = append(n.rd.Commits, c)
	n.send(certMessage(n.cfg.ID, c))
	n.hs = HardState{Round: c.Round + 1, Base: c.Next()}
	n.dirty = true
	n.resetRound()
}

func certMessage(from string, c Certificate) Message {
	return Message{Kind: KindCommit, Round: c.Round, From: from, Base: c.Base, Result: c.Result,
		Votes: slices.Clone(c.Votes)}
}

// HasReady reports whether Ready would return work.
func (n *Node) HasReady() bool { return n.dirty || !n.rd.Empty() }

// Ready returns the pending work. The caller must persist HardState when
// MustPersist before sending any of Messages, then call Advance.
func (n *Node) Ready() Ready {
	rd := n.rd
	rd.HardState = n.hs
	rd.HardState.VoteDeltas = slices.Clone(n.hs.VoteDeltas)
	rd.MustPersist = n.dirty
	return rd
}

// Advance acknowledges the last Ready.
func (n *Node) Advance() {
	n.rd = Ready{}
	n.dirty = false
}
