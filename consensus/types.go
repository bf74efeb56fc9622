package consensus

// Round numbers rounds from 1; round 0 is the imported base model.
type Round uint64

// Kind names a consensus message.
type Kind uint8

// Message kinds. The first four travel between peers; the last three are
// local events the application feeds back through Step and are rejected by
// Unmarshal.
const (
	KindPropose   Kind = iota + 1 // proposer's sorted contributions and result
	KindPrevote                   // first phase: a member finds a view's proposal acceptable
	KindPrecommit                 // second phase: a member saw a prevote quorum and locks on it
	KindCommit                    // a certificate: precommits from more than 2/3 of the roster

	KindContribution // local: the app fetched and validated Deltas[0] for Round
	KindAggregated   // local: the app computed Result from Deltas under Rule (answers Aggregate)
	KindChecked      // local: the app re-aggregated a proposal; OK if it got the same Result
)

func (k Kind) String() string {
	switch k {
	case KindPropose:
		return "propose"
	case KindPrevote:
		return "prevote"
	case KindPrecommit:
		return "precommit"
	case KindCommit:
		return "commit"
	case KindContribution:
		return "contribution"
	case KindAggregated:
		return "aggregated"
	case KindChecked:
		return "checked"
	}
	return "unknown"
}

// remote reports whether k may arrive from a peer.
func (k Kind) remote() bool { return k >= KindPropose && k <= KindCommit }

// Message is one consensus message. Peer ids and CIDs are strings so the
// package stays free of networking types.
//
// An empty Result is the value "skip the round": a proposal to skip
// carries no contributions and no rule.
type Message struct {
	Kind   Kind
	Round  Round
	View   uint32   // attempt within the round; the proposer rotates per view
	From   string   // sender peer id
	Base   string   // manifest CID the round started from
	Deltas []string // sorted contribution CIDs (propose, aggregated)
	Rule   string   // aggregation rule, e.g. "fedavg"
	Result string   // resulting manifest CID; empty means skip
	Nil    bool     // a prevote or precommit for no value: the view failed here
	// POL, in a proposal or a precommit, is 1 + the view of the prevote
	// quorum for Result carried in Votes (a proof of lock); 0: none.
	POL   uint32
	Sig   []byte // signature by From (ProposalBytes, PrevoteBytes or PrecommitBytes)
	Votes []Vote // commit: the certificate's precommits; propose, precommit: POL prevotes
	OK    bool   // checked: the app reproduced Result
}

// Vote is one roster member's signature in a certificate or a proof of
// lock.
type Vote struct {
	From string
	Sig  []byte
}

// Certificate proves that a round ended with Result, or was skipped when
// Result is empty: precommits over PrecommitBytes(Round, View, Base,
// Result). The contributions that went in are named by the result
// manifest itself.
type Certificate struct {
	Round  Round
	View   uint32 // the view whose precommits these are
	Base   string
	Result string
	Votes  []Vote
}

// Skipped reports whether the certificate records a skipped round.
func (c Certificate) Skipped() bool { return c.Result == "" }

// Next is the base of the round after c: its result, or its base when the
// round was skipped.
func (c Certificate) Next() string {
	if c.Skipped() {
		return c.Base
	}
	return c.Result
}

// Quorum is the number of votes, out of a roster of n, that commits a
// round: the smallest count strictly greater than 2n/3.
func Quorum(n int) int { return 2*n/3 + 1 }

// HardState is what a node must persist before sending the messages of the
// Ready that carries it: the round and view it is in and its latest vote
// of each phase. Votes are cast only in the current view and the view
// never goes back, so a restarted node given its last HardState never
// casts two different votes of one phase in a view, and keeps its lock.
type HardState struct {
	Round Round  // current round
	Base  string // manifest CID the current round starts from
	View  uint32 // current view

	Prevote   *Ballot // latest prevote cast in Round
	Precommit *Ballot // latest precommit cast in Round
	Lock      *Ballot // latest precommit for a value in Round

	// Last is the certificate of the round before, which the node
	// rebroadcasts so that members left behind catch up.
	Last *Certificate `json:",omitempty"`
}

// Ballot is a vote a node cast: its view, value and signature. A lock also
// keeps what re-proposing its value takes after a restart: the prevote
// quorum that justified it and, when the node saw the proposal, its
// contributions and rule.
type Ballot struct {
	View   uint32
	Result string
	Nil    bool
	Sig    []byte

	POL    []Vote   `json:",omitempty"`
	Deltas []string `json:",omitempty"`
	Rule   string   `json:",omitempty"`
}

// Ready is the work a node hands back to its driver. The driver persists
// HardState (when MustPersist), then stores Commits, then sends Messages,
// then serves Aggregate and Checks, and finally calls Advance.
type Ready struct {
	HardState   HardState
	MustPersist bool
	Messages    []Message     // to broadcast to the roster
	Aggregate   []Message     // KindAggregated requests with Result empty: compute and Step the answer
	Checks      []Message     // proposals to re-aggregate; answer with a KindChecked message
	Commits     []Certificate // new certificates, in round order
}

// Empty reports whether r holds no work.
func (r Ready) Empty() bool {
	return !r.MustPersist && len(r.Messages) == 0 && len(r.Aggregate) == 0 &&
		len(r.Checks) == 0 && len(r.Commits) == 0
}
