package shards

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// recvBuffer is the read size for response bodies.
const recvBuffer = 1 << 20

// errBanned marks a provider worker that stopped because its provider was banned.
var errBanned = errors.New("banned")

// work fetches chunks from provider p until none are left, p fails or it
// is banned. It pipelines up to Parallel chunks: a sender goroutine writes
// the requests of each chunk it takes from the queue while this goroutine
// reads, verifies and writes the responses in the same order. On failure
// every chunk this worker holds goes back to the queue.
func (j *job) work(ctx context.Context, p Provider) error {
	rw, err := j.f.Opener.Open(ctx, p.Peer, p.Addrs, ContentProtocol)
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer stop()
	defer rw.Close()

	window := j.f.Parallel
	if window <= 0 {
		window = DefaultParallel
	}
	slots := make(chan struct{}, window)
	inflight := make(chan int, window)
	quit := make(chan struct{})
	var sendErr error
	go func() {
		defer close(inflight)
		bw := bufio.NewWriterSize(rw, 4<<10)
		var buf []byte
		for {
			select {
			case slots <- struct{}{}:
			case <-quit:
				return
			}
			k := j.take(quit)
			if k < 0 {
				return
			}
			off, l := j.plan.span(k)
			buf = buf[:0]
			for l > 0 {
				n := min(l, MaxRequest)
				buf = appendRequest(buf, request{CID: j.plan.cid, Offset: off, Length: int(n)})
				off, l = off+n, l-n
			}
			_, err := bw.Write(buf)
			if err == nil {
				err = bw.Flush()
			}
			if err != nil {
				sendErr = fmt.Errorf("send request: %w", err)
				j.giveBack(k)
				return
			}
			inflight <- k
		}
	}()

	r := &reader{rw: rw, br: bufio.NewReaderSize(rw, 64<<10), buf: alignedBuf(recvBuffer)}
	r.rd, _ = rw.(readDeadliner)
	var (
		failMu sync.Mutex
		failed error
		once   sync.Once
		async  sync.WaitGroup
	)
	abort := func(err error) {
		failMu.Lock()
		if failed == nil {
			failed = err
		}
		failMu.Unlock()
		once.Do(func() {
			close(quit)
			j.kick()
			rw.Close()
		})
	}
	isFailed := func() bool {
		failMu.Lock()
		defer failMu.Unlock()
		return failed != nil
	}
	// Chunks of at most one request are read whole into one of asyncChunks
	// buffers and verified and written by a goroutine while the next
	// chunk arrives, so disk writes overlap the network.
	pool := make(chan []byte, asyncChunks)
	for range asyncChunks {
		pool <- nil
	}
	for k := range inflight {
		if isFailed() {
			j.giveBack(k)
			continue
		}
		_, l := j.plan.span(k)
		if l > MaxRequest {
			if err := j.receive(p, r, k); err != nil {
				abort(err)
				j.giveBack(k)
				continue
			}
			<-slots
			continue
		}
		buf := <-pool
		if int64(cap(buf)) < l {
			buf = alignedBuf(int(l))
		}
		buf = buf[:l]
		if err := j.readChunk(p, r, k, buf); err != nil {
			pool <- buf
			abort(err)
			j.giveBack(k)
			continue
		}
		async.Go(func() {
			defer func() { pool <- buf }()
			if err := j.store(p, k, buf); err != nil {
				abort(err)
				j.giveBack(k)
				return
			}
			<-slots
		})
	}
	async.Wait()
	if failed != nil {
		return failed
	}
	if sendErr != nil {
		return sendErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return nil
}

// asyncChunks is the number of whole chunks per provider that may wait to
// be verified, written and hashed into the whole-object digest while the
// next one is read; a chunk waiting its turn for the whole-object hash
// holds its buffer, so a few more than the CPUs keep the reader busy.
const asyncChunks = 8

// readChunk reads the single response carrying chunk k into buf.
func (j *job) readChunk(p Provider, r *reader, k int, buf []byte) error {
	if err := j.readHeader(p, r, k, int64(len(buf))); err != nil {
		return err
	}
	for got := 0; got < len(buf); {
		r.expect()
		n, err := io.ReadFull(r.br, buf[got:min(len(buf), got+recvBuffer)])
		j.f.fetched.Add(int64(n))
		got += n
		if err != nil {
			return fmt.Errorf("read body: %w", err)
		}
	}
	return nil
}

// store verifies chunk k against its digest, banning p on a mismatch, and
// writes it into the partial file.
func (j *job) store(p Provider, k int, buf []byte) error {
	sum := sha256.Sum256(buf)
	if Digest(sum) != j.plan.digests[k] {
		j.banFor(p, k, evidence(j.plan.digests[k], sum[:], int64(len(buf))))
		return fmt.Errorf("%w: %w: chunk %d failed verification", errBanned, ErrMismatch, k)
	}
	off, _ := j.plan.span(k)
	if err := j.f.Store.fault(); err != nil {
		return fmt.Errorf("%w: write partial file: %w", errLocal, err)
	}
	if err := j.out.WriteAt(buf, off); err != nil {
		return err
	}
	if j.whole != nil {
		j.whole.put(k, buf)
	}
	j.complete(k, int64(len(buf)))
	return nil
}

// reader reads responses from one provider.
type reader struct {
	rw   io.ReadWriteCloser
	br   *bufio.Reader
	rd   readDeadliner
	buf  []byte
	hbuf [headerSize]byte
}

func (r *reader) expect() {
	if r.rd != nil {
		_ = r.rd.SetReadDeadline(time.Now().Add(responseTimeout))
	}
}

// receive reads the responses for chunk k, hashing the bytes and writing
// them at their offset in the partial file, and marks the chunk complete
// if it matches its digest. A digest mismatch or a response of the wrong
// shape bans p.
func (j *job) receive(p Provider, r *reader, k int) error {
	off, l := j.plan.span(k)
	h := sha256.New()
	for pos := off; pos < off+l; {
		want := min(off+l-pos, MaxRequest)
		if err := j.readHeader(p, r, k, want); err != nil {
			return err
		}
		for rem := want; rem > 0; {
			b := r.buf[:min(rem, int64(len(r.buf)))]
			r.expect()
			n, err := io.ReadFull(r.br, b)
			j.f.fetched.Add(int64(n))
			if err != nil {
				return fmt.Errorf("read body: %w", err)
			}
			h.Write(b)
			if err := j.f.Store.fault(); err != nil {
				return fmt.Errorf("%w: write partial file: %w", errLocal, err)
			}
			if err := j.out.WriteAt(b, pos); err != nil {
				return err
			}
			pos += int64(n)
			rem -= int64(n)
		}
	}
	sum := h.Sum(nil)
	if Digest(sum) != j.plan.digests[k] {
		j.banFor(p, k, evidence(j.plan.digests[k], sum, l))
		return fmt.Errorf("%w: %w: chunk %d failed verification", errBanned, ErrMismatch, k)
	}
	if j.whole != nil {
		j.whole.onDisk(k)
	}
	j.complete(k, l)
	return nil
}

// kick wakes workers waiting in take after a change made outside j.mu
// (closing a quit channel): taking the lock first means no waiter can be
// between its check and its Wait.
func (j *job) kick() {
	j.mu.Lock()
	j.mu.Unlock() //nolint:staticcheck // empty critical section orders the wake-up
	j.wake.Broadcast()
}

// readHeader reads the header of the next response, for want bytes of
// chunk k. A malformed header or a wrong length or object size bans p.
func (j *job) readHeader(p Provider, r *reader, k int, want int64) error {
	r.expect()
	hd, err := readHeader(r.br, &r.hbuf)
	if err != nil {
		if errors.Is(err, ErrProtocol) {
			j.banFor(p, k, err.Error())
			return fmt.Errorf("%w: %w", errBanned, err)
		}
		return fmt.Errorf("read response: %w", err)
	}
	if hd.Status != statusOK {
		msg, err := readMessage(r.br, hd.N)
		if err != nil {
			return err
		}
		if hd.Status == statusNotFound {
			return fmt.Errorf("%w: object %s not found on peer %s", ErrNotFound, j.plan.cid, p.Peer)
		}
		return fmt.Errorf("peer %s answered %s for %s: %s", p.Peer, statusText(hd.Status), j.plan.cid, msg)
	}
	if int64(hd.N) != want || hd.Total != j.plan.size {
		reason := fmt.Sprintf("response of %d bytes of a %d-byte object, want %d of %d", hd.N, hd.Total, want, j.plan.size)
		j.banFor(p, k, reason)
		return fmt.Errorf("%w: %w: %s", errBanned, ErrProtocol, reason)
	}
	return nil
}

func (j *job) banFor(p Provider, k int, reason string) {
	j.mu.Lock()
	again := j.banned[p.Peer]
	j.banned[p.Peer] = true
	j.mu.Unlock()
	if again {
		return // one ban per provider per fetch; it is already out
	}
	j.f.ban(Ban{Peer: p.Peer, CID: j.plan.cid, Chunk: k, Reason: reason})
}
