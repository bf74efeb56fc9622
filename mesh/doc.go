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
//     Peers marked with Protect are never trimmed. Besides libp2p's own
//     services (identify, ping), the host protocols every node speaks (the
//     DHT and every GossipSub version) have limits of their own, total and
//     per peer; Handle warns about a protocol without one, and Unlimited
//     lists them. Refusals counts what the resource manager and the stream
//     rate limit refused, by protocol.
//   - A connection keeper (one owned goroutine) keeps every bootstrap peer
//     connected for the Mesh's whole life: it dials at start and again
//     whenever the last connection to one drops, with per-peer exponential
//     backoff from RetryMin to RetryMax, jittered to [d/2, d]. Peers learned
//     through ConnectAddrs (gossip adverts), mDNS or the DHT routing table
//     are redialled the same way while the node has fewer than ConnLow
//     connections (dialling beyond it would only feed the connection
//     manager's trimming); a learned peer failing 8 dials in a row is
//     forgotten, a bootstrap peer never is. mDNS (service name "strata")
//     connects to every peer it finds. Close stops all of these goroutines,
//     waits for them, closes the DHT and then closes the host.
//   - Unless Config.NoDHT, a private Kademlia DHT runs in server mode under
//     protocol /strata/kad/1.0.0; it never uses the public IPFS DHT or its
//     bootstrap peers, and its routing table is seeded from the mesh's
//     connections and Config.Bootstrap. Provide announces a CID and
//     registers it: the mesh itself re-announces registered CIDs every
//     ReprovideInterval (default 20 min; records live ProvideValidity, 1 h,
//     on other nodes), and retries failed announcements with backoff until
//     Unprovide or Close, so callers call Provide once per CID.
//     FindProviders never returns this node, returns at most max
//     providers with transport addresses (no /p2p/ suffix, at most 32), and
//     is bounded by ctx (one minute if ctx has no deadline).
//   - Addrs reports only addresses the host actually listens on (unspecified
//     addresses expanded to interface addresses), each ending in /p2p/<id>.
//   - Handle and Open keep libp2p types inside this package: protocols above
//     see an io.ReadWriteCloser and a peer id string. Open uses at most 32
//     advertised addresses and skips malformed ones or ones of other peers.
//   - Every protocol registered with Handle is rate-limited per remote
//     peer: a token bucket per (peer, protocol) refilled at StreamRate per
//     second up to StreamBurst (ProtocolLimit may override both). A stream
//     arriving at an empty bucket is reset before its handler runs, and a
//     warning names the peer at most once a minute. The buckets take
//     bounded memory: idle ones are forgotten.
//   - With Config.PSK the host only speaks to peers holding the same
//     32-byte key (libp2p private networks, TCP only); LoadSwarmKey reads
//     the go-ipfs swarm.key file format. Connect to a peer on the other
//     side of a key fails with ErrHandshake (quickly when one side has no
//     key; two different keys fail at libp2p's handshake timeout). A host
//     without a key tries a failing handshake three times before it says
//     so, since a peer that is stopping or restarting drops handshakes too.
//   - ReadFrame/WriteFrame carry one u32 big-endian length-prefixed payload.
//     ReadFrame never allocates more than its max argument (and grows large
//     bodies only as bytes arrive), returns io.EOF
//     only on a clean end of stream before a frame starts, and reports an
//     oversized header as ErrFrameTooLarge without reading the body.
//
// Everything read from a peer or from disk is treated as hostile: it is
// bounded, validated and reported as an error, never a panic.
package mesh
