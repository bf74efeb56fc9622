package shards

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
)

// maxPinsFile bounds the pin file (about 160,000 CIDs).
const maxPinsFile = 10 << 20

func (s *Store) pinsPath() string { return filepath.Join(s.dir, "pins") }

// Pins returns the pinned CIDs, sorted by their string form. The pin file
// (dir/pins, one CID per line) is read on every call; a malformed file is
// an error wrapping ErrCorrupt.
func (s *Store) Pins() ([]cid.Cid, error) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	return s.readPins()
}

func (s *Store) readPins() ([]cid.Cid, error) {
	f, err := os.Open(s.pinsPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shards: pins: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxPinsFile+1))
	if err != nil {
		return nil, fmt.Errorf("shards: pins: %w", err)
	}
	if len(data) > maxPinsFile {
		return nil, fmt.Errorf("%w: pin file %s exceeds %d bytes", ErrCorrupt, s.pinsPath(), maxPinsFile)
	}
	var out []cid.Cid
	for i, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		c, err := ParseCID(line)
		if err != nil {
			return nil, fmt.Errorf("%w: pin file %s line %d: %w", ErrCorrupt, s.pinsPath(), i+1, err)
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b cid.Cid) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, cid.Cid.Equals), nil
}

// writePins replaces the pin file atomically (temp file, fsync, rename).
func (s *Store) writePins(pins []cid.Cid) (err error) {
	var buf bytes.Buffer
	for _, c := range pins {
		buf.WriteString(c.String())
		buf.WriteByte('\n')
	}
	f, err := os.CreateTemp(s.dir, ".pins-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = s.fault(); err != nil {
		return err
	}
	if _, err = f.Write(buf.Bytes()); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), s.pinsPath()); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// Pin protects c from GC; pinning a manifest also protects its head and
// blocks. c need not be in the store yet (pin before fetching).
func (s *Store) Pin(c cid.Cid) error {
	if err := CheckCID(c); err != nil {
		return fmt.Errorf("shards: pin: %w", err)
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	pins, err := s.readPins()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(pins, c.Equals) {
		return nil
	}
	if err := s.writePins(append(pins, c)); err != nil {
		return fmt.Errorf("shards: pin %s: %w", c, err)
	}
	return nil
}

// Unpin removes the pin on c; unpinning an unpinned CID is not an error.
func (s *Store) Unpin(c cid.Cid) error {
	if err := CheckCID(c); err != nil {
		return fmt.Errorf("shards: unpin: %w", err)
	}
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	pins, err := s.readPins()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(pins, c.Equals)
	if i < 0 {
		return nil
	}
	if err := s.writePins(slices.Delete(pins, i, i+1)); err != nil {
		return fmt.Errorf("shards: unpin %s: %w", c, err)
	}
	return nil
}

// manifestPrefix starts every encoded manifest.
var manifestPrefix = []byte(`{"format":"` + ManifestFormat + `"`)

// GC removes every object that is neither pinned nor named by a pinned
// manifest present in the store, and partial files of fetches no longer
// in progress unless their object is protected (they are kept to resume).
// It returns the CIDs removed and the bytes freed. An object stored or
// fetched while GC runs may be removed unless pinned first.
func (s *Store) GC() (removed []cid.Cid, freed int64, err error) {
	s.pinMu.Lock()
	defer s.pinMu.Unlock()
	pins, err := s.readPins()
	if err != nil {
		return nil, 0, fmt.Errorf("shards: gc: %w", err)
	}
	keep := make(map[string]bool)
	for _, p := range pins {
		keep[p.KeyString()] = true
		if size, err := s.Size(p); err != nil || size > MaxManifestSize {
			continue
		}
		data, err := s.Get(p)
		if err != nil || !bytes.HasPrefix(data, manifestPrefix) {
			continue
		}
		m, err := DecodeManifest(data)
		if err != nil {
			s.log.Warn("shards: gc: pinned object looks like a manifest but does not decode", "cid", p, "err", err)
			continue
		}
		for _, o := range m.Objects() {
			keep[o.KeyString()] = true
		}
	}
	objs, err := s.List()
	if err != nil {
		return nil, 0, fmt.Errorf("shards: gc: %w", err)
	}
	for _, c := range objs {
		if keep[c.KeyString()] {
			continue
		}
		size, _ := s.Size(c)
		if err := s.Delete(c); err != nil {
			return removed, freed, fmt.Errorf("shards: gc: %w", err)
		}
		removed = append(removed, c)
		freed += size
		s.log.Debug("shards: gc removed object", "cid", c, "bytes", size)
	}
	entries, err := os.ReadDir(s.partial)
	if err != nil {
		return removed, freed, fmt.Errorf("shards: gc: %w", err)
	}
	for _, e := range entries {
		c, err := ParseCID(e.Name())
		if err == nil && c.String() == e.Name() && (keep[c.KeyString()] || s.isFetching(c)) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if strings.HasPrefix(e.Name(), ".") && time.Since(info.ModTime()) < staleTemp {
			continue
		}
		if err := os.Remove(filepath.Join(s.partial, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, freed, fmt.Errorf("shards: gc: %w", err)
		}
		freed += info.Size()
	}
	s.log.Info("shards: gc", "removed", len(removed), "freed", freed)
	return removed, freed, nil
}
