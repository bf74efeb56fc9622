package mesh

import "errors"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrCorruptIdentity means the identity file exists but does not hold a
	// valid private key. The file is left untouched.
	ErrCorruptIdentity = errors.New("mesh: corrupt identity file")
	// ErrInvalidConfig means Config.Validate rejected the configuration.
	ErrInvalidConfig = errors.New("mesh: invalid config")
	// ErrBadAddr means a multiaddr string could not be used as a peer address.
	ErrBadAddr = errors.New("mesh: bad peer address")
	// ErrFrameTooLarge means a frame's length exceeds the allowed maximum.
	ErrFrameTooLarge = errors.New("mesh: frame too large")
	// ErrClosed means the Mesh has been closed.
	ErrClosed = errors.New("mesh: closed")
	// ErrNoDHT means the DHT is disabled (Config.NoDHT).
	ErrNoDHT = errors.New("mesh: DHT disabled")
	// ErrBadCID means a content id string could not be parsed.
	ErrBadCID = errors.New("mesh: bad CID")
	// ErrNoProviders means a DHT lookup found no peer holding a CID.
	ErrNoProviders = errors.New("mesh: no providers found")
	// ErrNoDHTPeers means the DHT has no peers to announce to yet.
	ErrNoDHTPeers = errors.New("mesh: no DHT peers")
	// ErrBadSwarmKey means a private swarm key file could not be decoded.
	ErrBadSwarmKey = errors.New("mesh: bad swarm key")
	// ErrHandshake means a peer was reached but no secure channel could
	// be set up with it. Between Strata nodes the usual cause is a swarm
	// key: one side runs a private mesh and the other does not, or they
	// hold different keys; a peer that is restarting is the other usual
	// cause, which is why a host without a key tries a few times first.
	ErrHandshake = errors.New("mesh: handshake failed")
)
