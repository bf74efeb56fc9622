package mesh

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// maxIdentityFile bounds how much of an identity file is read. A marshalled
// Ed25519 key is 68 bytes; RSA keys are a few KiB.
const maxIdentityFile = 16 << 10

// LoadIdentity returns the private key stored at path, in libp2p's
// crypto.MarshalPrivateKey format. If the file does not exist, a new Ed25519
// key is generated and written atomically with mode 0600 (creating the parent
// directory with mode 0700 if needed). If the file exists but cannot be
// decoded, LoadIdentity returns an error wrapping ErrCorruptIdentity and does
// not modify the file.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	if path == "" {
		return nil, errors.New("mesh: identity path is empty")
	}
	key, err := readIdentity(path)
	if err == nil {
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mesh: generate identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("mesh: marshal identity: %w", err)
	}
	created, err := writeNew(path, raw)
	if err != nil {
		return nil, err
	}
	if !created {
		// Another process created the file first; use its key.
		return readIdentity(path)
	}
	return key, nil
}

func readIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("mesh: open identity: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, fmt.Errorf("mesh: read identity %s: %w", path, err)
	}
	if len(raw) > maxIdentityFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorruptIdentity, path, maxIdentityFile)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v (restore it from a backup or move it away to create a new identity)", ErrCorruptIdentity, path, err)
	}
	return key, nil
}

// writeNew writes data to path atomically, only if path does not exist yet.
// It reports whether it created the file.
func writeNew(path string, data []byte) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("mesh: create identity dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*.tmp") // mode 0600
	if err != nil {
		return false, fmt.Errorf("mesh: create identity: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("mesh: chmod identity: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("mesh: write identity: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("mesh: sync identity: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("mesh: close identity: %w", err)
	}
	// Link fails if path exists, so an identity created concurrently is
	// never overwritten.
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("mesh: install identity: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return true, nil
}
