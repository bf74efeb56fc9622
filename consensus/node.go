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

	ticksRound int // ticks since the round started here
	ticksView  int // ticks since the current view started here
	sinceSent  int // ticks since the last rebroadcast
	asked      bool
	prevoteAt  int // ticksView when a quorum of prevotes was seen in this view; -1: not yet
	precomAt   int // same for precommits

	contribs  map[string]bool
	proposals map[uint32]Message // first valid proposal per view
	byValue   map[string]Message // a proposal per value, to re-propose it
	verdict   map[string]bool    // the app's answer per result checked
	pending   map[string]bool    // results the app is re-aggregating
	prevotes  tally
	precommit tally

	// The latest view with a prevote quorum for a value, and that value:
	// what a proposer re-proposes, with those prevotes as its proof of lock.
	hasValid    bool
	validView   uint32
	validResult string

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
	if hs.View >= MaxViews {
		hs.View = MaxViews - 1
	}
	n.hs = hs
	n.resetRound()
	// Resume the round clock where the view says it was, so that the
	// deadline is not pushed back by a restart.
	n.ticksRound = int(hs.View) * cfg.ViewTicks
	if b := hs.Prevote; b != nil {
		n.prevotes.add(b.View, n.cfg.ID, valueKey(b.Result, b.Nil), b.Sig)
	}
	if b := hs.Precommit; b != nil {
		n.precommit.add(b.View, n.cfg.ID, valueKey(b.Result, b.Nil), b.Sig)
	}
	if b := hs.Lock; b != nil {
		// Our lock's proof and contents make us a valid value again, so
		// that we can re-propose it.
		n.addPOL(b.View, b.Result, b.POL)
		if b.Result == "" || b.Rule != "" {
			n.byValue[b.Result] = Message{Kind: KindPropose, Round: hs.Round, Base: hs.Base,
				Deltas: slices.Clone(b.Deltas), Rule: b.Rule, Result: b.Result}
		}
	}
	return n, nil
}

// HardState returns the node's current durable state.
func (n *Node) HardState() HardState { return n.hs }

// View returns the current view within the current round.
func (n *Node) View() uint32 { return n.hs.View }

func (n *Node) resetRound() {
	n.ticksRound, n.ticksView, n.sinceSent, n.asked = 0, 0, 0, false
	n.prevoteAt, n.precomAt = -1, -1
	n.contribs = map[string]bool{}
	n.proposals = map[uint32]Message{}
	n.byValue = map[string]Message{}
	n.verdict = map[string]bool{}
	n.pending = map[string]bool{}
	n.prevotes, n.precommit = tally{}, tally{}
	n.hasValid, n.validView, n.validResult = false, 0, ""
}

func (n *Node) quorum() int { return quorumOf(len(n.cfg.Roster), n.cfg.Quorum) }

func quorumOf(members, q int) int {
	if q == 0 {
		return Quorum(members)
	}
	return q
}

// Timeouts within a view, in ticks: ViewTicks for the proposal, half of
// it for the votes of a phase to arrive once a quorum of any votes has.
// They grow with the view so that once messages arrive in bounded time,
// some view is long enough for all of them.
func (n *Node) proposeTimeout() int { return n.cfg.ViewTicks + n.growth() }
func (n *Node) voteTimeout() int    { return max(2, n.cfg.ViewTicks/2) + n.growth() }
func (n *Node) growth() int         { return int(n.hs.View) * max(1, n.cfg.ViewTicks/20) }

// Tick advances the node's clock by one tick.
func (n *Node) Tick() {
	n.ticksRound++
	n.ticksView++
	n.sinceSent++
	v := n.hs.View
	if !n.asked && n.ticksView >= n.cfg.CollectTicks && Proposer(n.cfg.Roster, n.hs.Round, v) == n.cfg.ID {
		n.asked = true
		n.startProposal()
	}
	// No acceptable proposal in time: prevote nil. A check still running
	// gets one more timeout.
	if !n.votedIn(n.hs.Prevote) && n.ticksView >= n.proposeTimeout() &&
		(len(n.pending) == 0 || n.ticksView >= 2*n.proposeTimeout()) {
		n.cast(KindPrevote, "", true)
	}
	// Prevotes split: precommit nil.
	if n.prevoteAt >= 0 && !n.votedIn(n.hs.Precommit) && n.ticksView-n.prevoteAt >= n.voteTimeout() {
		n.cast(KindPrecommit, "", true)
	}
	// Precommits without a decision: on to the next view.
	if n.precomAt >= 0 && n.ticksView-n.precomAt >= n.voteTimeout() && v+1 < MaxViews && n.hs.View == v {
		n.enterView(v + 1)
	}
	if n.sinceSent >= n.cfg.ViewTicks {
		n.rebroadcast() // a view that cannot end (a partition) still repairs losses
	}
	n.progress() // a skip proposal may have become acceptable
}

// votedIn reports whether b was cast in the current view.
func (n *Node) votedIn(b *Ballot) bool { return b != nil && b.View == n.hs.View }

// enterView moves to view v, later than the current one: after a view
// whose precommits decided nothing, or when members of view v prove that an
// honest node is already there.
func (n *Node) enterView(v uint32) {
	n.hs.View = v
	n.dirty = true
	n.ticksView, n.asked = 0, false
	n.prevoteAt, n.precomAt = -1, -1
	n.log.Debug("view change", "round", n.hs.Round, "view", v)
	n.rebroadcast()
	n.requestCheck(v)
	n.progress()
}

// catchUpView jumps to view v when more than a third of the roster has
// voted there: at least one of them is honest and got there. This keeps
// views aligned after a restart or a partition.
func (n *Node) catchUpView(v uint32) {
	if v <= n.hs.View || v >= MaxViews {
		return
	}
	voters := map[string]bool{}
	for _, t := range []*tally{&n.prevotes, &n.precommit} {
		for p := range t.voted[v] {
			voters[p] = true
		}
	}
	if len(voters) > len(n.cfg.Roster)-n.quorum() {
		n.ticksRound = max(n.ticksRound, int(v)*n.cfg.ViewTicks)
		n.enterView(v)
	}
}

// startProposal makes this view's proposal: the valid value with its
// proof of lock if there is one, else a fresh aggregate before the round
// deadline, else a skip.
func (n *Node) startProposal() {
	if _, done := n.proposals[n.hs.View]; done {
		return
	}
	if n.hasValid {
		p, ok := n.byValue[n.validResult]
		if ok || n.validResult == "" {
			n.propose(p.Deltas, p.Rule, n.validResult, n.validView+1)
			return
		}
	}
	if n.ticksRound >= n.cfg.RoundTicks {
		n.log.Info("round deadline, proposing to skip", "round", n.hs.Round, "view", n.hs.View)
		n.propose(nil, "", "", 0)
		return
	}
	deltas := make([]string, 0, len(n.contribs))
	for d := range n.contribs {
		deltas = append(deltas, d)
	}
	slices.Sort(deltas)
	n.rd.Aggregate = append(n.rd.Aggregate, Message{Kind: KindAggregated, Round: n.hs.Round,
		View: n.hs.View, From: n.cfg.ID, Base: n.hs.Base, Deltas: deltas, Rule: n.cfg.Rule})
}

// rebroadcast resends the proposal of the valid value, our latest votes,
// our lock (a precommit with its proof of lock) and our latest certificate, which
// repairs message loss, tells the next proposer what it must re-propose and
// lets laggards catch up.
func (n *Node) rebroadcast() {
	n.sinceSent = 0
	if n.hasValid {
		if p, ok := n.byValue[n.validResult]; ok && p.Sig != nil {
			n.send(p)
		}
	}
	if b := n.hs.Prevote; b != nil {
		n.send(n.ballot(KindPrevote, *b))
	}
	if b := n.hs.Precommit; b != nil {
		n.send(n.ballot(KindPrecommit, *b))
	}
	if b := n.hs.Lock; b != nil && b.View != n.hs.Precommit.View {
		n.send(n.ballot(KindPrecommit, *b)) // its proof of lock tells the next proposers our valid value
	}
	if c := n.hs.Last; c != nil {
		n.send(certMessage(n.cfg.ID, *c))
	}
}

// ballot is the message for our vote b; a precommit for a value carries
// the prevote quorum that justified it while the node holds it.
func (n *Node) ballot(k Kind, b Ballot) Message {
	m := Message{Kind: k, Round: n.hs.Round, View: b.View, From: n.cfg.ID, Base: n.hs.Base, Result: b.Result,
		Nil: b.Nil, Sig: b.Sig}
	if k == KindPrecommit && !b.Nil {
		if votes := n.prevotes.quorum(b.View, b.Result, n.quorum()); votes != nil {
			m.POL, m.Votes = b.View+1, votes
		}
	}
	return m
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
		if m.Round != n.hs.Round || !n.pending[m.Result] {
			return
		}
		delete(n.pending, m.Result)
		n.verdict[m.Result] = m.OK
		n.progress()
	case KindPropose:
		n.stepPropose(m)
	case KindPrevote, KindPrecommit:
		n.stepVote(m)
	case KindCommit:
		n.stepCommit(m)
	default:
		n.log.Debug("dropping message of unknown kind", "kind", m.Kind, "from", m.From)
	}
}

func validID(s string) bool { return s != "" && len(s) <= MaxID }

func (n *Node) stepAggregated(m Message) {
	if m.Round != n.hs.Round || m.View != n.hs.View || !n.asked || !validID(m.Result) ||
		!validID(m.Rule) || len(m.Deltas) > MaxDeltas || !sortedUnique(m.Deltas) ||
		Proposer(n.cfg.Roster, n.hs.Round, n.hs.View) != n.cfg.ID || n.ticksRound >= n.cfg.RoundTicks {
		return
	}
	if _, done := n.proposals[n.hs.View]; done {
		return
	}
	n.verdict[m.Result] = true // we computed it
	n.propose(m.Deltas, m.Rule, m.Result, 0)
}

func (n *Node) propose(deltas []string, rule, result string, pol uint32) {
	p := Message{Kind: KindPropose, Round: n.hs.Round, View: n.hs.View, From: n.cfg.ID, Base: n.hs.Base,
		Deltas: slices.Clone(deltas), Rule: rule, Result: result, POL: pol}
	if pol > 0 {
		p.Votes = n.prevotes.quorum(pol-1, result, n.quorum())
	}
	p.Sig = n.cfg.Sign(ProposalBytes(p))
	n.store(p)
	n.log.Info("proposing", "round", p.Round, "view", p.View, "result", result, "deltas", len(deltas), "pol", pol)
	n.send(p)
	n.progress()
}

func (n *Node) store(p Message) {
	n.proposals[p.View] = p
	if _, ok := n.byValue[p.Result]; !ok {
		n.byValue[p.Result] = p
	}
}

// wellFormed checks a proposal's shape: a value with a rule, or a skip
// (empty result) with neither rule nor contributions; a proof of lock
// from an earlier view.
func wellFormed(m Message) bool {
	if m.View >= MaxViews || m.POL > m.View || len(m.Deltas) > MaxDeltas || len(m.Votes) > MaxRoster ||
		(m.POL == 0) != (len(m.Votes) == 0) || m.Nil {
		return false
	}
	if m.Result == "" {
		return m.Rule == "" && len(m.Deltas) == 0
	}
	return validID(m.Result) && validID(m.Rule) && sortedUnique(m.Deltas)
}

func (n *Node) stepPropose(m Message) {
	if m.Round != n.hs.Round || m.Base != n.hs.Base || !wellFormed(m) {
		return
	}
	if _, dup := n.proposals[m.View]; dup || m.View > n.hs.View+1 {
		return // first proposal per view wins; a second one is equivocation
	}
	if Proposer(n.cfg.Roster, m.Round, m.View) != m.From || !n.cfg.Verify(m.From, ProposalBytes(m), m.Sig) {
		n.log.Debug("dropping proposal with bad proposer or signature", "from", m.From, "round", m.Round)
		return
	}
	if m.POL > 0 && !n.addPOL(m.POL-1, m.Result, m.Votes) {
		n.log.Debug("dropping proposal with an invalid proof of lock", "from", m.From, "round", m.Round, "view", m.View)
		return
	}
	n.store(m)
	n.requestCheck(m.View)
	n.progress()
}

// addPOL verifies a proof of lock, prevotes for result in view from a
// quorum, and adds them to the tally. It reports whether the proof holds.
func (n *Node) addPOL(view uint32, result string, votes []Vote) bool {
	if n.prevotes.count(view, result) >= n.quorum() {
		return true
	}
	msg := PrevoteBytes(n.hs.Round, view, n.hs.Base, result)
	if validVotes(n.member, msg, votes, n.cfg.Verify) < n.quorum() {
		return false
	}
	for _, v := range votes {
		if n.member[v.From] && n.prevotes.room(view, v.From, result) && n.cfg.Verify(v.From, msg, v.Sig) {
			n.addPrevote(view, v.From, result, v.Sig)
		}
	}
	return true
}

// requestCheck asks the app to re-aggregate the proposal of view v once per
// value. A proposal for a view the node has not reached yet waits for it,
// so an early proposer of a later view cannot pre-empt the current one.
// Skips and proposals with a proof of lock need no check.
func (n *Node) requestCheck(v uint32) {
	p, ok := n.proposals[v]
	if !ok || v != n.hs.View || p.Result == "" || p.POL > 0 || n.pending[p.Result] || n.votedIn(n.hs.Prevote) {
		return
	}
	if _, known := n.verdict[p.Result]; known {
		return
	}
	n.pending[p.Result] = true
	p.Deltas = slices.Clone(p.Deltas)
	p.Votes = nil
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

// judge says how this node prevotes on proposal p: for its value, for nil,
// or not yet (the app is still checking it).
func (n *Node) judge(p Message) (prevote, decided bool) {
	lock := n.hs.Lock
	free := lock == nil || lock.Result == p.Result || (p.POL > 0 && p.POL-1 >= lock.View)
	switch {
	case p.POL > 0: // a quorum prevoted it, so honest members checked it
		return free, true
	case p.Result == "": // skip: only near the round deadline here
		return free && n.ticksRound+n.cfg.ViewTicks >= n.cfg.RoundTicks, true
	}
	ok, known := n.verdict[p.Result]
	return free && ok, known
}

// progress applies the voting rules of the current view: prevote on its
// proposal, precommit on a quorum of prevotes, and start the vote
// timeouts.
func (n *Node) progress() {
	v := n.hs.View
	if p, ok := n.proposals[v]; ok && !n.votedIn(n.hs.Prevote) {
		if yes, decided := n.judge(p); decided {
			n.cast(KindPrevote, p.Result, !yes)
		}
	}
	if !n.votedIn(n.hs.Precommit) {
		if key, ok := n.prevotes.decided(v, n.quorum()); ok {
			res, isNil := splitKey(key)
			n.cast(KindPrecommit, res, isNil)
		}
	}
	if n.prevoteAt < 0 && n.prevotes.votes(v) >= n.quorum() {
		n.prevoteAt = n.ticksView
	}
	if n.precomAt < 0 && n.precommit.votes(v) >= n.quorum() {
		n.precomAt = n.ticksView
	}
}

// cast signs, persists and sends our vote of kind k in the current view.
func (n *Node) cast(k Kind, result string, isNil bool) {
	v := n.hs.View
	if isNil {
		result = ""
	}
	b := Ballot{View: v, Result: result, Nil: isNil}
	m := Message{Kind: k, Round: n.hs.Round, View: v, Base: n.hs.Base, Result: result, Nil: isNil}
	b.Sig = n.cfg.Sign(BallotBytes(m))
	n.log.Debug("cast", "kind", k, "round", n.hs.Round, "view", v, "result", result, "nil", isNil)
	n.dirty = true
	if k == KindPrevote {
		n.hs.Prevote = &b
	} else {
		n.hs.Precommit = &b
		if !isNil {
			lock := b
			lock.POL = n.prevotes.quorum(v, result, n.quorum())
			if p, ok := n.byValue[result]; ok {
				lock.Deltas, lock.Rule = slices.Clone(p.Deltas), p.Rule
			}
			n.hs.Lock = &lock
		}
	}
	n.send(n.ballot(k, b))
	if k == KindPrevote {
		n.addPrevote(v, n.cfg.ID, valueKey(result, isNil), b.Sig)
		n.progress()
	} else {
		n.addPrecommit(v, n.cfg.ID, valueKey(result, isNil), b.Sig)
	}
}

func (n *Node) stepVote(m Message) {
	if m.Round != n.hs.Round || m.Base != n.hs.Base || m.View >= MaxViews || !n.member[m.From] ||
		len(m.Result) > MaxID || len(m.Sig) > MaxSig || len(m.Votes) > MaxRoster || (m.Nil && m.Result != "") {
		return
	}
	if m.Kind == KindPrecommit && m.POL > 0 && !m.Nil {
		n.addPOL(m.POL-1, m.Result, m.Votes) // a precommit's proof of lock spreads the valid value
	}
	t := &n.prevotes
	if m.Kind == KindPrecommit {
		t = &n.precommit
	}
	if !t.room(m.View, m.From, valueKey(m.Result, m.Nil)) {
		return // counted already, or a third value from an equivocator
	}
	if !n.cfg.Verify(m.From, BallotBytes(m), m.Sig) {
		n.log.Debug("dropping vote with bad signature", "from", m.From, "round", m.Round, "kind", m.Kind)
		return
	}
	round := n.hs.Round
	if m.Kind == KindPrecommit {
		n.addPrecommit(m.View, m.From, valueKey(m.Result, m.Nil), m.Sig)
	} else {
		n.addPrevote(m.View, m.From, valueKey(m.Result, m.Nil), m.Sig)
	}
	if n.hs.Round == round {
		n.progress()
		n.catchUpView(m.View)
	}
}

// addPrevote counts a verified prevote and tracks the valid value.
func (n *Node) addPrevote(v uint32, from, key string, sig []byte) {
	n.prevotes.add(v, from, key, sig)
	if key != nilKey && n.prevotes.count(v, key) >= n.quorum() && (!n.hasValid || v > n.validView) {
		n.hasValid, n.validView, n.validResult = true, v, key
	}
}

// addPrecommit counts a verified precommit; a quorum for a value commits
// the round.
func (n *Node) addPrecommit(v uint32, from, key string, sig []byte) {
	n.precommit.add(v, from, key, sig)
	if key == nilKey {
		return
	}
	if votes := n.precommit.quorum(v, key, n.quorum()); votes != nil {
		n.commit(Certificate{Round: n.hs.Round, View: v, Base: n.hs.Base, Result: key, Votes: votes})
	}
}

func (n *Node) stepCommit(m Message) {
	if m.Round < n.hs.Round {
		return
	}
	c := m.Certificate()
	if err := VerifyCertificate(n.cfg.Roster, n.cfg.Quorum, c, n.cfg.Verify); err != nil {
		n.log.Debug("dropping invalid certificate", "from", m.From, "err", err)
		return
	}
	if m.Round > n.hs.Round {
		n.log.Info("catching up by certificate", "from", n.hs.Round, "to", m.Round)
	}
	n.commit(c)
}

func (n *Node) commit(c Certificate) {
	n.log.Info("round committed", "round", c.Round, "view", c.View, "result", c.Result,
		"skipped", c.Skipped(), "votes", len(c.Votes))
	n.rd.Commits = append(n.rd.Commits, c)
	n.send(certMessage(n.cfg.ID, c))
	n.hs = HardState{Round: c.Round + 1, Base: c.Next(), Last: &c}
	n.dirty = true
	n.resetRound()
}

func certMessage(from string, c Certificate) Message {
	return Message{Kind: KindCommit, Round: c.Round, View: c.View, From: from, Base: c.Base, Result: c.Result,
		Votes: slices.Clone(c.Votes)}
}

// HasReady reports whether Ready would return work.
func (n *Node) HasReady() bool { return n.dirty || !n.rd.Empty() }

// Ready returns the pending work. The caller must persist HardState when
// MustPersist before sending any of Messages, then call Advance.
func (n *Node) Ready() Ready {
	rd := n.rd
	rd.HardState = n.hs
	rd.MustPersist = n.dirty
	return rd
}

// Advance acknowledges the last Ready.
func (n *Node) Advance() {
	n.rd = Ready{}
	n.dirty = false
}
