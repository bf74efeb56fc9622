package mesh

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// maxSwarmKeyFile bounds what DecodeSwarmKey reads: a key file is two
// short header lines and 64 hex digits (or 44 base64 characters).
const maxSwarmKeyFile = 4 << 10

// DecodeSwarmKey reads a private swarm key in the go-ipfs swarm.key
// format:
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
//
// (/base64/ and /bin/ encodings are accepted too). Errors wrap
// ErrBadSwarmKey.
func DecodeSwarmKey(r io.Reader) ([]byte, error) {
	psk, err := pnet.DecodeV1PSK(io.LimitReader(r, maxSwarmKeyFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSwarmKey, err)
	}
	if len(psk) != 32 {
		return nil, fmt.Errorf("%w: key is %d bytes, want 32", ErrBadSwarmKey, len(psk))
	}
	return psk, nil
}

// LoadSwarmKey reads a swarm key file (see DecodeSwarmKey) for
// Config.PSK.
func LoadSwarmKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mesh: swarm key: %w", err)
	}
	defer f.Close()
	psk, err := DecodeSwarmKey(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return psk, nil
}

// NewSwarmKey returns a fresh random swarm key file in the base16 form
// DecodeSwarmKey reads. Every node of a private mesh needs the same file.
func NewSwarmKey() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("mesh: generate swarm key: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("/key/swarm/psk/1.0.0/\n/base16/\n")
	b.WriteString(hex.EncodeToString(key))
	b.WriteByte('\n')
	return b.Bytes(), nil
}
