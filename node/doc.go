// Package node composes one Strata node: it opens the repo dir, loads the
// served span of a model, starts the libp2p mesh and gossip, serves the
// inference protocols and publishes capacity adverts.
//
// A node owns its goroutines and the wall clock; the packages it drives
// (infer's planner, the gossip peer table, the shard codecs) are pure and
// take time as an input. Close stops everything the node started.
//
// Repo dir layout:
//
//	identity.key     the node's Ed25519 libp2p key (created on first start)
//	objects/<cid>    content-addressed objects: manifests and shards
package node
