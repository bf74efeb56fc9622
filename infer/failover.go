package infer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Failover bounds. A request survives up to MaxFailovers failed hops; a
// failed peer is banned from new chains for BanMin, doubling with every
// further failure up to BanMax. A ban is lifted when the peer's adverts
// show it restarted (Server.Started changed) and when a chain through it
// opens; while every holder of some blocks is banned, the planner still
// tries the banned ones, soonest to be forgiven first, rather than fail.
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
	failed  time.Time // the last failure
	started int64     // the peer's Server.Started when it last failed
	err     string    // the last failure
}

// add bans peer from now; a peer banned again within its last backoff
// (plus BanMax) has its backoff doubled. started is the peer's
// Server.Started as the entry knew it when the peer failed.
func (b *bans) add(peer string, started int64, err error, now time.Time) time.Duration {
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
	cur.until, cur.failed, cur.started = now.Add(cur.backoff), now, started
	if err != nil {
		cur.err = err.Error()
	}
	return cur.backoff
}

// check reports whether srv is banned at now, and its ban. A server whose
// start time differs from the one it failed with has restarted since: its
// ban and backoff are forgotten, and restarted says so.
func (b *bans) check(srv Server, now time.Time) (cur ban, banned, restarted bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.m[srv.Peer]
	if p == nil {
		return ban{}, false, false
	}
	if srv.Started != 0 && srv.Started != p.started {
		delete(b.m, srv.Peer)
		return ban{}, false, true
	}
	return *p, now.Before(p.until), false
}

// lift ends peer's ban at now, keeping its backoff, so a peer that fails
// again soon is still banned for longer. It reports whether peer was
// banned.
func (b *bans) lift(peer string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.m[peer]
	if p == nil || !now.Before(p.until) {
		return false
	}
	p.until = now
	return true
}

// last returns peer's last recorded failure.
func (b *bans) last(peer string) (ban, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.m[peer]
	if p == nil {
		return ban{}, false
	}
	return *p, true
}

// Banned lists the peers this entry currently avoids, sorted. Peers
// whose adverts show they restarted since they failed are let off first.
func (s *Service) Banned() []string {
	now := time.Now()
	for _, srv := range s.cfg.Servers(s.cfg.ModelID) {
		s.bans.check(srv, now)
	}
	s.bans.mu.Lock()
	defer s.bans.mu.Unlock()
	var out []string
	for p, b := range s.bans.m {
		if now.Before(b.until) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
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
	hist    []int              // every token fed so far, by position
	avoid   map[string]bool    // peers left out of this request's chains
	failed  []string           // what failed, for Stats and the final error
	errs    map[string]failure // each avoided peer's failure
	started map[string]int64   // each server's Started, as last planned
	timeout time.Duration
}

// failure is one peer's failure during a request.
type failure struct {
	msg string
	at  time.Time
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
	chain, err := r.plan()
	if err != nil {
		return err
	}
	sess, err := r.s.open(ctx, r.sv, chain)
	if err != nil {
		return err
	}
	// The whole chain acknowledged the open: every hop is alive, so a
	// peer tried as a last resort is banned no longer.
	now := time.Now()
	for _, h := range chain {
		if r.s.bans.lift(h.Peer, now) {
			r.s.log.Info("infer: banned peer answered; ban lifted", "peer", h.Peer)
		}
	}
	sess.fresh = true
	r.sess, r.chain = sess, chain
	return nil
}

// plan chooses the next chain from the known servers, leaving out the
// peers this request avoids and, while others can serve their blocks, the
// banned ones. Banned holders are the last resort: when the others leave
// blocks uncovered they are added one by one, the one whose ban ends first
// (then the one that failed longest ago) first, until the model is covered.
func (r *runner) plan() ([]Hop, error) {
	layers := r.sv.m.Config.NLayers
	self := r.s.cfg.Transport.Self()
	now := time.Now()
	all := r.s.servers(r.sv)
	type held struct {
		srv Server
		ban ban
	}
	var use []Server
	var banned []held
	for _, srv := range all {
		if r.started == nil {
			r.started = map[string]int64{}
		}
		r.started[srv.Peer] = srv.Started
		if r.avoid[srv.Peer] {
			continue
		}
		b, isBanned, restarted := r.s.bans.check(srv, now)
		if restarted {
			r.s.log.Info("infer: banned peer restarted; ban lifted", "peer", srv.Peer)
		}
		if isBanned {
			banned = append(banned, held{srv, b})
			continue
		}
		use = append(use, srv)
	}
	sort.SliceStable(banned, func(i, j int) bool {
		a, b := banned[i].ban, banned[j].ban
		if !a.until.Equal(b.until) {
			return a.until.Before(b.until)
		}
		if !a.failed.Equal(b.failed) {
			return a.failed.Before(b.failed)
		}
		return banned[i].srv.Peer < banned[j].srv.Peer
	})
	for _, h := range banned {
		missing := Missing(use, layers)
		if len(missing) == 0 {
			break
		}
		if overlaps(h.srv, missing) {
			r.s.log.Info("infer: every other holder failed; trying a banned peer", "peer", h.srv.Peer,
				"blocks", FormatSpans(missing), "ban_left", h.ban.until.Sub(now).Round(time.Millisecond))
			use = append(use, h.srv)
		}
	}
	chain, err := Plan(use, layers, self)
	if err == nil {
		return chain, nil
	}
	msg := strings.TrimPrefix(err.Error(), "infer: ")
	if missing := Missing(use, layers); len(missing) > 0 {
		msg = "no route: " + r.explain(all, missing)
	}
	if len(r.failed) > 0 && !strings.Contains(msg, "failed recently") {
		msg += "; after failures: " + strings.Join(r.failed, "; ")
	}
	return nil, &HopError{Code: CodeNoRoute, Message: fmt.Sprintf("%s (model %s)", msg, r.s.cfg.ModelID)}
}

// overlaps reports whether srv holds a block of any of spans.
func overlaps(srv Server, spans []Span) bool {
	for _, sp := range spans {
		if srv.Lo < sp.Hi && sp.Lo < srv.Hi {
			return true
		}
	}
	return false
}

// explain says why each of the missing spans has no server: nobody
// known holds it, or every holder failed recently (naming the last
// failure among them).
func (r *runner) explain(all []Server, missing []Span) string {
	var parts []string
	for _, sp := range missing {
		var holders []string
		for _, srv := range all {
			if overlaps(srv, []Span{sp}) && !slices.Contains(holders, srv.Peer) {
				holders = append(holders, srv.Peer)
			}
		}
		if len(holders) == 0 {
			parts = append(parts, fmt.Sprintf("blocks %s are not served by any known peer", FormatSpans([]Span{sp})))
			continue
		}
		last, lastAt := "", time.Time{}
		for _, p := range holders {
			if e, ok := r.errs[p]; ok && (last == "" || e.at.After(lastAt)) {
				last, lastAt = e.msg, e.at
			} else if b, ok := r.s.bans.last(p); ok && b.err != "" && (last == "" || b.failed.After(lastAt)) {
				last, lastAt = b.err, b.failed
			}
		}
		if last == "" {
			last = "unknown error"
		}
		parts = append(parts, fmt.Sprintf("blocks %s: every holder (%d) failed recently: %s",
			FormatSpans([]Span{sp}), len(holders), strings.TrimPrefix(last, "infer: ")))
	}
	return strings.Join(parts, "; ")
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
	if r.errs == nil {
		r.errs = map[string]failure{}
	}
	for _, p := range blame {
		r.avoid[p] = true
		r.errs[p] = failure{err.Error(), now}
		if he == nil || he.Code != CodeBusy { // busy is not misbehaviour
			d := r.s.bans.add(p, r.started[p], err, now)
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
