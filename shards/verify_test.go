package shards

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestVerify damages a store in every way a disk or a crash can (flipped
// bit, truncation, an empty file, a directory under a CID) and checks
// that Verify reports exactly the damaged objects, leaves the good ones
// alone, and that a Put of the right bytes repairs a damaged one.
func TestVerify(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if rep, err := st.Verify(ctx); err != nil || rep.Objects != 0 || len(rep.Corrupt) != 0 {
		t.Fatalf("empty store: %+v, %v", rep, err)
	}
	var ids []cid.Cid
	var total int64
	for i := range 6 {
		data := make([]byte, 1000*(i+1))
		for k := range data {
			data[k] = byte(k*7 + i)
		}
		c, err := st.Put(data)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c)
		total += int64(len(data))
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Objects != 6 || rep.Bytes != total || len(rep.Corrupt) != 0 || len(rep.Stray) != 0 {
		t.Fatalf("healthy store: got %+v, want 6 objects of %d bytes, none corrupt", rep, total)
	}

	path := func(c cid.Cid) string { return filepath.Join(dir, "objects", c.String()) }
	original, err := os.ReadFile(path(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	// A flipped bit, a truncation, an empty file and a directory where
	// an object should be; a temp file of a write in progress and a
	// stray name are not objects.
	flipped := slices.Clone(original)
	flipped[len(flipped)/2] ^= 0x10
	if err := os.WriteFile(path(ids[0]), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path(ids[1]), 10); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path(ids[2]), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	dirCID := Sum([]byte("a directory"))
	if err := os.Mkdir(path(dirCID), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects", tempPrefix+"123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "objects", "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err = st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rep.Corrupt {
		if !errors.Is(c.Err, ErrCorrupt) {
			t.Errorf("%s: error %v does not wrap ErrCorrupt", c.CID, c.Err)
		}
		got = append(got, c.CID.String())
	}
	want := []string{ids[0].String(), ids[1].String(), ids[2].String(), dirCID.String()}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("corrupt objects:\n got %v\nwant %v", got, want)
	}
	if rep.Objects != 7 {
		t.Errorf("checked %d objects, want 7 (six files and the directory)", rep.Objects)
	}
	if !slices.Equal(rep.Stray, []string{"notes.txt"}) {
		t.Errorf("stray names %v, want [notes.txt]", rep.Stray)
	}
	// Verify forgets what openVerified had cached: the damaged object is
	// not served.
	if _, err := st.ReadAt(ids[0], make([]byte, 4), 0); !errors.Is(err, ErrCorrupt) {
		t.Errorf("ReadAt of a corrupt object after Verify: %v, want ErrCorrupt", err)
	}

	// A Put of the right bytes repairs the object.
	if _, err := st.Put(original); err != nil {
		t.Fatal(err)
	}
	rep, err = st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 3 {
		t.Errorf("after repairing one object, %d corrupt, want 3: %+v", len(rep.Corrupt), rep.Corrupt)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := st.Verify(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify with a cancelled context: %v, want context.Canceled", err)
	}
}
