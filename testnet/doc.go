// Package testnet launches a whole Strata mesh on one machine, on
// loopback: in this process for Go tests (Start), or as child processes of
// the strata binary for scripts and for `strata testnet` (Launch).
//
// Every node gets its own repo dir with the model imported (the same
// bytes, so the same model CID) and serves one span of blocks; the first
// node is every other node's bootstrap peer. mDNS is off: a testnet only
// ever talks over 127.0.0.1.
package testnet
