// Package consensus decides, round by round, which training contributions
// are in and which model version results.
//
// It is a pure state machine in the style of etcd raft: the caller feeds it
// messages with Step and the passage of time with Tick, and collects the
// messages to send, the requests to the application and the commits to
// apply from Ready, acknowledging them with Advance. It performs no I/O,
// starts no goroutines, never reads the wall clock and uses no randomness,
// so every scenario replays deterministically. Signing and verification are
// functions in Config.
//
// # Protocol
//
// A round r starts from a base manifest (the result of the last commit). The
// proposer of (r, view) is the roster member with the smallest
// sha256(r || view || id) (Proposer). CollectTicks into its view it asks the
// application to aggregate the contributions it has been told about (Ready.
// Aggregate, answered with a KindAggregated message), then broadcasts a
// signed PROPOSE{r, view, base, sorted deltas, rule, result} and votes for
// it. A member that receives a proposal from the right proposer asks the
// application to re-aggregate it (Ready.Checks, answered with KindChecked)
// and, if it got the same result and has not voted in r, broadcasts a VOTE
// signing VoteBytes(r, base, result). Votes for the same (r, base, result)
// from Quorum(n) = 2n/3+1 distinct members form a Certificate; the node
// commits, broadcasts the certificate and starts round r+1.
//
// Views advance every ViewTicks so that a crashed or silent proposer is
// replaced. A proposal for a view the node has not reached yet is held
// until it does, so a later proposer cannot pre-empt the current one. A
// proposer already locked to a value re-proposes that value.
//
// A member that has not voted by RoundTicks votes to skip (a vote with an
// empty result), unless the application is still re-aggregating a
// proposal it holds: then it waits up to ViewTicks more for the answer,
// so a slow check does not split the round between the proposal and skip. A quorum of skip votes is a skip certificate: the next
// round starts again from the same base. Skipping therefore also needs a
// quorum, which is what keeps histories identical: a node never leaves a
// round without a certificate for it, and there is at most one.
//
// # Invariants
//
//   - An honest member signs at most one vote per round, whatever the view,
//     and persists it (Ready.HardState with MustPersist) before it is sent;
//     a node restarted from its last persisted HardState re-sends that vote
//     and never signs another in the same round.
//   - Hence, while fewer than a third of the roster is faulty, no round has
//     two certificates: two quorums overlap in more than n/3 members, one of
//     them honest, who would have voted twice.
//   - Every node's history is the same chain of certificates; each starts
//     from the previous one's Certificate.Next. A node that hears a valid
//     certificate for its round or a later one adopts it; jumping ahead
//     leaves a gap that the application fills by fetching the certified
//     manifest and, if it wants the history, the chain (VerifyChain).
//   - If the view-0 proposer is honest and messages arrive within
//     CollectTicks, the round commits its proposal in view 0.
//   - Nothing a peer sends can make Step fail or grow memory without bound:
//     proposals and votes are accepted only for the current round and base,
//     at most one proposal per view and MaxViews views, at most two values
//     per voter, MaxDeltas contributions; Unmarshal enforces every bound.
//
// # Limits
//
// The roster is fixed (Config.Roster); admitting joiners needs a NextRoster
// field in the certificate, checked by voters.
//
// Locking to one vote per round makes safety simple but costs liveness
// against a Byzantine proposer: if it splits the honest votes between two
// values and then stays silent, no value and no skip can reach a quorum and
// the round stalls (testdata/equivocate_stall.txt). Unlocking safely needs
// a second voting phase with proofs of lock, as in PBFT or Tendermint.
// Honest members that miss proposals (loss, failed fetches) can split the
// same way between a proposal and skip.
package consensus
