package infer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-mesh/strata/model"
)

// Transport opens inference streams to other peers. The node adapts its
// libp2p host to it; tests may use any stream pair.
type Transport interface {
	// Self is this peer's id.
	Self() string
	// Addrs are addresses other peers can dial this peer on.
	Addrs() []string
	// Open opens a stream of protocol proto to peer, dialling addrs if
	// there is no connection yet.
	Open(ctx context.Context, peer string, addrs []string, proto string) (io.ReadWriteCloser, error)
}

// Config configures a Service.
type Config struct {
	// ModelID is the CID of the model this peer serves or fronts.
	ModelID string
	// Model holds the loaded weights: the head (needed to act as entry)
	// and blocks [Lo, Hi). Other blocks are nil.
	Model *model.Model
	// Tokenizer is needed to act as entry.
	Tokenizer *model.Tokenizer
	// Lo and Hi are the block span served to other peers; Lo == Hi means
	// this peer serves no blocks.
	Lo, Hi int
	// Transport reaches other peers.
	Transport Transport
	// Servers lists the known servers of a model, usually from the
	// gossip peer table. It is called once per request.
	Servers func(model string) []Server
	// MaxSessions bounds concurrent sessions this peer serves (default 64).
	MaxSessions int
	// MaxKVBytes bounds the memory of the KV caches of all sessions this
	// peer holds, as a hop and as the entry (default 1 GiB); a session
	// that does not fit is refused with ErrBusy.
	MaxKVBytes int64
	// NoBatch turns continuous batching off: every session's step runs on
	// its own (for comparison; outputs are the same either way). Batching
	// is also off for models whose blocks are smaller than batchMinBytes,
	// unless ForceBatch is set.
	NoBatch, ForceBatch bool
	// MaxRequests bounds concurrent requests this peer fronts as the
	// entry (default 64); more are refused with ErrBusy.
	MaxRequests int
	// StepTimeout bounds the wait for one step's result or for a chain to
	// open (default 30s); a stalled hop fails the request after it.
	StepTimeout time.Duration
	// IdleTimeout ends a session whose entry sends nothing for this long,
	// freeing its cache (default 5 minutes).
	IdleTimeout time.Duration
	// Rand supplies session ids (default crypto/rand).
	Rand io.Reader
	// Observe, if set, is called with each token generated, forward pass
	// served and failover (for metrics). It is called synchronously from
	// many goroutines, so it must be fast and safe for concurrent use.
	Observe func(Event)
	Logger  *slog.Logger
}

// Validate reports whether c is usable.
func (c *Config) Validate() error {
	if c.Model == nil || c.Transport == nil {
		return errors.New("infer: config needs a model and a transport")
	}
	if err := c.Model.Config.Validate(); err != nil {
		return err
	}
	if c.Lo != c.Hi {
		if err := c.Model.CheckSpan(c.Lo, c.Hi); err != nil {
			return fmt.Errorf("infer: served span: %w", err)
		}
	}
	if c.Model.Head != nil && c.Tokenizer == nil {
		return errors.New("infer: a model head needs a tokenizer")
	}
	return nil
}

// Service is one peer's inference engine: it serves its block span to
// chains planned by others (HandleStream), and fronts requests as the entry
// peer (Generate, HandleClient). It is safe for concurrent use.
type Service struct {
	cfg      Config
	log      *slog.Logger
	slots    chan struct{} // one token per admitted session
	requests chan struct{} // one token per request fronted
	bans     bans          // peers that failed, avoided with backoff
	kv       atomic.Int64  // bytes of KV caches held

	cur atomic.Pointer[serving] // the weights and span served now

	mu       sync.Mutex
	pending  map[string]*pending   // entry sessions awaiting results, by session id
	batchers map[batchKey]*batcher // one per span with sessions
}

// serving is a span of loaded blocks. Sessions keep the serving they
// started with, so SetServing never disturbs a running session.
type serving struct {
	m      *model.Model
	lo, hi int
}

// New returns a Service for cfg.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 64
	}
	if cfg.MaxKVBytes <= 0 {
		cfg.MaxKVBytes = 1 << 30
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 64
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Servers == nil {
		cfg.Servers = func(string) []Server { return nil }
	}
	s := &Service{
		cfg:      cfg,
		log:      cfg.Logger,
		slots:    make(chan struct{}, cfg.MaxSessions),
		requests: make(chan struct{}, cfg.MaxRequests),
		pending:  make(map[string]*pending),
		batchers: make(map[batchKey]*batcher),
	}
	s.cur.Store(&serving{cfg.Model, cfg.Lo, cfg.Hi})
	return s, nil
}

// SetServing switches the served span to blocks [lo, hi) of m, which must
// be the same model (the same config and head) with those blocks loaded.
// Sessions already running finish on the span they started with.
func (s *Service) SetServing(m *model.Model, lo, hi int) error {
	if m.Config != s.cfg.Model.Config {
		return errors.New("infer: SetServing with a different model")
	}
	if lo != hi {
		if err := m.CheckSpan(lo, hi); err != nil {
			return fmt.Errorf("infer: served span: %w", err)
		}
	}
	if m.Head == nil {
		m2 := *m
		m2.Head = s.cfg.Model.Head
		m = &m2
	}
	s.cur.Store(&serving{m, lo, hi})
	return nil
}

// Serving reports the block span this peer serves.
func (s *Service) Serving() (lo, hi int) {
	sv := s.cur.Load()
	return sv.lo, sv.hi
}

// Layers is the number of blocks of the model.
func (s *Service) Layers() int { return s.cfg.Model.Config.NLayers }

// ModelID is the CID of the model this service runs.
func (s *Service) ModelID() string { return s.cfg.ModelID }

func (s *Service) admit() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Service) release() { <-s.slots }

// reserve claims n bytes of the KV budget, or says why it cannot.
func (s *Service) reserve(n int64) error {
	if used := s.kv.Add(n); used > s.cfg.MaxKVBytes {
		s.kv.Add(-n)
		return fmt.Errorf("%w: KV caches would take %d of %d bytes", ErrBusy, used, s.cfg.MaxKVBytes)
	}
	return nil
}

func (s *Service) unreserve(n int64) { s.kv.Add(-n) }

// KVBytes is the memory held by KV caches now.
func (s *Service) KVBytes() int64 { return s.kv.Load() }

func (s *Service) enter() bool {
	select {
	case s.requests <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *Service) leave() { <-s.requests }

// Requests is the number of requests this peer currently fronts.
func (s *Service) Requests() int { return len(s.requests) }

// Sessions is the number of sessions this peer currently serves.
func (s *Service) Sessions() int { return len(s.slots) }
