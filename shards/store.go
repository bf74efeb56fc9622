package shards

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
)

// tempPrefix starts the name of an object being written. Such files are
// never listed or served, and Open removes stale ones.
const tempPrefix = ".put-"

// staleTemp is how old a temp file must be before Open removes it, so an
// Open by a second process never deletes a Put in flight in the first.
const staleTemp = time.Hour

// Store is an on-disk repository of content-addressed objects: the file
// dir/objects/<cid> holds the bytes whose CID (see Sum) is <cid>. It is
// safe for concurrent use, by goroutines and by processes sharing dir.
type Store struct {
	dir     string
	objects string
	partial string
	log     *slog.Logger

	// writeFault, when set (tests only), is called before every write of
	// object or partial-file bytes; an error it returns is treated as the
	// write's error, simulating a full disk.
	writeFault func() error

	mu       sync.Mutex
	verified map[string]stamp         // objects hashed in full since they last changed
	fetching map[string]chan struct{} // CIDs with a fetch in progress into partial/; closed when it ends
	pinMu    sync.Mutex               // serialises pin-file updates and GC
}

// stamp identifies one version of an object file.
type stamp struct {
	size  int64
	mtime time.Time
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// Open opens the store rooted at dir, creating dir and dir/objects if
// needed, and removes temp files left by a crashed Put.
func Open(dir string, opts ...Option) (*Store, error) {
	if dir == "" {
		return nil, errors.New("shards: open store: empty directory name")
	}
	s := &Store{
		dir:      dir,
		objects:  filepath.Join(dir, "objects"),
		partial:  filepath.Join(dir, "partial"),
		log:      slog.New(slog.DiscardHandler),
		verified: make(map[string]stamp),
		fetching: make(map[string]chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{s.objects, s.partial} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("shards: open store: %w", err)
		}
	}
	entries, err := os.ReadDir(s.objects)
	if err != nil {
		return nil, fmt.Errorf("shards: open store: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleTemp {
			p := filepath.Join(s.objects, e.Name())
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Warn("shards: cannot remove stale temp file", "path", p, "err", err)
			} else {
				s.log.Info("shards: removed stale temp file", "path", p)
			}
		}
	}
	return s, nil
}

// Dir returns the directory the store was opened on.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(c cid.Cid) string { return filepath.Join(s.objects, c.String()) }

// Put stores data under its CID and returns the CID. The object appears
// under its name only once fully written and synced (temp file, fsync,
// rename, directory fsync), so a crash never leaves a partial object under
// a CID. If a valid copy is already present Put leaves it; a corrupt copy
// is replaced.
func (s *Store) Put(data []byte) (cid.Cid, error) {
	if int64(len(data)) > MaxObjectSize {
		return cid.Undef, fmt.Errorf("shards: put: object of %d bytes exceeds %d", len(data), MaxObjectSize)
	}
	c := Sum(data)
	switch _, err := s.Get(c); {
	case err == nil:
		return c, nil
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("shards: replacing corrupt object", "cid", c)
	case !errors.Is(err, ErrNotFound):
		return cid.Undef, fmt.Errorf("shards: put %s: %w", c, err)
	}
	if err := s.write(c, data); err != nil {
		return cid.Undef, fmt.Errorf("shards: put %s: %w", c, err)
	}
	return c, nil
}

func (s *Store) write(c cid.Cid, data []byte) (err error) {
	f, err := os.CreateTemp(s.objects, tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = s.fault(); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, s.path(c)); err != nil {
		return err
	}
	return syncDir(s.objects)
}

// fault returns the simulated write error, if any.
func (s *Store) fault() error {
	if s.writeFault != nil {
		return s.writeFault()
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the object c after checking that its bytes hash to c. It
// returns an error wrapping ErrNotFound if the store has no such object and
// ErrCorrupt if the stored bytes do not match; corrupt bytes are never
// returned.
func (s *Store) Get(c cid.Cid) ([]byte, error) {
	if err := CheckCID(c); err != nil {
		return nil, fmt.Errorf("shards: get: %w", err)
	}
	f, err := os.Open(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is not in the store at %s", ErrNotFound, c, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("shards: get %s: %w", c, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("shards: get %s: %w", c, err)
	}
	if !info.Mode().IsRegular() || info.Size() > MaxObjectSize {
		return nil, fmt.Errorf("%w: %s is not a regular file of at most %d bytes", ErrCorrupt, c, MaxObjectSize)
	}
	data := make([]byte, info.Size())
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("%w: %s: reading: %w", ErrCorrupt, c, err)
	}
	if n, _ := f.Read(make([]byte, 1)); n != 0 {
		return nil, fmt.Errorf("%w: %s grew while being read", ErrCorrupt, c)
	}
	if err := Verify(c, data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return data, nil
}

// Has reports whether the store has a file for c. It does not read the
// file; Get verifies.
func (s *Store) Has(c cid.Cid) bool {
	if CheckCID(c) != nil {
		return false
	}
	info, err := os.Stat(s.path(c))
	return err == nil && info.Mode().IsRegular()
}

// List returns the CIDs of all objects, sorted by their string form.
// Files whose names are not canonical CIDs are ignored.
func (s *Store) List() ([]cid.Cid, error) {
	entries, err := os.ReadDir(s.objects)
	if err != nil {
		return nil, fmt.Errorf("shards: list: %w", err)
	}
	var out []cid.Cid
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		c, err := ParseCID(e.Name())
		if err != nil || c.String() != e.Name() {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
