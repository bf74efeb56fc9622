package consensus

// Round numbers rounds from 1; round 0 is the imported base model.
type Round uint64

// Kind names a consensus message.
type Kind uint8

// Message kinds.
const (
	KindPropose Kind = iota + 1 // proposer's sorted contributions and result
	KindVote                    // a roster member's signature over a proposal's result
	KindCommit                  // a certificate: votes from more than 2/3 of the roster
)

// Message is one consensus message. Peer ids and CIDs are strings so the
// package stays free of networking types.
type Message struct {
	Kind   Kind
	Round  Round
	View   uint32   // attempt within the round; the proposer rotates per view
	From   string   // sender peer id
	Base   string   // manifest CID the round started from
	Deltas []string // sorted contribution CIDs (propose)
	Rule   string   // aggregation rule, e.g. "fedavg"
	Result string   // resulting manifest CID
	Sig    []byte   // signature by From over (Kind, Round, View, Result)
	Votes  []Vote   // commit certificate (commit)
}

// Vote is one roster member's signed agreement with a round's result.
type Vote struct {
	From string
	Sig  []byte
}

// Certificate proves that a round committed to a result.
type Certificate struct {
	Round  Round
	Base   string
	Result string
	Votes  []Vote
}

// Quorum is the number of votes, out of a roster of n, that commits a
// round: the smallest count strictly greater than 2n/3.
func Quorum(n int) int { return 2*n/3 + 1 }
