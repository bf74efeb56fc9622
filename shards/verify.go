package shards

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipfs/go-cid"
)

// VerifyReport is what Store.Verify found.
type VerifyReport struct {
	// Objects and Bytes count the objects hashed and their total size,
	// corrupt ones included.
	Objects int
	Bytes   int64
	// Corrupt lists the objects whose bytes do not hash to their CID (or
	// that are not regular files), sorted by CID string.
	Corrupt []CorruptObject
	// Stray lists the names in objects/ that are neither a canonical CID
	// nor a temp file of a write in progress. They are never served.
	Stray []string
}

// CorruptObject is one object that failed verification.
type CorruptObject struct {
	CID cid.Cid
	Err error // wraps ErrCorrupt
}

// Verify re-hashes every object in the store against its CID, the check
// Get does on every read, and reports the objects that fail it. It is an
// fsck: it changes nothing on disk (a corrupt object is repaired by a Put
// or fetch of the right bytes, or removed with Delete). Objects removed
// while Verify runs (by GC) are skipped. It returns an error only when the
// store cannot be listed or ctx ends; the report then covers the objects
// checked so far.
func (s *Store) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	entries, err := os.ReadDir(s.objects)
	if err != nil {
		return rep, fmt.Errorf("shards: verify: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("shards: verify: %w", err)
		}
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) {
			continue
		}
		c, err := ParseCID(name)
		if err != nil || c.String() != name {
			rep.Stray = append(rep.Stray, name)
			continue
		}
		size, err := s.verifyObject(c)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			rep.Corrupt = append(rep.Corrupt, CorruptObject{CID: c, Err: err})
		}
		rep.Objects++
		rep.Bytes += size
	}
	return rep, nil
}

// verifyObject hashes the file of object c in full and records the result
// for openVerified. It returns the file's size, an error wrapping
// fs.ErrNotExist if the object is gone, or one wrapping ErrCorrupt.
func (s *Store) verifyObject(c cid.Cid) (int64, error) {
	key := c.KeyString()
	forget := func() {
		s.mu.Lock()
		delete(s.verified, key)
		s.mu.Unlock()
	}
	f, err := os.Open(filepath.Join(s.objects, c.String()))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		forget()
		return 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, c, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		forget()
		return 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, c, err)
	}
	if !info.Mode().IsRegular() || info.Size() > MaxObjectSize {
		forget()
		return info.Size(), fmt.Errorf("%w: %s is not a regular file of at most %d bytes", ErrCorrupt, c, MaxObjectSize)
	}
	if err := verifyFile(f, c, info.Size()); err != nil {
		forget()
		return info.Size(), err
	}
	s.mu.Lock()
	s.verified[key] = stamp{size: info.Size(), mtime: info.ModTime()}
	s.mu.Unlock()
	return info.Size(), nil
}
