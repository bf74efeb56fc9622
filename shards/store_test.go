package shards

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
)

func TestStorePutGet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	st, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello, strata")
	c, err := st.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Equals(Sum(data)) {
		t.Errorf("Put returned %s, want %s", c, Sum(data))
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", c.String())); err != nil {
		t.Errorf("object file: %v", err)
	}
	got, err := st.Get(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get = %q, %v; want %q", got, err, data)
	}
	if !st.Has(c) {
		t.Error("Has = false after Put")
	}
	missing := Sum([]byte("missing"))
	if st.Has(missing) {
		t.Error("Has(missing) = true")
	}
	if _, err := st.Get(missing); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing): got %v, want ErrNotFound", err)
	}
	// Put is idempotent.
	if c2, err := st.Put(data); err != nil || !c2.Equals(c) {
		t.Errorf("second Put = %s, %v", c2, err)
	}
	// Reopening sees the object.
	st2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := st2.Get(c); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Get after reopen = %q, %v", got, err)
	}
}

func TestStoreCorrupt(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("shard"), 1000)
	c, err := st.Put(data)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(st.Dir(), "objects", c.String())
	bad := bytes.Clone(data)
	bad[1234] ^= 0x40
	for name, content := range map[string][]byte{"flipped": bad, "truncated": data[:100], "empty": nil} {
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := st.Get(c)
		if !errors.Is(err, ErrCorrupt) || got != nil {
			t.Errorf("%s: Get = %d bytes, %v; want ErrCorrupt", name, len(got), err)
		}
	}
	// Putting the right bytes repairs the object.
	if _, err := st.Put(data); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(c); err != nil || !bytes.Equal(got, data) {
		t.Errorf("after repair: Get = %d bytes, %v", len(got), err)
	}
}

func TestStoreList(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for i := range 10 {
		c, err := st.Put(fmt.Appendf(nil, "object %d", i))
		if err != nil {
			t.Fatal(err)
		}
		want[c.String()] = true
	}
	// Junk and in-flight temp files are not objects.
	objs := filepath.Join(st.Dir(), "objects")
	for _, name := range []string{"README", tempPrefix + "123", Sum(nil).String() + ".bak"} {
		if err := os.WriteFile(filepath.Join(objs, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(objs, Sum([]byte("dir")).String()), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d CIDs, want %d: %v", len(got), len(want), got)
	}
	for i, c := range got {
		if !want[c.String()] {
			t.Errorf("List returned unexpected %s", c)
		}
		if i > 0 && got[i-1].String() >= c.String() {
			t.Errorf("List not sorted at %d", i)
		}
	}
}

func TestStoreRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	objs := filepath.Join(dir, "objects")
	stale := filepath.Join(objs, tempPrefix+"stale")
	fresh := filepath.Join(objs, tempPrefix+"fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp file still present: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file (maybe another process's Put) removed: %v", err)
	}
}

func TestStoreRejectsForeignCID(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Put([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, foreign := range []cid.Cid{cid.Undef, cid.NewCidV0(c.Hash()), cid.NewCidV1(cid.DagProtobuf, c.Hash())} {
		if _, err := st.Get(foreign); !errors.Is(err, ErrCID) {
			t.Errorf("Get(%v): got %v, want ErrCID", foreign, err)
		}
		if st.Has(foreign) {
			t.Errorf("Has(%v) = true", foreign)
		}
	}
	if _, err := Open(""); err == nil {
		t.Error(`Open("") succeeded`)
	}
}

func TestStoreConcurrent(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const workers, objects = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*objects)
	for w := range workers {
		wg.Go(func() {
			for i := range objects {
				// Workers of equal parity write the same objects, racing on each name.
				data := bytes.Repeat(fmt.Appendf(nil, "obj%d-", i), 500+w%2)
				c, err := st.Put(data)
				if err != nil {
					errs <- err
					return
				}
				got, err := st.Get(c)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("object %d: read back different bytes", i)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	list, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2*objects {
		t.Errorf("List has %d objects, want %d", len(list), 2*objects)
	}
}

func BenchmarkStorePut(b *testing.B) {
	st, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := randBytes(7, 4<<20)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		data[0] = byte(i) // a new object every time
		data[1] = byte(i >> 8)
		if _, err := st.Put(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkStoreGet(b *testing.B) {
	st, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := randBytes(7, 4<<20)
	c, err := st.Put(data)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := st.Get(c); err != nil {
			b.Fatal(err)
		}
	}
}
