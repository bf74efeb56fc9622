package mesh

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Sign signs msg with this node's identity key. Anyone can check the
// signature against the node's peer id with Verify.
func (m *Mesh) Sign(msg []byte) ([]byte, error) {
	key := m.h.Peerstore().PrivKey(m.h.ID())
	if key == nil {
		return nil, fmt.Errorf("mesh: no private key for %s", m.h.ID())
	}
	sig, err := key.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("mesh: sign: %w", err)
	}
	return sig, nil
}

// Verify reports whether sig is peerID's signature over msg. It needs no
// connection: the public key is taken from the peer id, which embeds it
// for Ed25519 identities. Malformed ids and keys not embedded in the id
// give false.
func Verify(peerID string, msg, sig []byte) bool {
	id, err := peer.Decode(peerID)
	if err != nil {
		return false
	}
	pub, err := id.ExtractPublicKey()
	if err != nil || pub == nil {
		return false
	}
	ok, err := pub.Verify(msg, sig)
	return err == nil && ok
}
