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
// The protocol is Tendermint's (Buchman, Kwon and Milosevic, "The latest
// gossip on BFT consensus", 2018) with views for its rounds, timeouts
// counted in ticks, and two kinds of value: a result manifest, or skip.
//
// A round r starts from a base manifest (the result of the last commit) and
// runs views 0, 1, ... The proposer of (r, view) is the roster member with
// the smallest sha256(r || view || id) (Proposer). CollectTicks into a
// view it proposes: the valid value (below) with its proof of lock if it
// knows one; else, before RoundTicks, a fresh aggregate of the
// contributions it has been told about (Ready.Aggregate, answered with
// KindAggregated); else skip. A proposal for a view the node has not
// reached yet is held until it does.
//
// Each view has two voting phases. A member prevotes the proposal's value
// if the application reproduced it (Ready.Checks, answered with
// KindChecked), or it carries a proof of lock, or it is a skip and the
// round deadline is at most a view away; and if the member is not locked
// on another value by an older or equal proof. Otherwise it prevotes nil,
// as it does when no proposal came within the propose timeout. Prevotes
// for one value from a quorum make every member that sees them precommit
// it and lock on it; a quorum of nil prevotes, or a quorum of split
// prevotes and a timeout, makes it precommit nil. Precommits for one value
// from a quorum are a Certificate: the node commits, rebroadcasts it and
// starts round r+1. A quorum of precommits that decides nothing ends the
// view after a timeout. Timeouts grow with the view.
//
// The valid value is the value of the latest view in which the node saw a
// quorum of prevotes; those prevotes are its proof of lock. Proposals and
// precommits carry proofs, so a proposer learns what locked members will
// accept and locked members accept it.
//
// Quorum is Quorum(n) = 2n/3+1 by default, which tolerates f < n/3
// Byzantine members; Config.Quorum may lower it to a majority, which
// tolerates up to half the roster crashed or cut off but no Byzantine
// voter.
//
// Members rebroadcast their latest votes, their lock with its proof and the
// last certificate every ViewTicks and on each view change, which repairs
// message loss and lets laggards catch up; a member that sees more than
// n-quorum members voting in a later view of its round jumps to it.
//
// # Invariants
//
//   - An honest member casts at most one prevote and one precommit per view,
//     only in its current view, never goes back a view, and persists each
//     vote and its lock (Ready.HardState with MustPersist) before sending
//     it; a node restarted from its last persisted HardState keeps them.
//   - Hence, while fewer members than 2·quorum−n are Byzantine, no round has
//     two certificates: two quorums share an honest member. A value
//     certified in view v was precommitted by a quorum, whose honest
//     members are locked on it; they prevote another value only on a proof
//     of lock from a view after v, which would need one of them to have
//     prevoted that value there.
//   - Every node's history is the same chain of certificates; each starts
//     from the previous one's Certificate.Next. A node that hears a valid
//     certificate for its round or a later one adopts it; jumping ahead
//     leaves a gap that the application fills by fetching the certified
//     manifest and, if it wants the history, the chain (VerifyChain).
//   - If the view-0 proposer is honest and messages arrive within
//     CollectTicks, the round commits its proposal in view 0. Once messages
//     arrive in bounded time, every round ends: with a partition healed,
//     locks split between values, or a Byzantine proposer that equivocated
//     and went silent, the members align their views and some later view
//     has an honest proposer whose proposal they all accept
//     (TestRandomized checks this after healing the network).
//   - Nothing a peer sends can make Step fail or grow memory without bound:
//     proposals and votes are accepted only for the current round and base,
//     at most one proposal per view and MaxViews views, at most two values
//     per voter per view and phase, MaxDeltas contributions; Unmarshal
//     enforces every bound.
//
// # Limits
//
// The roster is fixed (Config.Roster); admitting joiners needs a NextRoster
// field in the certificate, checked by voters. A round that reaches
// MaxViews stays in its last view until a certificate arrives.
package consensus
