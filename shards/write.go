package shards

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// directAlign is the alignment of file offsets, lengths and memory that
// writes bypassing the page cache need (the logical block size of common
// disks and file systems is at most this).
const directAlign = 4096

// alignedBuf returns a buffer of n bytes whose first byte is
// directAlign-aligned in memory.
func alignedBuf(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	return b[skip : skip+n : skip+n]
}

func isAligned(b []byte, off int64) bool {
	return len(b) > 0 && len(b)%directAlign == 0 && off%directAlign == 0 &&
		uintptr(unsafe.Pointer(&b[0]))&(directAlign-1) == 0
}

// partialWriter writes verified bytes into a partial file. Aligned writes
// go straight to disk through a second descriptor opened with O_DIRECT
// where the system supports it: copying a gibibyte into the page cache
// costs more CPU than hashing it twice, and the bytes are not read again
// soon (the object is hashed as it arrives). Other writes, and all writes
// once a direct write has failed, go through the page cache, and the
// kernel is asked to start writing them back at once. Every flushEvery
// bytes a background fsync asks the disk to make what was written so far
// durable (a virtual disk may hold direct writes in its host's cache), so
// the fsync that ends the fetch finds little left. Reads of the file
// through the page cache see direct writes.
type partialWriter struct {
	file    *os.File
	direct  atomic.Pointer[os.File]
	written atomic.Int64
	flushMu sync.Mutex // held by the background flush
	flushWG sync.WaitGroup
}

// flushEvery is the number of bytes written between background flushes.
const flushEvery = 64 << 20

func newPartialWriter(file *os.File, path string) *partialWriter {
	w := &partialWriter{file: file}
	if d := openDirect(path); d != nil {
		w.direct.Store(d)
	}
	return w
}

// WriteAt writes b at off.
func (w *partialWriter) WriteAt(b []byte, off int64) error {
	if d := w.direct.Load(); d != nil && isAligned(b, off) {
		if _, err := d.WriteAt(b, off); err == nil {
			w.wrote(len(b))
			return nil
		}
		// The file system refused (alignment, support): use the page
		// cache from now on; a real I/O error shows again below.
		if w.direct.CompareAndSwap(d, nil) {
			d.Close()
		}
	}
	if _, err := w.file.WriteAt(b, off); err != nil {
		return fmt.Errorf("%w: write partial file: %w", errLocal, err)
	}
	startWriteback(w.file, off, int64(len(b)))
	w.wrote(len(b))
	return nil
}

// wrote counts n bytes written and starts a background flush when they
// cross a multiple of flushEvery, unless one is still running. Its error
// is not kept: the final fsync reports any.
func (w *partialWriter) wrote(n int) {
	after := w.written.Add(int64(n))
	if after/flushEvery == (after-int64(n))/flushEvery || !w.flushMu.TryLock() {
		return
	}
	w.flushWG.Go(func() {
		defer w.flushMu.Unlock()
		_ = w.file.Sync()
	})
}

// finish closes the direct descriptor and waits for a background flush;
// later writes use the page cache. Call it when no write is in progress
// and before closing the file.
func (w *partialWriter) finish() {
	if d := w.direct.Swap(nil); d != nil {
		d.Close()
	}
	w.flushWG.Wait()
}
