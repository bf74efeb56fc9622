package infer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Failover bounds. A request survives up to MaxFailovers failed hops; a
// failed peer is banned from new chains for BanMin, doubling with every
// further failure up to BanMax.
const (
	MaxFailovers = 4
	BanMin       = 2 * time.Second
	BanMax       = 5 * time.Minute
)

// bans remembers peers that failed, with exponential backoff. The zero
// value is ready to use.
type bans struct {
	mu sync.Mutex
	m  map[string]*ban
}

type ban struct {
	until   time.Time
	backoff time.Duration
}

// add bans peer from now; a peer banned again within its last backoff
// (plus BanMax) has its backoff doubled.
func (b *bans) add(peer string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[string]*ban{}
	}
	cur := b.m[peer]
	switch {
	case cur == nil || now.Sub(cur.until) > BanMax:
		cur = &ban{backoff: BanMin}
		b.m[peer] = cur
	default:
		cur.backoff = min(2*cur.backoff, BanMax)
	}
	cur.until = now.Add(cur.backoff)
	return cur.backoff
}

func (b *bans) banned(peer string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.m[peer]
	return cur != nil && now.Before(cur.until)
}

// Banned lists the peers this entry currently avoids.
func (s *Service) Banned() []string {
	now := time.Now()
	s.bans.mu.Lock()
	defer s.bans.mu.Unlock()
	var out []string
	for p, b := range s.bans.m {
		if now.Before(b.until) {
			out = append(out, p)
		}
	}
	return out
}

// runner drives one request's chain: it opens the chain, and when a hop
// fails it bans the peer, plans a new chain around it and replays the
// session's history, so the request continues as if nothing happened.
type runner struct {
	s       *Service
	sv      *serving
	sess    *entrySession
	chain   []Hop
	hist    []int           // every token fed so far, by position
	avoid   map[string]bool // peers left out of this request's chains
	failed  []string        // what failed, for Stats and the final error
	timeout time.Duration
}

// forward feeds tokens at positions pos.. and returns the final activation
// of the last one. After a failure the new chain gets the whole history.
func (r *runner) forward(ctx context.Context, tokens []int, pos int) ([]float32, error) {
	r.hist = append(r.hist[:pos], tokens...)
	for {
		var x []float32
		err := r.ensure(ctx)
		if err == nil {
			if r.sess.fresh {
				x, err = r.sess.forward(ctx, r.hist, 0)
			} else {
				x, err = r.sess.forward(ctx, tokens, pos)
			}
		}
		if err == nil {
			r.sess.fresh = false
			return x, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !r.recover(err) {
			return nil, err
		}
	}
}

// ensure opens a chain if there is none.
func (r *runner) ensure(ctx context.Context) error {
	if r.sess != nil {
		return nil
	}
	cfg := r.sv.m.Config
	chain, err := Plan(r.s.candidates(r.sv, r.avoid), cfg.NLayers, r.s.cfg.Transport.Self())
	if err != nil {
		err = fmt.Errorf("%w (model %s)", err, r.s.cfg.ModelID)
		if len(r.failed) > 0 {
			err = fmt.Errorf("%w; after failures: %s", err, strings.Join(r.failed, "; "))
		}
		return &HopError{Code: CodeNoRoute, Message: strings.TrimPrefix(err.Error(), "infer: ")}
	}
	sess, err := r.s.open(ctx, r.sv, chain)
	if err != nil {
		return err
	}
	sess.fresh = true
	r.sess, r.chain = sess, chain
	return nil
}

// recover decides whether err can be routed around: it records the
// failure, bans or avoids the peer it names, drops the chain and reports
// whether to try again.
func (r *runner) recover(err error) bool {
	var he *HopError
	if errors.As(err, &he) && (he.Code == CodeNoRoute || he.Code == CodeRequest || he.Code == CodeContext || he.Code == CodeModel) {
		return false
	}
	self := r.s.cfg.Transport.Self()
	if he != nil && he.Code == CodeBusy && he.Peer == self {
		return false // this peer is full; another chain will not help
	}
	if r.sess != nil {
		r.sess.close()
		r.sess = nil
	}
	blame := []string{}
	switch {
	case he != nil && he.Peer != "" && he.Peer != self:
		blame = append(blame, he.Peer)
	default: // a stall, or a failure nobody owned: avoid the whole chain
		for _, h := range r.chain {
			if h.Peer != self {
				blame = append(blame, h.Peer)
			}
		}
	}
	now := time.Now()
	for _, p := range blame {
		r.avoid[p] = true
		if he == nil || he.Code != CodeBusy { // busy is not misbehaviour
			d := r.s.bans.add(p, now)
			r.s.log.Warn("infer: peer failed; routing around it", "peer", p, "ban", d, "err", err)
		}
	}
	r.failed = append(r.failed, err.Error())
	ok := len(r.failed) <= MaxFailovers && len(blame) > 0
	if ok {
		r.s.observe(Event{Kind: EventFailover})
	}
	return ok
}

func (r *runner) close() {
	if r.sess != nil {
		r.sess.close()
	}
}

// candidates is the planner's view of the servers minus banned peers and
// those this request avoids.
func (s *Service) candidates(sv *serving, avoid map[string]bool) []Server {
	now := time.Now()
	var out []Server
	for _, srv := range s.servers(sv) {
		if !avoid[srv.Peer] && !s.bans.banned(srv.Peer, now) {
			out = append(out, srv)
		}
	}
	return out
}
