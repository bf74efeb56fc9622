package shards

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync"
)

// holdLimit bounds the bytes of chunks that arrived ahead of a gap and are
// kept in memory until the whole-object hash reaches them. Chunks beyond
// it are read back from the partial file instead.
const holdLimit = 32 << 20

// wholeHash computes the sha2-256 of a whole object while its chunks
// arrive in any order, so the final check against the CID needs no second
// pass over the file. Chunks are fed to the hash in index order: a chunk
// that completes the contiguous prefix is hashed at once by the goroutine
// that delivered it (which then also drains any later chunks already
// delivered); a chunk that arrives ahead of a gap is copied and held, up to
// holdLimit bytes, or else read back from the file when its turn comes.
//
// Hashing never waits for the network: a goroutine only ever waits for
// chunks that are already delivered, so a caller of put cannot deadlock
// with the fetch that feeds it.
type wholeHash struct {
	plan *plan
	file io.ReaderAt

	mu       sync.Mutex
	consumed *sync.Cond
	h        hash.Hash
	ready    []bool         // chunk delivered (held, lent or on disk)
	held     map[int][]byte // copies of chunks delivered ahead of a gap
	heldB    int64          // bytes in held, at most limit
	limit    int64          // holdLimit; tests lower it
	lent     map[int][]byte // buffers of puts waiting for the drainer
	frontier int            // every chunk below it is ready
	next     int            // the next chunk to hash
	running  bool           // a goroutine is draining
	err      error
	scratch  []byte
	reread   int64 // bytes read back from the file
}

func newWholeHash(p *plan, file io.ReaderAt) *wholeHash {
	w := &wholeHash{plan: p, file: file, h: sha256.New(), ready: make([]bool, p.n()),
		held: make(map[int][]byte), lent: make(map[int][]byte), limit: holdLimit}
	w.consumed = sync.NewCond(&w.mu)
	return w
}

// onDisk marks chunk k as verified in the file without handing over its
// bytes (a resumed chunk, or one written piece by piece).
func (w *wholeHash) onDisk(k int) { w.put(k, nil) }

// put delivers chunk k, verified and written to the file; buf, if not nil,
// holds its bytes. put does not keep buf after it returns.
func (w *wholeHash) put(k int, buf []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if k < 0 || k >= len(w.ready) || w.ready[k] {
		return
	}
	w.ready[k] = true
	if k != w.frontier {
		// Ahead of a gap: hold a copy if there is room, else the file has it.
		if buf != nil && w.heldB+int64(len(buf)) <= w.limit {
			w.held[k] = append([]byte(nil), buf...)
			w.heldB += int64(len(buf))
		}
		return
	}
	for w.frontier < len(w.ready) && w.ready[w.frontier] {
		w.frontier++
	}
	if !w.running {
		w.drain(k, buf)
		return
	}
	if buf != nil {
		// The drainer reaches k without waiting for anything but the
		// chunks before it, all delivered: lend it buf until then.
		w.lent[k] = buf
		for w.next <= k && w.err == nil {
			w.consumed.Wait()
		}
		delete(w.lent, k)
	}
}

// drain hashes chunks next..frontier-1, buf (if not nil) being chunk k's
// bytes. It is called and returns with w.mu held, and releases it while
// hashing.
func (w *wholeHash) drain(k int, buf []byte) {
	w.running = true
	defer func() {
		w.running = false
		w.consumed.Broadcast()
	}()
	for w.next < w.frontier && w.err == nil {
		i := w.next
		var data []byte
		switch {
		case i == k && buf != nil:
			data = buf
		case w.held[i] != nil:
			data = w.held[i]
			delete(w.held, i)
			w.heldB -= int64(len(data))
		default:
			data = w.lent[i] // nil: read it back from the file
		}
		w.mu.Unlock()
		var err error
		if data != nil {
			w.h.Write(data)
		} else {
			err = w.readBack(i)
		}
		w.mu.Lock()
		if err != nil {
			w.err = err
			return
		}
		w.next++
		w.consumed.Broadcast()
	}
}

// readBack hashes chunk i from the file.
func (w *wholeHash) readBack(i int) error {
	off, l := w.plan.span(i)
	if w.scratch == nil {
		w.scratch = make([]byte, min(l, hashBuf))
	}
	if _, err := io.CopyBuffer(w.h, io.NewSectionReader(w.file, off, l), w.scratch); err != nil {
		return fmt.Errorf("%w: read back chunk %d of the partial file: %w", errLocal, i, err)
	}
	w.reread += l
	return nil
}

// sum finishes the hash, draining chunks still waiting, and returns the
// digest and the bytes read back from the file. It fails if a chunk was
// never delivered or could not be read back.
func (w *wholeHash) sum() ([]byte, int64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.running {
		w.consumed.Wait()
	}
	w.drain(-1, nil)
	if w.err != nil {
		return nil, w.reread, w.err
	}
	if w.next != len(w.ready) {
		return nil, w.reread, fmt.Errorf("shards: whole-object hash stopped at chunk %d of %d", w.next, len(w.ready))
	}
	return w.h.Sum(nil), w.reread, nil
}
