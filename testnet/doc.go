// Package testnet launches a whole Strata mesh on one machine, on
// loopback: in this process for Go tests (Start), or as child processes of
// the strata binary for scripts and for `strata testnet` (Launch,
// LaunchRun).
//
// A serving mesh (Start, Launch) gets the model imported into every
// node's repo (the same bytes, so the same model CID), and each node
// serves one span of blocks.
//
// A training mesh (LaunchRun) is a federated run: every node is on the
// roster, builds the same seeded genesis model itself and trains on its own
// slice of a directory of text (every N-th file), and the nodes commit
// rounds together; FollowRounds reports each commit. By default the text
// is the Go distribution's source tree (GoSource), which is on every
// machine that builds Go.
//
// In both the first node is every other node's bootstrap peer. mDNS is
// off: a testnet only ever talks over 127.0.0.1.
//
// Chaos runs both at once for a bounded time (`strata chaos`): it kills
// random nodes with SIGKILL and restarts them from their repos (Procs.Kill,
// Procs.Restart) while clients generate greedily through random live
// serving nodes, then checks that every generation matched the reference
// or failed with an error, that the trainers' certified histories agree,
// and that every store re-hashes clean (ChaosReport).
package testnet
