// Package mesh owns a node's libp2p host: its persistent identity, transports,
// resource limits, connection management and peer discovery, plus the small
// framing helpers that stream protocols share.
//
// Contract:
//
//   - LoadIdentity never replaces an existing key file. A missing file gets a
//     fresh Ed25519 key written atomically with mode 0600; an unreadable or
//     corrupt file is an error (ErrCorruptIdentity), because silently minting a
//     new identity would orphan everything the swarm knows about the node.
//   - New returns a Mesh listening on every address in Config.Listen (TCP and
//     QUIC; Noise and TLS security, yamux muxing), with a resource manager whose
//     limits include the per-protocol limits in Config.Protocols, and a
//     connection manager trimming between ConnLow and ConnHigh connections.
//     Peers marked with Protect are never trimmed.
//   - Bootstrap peers are dialled in the background, one owned goroutine per
//     peer, retrying with capped exponential backoff until connected. mDNS
//     (service name "strata") connects to every peer it finds. Close stops all
//     of these goroutines, waits for them, and then closes the host.
//   - Addrs reports only addresses the host actually listens on (unspecified
//     addresses expanded to interface addresses), each ending in /p2p/<id>.
//   - Handle and Open keep libp2p types inside this package: protocols above
//     see an io.ReadWriteCloser and a peer id string. Open uses at most 32
//     advertised addresses and skips malformed ones or ones of other peers.
//   - ReadFrame/WriteFrame carry one u32 big-endian length-prefixed payload.
//     ReadFrame never allocates more than its max argument (and grows large
//     bodies only as bytes arrive), returns io.EOF
//     only on a clean end of stream before a frame starts, and reports an
//     oversized header as ErrFrameTooLarge without reading the body.
//
// Everything read from a peer or from disk is treated as hostile: it is
// bounded, validated and reported as an error, never a panic.
package mesh
