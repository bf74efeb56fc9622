package shards

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// wholeHashFixture is an object of n chunks of chunkSize bytes (the last
// one shorter) and its plan.
func wholeHashFixture(t *testing.T, seed uint64, n int, chunkSize int64) ([]byte, *plan) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	size := int64(n)*chunkSize - chunkSize/3
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	p := &plan{size: size, chunkSize: chunkSize, digests: make([]Digest, n)}
	return data, p
}

func chunkOf(data []byte, p *plan, k int) []byte {
	off, l := p.span(k)
	return data[off : off+l]
}

// TestWholeHashAnyOrder delivers chunks in random orders from several
// goroutines, some with their bytes and some only on disk, with a hold
// limit that forces read-backs, and checks the digest is that of the
// whole object.
func TestWholeHashAnyOrder(t *testing.T) {
	for _, tc := range []struct {
		seed    uint64
		workers int
		limit   int64
		diskPct int
	}{
		{1, 1, holdLimit, 0},
		{2, 3, holdLimit, 0},
		{3, 4, 0, 0},
		{4, 4, 3 * 4096, 20},
		{5, 8, 6 * 4096, 50},
		{6, 2, holdLimit, 100},
	} {
		t.Run(fmt.Sprintf("seed=%d", tc.seed), func(t *testing.T) {
			data, p := wholeHashFixture(t, tc.seed, 97, 4096)
			want := sha256.Sum256(data)
			w := newWholeHash(p, bytes.NewReader(data))
			w.limit = tc.limit
			r := rand.New(rand.NewPCG(tc.seed, 2))
			order := r.Perm(p.n())
			if tc.seed == 1 {
				for i := range order {
					order[i] = i
				}
			}
			// Mostly ascending, as chunks are taken lowest first.
			if tc.seed%2 == 0 {
				for i := range order {
					if j := i + r.IntN(6); j < len(order) {
						order[i], order[j] = order[j], order[i]
					}
				}
			}
			disk := make([]bool, p.n())
			for k := range disk {
				disk[k] = r.IntN(100) < tc.diskPct
			}
			ks := make(chan int)
			var wg sync.WaitGroup
			for range tc.workers {
				wg.Go(func() {
					for k := range ks {
						if disk[k] {
							w.onDisk(k)
							continue
						}
						// A buffer of the worker's own, scribbled over after
						// put returns, as a fetch reuses it.
						buf := append([]byte(nil), chunkOf(data, p, k)...)
						w.put(k, buf)
						clear(buf)
					}
				})
			}
			for _, k := range order {
				ks <- k
			}
			close(ks)
			wg.Wait()
			got, reread, err := w.sum()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want[:]) {
				t.Errorf("got digest %x, want %x", got, want)
			}
			if tc.seed == 1 && reread != 0 {
				t.Errorf("in-order delivery read back %d bytes, want 0", reread)
			}
			if tc.diskPct == 100 && reread != p.size {
				t.Errorf("read back %d bytes, want %d", reread, p.size)
			}
			if w.heldB != 0 || len(w.held) != 0 || len(w.lent) != 0 {
				t.Errorf("after sum: %d bytes in %d held chunks, %d lent, want none", w.heldB, len(w.held), len(w.lent))
			}
		})
	}
}

func TestWholeHashMissingChunk(t *testing.T) {
	data, p := wholeHashFixture(t, 9, 5, 4096)
	w := newWholeHash(p, bytes.NewReader(data))
	for _, k := range []int{0, 1, 3, 4} {
		w.put(k, chunkOf(data, p, k))
	}
	if _, _, err := w.sum(); err == nil {
		t.Fatal("sum with chunk 2 never delivered: got no error")
	}
}

type failingReaderAt struct{}

func (failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, errors.New("disk gone") }

func TestWholeHashReadBackFails(t *testing.T) {
	_, p := wholeHashFixture(t, 10, 4, 4096)
	w := newWholeHash(p, failingReaderAt{})
	for k := range p.n() {
		w.onDisk(k)
	}
	if _, _, err := w.sum(); !errors.Is(err, errLocal) {
		t.Fatalf("got %v, want an error wrapping errLocal", err)
	}
}
