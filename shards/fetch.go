package shards

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// Opener opens a stream of a protocol to a peer, dialling addrs if needed.
// *mesh.Mesh satisfies it.
type Opener interface {
	Open(ctx context.Context, peer string, addrs []string, proto string) (io.ReadWriteCloser, error)
}

// Provider is a peer believed to hold an object.
type Provider struct {
	Peer  string
	Addrs []string
}

// Ban records a provider caught sending bytes that fail verification (or
// breaking the protocol), with the evidence.
type Ban struct {
	Peer   string
	CID    cid.Cid
	Chunk  int    // chunk index, or -1 when not tied to a chunk
	Reason string // what was expected and what arrived
	Time   time.Time
}

// DefaultParallel is the default number of requests in flight per provider.
const DefaultParallel = 8

// responseTimeout bounds the wait for each piece of a response when the
// stream supports read deadlines.
const responseTimeout = time.Minute

// Fetcher fetches objects by CID from providers into Store over
// ContentProtocol. Its zero value with Store and Opener set is ready to
// use, and it is safe for concurrent use; each Fetch bans misbehaving
// providers for its own duration and Banned keeps the record.
type Fetcher struct {
	Store  *Store
	Opener Opener
	Logger *slog.Logger // nil discards
	// Parallel bounds the chunks in flight per provider (default
	// DefaultParallel).
	Parallel int
	// Now returns the time stamped on bans (default time.Now).
	Now func() time.Time

	fetched atomic.Int64
	mu      sync.Mutex
	bans    []Ban
}

// maxBans bounds the ban record.
const maxBans = 1024

// BytesFetched returns the object bytes received over the network so far,
// by all fetches.
func (f *Fetcher) BytesFetched() int64 { return f.fetched.Load() }

// Banned returns a copy of the ban record, oldest first.
func (f *Fetcher) Banned() []Ban {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.bans)
}

func (f *Fetcher) log() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

func (f *Fetcher) ban(b Ban) {
	if f.Now != nil {
		b.Time = f.Now()
	} else {
		b.Time = time.Now()
	}
	f.log().Warn("shards: banned provider", "peer", b.Peer, "cid", b.CID, "chunk", b.Chunk, "reason", b.Reason)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bans) == maxBans {
		f.bans = f.bans[1:]
	}
	f.bans = append(f.bans, b)
}

// FetchRef fetches the shard ref of manifest m, verifying each chunk
// against the manifest's digests.
func (f *Fetcher) FetchRef(ctx context.Context, m *Manifest, ref Ref, providers []Provider, progress func(done, total int64)) error {
	if m == nil {
		return fmt.Errorf("%w: fetch: nil manifest", ErrManifest)
	}
	return f.Fetch(ctx, ref.CID, ref.Size, ref.Chunks, m.ChunkSize, providers, progress)
}

// Fetch fetches object c of size bytes into the store, unless a valid copy
// is already there. With a chunk list, chunk k covers bytes [k·chunkSize,
// min((k+1)·chunkSize, size)) and must hash (sha2-256) to chunks[k];
// chunks are fetched from all providers in parallel, each verified when it
// arrives, and written into a partial file outside objects/. Without a
// list the object is one chunk verified against c itself. The whole
// object is hashed as its chunks arrive, so the complete file is verified
// against c without being read again, then synced and renamed into place.
//
// A provider that sends bytes failing verification or breaks the protocol
// is banned for the rest of the fetch (see Banned) and its chunks are
// fetched from the others; an unreachable provider is dropped. If no
// provider is left the error wraps ErrUnavailable and names each
// provider's failure; if every provider lacks the object it also wraps
// ErrNotFound.
//
// Fetch resumes an interrupted fetch: chunks of an existing partial file
// that hash to their digests are not fetched again. A local write failure
// (such as a full disk) removes the partial file. progress, if not nil, is
// called with the verified bytes so far, serialised.
func (f *Fetcher) Fetch(ctx context.Context, c cid.Cid, size int64, chunks []Digest, chunkSize int, providers []Provider, progress func(done, total int64)) error {
	if f.Store == nil || f.Opener == nil {
		return errors.New("shards: fetch: Fetcher needs a Store and an Opener")
	}
	if err := CheckCID(c); err != nil {
		return fmt.Errorf("shards: fetch: %w", err)
	}
	plan, err := newPlan(c, size, chunks, chunkSize)
	if err != nil {
		return fmt.Errorf("shards: fetch %s: %w", c, err)
	}
	st := f.Store
	for {
		if have, err := st.Size(c); err == nil {
			if fh, _, err := st.openVerified(c); err == nil && have == size {
				fh.Close()
				if progress != nil {
					progress(size, size)
				}
				return nil
			}
			// An object another fetch is replacing is left to it; this
			// fetch waits for that one below.
			if !st.isFetching(c) {
				f.log().Warn("shards: replacing damaged or mismatched object", "cid", c, "size", have, "want", size)
				if err := st.Delete(c); err != nil {
					return fmt.Errorf("shards: fetch %s: %w", c, err)
				}
			}
		}
		if len(providers) == 0 {
			return fmt.Errorf("%w: %s: no providers", ErrUnavailable, c)
		}
		end, busy := st.beginFetch(c)
		if end != nil {
			defer end()
			break
		}
		// Another fetch of c into this store is under way: wait for it
		// and take its result, or fetch again if it failed.
		select {
		case <-busy:
		case <-ctx.Done():
			return fmt.Errorf("shards: fetch %s: waiting for a fetch in progress: %w", c, ctx.Err())
		}
	}

	j, err := f.openJob(plan)
	if err != nil {
		return fmt.Errorf("shards: fetch %s: %w", c, err)
	}
	j.progress = progress
	err = j.run(ctx, providers)
	j.out.finish()
	if err == nil {
		err = j.finish()
	}
	if err != nil {
		j.file.Close()
		if errors.Is(err, errLocal) {
			os.Remove(j.path)
		}
		return fmt.Errorf("shards: fetch %s: %w", c, err)
	}
	return nil
}

// errLocal marks failures of this node's disk, after which the partial
// file is removed.
var errLocal = errors.New("local write failed")

// plan is the chunk layout of one object.
type plan struct {
	cid       cid.Cid
	size      int64
	chunkSize int64
	digests   []Digest
}

func newPlan(c cid.Cid, size int64, chunks []Digest, chunkSize int) (plan, error) {
	if size <= 0 || size > MaxObjectSize {
		return plan{}, fmt.Errorf("%w: size %d out of range [1, %d]", ErrManifest, size, MaxObjectSize)
	}
	if len(chunks) == 0 {
		dm, err := mh.Decode(c.Hash())
		if err != nil {
			return plan{}, fmt.Errorf("%w: %w", ErrCID, err)
		}
		return plan{cid: c, size: size, chunkSize: size, digests: []Digest{Digest(dm.Digest)}}, nil
	}
	if chunkSize < MinChunkSize || chunkSize > MaxChunkSize {
		return plan{}, fmt.Errorf("%w: chunk size %d out of range [%d, %d]", ErrManifest, chunkSize, MinChunkSize, MaxChunkSize)
	}
	if n := NumChunks(size, chunkSize); size <= int64(chunkSize) || len(chunks) != n {
		return plan{}, fmt.Errorf("%w: %d chunk digests for %d bytes in %d-byte chunks", ErrManifest, len(chunks), size, chunkSize)
	}
	return plan{cid: c, size: size, chunkSize: int64(chunkSize), digests: chunks}, nil
}

func (p *plan) n() int { return len(p.digests) }

// chunked reports whether the object has a chunk list, so that its chunk
// digests and its CID are separate checks.
func (p *plan) chunked() bool { return p.chunkSize < p.size }

// span returns the offset and length of chunk k.
func (p *plan) span(k int) (int64, int64) {
	off := int64(k) * p.chunkSize
	return off, min(p.chunkSize, p.size-off)
}

// job is one Fetch in progress.
type job struct {
	f        *Fetcher
	plan     plan
	path     string
	file     *os.File
	progress func(done, total int64)
	// whole hashes the object as its chunks arrive, for the final check
	// against the CID; nil when the object has no chunk list, as its one
	// chunk is then verified against the CID itself.
	whole *wholeHash
	out   *partialWriter // writes into file

	mu       sync.Mutex
	wake     *sync.Cond
	queue    []int // chunks nobody is fetching, lowest first
	done     []bool
	ndone    int
	doneB    int64
	failures []string
	notFound int
	stopped  bool
	banned   map[string]bool // providers banned during this fetch
	localErr error           // first failure of this node's disk
}

// openJob opens or creates the partial file and counts the chunks that
// already verify.
func (f *Fetcher) openJob(p plan) (*job, error) {
	j := &job{f: f, plan: p, path: f.Store.partialPath(p.cid), done: make([]bool, p.n()),
		banned: make(map[string]bool)}
	j.wake = sync.NewCond(&j.mu)
	fh, err := os.OpenFile(j.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%w: partial file: %w", errLocal, err)
	}
	j.file = fh
	info, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%w: partial file: %w", errLocal, err)
	}
	if info.Size() == p.size {
		buf := make([]byte, min(p.chunkSize, hashBuf))
		for k := range p.n() {
			if j.chunkOnDisk(k, buf) {
				j.done[k] = true
				j.ndone++
				_, l := p.span(k)
				j.doneB += l
			}
		}
		if j.ndone > 0 {
			f.log().Info("shards: resuming fetch", "cid", p.cid, "chunks", j.ndone, "of", p.n(), "bytes", j.doneB)
		}
	} else if err := fh.Truncate(0); err != nil {
		fh.Close()
		return nil, fmt.Errorf("%w: partial file: %w", errLocal, err)
	}
	if err := preallocate(fh, p.size); err != nil {
		fh.Close()
		os.Remove(j.path)
		return nil, fmt.Errorf("%w: partial file: %w", errLocal, err)
	}
	if p.chunked() {
		j.whole = newWholeHash(&j.plan, fh)
	}
	j.out = newPartialWriter(fh, j.path)
	for k := range p.n() {
		if !j.done[k] {
			j.queue = append(j.queue, k)
		} else if j.whole != nil {
			j.whole.onDisk(k)
		}
	}
	return j, nil
}

// chunkOnDisk reports whether chunk k of the partial file hashes to its digest.
func (j *job) chunkOnDisk(k int, buf []byte) bool {
	off, l := j.plan.span(k)
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(j.file, off, l), buf); err != nil {
		return false
	}
	return Digest(h.Sum(nil)) == j.plan.digests[k]
}

// run fetches every missing chunk, one worker per provider.
func (j *job) run(ctx context.Context, providers []Provider) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		j.mu.Lock()
		j.stopped = true
		j.mu.Unlock()
		j.wake.Broadcast()
	})
	defer stop()

	var wg sync.WaitGroup
	seen := make(map[string]bool)
	workers := 0
	for _, p := range providers {
		if p.Peer == "" || seen[p.Peer] {
			continue
		}
		seen[p.Peer] = true
		workers++
		wg.Go(func() {
			if err := j.work(ctx, p); err != nil {
				j.fail(p, err)
				if errors.Is(err, errLocal) {
					j.mu.Lock()
					if j.localErr == nil {
						j.localErr = err
					}
					j.mu.Unlock()
					cancel()
				}
			}
		})
	}
	if workers == 0 {
		return fmt.Errorf("%w: no usable providers", ErrUnavailable)
	}
	wg.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.ndone == j.plan.n() {
		return nil
	}
	if j.localErr != nil {
		return j.localErr
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted after %d of %d chunks: %w", j.ndone, j.plan.n(), err)
	}
	err := fmt.Errorf("%w: %d of %d chunks missing after trying %d providers: %s",
		ErrUnavailable, j.plan.n()-j.ndone, j.plan.n(), workers, strings.Join(j.failures, "; "))
	if j.notFound == workers {
		err = fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// fail records why provider p dropped out.
func (j *job) fail(p Provider, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.failures) < 64 {
		j.failures = append(j.failures, fmt.Sprintf("peer %s: %v", p.Peer, err))
	}
	if errors.Is(err, ErrNotFound) {
		j.notFound++
	}
	j.f.log().Debug("shards: provider dropped", "peer", p.Peer, "cid", j.plan.cid, "err", err)
}

// take returns the next chunk to fetch, waiting while other workers hold
// the remaining ones; it returns -1 when all chunks are done, the fetch is
// stopped or quit is closed.
func (j *job) take(quit <-chan struct{}) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	for {
		select {
		case <-quit:
			return -1
		default:
		}
		if j.stopped || j.ndone == j.plan.n() {
			return -1
		}
		if len(j.queue) > 0 {
			k := j.queue[0]
			j.queue = j.queue[1:]
			return k
		}
		j.wake.Wait()
	}
}

// giveBack returns unfinished chunks to the queue for other workers.
func (j *job) giveBack(ks ...int) {
	if len(ks) == 0 {
		return
	}
	j.mu.Lock()
	for _, k := range ks {
		if !j.done[k] {
			j.queue = append(j.queue, k)
		}
	}
	slices.Sort(j.queue)
	j.mu.Unlock()
	j.wake.Broadcast()
}

// complete marks chunk k verified and on disk.
func (j *job) complete(k int, n int64) {
	j.mu.Lock()
	if !j.done[k] {
		j.done[k] = true
		j.ndone++
		j.doneB += n
		if j.progress != nil {
			j.progress(j.doneB, j.plan.size)
		}
	}
	all := j.ndone == j.plan.n()
	j.mu.Unlock()
	if all {
		j.wake.Broadcast()
	}
}

// finish verifies the complete partial file against the CID, from the
// hash computed as the chunks arrived, syncs it and installs it.
func (j *job) finish() error {
	if j.whole != nil {
		sum, reread, err := j.whole.sum()
		if err != nil {
			return err
		}
		j.f.log().Debug("shards: object hashed while fetching", "cid", j.plan.cid, "size", j.plan.size, "read_back", reread)
		if got := cidOf(sum); !got.Equals(j.plan.cid) {
			os.Remove(j.path)
			return fmt.Errorf("chunk digests do not add up to the CID: %w: %s: %w: %d bytes hash to %s",
				ErrCorrupt, j.plan.cid, ErrMismatch, j.plan.size, got)
		}
	}
	if err := j.file.Sync(); err != nil {
		return fmt.Errorf("%w: sync: %w", errLocal, err)
	}
	if err := j.file.Close(); err != nil {
		return fmt.Errorf("%w: close: %w", errLocal, err)
	}
	if err := j.f.Store.install(j.plan.cid, j.path); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			os.Remove(j.path)
		}
		return fmt.Errorf("%w: install: %w", errLocal, err)
	}
	return nil
}

// evidence describes a digest mismatch for the ban record.
func evidence(want Digest, got []byte, n int64) string {
	return fmt.Sprintf("chunk of %d bytes hashes to %s, want %s", n, hex.EncodeToString(got), hex.EncodeToString(want[:]))
}
