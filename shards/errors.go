package shards

import "errors"

// Sentinel errors. Every error this package returns wraps one of these, so
// callers can tell bad input from a missing or damaged object with errors.Is.
var (
	// ErrFormat: bytes are not a valid tensor container.
	ErrFormat = errors.New("shards: malformed container")
	// ErrShard: a valid container that is not the expected block or head
	// shard (wrong kind, index, tensors or tokenizer).
	ErrShard = errors.New("shards: invalid shard")
	// ErrManifest: bytes are not a valid, canonical manifest.
	ErrManifest = errors.New("shards: invalid manifest")
	// ErrCID: a CID that is malformed or not CIDv1/raw/sha2-256.
	ErrCID = errors.New("shards: unsupported CID")
	// ErrMismatch: data does not hash to the CID or digest it was checked against.
	ErrMismatch = errors.New("shards: content does not match its hash")
	// ErrNotFound: the store holds no object with that CID.
	ErrNotFound = errors.New("shards: object not found")
	// ErrCorrupt: the store holds a file under that CID whose bytes do not
	// hash to it. It is never served; Put of the right bytes repairs it.
	ErrCorrupt = errors.New("shards: stored object is corrupt")
	// ErrProtocol: a peer broke the content protocol (malformed frame,
	// wrong length, bytes that fail verification).
	ErrProtocol = errors.New("shards: content protocol violation")
	// ErrRange: a byte range outside the object.
	ErrRange = errors.New("shards: range out of bounds")
	// ErrUnavailable: no provider could deliver the object.
	ErrUnavailable = errors.New("shards: object unavailable")
	// ErrTokenizer: an import was asked for without a usable tokenizer.
	ErrTokenizer = errors.New("shards: tokenizer required")
)
