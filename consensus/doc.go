// Package consensus decides, round by round, which training contributions
// are in and which model version results.
//
// It is a pure state machine in the style of etcd raft: the caller feeds it
// messages with Step and the passage of time with Tick, and collects the
// messages to send and the commits to apply from Ready, acknowledging them
// with Advance. It performs no I/O, starts no goroutines and never reads the
// wall clock, so every scenario replays deterministically.
//
// Invariants the implementation will guarantee:
//
//   - The roster of round r is fixed by the commit of round r-1.
//   - An honest member votes at most once per round, so while fewer than a
//     third of the roster is faulty no round has two commits.
//   - A commit certificate holds votes from more than two thirds of the
//     roster, each over the same (round, result CID).
//
// This version holds the message and certificate types only; the state
// machine lands with federated averaging.
package consensus
