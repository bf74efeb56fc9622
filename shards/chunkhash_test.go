package shards

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// sha256Manifest rewrites m as a manifest of the older format, whose
// chunk digests are sha2-256, for the shards objs (head first).
func sha256Manifest(m *Manifest, objs [][]byte) *Manifest {
	old := *m
	old.Format = ManifestFormatSHA256
	redo := func(r Ref, data []byte) Ref {
		if len(r.Chunks) == 0 {
			return r
		}
		r.Chunks = nil
		for off := 0; off < len(data); off += old.ChunkSize {
			r.Chunks = append(r.Chunks, ChunkSHA256.Sum(data[off:min(off+old.ChunkSize, len(data))]))
		}
		return r
	}
	old.Head = redo(m.Head, objs[0])
	old.Blocks = nil
	for i, b := range m.Blocks {
		old.Blocks = append(old.Blocks, redo(b, objs[i+1]))
	}
	return &old
}

// TestManifestFormats checks that manifests of both formats encode,
// decode and verify their chunks by their own hash, and that a chunk
// list of one format does not pass as the other.
func TestManifestFormats(t *testing.T) {
	m, objs := testManifest()
	old := sha256Manifest(m, objs)
	if m.ChunkHash() != ChunkBLAKE3 || old.ChunkHash() != ChunkSHA256 {
		t.Fatalf("chunk hashes %v and %v, want blake3 and sha2-256", m.ChunkHash(), old.ChunkHash())
	}
	if bytes.Equal(m.Head.Chunks[0][:], old.Head.Chunks[0][:]) {
		t.Fatal("the two formats give the same chunk digest")
	}
	for _, man := range []*Manifest{m, old} {
		enc, err := man.Encode()
		if err != nil {
			t.Fatalf("%s: %v", man.Format, err)
		}
		if !bytes.HasPrefix(enc, manifestPrefix) {
			t.Errorf("%s: encoding %.40q does not start with the prefix GC looks for", man.Format, enc)
		}
		back, err := DecodeManifest(enc)
		if err != nil {
			t.Fatalf("%s: %v", man.Format, err)
		}
		chunk := objs[0][:back.ChunkSize]
		if err := back.VerifyChunk(back.Head, 0, chunk); err != nil {
			t.Errorf("%s: chunk 0 of the head: %v", man.Format, err)
		}
	}
	// The digests of one format under the name of the other fail.
	mixed := *old
	mixed.Format = ManifestFormat
	if err := mixed.VerifyChunk(mixed.Head, 0, objs[0][:mixed.ChunkSize]); !errors.Is(err, ErrMismatch) {
		t.Errorf("sha2-256 digests read as blake3: err = %v, want ErrMismatch", err)
	}
	unknown := *m
	unknown.Format = "strata/manifest/3"
	if _, err := unknown.Encode(); !errors.Is(err, ErrManifest) || !strings.Contains(err.Error(), ManifestFormatSHA256) {
		t.Errorf("unknown format: err = %v, want ErrManifest naming both known formats", err)
	}
}

// TestFetchRefOlderFormat fetches a shard of a format-1 manifest, whose
// chunks are verified by sha2-256, and checks that a corrupting provider
// is still caught.
func TestFetchRefOlderFormat(t *testing.T) {
	o := synthetic(9, 12*testChunk+3, testChunk)
	ref := Ref{CID: o.cid, Size: int64(len(o.data))}
	for off := 0; off < len(o.data); off += testChunk {
		ref.Chunks = append(ref.Chunks, ChunkSHA256.Sum(o.data[off:min(off+testChunk, len(o.data))]))
	}
	m := &Manifest{Format: ManifestFormatSHA256, ChunkSize: testChunk}
	h, _ := serving(t, o.data)
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t)}
	if err := f.FetchRef(context.Background(), m, ref, []Provider{providerOf(h)}, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st, o)

	// The same digests fetched as the current format match no chunk:
	// every provider is banned and nothing is stored.
	st2 := openStoreAt(t, t.TempDir())
	f2 := &Fetcher{Store: st2, Opener: newHost(t)}
	err := f2.Fetch(context.Background(), o.cid, ref.Size, ref.Chunks, testChunk, []Provider{providerOf(h)}, nil)
	if !errors.Is(err, ErrUnavailable) || len(f2.Banned()) != 1 || st2.Has(o.cid) {
		t.Errorf("sha2-256 digests fetched as blake3: err = %v, bans %d, stored %v; want ErrUnavailable, a ban, nothing stored",
			err, len(f2.Banned()), st2.Has(o.cid))
	}
}
