package mesh

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Defaults of the per-peer stream rate limit (Config.StreamRate and
// Config.StreamBurst).
const (
	// DefaultStreamRate is how many new inbound streams per second one
	// remote peer may open on one protocol, sustained.
	DefaultStreamRate = 64
	// DefaultStreamBurst is how many it may open at once after a quiet
	// spell.
	DefaultStreamBurst = 256
	// maxBuckets bounds the limiter's memory: a (peer, protocol) pair
	// beyond it is refused until idle buckets are swept. The resource
	// manager keeps the number of connected peers far below it.
	maxBuckets = 1 << 16
	// limitWarnEvery spaces the warnings about one rate-limited pair.
	limitWarnEvery = time.Minute
)

// rateSpec is a token bucket's refill rate (tokens per second) and size.
type rateSpec struct {
	rate  float64
	burst float64
}

// bucket is the token bucket of one (peer, protocol) pair.
type bucket struct {
	tokens  float64
	last    time.Time // when tokens was computed
	dropped int       // streams refused since the last warning
	warned  time.Time
}

type limitKey struct {
	peer  peer.ID
	proto protocol.ID
}

// limiter is a token bucket per remote peer and protocol. It is pure
// apart from its mutex: the caller passes the time.
type limiter struct {
	def   rateSpec
	proto map[protocol.ID]rateSpec // per-protocol overrides

	mu        sync.Mutex
	buckets   map[limitKey]*bucket
	sweepAt   int
	limited   uint64 // streams refused in total
	overflows uint64 // refusals because the bucket table was full
	// byProto counts refusals by protocol. Its keys are protocols
	// registered with Handle, so it stays small.
	byProto map[protocol.ID]uint64
}

func newLimiter(def rateSpec, proto map[protocol.ID]rateSpec) *limiter {
	return &limiter{def: def, proto: proto, buckets: make(map[limitKey]*bucket), sweepAt: 1024,
		byProto: make(map[protocol.ID]uint64)}
}

func (l *limiter) spec(proto protocol.ID) rateSpec {
	if s, ok := l.proto[proto]; ok {
		return s
	}
	return l.def
}

// allow takes a token for a new stream of proto from p at now. When it
// refuses, warn > 0 asks the caller to log that this many streams of the
// pair were refused since the last warning (at most one per
// limitWarnEvery per pair).
func (l *limiter) allow(p peer.ID, proto protocol.ID, now time.Time) (ok bool, warn int) {
	s := l.spec(proto)
	k := limitKey{p, proto}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= l.sweepAt {
			l.sweep(now)
		}
		if len(l.buckets) >= maxBuckets {
			l.limited++
			l.byProto[proto]++
			l.overflows++
			return false, 0
		}
		b = &bucket{tokens: s.burst, last: now}
		l.buckets[k] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(s.burst, b.tokens+dt*s.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	l.limited++
	l.byProto[proto]++
	b.dropped++
	if now.Sub(b.warned) >= limitWarnEvery {
		warn, b.dropped, b.warned = b.dropped, 0, now
	}
	return false, warn
}

// sweep forgets buckets that have refilled completely: a full bucket
// behaves exactly like a new one. It then lets the table grow to twice
// its size before the next sweep.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		s := l.spec(k.proto)
		if b.tokens+now.Sub(b.last).Seconds()*s.rate >= s.burst {
			delete(l.buckets, k)
		}
	}
	l.sweepAt = max(1024, 2*len(l.buckets))
}

// stats returns the streams refused so far.
func (l *limiter) stats() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limited
}

// statsByProto returns the streams refused so far by protocol.
func (l *limiter) statsByProto() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.byProto))
	for p, n := range l.byProto {
		out[string(p)] = n
	}
	return out
}
