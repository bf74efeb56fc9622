// Package node composes one Strata node: it opens the repo dir, loads the
// served span of a model, starts the libp2p mesh and gossip, serves the
// inference protocols and publishes capacity adverts.
//
// A node owns its goroutines and the wall clock; the packages it drives
// (infer's planner, the gossip peer table, the shard codecs, the consensus
// state machine) are pure and take time as an input. Close stops
// everything the node started.
//
// # Federated training runs
//
// With Config.Run a node is a participant of a run, fixed by a RunSpec
// (genesis model, roster of peer ids, aggregation rule, outer optimizer,
// codec, local steps per round, deadline) whose CID is the run id. One
// goroutine owns the consensus node; round by round:
//
//  1. From the round's base (the genesis, or the result of the last
//     certified round) the node trains Steps local steps on its own files,
//     computes Δ = θ_base − θ_local over the tensors the round trains,
//     compresses it with error feedback and stores it by CID.
//  2. It announces {round, base, Δ CID, size, samples, loss} on the run's
//     GossipSub topic (/strata/run/1/RUNID, signed by the sender's key) and
//     repeats the announcement until the round ends.
//  3. Others fetch Δ from its author over /strata/content/1 (the CID
//     verifies it), decode it against the expected tensors and reject NaN,
//     Inf, wrong shapes and wrong round or base, logging the sender.
//  4. The round's proposer waits for every roster member's update, or a
//     third of a view for a quorum's worth, validates the set (norm outliers
//     too), aggregates it by the run's rule, applies the outer step and
//     imports the result as a manifest whose round record names the run,
//     round, rule, outer state and contributions ("CID/SIZE/PEER" entries,
//     sorted). It proposes the manifest CID.
//  5. Members re-aggregate the proposal (fetching missing updates from the
//     proposer) and prevote only for the same CID; the two voting phases of
//     package consensus follow. The consensus hard state is
//     written to REPO/runs/RUNID/state.json and synced before any message
//     it implies is published; certificates are appended to
//     REPO/runs/RUNID/certs.
//  6. On a certificate the node loads the result (fetching it from the
//     roster if it did not build it), switches its serving to it and
//     starts the next round. A restarted node resumes from its hard state
//     and catches up by the latest certificate it hears; the history of
//     rounds it missed is read from the manifest chain (a round number
//     missing from the chain was skipped).
//
// Serving nodes switch versions with infer.Mux: the new version's blocks
// are fetched and loaded one at a time, then new requests go to it while
// sessions on the old one finish there; the old version is retired once
// idle and after peers have had a peer-TTL to learn of the switch, and
// requests fall back to it while the mesh has no route for the new one.
// Config.Follow makes a node that does not train serve a run's newest
// certified version. /strata/rounds/1 answers with the run, its history,
// the latest certificate and the node's traffic per round.
//
// Repo dir layout:
//
//	identity.key            the node's Ed25519 libp2p key (created on first start)
//	objects/<cid>           content-addressed objects: manifests, shards, updates, run specs
//	runs/<run>/state.json   a participant's consensus hard state
//	runs/<run>/certs        the certificates it holds, one base64 line each
package node
