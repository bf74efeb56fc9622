package shards

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/mesh"
)

const testChunk = 64 << 10

// newHost starts a libp2p host on loopback (mDNS off), closed when tb ends.
func newHost(tb testing.TB) *mesh.Mesh {
	tb.Helper()
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		tb.Fatal(err)
	}
	m, err := mesh.New(context.Background(), mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return m
}

func providerOf(m *mesh.Mesh) Provider {
	return Provider{Peer: m.ID().String(), Addrs: m.AddrStrings()}
}

func openStoreAt(tb testing.TB, dir string) *Store {
	tb.Helper()
	st, err := Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// object is a synthetic chunked object.
type object struct {
	data   []byte
	cid    cid.Cid
	chunks []Digest
}

func synthetic(seed uint64, size, chunk int) object {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	ref := NewRef(data, chunk)
	return object{data: data, cid: ref.CID, chunks: ref.Chunks}
}

// serving starts a host whose store holds objs and serves them.
func serving(tb testing.TB, objs ...[]byte) (*mesh.Mesh, *Store) {
	tb.Helper()
	h := newHost(tb)
	st := openStoreAt(tb, tb.TempDir())
	for _, o := range objs {
		if _, err := st.Put(o); err != nil {
			tb.Fatal(err)
		}
	}
	h.Handle(ContentProtocol, st.ServeContent)
	return h, st
}

func checkStored(t *testing.T, st *Store, o object) {
	t.Helper()
	got, err := st.Get(o.cid)
	if err != nil {
		t.Fatalf("Get after fetch: %v", err)
	}
	if !bytes.Equal(got, o.data) {
		t.Fatal("fetched bytes differ from the original")
	}
	if _, err := os.Stat(st.partialPath(o.cid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after a complete fetch: %v", err)
	}
}

func TestFetchFromOneAndThreeProviders(t *testing.T) {
	o := synthetic(1, 40*testChunk+123, testChunk)
	var provs []Provider
	for range 3 {
		h, _ := serving(t, o.data)
		provs = append(provs, providerOf(h))
	}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("providers=%d", n), func(t *testing.T) {
			client := newHost(t)
			st := openStoreAt(t, t.TempDir())
			f := &Fetcher{Store: st, Opener: client, Parallel: 4}
			var last atomic.Int64
			err := f.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, provs[:n],
				func(done, total int64) { last.Store(done) })
			if err != nil {
				t.Fatal(err)
			}
			checkStored(t, st, o)
			if got := f.BytesFetched(); got != int64(len(o.data)) {
				t.Errorf("BytesFetched = %d, want %d", got, len(o.data))
			}
			if last.Load() != int64(len(o.data)) {
				t.Errorf("last progress %d, want %d", last.Load(), len(o.data))
			}
			if b := f.Banned(); len(b) != 0 {
				t.Errorf("honest providers banned: %+v", b)
			}
			// A second fetch finds the object in the store and fetches nothing.
			if err := f.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, provs[:n], nil); err != nil {
				t.Fatal(err)
			}
			if got := f.BytesFetched(); got != int64(len(o.data)) {
				t.Errorf("BytesFetched after refetch = %d, want %d", got, len(o.data))
			}
		})
	}
}

// TestConcurrentFetchesOfOneObject starts several fetches of the same
// object into one store at once (a node checking a proposal while its
// prefetch of the same update runs): all succeed, the bytes travel once.
func TestConcurrentFetchesOfOneObject(t *testing.T) {
	o := synthetic(7, 24*testChunk+5, testChunk)
	h, _ := serving(t, o.data)
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t), Parallel: 2}
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			errs <- f.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, []Provider{providerOf(h)}, nil)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent fetch: %v", err)
		}
	}
	checkStored(t, st, o)
	if got := f.BytesFetched(); got != int64(len(o.data)) {
		t.Errorf("BytesFetched = %d, want %d (the object once)", got, len(o.data))
	}

	// A waiting fetch gives up with its own context.
	o2 := synthetic(8, 4*testChunk, testChunk)
	end, busy := st.beginFetch(o2.cid)
	if end == nil || busy != nil {
		t.Fatal("beginFetch on an idle object did not start a fetch")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := f.Fetch(ctx, o2.cid, int64(len(o2.data)), o2.chunks, testChunk, []Provider{providerOf(h)}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("fetch waiting on another, cancelled: err = %v, want context.Canceled", err)
	}
	end()
}

func TestFetchSingleChunkObjectAndRestartedProvider(t *testing.T) {
	data := []byte("a small object without a chunk list")
	c := Sum(data)
	h := newHost(t)
	dir := t.TempDir()
	first := openStoreAt(t, dir)
	if _, err := first.Put(data); err != nil {
		t.Fatal(err)
	}
	// A node restarted on its repo serves what it had without fetching.
	h.Handle(ContentProtocol, openStoreAt(t, dir).ServeContent)

	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t)}
	if err := f.Fetch(context.Background(), c, int64(len(data)), nil, 0, []Provider{providerOf(h)}, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st, object{data: data, cid: c})
}

func TestFetchUnknownCID(t *testing.T) {
	h, _ := serving(t, []byte("something else"))
	h2, _ := serving(t)
	missing := Sum([]byte("nobody has this"))
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t)}
	err := f.Fetch(context.Background(), missing, 5, nil, 0, []Provider{providerOf(h), providerOf(h2)}, nil)
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrNotFound and ErrUnavailable", err)
	}
	for _, want := range []string{missing.String(), "not found on peer " + h.ID().String(), h2.ID().String()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if len(f.Banned()) != 0 {
		t.Errorf("a peer without the object was banned: %+v", f.Banned())
	}
	if st.Has(missing) {
		t.Error("object present after a failed fetch")
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// flipper corrupts the last byte of every large write: body bytes of the
// responses of an evil provider.
type flipper struct{ io.ReadWriteCloser }

func (f flipper) Write(p []byte) (int, error) {
	if len(p) > 1024 {
		q := bytes.Clone(p)
		q[len(q)-1] ^= 0x40
		p = q
	}
	return f.ReadWriteCloser.Write(p)
}

func TestFetchBansCorruptingProvider(t *testing.T) {
	o := synthetic(2, 24*testChunk, testChunk)
	evil := newHost(t)
	est := openStoreAt(t, t.TempDir())
	if _, err := est.Put(o.data); err != nil {
		t.Fatal(err)
	}
	evil.Handle(ContentProtocol, func(rw io.ReadWriteCloser, remote string) {
		est.ServeContent(flipper{rw}, remote)
	})
	honest, _ := serving(t, o.data)

	st := openStoreAt(t, t.TempDir())
	var logs syncBuffer
	f := &Fetcher{Store: st, Opener: newHost(t), Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	// The evil provider is listed first so it gets work.
	if err := f.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk,
		[]Provider{providerOf(evil), providerOf(honest)}, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st, o)
	bans := f.Banned()
	if len(bans) != 1 {
		t.Fatalf("bans = %+v, want one", bans)
	}
	b := bans[0]
	if b.Peer != evil.ID().String() || !b.CID.Equals(o.cid) || b.Reason == "" || b.Time.IsZero() {
		t.Errorf("ban = %+v, want peer %s, cid %s, a reason and a time", b, evil.ID(), o.cid)
	}
	if !strings.Contains(logs.String(), "banned provider") || !strings.Contains(logs.String(), evil.ID().String()) {
		t.Errorf("ban evidence not logged; log:\n%s", logs.String())
	}

	// With only the evil provider the fetch fails, naming it.
	st2 := openStoreAt(t, t.TempDir())
	f2 := &Fetcher{Store: st2, Opener: newHost(t)}
	err := f2.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, []Provider{providerOf(evil)}, nil)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), evil.ID().String()) {
		t.Fatalf("err = %v, want ErrUnavailable naming %s", err, evil.ID())
	}
	if st2.Has(o.cid) {
		t.Error("object stored from a corrupting provider")
	}
}

// verifiedOnDisk counts the bytes of the partial file of o that match their digests.
func verifiedOnDisk(t *testing.T, st *Store, o object, chunk int) int64 {
	t.Helper()
	data, err := os.ReadFile(st.partialPath(o.cid))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for k, d := range o.chunks {
		piece := data[k*chunk : min((k+1)*chunk, len(data))]
		if sha256.Sum256(piece) == d {
			n += int64(len(piece))
		}
	}
	return n
}

func TestFetchResumesWithoutRefetchingVerifiedChunks(t *testing.T) {
	o := synthetic(3, 64*testChunk+77, testChunk)
	h, _ := serving(t, o.data)
	provs := []Provider{providerOf(h)}
	dir := t.TempDir()

	// First run: interrupted after 10 chunks, like a killed node.
	st := openStoreAt(t, dir)
	f := &Fetcher{Store: st, Opener: newHost(t), Parallel: 2}
	ctx, cancel := context.WithCancel(context.Background())
	err := f.Fetch(ctx, o.cid, int64(len(o.data)), o.chunks, testChunk, provs, func(done, total int64) {
		if done >= 10*testChunk {
			cancel()
		}
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: err = %v, want context.Canceled", err)
	}
	if st.Has(o.cid) {
		t.Fatal("object installed after an interrupted fetch")
	}
	have := verifiedOnDisk(t, st, o, testChunk)
	if have < 10*testChunk || have >= int64(len(o.data)) {
		t.Fatalf("%d verified bytes on disk after interruption, want at least %d and less than %d", have, 10*testChunk, len(o.data))
	}
	// Damage one verified chunk on disk: it must be fetched again.
	pf, err := os.OpenFile(st.partialPath(o.cid), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pf.WriteAt([]byte{^o.data[5]}, 5); err != nil {
		t.Fatal(err)
	}
	pf.Close()
	have -= testChunk

	// Restart: a new store and fetcher on the same repo.
	st2 := openStoreAt(t, dir)
	f2 := &Fetcher{Store: st2, Opener: newHost(t)}
	if err := f2.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, provs, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st2, o)
	if got, want := f2.BytesFetched(), int64(len(o.data))-have; got != want {
		t.Errorf("bytes fetched after restart = %d, want %d (size %d - %d verified)", got, want, len(o.data), have)
	}
}

func TestFetchFullDisk(t *testing.T) {
	o := synthetic(4, 16*testChunk, testChunk)
	h, _ := serving(t, o.data)
	st := openStoreAt(t, t.TempDir())
	var writes atomic.Int64
	st.writeFault = func() error {
		if writes.Add(1) > 3 {
			return syscall.ENOSPC
		}
		return nil
	}
	f := &Fetcher{Store: st, Opener: newHost(t)}
	err := f.Fetch(context.Background(), o.cid, int64(len(o.data)), o.chunks, testChunk, []Provider{providerOf(h)}, nil)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	if st.Has(o.cid) {
		t.Error("object visible after a failed write")
	}
	if _, err := os.Stat(st.partialPath(o.cid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after a failed write: %v", err)
	}
	if len(f.Banned()) != 0 {
		t.Errorf("provider banned for a local failure: %+v", f.Banned())
	}

	// Put fails the same way and leaves nothing behind.
	if _, err := st.Put([]byte("payload")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Put err = %v, want ENOSPC", err)
	}
	entries, _ := os.ReadDir(filepath.Join(st.Dir(), "objects"))
	if len(entries) != 0 {
		t.Errorf("objects/ holds %d entries after failed writes", len(entries))
	}
}

func TestFetchManifest(t *testing.T) {
	cfg := tinyConfig(true)
	ref := func(s string) Ref { return Ref{CID: Sum([]byte(s)), Size: int64(len(s))} }
	m := &Manifest{Format: ManifestFormat, Name: "tiny", Config: cfg, Head: ref("head"), ChunkSize: DefaultChunkSize}
	for i := range cfg.NLayers {
		m.Blocks = append(m.Blocks, ref(fmt.Sprintf("block %d", i)))
	}
	enc, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	junk := []byte(`{"format":"strata/manifest/1","name":`)
	h, _ := serving(t, enc, junk)
	provs := []Provider{providerOf(h)}
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t)}

	got, err := f.FetchManifest(context.Background(), Sum(enc), provs)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := got.CID(); !c.Equals(Sum(enc)) || !st.Has(c) {
		t.Errorf("fetched manifest %s (stored %v), want %s stored", c, st.Has(c), Sum(enc))
	}
	// The manifest names shards nobody has.
	err = f.FetchRef(context.Background(), got, got.Head, provs, nil)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "not found on peer "+h.ID().String()) {
		t.Errorf("FetchRef of a missing shard: err = %v, want ErrNotFound naming the peer", err)
	}

	// Bytes that hash right but are not a manifest.
	_, err = f.FetchManifest(context.Background(), Sum(junk), provs)
	if !errors.Is(err, ErrManifest) {
		t.Errorf("junk manifest: err = %v, want ErrManifest", err)
	}
	if st.Has(Sum(junk)) {
		t.Error("junk manifest stored")
	}
	_, err = f.FetchManifest(context.Background(), Sum([]byte("absent")), provs)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("absent manifest: err = %v, want ErrNotFound", err)
	}
}

// rawRequest sends one request to p and returns the response.
func rawRequest(t *testing.T, o Opener, p Provider, req request) (header, []byte) {
	t.Helper()
	rw, err := o.Open(context.Background(), p.Peer, p.Addrs, ContentProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if _, err := rw.Write(appendRequest(nil, req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(rw)
	var hb [headerSize]byte
	h, err := readHeader(br, &hb)
	if err != nil {
		t.Fatal(err)
	}
	body := make([]byte, h.N)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return h, body
}

func TestServeRanges(t *testing.T) {
	o := synthetic(5, 3*testChunk+5, testChunk)
	h, st := serving(t, o.data)
	p := providerOf(h)
	client := newHost(t)
	for _, r := range []struct{ off, n int }{{0, 0}, {0, 10}, {testChunk - 3, 9}, {len(o.data) - 4, 4}, {len(o.data), 0}} {
		hd, body := rawRequest(t, client, p, request{CID: o.cid, Offset: int64(r.off), Length: r.n})
		if hd.Status != statusOK || hd.Total != int64(len(o.data)) || !bytes.Equal(body, o.data[r.off:r.off+r.n]) {
			t.Errorf("range %d+%d: status %d total %d body %x", r.off, r.n, hd.Status, hd.Total, body)
		}
		buf := make([]byte, r.n)
		if _, err := st.ReadAt(o.cid, buf, int64(r.off)); err != nil || !bytes.Equal(buf, o.data[r.off:r.off+r.n]) {
			t.Errorf("ReadAt %d+%d: %v", r.off, r.n, err)
		}
	}
	if hd, _ := rawRequest(t, client, p, request{CID: o.cid, Offset: int64(len(o.data)) - 1, Length: 2}); hd.Status != statusRange {
		t.Errorf("range beyond the object: status %d, want %d", hd.Status, statusRange)
	}
	if _, err := st.ReadAt(o.cid, make([]byte, 2), int64(len(o.data))-1); !errors.Is(err, ErrRange) {
		t.Errorf("ReadAt beyond the object: err = %v, want ErrRange", err)
	}
	if hd, _ := rawRequest(t, client, p, request{CID: Sum([]byte("x")), Length: 1}); hd.Status != statusNotFound {
		t.Errorf("unknown CID: status %d, want %d", hd.Status, statusNotFound)
	}
	// A damaged object is never served, even after it was verified once.
	path := filepath.Join(st.Dir(), "objects", o.cid.String())
	bad := bytes.Clone(o.data)
	bad[100] ^= 1
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	os.Chtimes(path, future, future)
	if hd, _ := rawRequest(t, client, p, request{CID: o.cid, Length: 10}); hd.Status != statusUnavailable {
		t.Errorf("damaged object: status %d, want %d", hd.Status, statusUnavailable)
	}
}

func TestFetchLargeObjectWithoutChunkList(t *testing.T) {
	// Larger than one request: fetched request by request from one
	// provider and verified against the CID.
	o := synthetic(6, MaxRequest+MaxRequest/2+3, MaxChunkSize)
	h, _ := serving(t, o.data)
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t)}
	if err := f.Fetch(context.Background(), o.cid, int64(len(o.data)), nil, 0, []Provider{providerOf(h)}, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st, o)
}
