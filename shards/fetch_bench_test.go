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
	"time"

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

// BenchmarkFetch fetches a 1 GiB synthetic object over loopback from one
// and from three providers. Each iteration also sends 1 GiB over a plain
// libp2p stream between the client and the first provider, from memory
// to a discarding reader, and writes 1 GiB from memory durably into a
// file the way a fetch writes (diskWrite), so the fetch is compared with
// the raw stream and with the disk under the same machine load: it
// reports MB/s, raw-MB/s, %raw (fetch MB/s over raw MB/s), disk-MB/s,
// %ceiling (fetch MB/s over the lower of raw and disk) and the process
// CPU seconds per GiB of fetch and raw stream (cpu-s/GiB, raw-cpu-s/GiB;
// both ends run in this process).
func BenchmarkFetch(b *testing.B) {
	dir, o := benchObject(b)
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("providers=%d", n), func(b *testing.B) {
			var (
				provs []Provider
				hosts []*mesh.Mesh
			)
			for range n {
				h := newHost(b)
				st := openStoreAt(b, dir)
				h.Handle(ContentProtocol, st.ServeContent)
				// Verify the object once, as a serving node does on its first request.
				if _, err := st.ReadAt(o.cid, make([]byte, 1), 0); err != nil {
					b.Fatal(err)
				}
				provs = append(provs, providerOf(h))
				hosts = append(hosts, h)
			}
			client := newHost(b)
			raw := newRawSender(b, client, hosts[0])
			var rawTime, fetchTime, rawCPU, fetchCPU, diskTime time.Duration
			b.SetBytes(benchSize)
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				wall, cpu := raw.send(b)
				rawTime += wall
				rawCPU += cpu
				diskTime += diskWrite(b, b.TempDir())
				st := openStoreAt(b, b.TempDir())
				f := &Fetcher{Store: st, Opener: client}
				c0, t0 := cpuTime(), time.Now()
				b.StartTimer()
				if err := f.Fetch(context.Background(), o.cid, benchSize, o.chunks, DefaultChunkSize, provs, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				fetchTime += time.Since(t0)
				fetchCPU += cpuTime() - c0
				os.RemoveAll(st.Dir())
				b.StartTimer()
			}
			gib := float64(benchSize) * float64(b.N)
			fetchMBs := gib / fetchTime.Seconds() / 1e6
			rawMBs := gib / rawTime.Seconds() / 1e6
			b.ReportMetric(fetchMBs, "MB/s")
			b.ReportMetric(rawMBs, "raw-MB/s")
			diskMBs := gib / diskTime.Seconds() / 1e6
			b.ReportMetric(100*fetchMBs/rawMBs, "%raw")
			b.ReportMetric(diskMBs, "disk-MB/s")
			b.ReportMetric(100*fetchMBs/min(rawMBs, diskMBs), "%ceiling")
			b.ReportMetric(fetchCPU.Seconds()/float64(b.N), "cpu-s/GiB")
			b.ReportMetric(rawCPU.Seconds()/float64(b.N), "raw-cpu-s/GiB")
		})
	}
}

// BenchmarkRawStream measures plain libp2p stream throughput between two
// loopback hosts, the ceiling for BenchmarkFetch (which also measures it
// on its own hosts, interleaved with the fetches).
func BenchmarkRawStream(b *testing.B) {
	raw := newRawSender(b, newHost(b), newHost(b))
	var cpu time.Duration
	b.SetBytes(benchSize)
	b.ResetTimer()
	for range b.N {
		_, c := raw.send(b)
		cpu += c
	}
	b.ReportMetric(float64(benchSize)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/GiB")
}

// rawSender sends benchSize bytes from memory over a fresh libp2p stream
// to a host that discards them.
type rawSender struct {
	client, srv *mesh.Mesh
	buf         []byte
	done        chan int64
}

const rawProtocol = "/strata/bench-raw/1"

func newRawSender(b *testing.B, client, srv *mesh.Mesh) *rawSender {
	r := &rawSender{client: client, srv: srv, buf: make([]byte, 1<<20), done: make(chan int64, 1)}
	srv.Handle(rawProtocol, func(rw io.ReadWriteCloser, remote string) {
		n, _ := io.Copy(io.Discard, rw)
		r.done <- n
	})
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range r.buf {
		r.buf[i] = byte(rnd.Uint32())
	}
	return r
}

// send transfers benchSize bytes and returns the wall and process CPU
// time it took, stream opening included.
func (r *rawSender) send(b *testing.B) (wall, cpu time.Duration) {
	c0, t0 := cpuTime(), time.Now()
	rw, err := r.client.Open(context.Background(), r.srv.ID().String(), r.srv.AddrStrings(), rawProtocol)
	if err != nil {
		b.Fatal(err)
	}
	for sent := 0; sent < benchSize; sent += len(r.buf) {
		if _, err := rw.Write(r.buf); err != nil {
			b.Fatal(err)
		}
	}
	if cw, ok := rw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if n := <-r.done; n != benchSize {
		b.Fatalf("server received %d bytes, want %d", n, benchSize)
	}
	wall, cpu = time.Since(t0), cpuTime()-c0
	rw.Close()
	return wall, cpu
}

// diskWrite writes benchSize bytes from memory into a new file in dir as
// a fetch writes its partial file (preallocated, aligned 1 MiB writes
// through partialWriter, a final fsync) and returns the time it took.
func diskWrite(b *testing.B, dir string) time.Duration {
	buf := alignedBuf(DefaultChunkSize)
	rnd := rand.New(rand.NewPCG(3, 4))
	for i := range buf {
		buf[i] = byte(rnd.Uint32())
	}
	path := filepath.Join(dir, "disk")
	t0 := time.Now()
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	if err := preallocate(fh, benchSize); err != nil {
		b.Fatal(err)
	}
	w := newPartialWriter(fh, path)
	for off := int64(0); off < benchSize; off += int64(len(buf)) {
		if err := w.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	w.finish()
	if err := fh.Sync(); err != nil {
		b.Fatal(err)
	}
	d := time.Since(t0)
	fh.Close()
	os.Remove(path)
	return d
}

var _ Opener = (*mesh.Mesh)(nil)

func newSum() hash.Hash { return sha256.New() }

func digestOf(p []byte) Digest { return sha256.Sum256(p) }
