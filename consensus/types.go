package consensus

// Round numbers rounds from 1; round 0 is the imported base model.
type Round uint64

// Kind names a consensus message.
type Kind uint8

// Message kinds. The first three travel between peers; the last three are
// local events the application feeds back through Step and are rejected by
// Unmarshal.
const (
	KindPropose Kind = iota + 1 // proposer's sorted contributions and result
	KindVote                    // a roster member's signature over a round's value
	KindCommit                  // a certificate: votes from more than 2/3 of the roster

	KindContribution // local: the app fetched and validated Deltas[0] for Round
	KindAggregated   // local: the app computed Result from Deltas under Rule (answers Aggregate)
	KindChecked      // local: the app re-aggregated a proposal; OK if it got the same Result
)

func (k Kind) String() string {
	switch k {
	case KindPropose:
		return "propose"
	case KindVote:
		return "vote"
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
func (k Kind) remote() bool { return k == KindPropose || k == KindVote || k == KindCommit }

// Message is one consensus message. Peer ids and CIDs are strings so the
// package stays free of networking types.
//
// A vote with an empty Result is a vote to skip the round.
type Message struct {
	Kind   Kind
	Round  Round
	View   uint32   // attempt within the round; the proposer rotates per view
	From   string   // sender peer id
	Base   string   // manifest CID the round started from
	Deltas []string // sorted contribution CIDs (propose, aggregated)
	Rule   string   // aggregation rule, e.g. "fedavg"
	Result string   // resulting manifest CID; empty in a vote means skip
	Sig    []byte   // signature by From (propose: ProposalBytes, vote: VoteBytes)
	Votes  []Vote   // commit certificate (commit)
	OK     bool     // checked: the app reproduced Result
}

// Vote is one roster member's signature over VoteBytes(round, base, result).
type Vote struct {
	From string
	Sig  []byte
}

// Certificate proves that a round ended with Result, or was skipped when
// Result is empty. Voters sign (Round, Base, Result) only: the contributions
// that went in are named by the result manifest itself.
type Certificate struct {
	Round  Round
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
// Ready that carries it: the round it is in and the vote it cast there. A
// restarted node given its last HardState never votes twice in a round.
type HardState struct {
	Round Round  // current round
	Base  string // manifest CID the current round starts from
	Voted bool   // a vote was cast in Round
	// The value voted for; the deltas and rule let a locked proposer
	// re-propose it in a later view.
	VoteResult string
	VoteDeltas []string
	VoteRule   string
	VoteSig    []byte
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
