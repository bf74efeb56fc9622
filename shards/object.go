package shards

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/ipfs/go-cid"
)

// hashBuf is the read size used when hashing files.
const hashBuf = 1 << 20

// openVerified opens object c for range reads. The first open of each
// version of the file (by size and modification time) hashes it in full;
// later opens trust that result, so serving ranges never re-hashes the
// whole object. A file that fails verification is reported as ErrCorrupt
// and its bytes are never returned.
func (s *Store) openVerified(c cid.Cid) (*os.File, int64, error) {
	if err := CheckCID(c); err != nil {
		return nil, 0, err
	}
	f, err := os.Open(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%w: %s is not in the store at %s", ErrNotFound, c, s.dir)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("shards: open %s: %w", c, err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("shards: open %s: %w", c, err)
	}
	if !info.Mode().IsRegular() || info.Size() > MaxObjectSize {
		f.Close()
		return nil, 0, fmt.Errorf("%w: %s is not a regular file of at most %d bytes", ErrCorrupt, c, MaxObjectSize)
	}
	st := stamp{size: info.Size(), mtime: info.ModTime()}
	key := c.KeyString()
	s.mu.Lock()
	ok := s.verified[key] == st
	s.mu.Unlock()
	if ok {
		return f, st.size, nil
	}
	if err := verifyFile(f, c, st.size); err != nil {
		f.Close()
		return nil, 0, err
	}
	s.mu.Lock()
	s.verified[key] = st
	s.mu.Unlock()
	return f, st.size, nil
}

// verifyFile hashes size bytes of f and compares them with c.
func verifyFile(f io.ReaderAt, c cid.Cid, size int64) error {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(f, 0, size), make([]byte, hashBuf)); err != nil {
		return fmt.Errorf("%w: %s: reading: %w", ErrCorrupt, c, err)
	}
	if got := cidOf(h.Sum(nil)); !got.Equals(c) {
		return fmt.Errorf("%w: %s: %w: %d bytes hash to %s", ErrCorrupt, c, ErrMismatch, size, got)
	}
	return nil
}

// ReadAt reads len(p) bytes of object c starting at off, like
// io.ReaderAt. The object is verified against its CID once per version of
// its file (see Get for the errors); a range beyond the object is an error
// wrapping ErrRange.
func (s *Store) ReadAt(c cid.Cid, p []byte, off int64) (int, error) {
	f, size, err := s.openVerified(c)
	if err != nil {
		return 0, fmt.Errorf("shards: read %s: %w", c, err)
	}
	defer f.Close()
	if off < 0 || off > size || int64(len(p)) > size-off {
		return 0, fmt.Errorf("%w: %d bytes at %d of %s, which has %d", ErrRange, len(p), off, c, size)
	}
	n, err := f.ReadAt(p, off)
	if err != nil {
		return n, fmt.Errorf("%w: %s: reading: %w", ErrCorrupt, c, err)
	}
	return n, nil
}

// Size returns the size of object c without reading it.
func (s *Store) Size(c cid.Cid) (int64, error) {
	if err := CheckCID(c); err != nil {
		return 0, fmt.Errorf("shards: size: %w", err)
	}
	info, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s is not in the store at %s", ErrNotFound, c, s.dir)
	}
	if err != nil {
		return 0, fmt.Errorf("shards: size of %s: %w", c, err)
	}
	if !info.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s is not a regular file", ErrCorrupt, c)
	}
	return info.Size(), nil
}

// Delete removes object c. Deleting an absent object is not an error.
// Pins are not changed.
func (s *Store) Delete(c cid.Cid) error {
	if err := CheckCID(c); err != nil {
		return fmt.Errorf("shards: delete: %w", err)
	}
	if err := os.Remove(s.path(c)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("shards: delete %s: %w", c, err)
	}
	s.mu.Lock()
	delete(s.verified, c.KeyString())
	s.mu.Unlock()
	return nil
}

// partialPath is where an object being fetched is assembled.
func (s *Store) partialPath(c cid.Cid) string {
	return s.partial + string(os.PathSeparator) + c.String()
}

// beginFetch marks c as being fetched, so a second fetch of it and GC
// leave its partial file alone. The returned function ends the mark. If
// c is already being fetched, beginFetch returns instead a channel that
// is closed when that fetch ends.
func (s *Store) beginFetch(c cid.Cid) (end func(), busy <-chan struct{}) {
	key := c.KeyString()
	s.mu.Lock()
	defer s.mu.Unlock()
	if ch, ok := s.fetching[key]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	s.fetching[key] = ch
	return func() {
		s.mu.Lock()
		delete(s.fetching, key)
		s.mu.Unlock()
		close(ch)
	}, nil
}

func (s *Store) isFetching(c cid.Cid) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.fetching[c.KeyString()]
	return ok
}

// install moves a complete, synced and verified partial file into
// objects/ under c and makes the rename durable.
func (s *Store) install(c cid.Cid, partial string) error {
	if err := os.Rename(partial, s.path(c)); err != nil {
		return err
	}
	if info, err := os.Stat(s.path(c)); err == nil {
		s.mu.Lock()
		s.verified[c.KeyString()] = stamp{size: info.Size(), mtime: info.ModTime()}
		s.mu.Unlock()
	}
	return syncDir(s.objects)
}
