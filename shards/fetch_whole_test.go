package shards

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"testing"
)

// serveBytes answers every content request with the range of data,
// whatever CID is asked for: a provider whose bytes match the manifest's
// chunk digests but not the CID.
func serveBytes(data []byte) func(rw io.ReadWriteCloser, remote string) {
	return func(rw io.ReadWriteCloser, remote string) {
		defer rw.Close()
		br := bufio.NewReader(rw)
		var rbuf [requestSize]byte
		for {
			req, err := readRequest(br, &rbuf)
			if err != nil {
				return
			}
			end := req.Offset + int64(req.Length)
			if end > int64(len(data)) {
				return
			}
			hd := appendHeader(nil, header{Status: statusOK, Total: int64(len(data)), N: req.Length})
			if _, err := rw.Write(append(hd, data[req.Offset:end]...)); err != nil {
				return
			}
		}
	}
}

// TestFetchChunksDoNotAddUpToCID fetches an object whose chunk digests
// all verify but whose bytes are not those of the CID: the whole-object
// hash computed during the fetch must catch it, store nothing and leave no
// partial file.
func TestFetchChunksDoNotAddUpToCID(t *testing.T) {
	a := synthetic(21, 30*testChunk+77, testChunk)
	b := synthetic(22, 30*testChunk+77, testChunk)
	var provs []Provider
	for range 2 {
		h := newHost(t)
		h.Handle(ContentProtocol, serveBytes(a.data))
		provs = append(provs, providerOf(h))
	}
	st := openStoreAt(t, t.TempDir())
	f := &Fetcher{Store: st, Opener: newHost(t), Parallel: 3}
	err := f.Fetch(context.Background(), b.cid, int64(len(a.data)), a.chunks, testChunk, provs, nil)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, ErrMismatch) {
		t.Fatalf("err = %v, want ErrCorrupt and ErrMismatch", err)
	}
	if st.Has(b.cid) {
		t.Error("object stored although its bytes do not hash to its CID")
	}
	if _, err := os.Stat(st.partialPath(b.cid)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after a CID mismatch: %v", err)
	}

	// The same providers serve a good copy under a's CID.
	if err := f.Fetch(context.Background(), a.cid, int64(len(a.data)), a.chunks, testChunk, provs, nil); err != nil {
		t.Fatal(err)
	}
	checkStored(t, st, a)
}
