package shards

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-mesh/strata/mesh"
)

// benchSize is the synthetic model size of the fetch benchmarks.
const benchSize = 1 << 30

// benchObject writes benchSize seeded random bytes as an object of a new
// store and returns the store, the CID and the chunk digests.
func benchObject(b *testing.B) (dir string, o object) {
	b.Helper()
	dir = b.TempDir()
	st := openStoreAt(b, dir)
	r := rand.New(rand.NewPCG(7, 11))
	tmp := filepath.Join(dir, "src")
	fh, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	buf := make([]byte, DefaultChunkSize)
	var digests []Digest
	h := newSum()
	for off := 0; off < benchSize; off += len(buf) {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		digests = append(digests, digestOf(buf))
		h.Write(buf)
		bw.Write(buf)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	fh.Close()
	o.cid = cidOf(h.Sum(nil))
	o.chunks = digests
	if err := os.Rename(tmp, st.path(o.cid)); err != nil {
		b.Fatal(err)
	}
	return dir, o
}

func BenchmarkFetch(b *testing.B) {
	dir, o := benchObject(b)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("providers=%d", n), func(b *testing.B) {
			var provs []Provider
			for range n {
				h := newHost(b)
				st := openStoreAt(b, dir)
				h.Handle(ContentProtocol, st.ServeContent)
				// Verify the object once, as a serving node does on its first request.
				if _, err := st.ReadAt(o.cid, make([]byte, 1), 0); err != nil {
					b.Fatal(err)
				}
				provs = append(provs, providerOf(h))
			}
			client := newHost(b)
			b.SetBytes(benchSize)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				st := openStoreAt(b, b.TempDir())
				f := &Fetcher{Store: st, Opener: client}
				b.StartTimer()
				if err := f.Fetch(context.Background(), o.cid, benchSize, o.chunks, DefaultChunkSize, provs, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(st.Dir())
				b.StartTimer()
			}
			b.ReportMetric(float64(benchSize)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkRawStream measures plain libp2p stream throughput between two
// loopback hosts, the ceiling for BenchmarkFetch.
func BenchmarkRawStream(b *testing.B) {
	srv, client := newHost(b), newHost(b)
	done := make(chan int64, 1)
	srv.Handle("/strata/bench-raw/1", func(rw io.ReadWriteCloser, remote string) {
		n, _ := io.Copy(io.Discard, rw)
		done <- n
	})
	buf := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		rw, err := client.Open(context.Background(), srv.ID().String(), srv.AddrStrings(), "/strata/bench-raw/1")
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < benchSize; sent += len(buf) {
			if _, err := rw.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		if cw, ok := rw.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		if n := <-done; n != benchSize {
			b.Fatalf("server received %d bytes, want %d", n, benchSize)
		}
		rw.Close()
	}
	b.ReportMetric(float64(benchSize)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

var _ Opener = (*mesh.Mesh)(nil)

func newSum() hash.Hash { return sha256.New() }

func digestOf(p []byte) Digest { return sha256.Sum256(p) }
