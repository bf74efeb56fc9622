package shards

import (
	"crypto/sha256"
	"hash"

	"lukechampine.com/blake3"
)

// ChunkHash is the hash function of a manifest's chunk digests.
//
// Format 1 manifests list sha2-256 digests. Format 2 manifests, the ones
// Import writes, list BLAKE3-256 digests: a fetch hashes every byte twice
// (each chunk against its digest as it arrives, the whole object against
// its sha2-256 CID), and BLAKE3 takes a third of the time of sha2-256 per
// byte on CPUs with wide vector units, which on a 2-core machine lets a
// fetch keep up with the network and the disk for longer.
type ChunkHash uint8

const (
	// ChunkBLAKE3 is BLAKE3 with a 256-bit output (manifest format 2).
	ChunkBLAKE3 ChunkHash = iota
	// ChunkSHA256 is sha2-256 (manifest format 1).
	ChunkSHA256
)

// String names h as manifests and logs do.
func (h ChunkHash) String() string {
	if h == ChunkSHA256 {
		return "sha2-256"
	}
	return "blake3"
}

// Sum returns the digest of b.
func (h ChunkHash) Sum(b []byte) Digest {
	if h == ChunkSHA256 {
		return sha256.Sum256(b)
	}
	return blake3.Sum256(b)
}

// New returns a streaming hasher whose Sum is the digest Sum gives.
func (h ChunkHash) New() hash.Hash {
	if h == ChunkSHA256 {
		return sha256.New()
	}
	return blake3.New(32, nil)
}
