package shards

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestPinsPersist(t *testing.T) {
	dir := t.TempDir()
	st := openStoreAt(t, dir)
	a, b := Sum([]byte("a")), Sum([]byte("b"))
	for _, c := range []cid.Cid{a, b, a} {
		if err := st.Pin(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Unpin(a); err != nil {
		t.Fatal(err)
	}
	if err := st.Unpin(Sum([]byte("never pinned"))); err != nil {
		t.Errorf("Unpin of an unpinned CID: %v", err)
	}
	got, err := openStoreAt(t, dir).Pins()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Equals(b) {
		t.Errorf("Pins after reopen = %v, want [%s]", got, b)
	}
	if err := st.Pin(cid.Undef); !errors.Is(err, ErrCID) {
		t.Errorf("Pin(Undef) = %v, want ErrCID", err)
	}
}

func TestPinsRejectsDamagedFile(t *testing.T) {
	st := openStoreAt(t, t.TempDir())
	if err := os.WriteFile(filepath.Join(st.Dir(), "pins"), []byte("not-a-cid\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pins(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Pins = %v, want ErrCorrupt", err)
	}
	if _, _, err := st.GC(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("GC with a damaged pin file = %v, want ErrCorrupt (and nothing removed)", err)
	}
}

func TestPinFailedWriteKeepsOldPins(t *testing.T) {
	st := openStoreAt(t, t.TempDir())
	a := Sum([]byte("a"))
	if err := st.Pin(a); err != nil {
		t.Fatal(err)
	}
	st.writeFault = func() error { return syscall.ENOSPC }
	if err := st.Pin(Sum([]byte("b"))); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Pin on a full disk = %v, want ENOSPC", err)
	}
	st.writeFault = nil
	got, err := st.Pins()
	if err != nil || len(got) != 1 || !got[0].Equals(a) {
		t.Errorf("Pins = %v, %v; want [%s]", got, err, a)
	}
	entries, _ := os.ReadDir(st.Dir())
	for _, e := range entries {
		if e.Name() != "pins" && e.Name() != "objects" && e.Name() != "partial" {
			t.Errorf("leftover %s in the repo", e.Name())
		}
	}
}

func TestGC(t *testing.T) {
	st := openStoreAt(t, t.TempDir())
	put := func(s string) cid.Cid {
		c, err := st.Put([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cfg := tinyConfig(true)
	m := &Manifest{Format: ManifestFormat, Name: "gc", Config: cfg, ChunkSize: DefaultChunkSize}
	m.Head = Ref{CID: put("head"), Size: 4}
	var blocks []cid.Cid
	for i := range cfg.NLayers {
		s := fmt.Sprintf("block %d", i)
		m.Blocks = append(m.Blocks, Ref{CID: put(s), Size: int64(len(s))})
		blocks = append(blocks, m.Blocks[i].CID)
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	man := put(string(enc))
	loose := put("pinned on its own")
	junk1, junk2 := put("unreferenced one"), put("unreferenced two!")
	if err := st.Pin(man); err != nil {
		t.Fatal(err)
	}
	if err := st.Pin(loose); err != nil {
		t.Fatal(err)
	}
	// A stale partial file of an unpinned object, and one of a pinned object to resume.
	stale := Sum([]byte("stale"))
	if err := os.WriteFile(st.partialPath(stale), make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	resumable := Sum([]byte("resumable"))
	if err := st.Pin(resumable); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(st.partialPath(resumable), make([]byte, 50), 0o644); err != nil {
		t.Fatal(err)
	}

	removed, freed, err := st.GC()
	if err != nil {
		t.Fatal(err)
	}
	want := []cid.Cid{junk1, junk2}
	slices.SortFunc(removed, func(a, b cid.Cid) int { return cmpCID(a, b) })
	slices.SortFunc(want, func(a, b cid.Cid) int { return cmpCID(a, b) })
	if !slices.EqualFunc(removed, want, cid.Cid.Equals) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	if wantFreed := int64(len("unreferenced one")+len("unreferenced two!")) + 100; freed != wantFreed {
		t.Errorf("freed %d bytes, want %d", freed, wantFreed)
	}
	for _, c := range append([]cid.Cid{man, loose, m.Head.CID}, blocks...) {
		if _, err := st.Get(c); err != nil {
			t.Errorf("protected object %s: %v", c, err)
		}
	}
	if _, err := os.Stat(st.partialPath(stale)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale partial file kept: %v", err)
	}
	if _, err := os.Stat(st.partialPath(resumable)); err != nil {
		t.Errorf("partial file of a pinned object removed: %v", err)
	}

	// Unpinning the manifest releases it and its shards.
	if err := st.Unpin(man); err != nil {
		t.Fatal(err)
	}
	removed, _, err = st.GC()
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2+cfg.NLayers {
		t.Errorf("after unpinning the manifest GC removed %d objects, want %d", len(removed), 2+cfg.NLayers)
	}
	if !st.Has(loose) {
		t.Error("pinned object removed")
	}
}

func cmpCID(a, b cid.Cid) int {
	switch as, bs := a.String(), b.String(); {
	case as < bs:
		return -1
	case as > bs:
		return 1
	}
	return 0
}

func TestStoreSizeDelete(t *testing.T) {
	st := openStoreAt(t, t.TempDir())
	c, err := st.Put([]byte("12345"))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.Size(c); err != nil || n != 5 {
		t.Errorf("Size = %d, %v; want 5", n, err)
	}
	if err := st.Delete(c); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Size(c); !errors.Is(err, ErrNotFound) {
		t.Errorf("Size after Delete = %v, want ErrNotFound", err)
	}
	if err := st.Delete(c); err != nil {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := st.ReadAt(c, make([]byte, 1), 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("ReadAt after Delete = %v, want ErrNotFound", err)
	}
}
