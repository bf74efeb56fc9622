package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/gossip"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// RunConfig makes a node a participant of a federated training run.
type RunConfig struct {
	Spec RunSpec
	// Data lists this participant's text files; they never leave the node.
	Data []string
	// Seed shuffles the local data.
	Seed uint64
	// OnCommit, if set, is called with every round the node learns is
	// certified, in order (skipped rounds included).
	OnCommit func(RoundRecord)
	// tamper, set by tests, rewrites the encoded update before it is
	// stored and announced: a Byzantine participant.
	tamper func(d *train.Delta, enc []byte) []byte
}

// RoundRecord is one certified round of a run, as `strata rounds` prints it.
type RoundRecord struct {
	Round   uint64   `json:"round"`
	Skipped bool     `json:"skipped,omitempty"`
	Model   string   `json:"model"`          // the manifest the round made (its base when skipped)
	Base    string   `json:"base"`           // the manifest it started from
	Rule    string   `json:"rule,omitempty"` // aggregation rule
	Peers   []string `json:"peers,omitempty"`
	Samples uint64   `json:"samples,omitempty"` // tokens trained on by the contributions
	Loss    float32  `json:"loss,omitempty"`    // their sample-weighted mean training loss
	Votes   int      `json:"votes"`             // signatures in the certificate (0 if only the manifest chain is known)
}

// runTopic is the GossipSub topic of run id.
func runTopic(id string) string { return "/strata/run/1/" + id }

// Messages on a run's topic: a byte of kind, then the body.
const (
	msgAnnounce  = 'A' // JSON announcement of a participant's update
	msgConsensus = 'C' // a consensus message (consensus wire format)

	maxRunMessage = 128 << 10
	announceEvery = 3 * time.Second  // re-announce until the round commits
	certEvery     = 5 * time.Second  // re-publish the latest certificate for laggards
	fetchTimeout  = 60 * time.Second // to fetch one update or one version
)

// announcement tells the run that a participant's update for a round is
// stored under Delta. The gossip layer signs it with the sender's key.
type announcement struct {
	Round   uint64  `json:"round"`
	Base    string  `json:"base"`
	Delta   string  `json:"delta"`
	Size    int64   `json:"size"`
	Samples uint64  `json:"samples"`
	Loss    float32 `json:"loss"`
}

// An entry names a contribution inside a proposal: "CID/SIZE/PEER". Sorting
// entries sorts by CID.
func entryOf(c cid.Cid, size int64, peer string) string {
	return c.String() + "/" + strconv.FormatInt(size, 10) + "/" + peer
}

func parseEntry(e string) (c cid.Cid, size int64, peer string, err error) {
	parts := strings.Split(e, "/")
	if len(parts) != 3 {
		return cid.Undef, 0, "", fmt.Errorf("contribution %.80q is not CID/SIZE/PEER", e)
	}
	if c, err = shards.ParseCID(parts[0]); err != nil {
		return cid.Undef, 0, "", err
	}
	if size, err = strconv.ParseInt(parts[1], 10, 64); err != nil || size <= 0 {
		return cid.Undef, 0, "", fmt.Errorf("contribution %.80q: bad size", e)
	}
	return c, size, parts[2], nil
}

// runEvent is something the run's loop must react to.
type runEvent struct {
	from    string             // remote sender, for messages from the topic
	data    []byte             // a message from the topic
	step    *consensus.Message // a local answer for the consensus node
	contrib *contribution      // a fetched (or our own) update
	base    *baseState         // a newly committed base, loaded
}

type contribution struct {
	round consensus.Round
	base  string
	entry string
	c     train.Contribution
	own   bool
	ann   announcement
}

// baseState is the model a round starts from.
type baseState struct {
	round consensus.Round
	id    string
	man   *shards.Manifest
	m     *model.Model // all blocks and the head; never modified
	tok   *model.Tokenizer
}

// runner drives one node's part in a run: local training, announcements,
// update fetching, the consensus node and its persistence.
type runner struct {
	n    *Node
	cfg  RunConfig
	spec RunSpec
	id   string
	dir  string
	log  *slog.Logger
	ch   *gossip.Channel
	agg  train.Aggregation
	cn   *consensus.Node

	events chan runEvent

	// Owned by the loop goroutine.
	cur        *baseState
	round      consensus.Round
	roundAt    time.Time
	contribs   map[string]*contribution // entry -> update, this round
	bySender   map[string]string        // sender -> entry, this round
	fetching   map[string]bool          // senders whose update is being fetched
	own        *contribution
	pending    *consensus.Message // aggregation request waiting for updates
	pendingAt  time.Time          // when it came
	lastCert   *consensus.Certificate
	lastAnn    time.Time
	lastCertAt time.Time
	stopTrain  context.CancelFunc
	done       bool // the run reached its last round

	// Local training state, used by one training goroutine at a time.
	tmu     sync.Mutex
	tm      *model.Model
	trainer *train.Trainer
	codec   train.Codec
	comps   map[string]*train.Compressor // error feedback per set of trained tensors

	hmu     sync.Mutex
	addMu   sync.Mutex // serializes addHistory, which fills gaps outside hmu
	history []RoundRecord

	cmu      sync.Mutex
	certCopy *consensus.Certificate // lastCert, for other goroutines
	traffic  []RoundTraffic         // per finished round, newest last (bounded)
	baseVer  *version               // the current round's base, for release

	gossipSent         atomic.Int64 // bytes of run messages published
	markSent, markRecv int64        // counters at the start of the round (loop only)
}

// startRun joins the run described by cfg. The node must already hold
// (or be able to fetch) the run's genesis model.
func (n *Node) startRun(ctx context.Context, cfg RunConfig) (*runner, error) {
	spec := cfg.Spec
	id, err := spec.ID()
	if err != nil {
		return nil, err
	}
	self := n.ID()
	if !slices.Contains(spec.Roster, self) {
		return nil, fmt.Errorf("node: this peer (%s) is not on the run's roster", self)
	}
	agg, _ := spec.aggregation()
	r := &runner{
		n: n, cfg: cfg, spec: spec, id: id, agg: agg,
		dir:    filepath.Join(n.cfg.Repo, "runs", id),
		log:    n.log.With("run", spec.Name),
		events: make(chan runEvent, 1024),
	}
	enc, _ := spec.Encode()
	if _, err := n.store.Put(enc); err != nil {
		return nil, err
	}
	codec, _ := train.ParseCodec(spec.Codec)
	r.codec, r.comps = codec, map[string]*train.Compressor{}

	hs, err := r.loadState()
	if err != nil {
		return nil, err
	}
	collect, view, round := spec.ticks()
	r.cn, err = consensus.NewNode(consensus.Config{
		ID: self, Roster: spec.Roster, Rule: spec.Rule, Quorum: spec.quorum(),
		Sign: func(b []byte) []byte {
			sig, err := n.mesh.Sign(b)
			if err != nil {
				r.log.Error("node: signing", "err", err)
			}
			return sig
		},
		Verify:       mesh.Verify,
		CollectTicks: collect, ViewTicks: view, RoundTicks: round,
		Logger: r.log,
	}, spec.Genesis, hs)
	if err != nil {
		return nil, err
	}
	if err := r.loadHistory(); err != nil {
		return nil, err
	}
	hs = r.cn.HardState()
	base, err := r.loadBase(ctx, hs.Round, hs.Base)
	if err != nil {
		return nil, err
	}
	if err := r.initTrainer(base); err != nil {
		return nil, err
	}
	r.ch, err = n.gossip.Join(runTopic(id), maxRunMessage, r.check, func(from string, data []byte) {
		n.metrics.runMessage("received", data)
		select {
		case r.events <- runEvent{from: from, data: data}:
		default:
			r.log.Warn("node: run inbox full; dropping a message", "from", from)
		}
	})
	if err != nil {
		return nil, err
	}
	r.log.Info("node: joined federated run", "id", id, "round", hs.Round, "base", hs.Base, "roster", len(spec.Roster))
	n.wg.Add(1)
	go r.loop(ctx, base)
	return r, nil
}

// check validates a message before gossip relays it.
func (r *runner) check(_ string, data []byte) error {
	if len(data) < 2 {
		return errors.New("empty run message")
	}
	switch data[0] {
	case msgAnnounce:
		_, err := decodeAnnouncement(data[1:])
		return err
	case msgConsensus:
		_, err := consensus.Unmarshal(data[1:])
		return err
	}
	return fmt.Errorf("unknown run message kind %d", data[0])
}

func decodeAnnouncement(b []byte) (announcement, error) {
	var a announcement
	if err := json.Unmarshal(b, &a); err != nil {
		return a, fmt.Errorf("announcement: %w", err)
	}
	if a.Round == 0 || a.Size <= 0 || a.Size > shards.MaxObjectSize || a.Samples == 0 || !(a.Loss >= 0) {
		return a, errors.New("announcement: bad round, size, samples or loss")
	}
	if _, err := shards.ParseCID(a.Base); err != nil {
		return a, fmt.Errorf("announcement: base: %w", err)
	}
	if _, err := shards.ParseCID(a.Delta); err != nil {
		return a, fmt.Errorf("announcement: delta: %w", err)
	}
	return a, nil
}

// loop owns the consensus node; everything else reports to it by event.
func (r *runner) loop(ctx context.Context, base *baseState) {
	defer r.n.wg.Done()
	defer r.ch.Close()
	defer func() {
		if r.stopTrain != nil {
			r.stopTrain()
		}
	}()
	r.startRound(ctx, base)
	tick := time.NewTicker(roundTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if !r.done {
				r.cn.Tick()
			}
			r.maybeAggregate(ctx)
			r.republish(ctx)
		case ev := <-r.events:
			r.handle(ctx, ev)
		}
		if err := r.drain(ctx); err != nil {
			r.log.Error("node: run stopped: cannot persist consensus state", "err", err)
			return
		}
	}
}

func (r *runner) handle(ctx context.Context, ev runEvent) {
	switch {
	case ev.data != nil:
		switch ev.data[0] {
		case msgAnnounce:
			a, err := decodeAnnouncement(ev.data[1:])
			if err == nil {
				r.onAnnounce(ctx, ev.from, a)
			}
		case msgConsensus:
			if m, err := consensus.Unmarshal(ev.data[1:]); err == nil && !r.done {
				r.cn.Step(m)
			}
		}
	case ev.step != nil:
		if !r.done {
			r.cn.Step(*ev.step)
		}
	case ev.contrib != nil:
		c := ev.contrib
		delete(r.fetching, c.c.Sender)
		if c.round != r.round || c.base != r.cur.id || r.done {
			return
		}
		if _, dup := r.bySender[c.c.Sender]; dup {
			return
		}
		r.bySender[c.c.Sender] = c.entry
		r.contribs[c.entry] = c
		if c.own {
			r.own = c
			r.announce(ctx)
		}
		r.cn.Step(consensus.Message{Kind: consensus.KindContribution, Round: c.round, Deltas: []string{c.entry}})
		r.maybeAggregate(ctx)
	case ev.base != nil:
		if ev.base.round == r.cur.round && ev.base.id == r.cur.id {
			return // already there (a skipped round keeps the model but starts a new round)
		}
		if ev.base.round >= r.round {
			r.startRound(ctx, ev.base)
		}
	}
}

// drain hands the consensus node's work to the right places: persist,
// record commits, publish, aggregate, check.
func (r *runner) drain(ctx context.Context) error {
	for r.cn.HasReady() {
		rd := r.cn.Ready()
		if rd.MustPersist {
			if err := r.saveState(rd.HardState); err != nil {
				return err
			}
		}
		for _, c := range rd.Commits {
			r.onCommit(ctx, c)
		}
		for _, m := range rd.Messages {
			if m.Kind == consensus.KindCommit {
				c := m.Certificate()
				r.lastCert, r.lastCertAt = &c, time.Now()
				r.cmu.Lock()
				r.certCopy = &c
				r.cmu.Unlock()
			}
			r.publish(ctx, m)
		}
		for _, a := range rd.Aggregate {
			r.pending, r.pendingAt = &a, time.Now()
		}
		for _, p := range rd.Checks {
			r.startCheck(ctx, p)
		}
		r.cn.Advance()
	}
	r.maybeAggregate(ctx)
	return nil
}

func (r *runner) publish(ctx context.Context, m consensus.Message) {
	b, err := m.MarshalBinary()
	if err != nil {
		r.log.Error("node: encoding consensus message", "err", err)
		return
	}
	r.gossipSent.Add(int64(len(b) + 1))
	msg := append([]byte{msgConsensus}, b...)
	r.n.metrics.runMessage("sent", msg)
	if err := r.ch.Publish(ctx, msg); err != nil && ctx.Err() == nil {
		r.log.Warn("node: publishing consensus message", "err", err)
	}
}

// republish re-announces our update and the latest certificate now and
// then, which repairs lost messages and lets late or restarted peers
// catch up.
func (r *runner) republish(ctx context.Context) {
	now := time.Now()
	if r.own != nil && !r.done && now.Sub(r.lastAnn) >= announceEvery {
		r.announce(ctx)
	}
	if r.lastCert != nil && now.Sub(r.lastCertAt) >= certEvery {
		r.lastCertAt = now
		c := *r.lastCert
		r.publish(ctx, consensus.Message{Kind: consensus.KindCommit, Round: c.Round, View: c.View, From: r.n.ID(),
			Base: c.Base, Result: c.Result, Votes: c.Votes})
	}
}

func (r *runner) announce(ctx context.Context) {
	r.lastAnn = time.Now()
	b, _ := json.Marshal(r.own.ann)
	r.gossipSent.Add(int64(len(b) + 1))
	msg := append([]byte{msgAnnounce}, b...)
	r.n.metrics.runMessage("sent", msg)
	if err := r.ch.Publish(ctx, msg); err != nil && ctx.Err() == nil {
		r.log.Warn("node: announcing update", "err", err)
	}
}

// onAnnounce fetches a roster member's update for the current round.
func (r *runner) onAnnounce(ctx context.Context, from string, a announcement) {
	if r.done || consensus.Round(a.Round) != r.round || a.Base != r.cur.id || !slices.Contains(r.spec.Roster, from) ||
		r.fetching[from] {
		return
	}
	c, _ := shards.ParseCID(a.Delta)
	entry := entryOf(c, a.Size, from)
	if have, ok := r.bySender[from]; ok {
		if have != entry {
			r.log.Warn("node: participant announced two different updates in one round; keeping the first",
				"peer", from, "round", a.Round)
		}
		return
	}
	r.fetching[from] = true
	round, base := r.round, r.cur
	r.spawn(func() {
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		ct, err := r.getUpdate(fctx, base, entry, nil)
		if err != nil {
			r.log.Warn("node: fetching update", "peer", from, "round", round, "err", err)
			ct = nil
		} else if _, rejected := train.Validate(r.spec.trained(base.m, uint64(round)), uint64(round), base.id, []train.Contribution{*ct},
			train.Limits{}); len(rejected) > 0 {
			r.log.Warn("node: rejected update", "round", round, "peer", from, "err", rejected[0])
			r.n.metrics.updatesRejected.Inc()
			ct = nil
		}
		var ev runEvent
		if ct != nil {
			ev.contrib = &contribution{round: round, base: base.id, entry: entry, c: *ct}
		} else {
			ev.contrib = &contribution{round: 0, c: train.Contribution{Sender: from}}
		}
		r.send(ctx, ev)
	})
}

// spawn runs f in a goroutine the node's Close waits for. Only the loop
// goroutine calls it, while it holds its own count of the wait group.
func (r *runner) spawn(f func()) {
	r.n.wg.Add(1)
	go func() {
		defer r.n.wg.Done()
		f()
	}()
}

func (r *runner) send(ctx context.Context, ev runEvent) {
	select {
	case r.events <- ev:
	case <-ctx.Done():
	}
}

// maxUpdateSize bounds an update for base: its tensors in float32, plus
// room for names and headers.
func maxUpdateSize(base *baseState) int64 {
	c, _ := train.ParseCodec("fp32")
	return int64(train.DeltaBytes(c, train.Tensors(base.m))) + 1<<20
}

// getUpdate returns the decoded update named by entry, fetching it from
// its author (and extra providers) if the repo lacks it.
func (r *runner) getUpdate(ctx context.Context, base *baseState, entry string, extra []shards.Provider) (*train.Contribution, error) {
	c, size, peer, err := parseEntry(entry)
	if err != nil {
		return nil, err
	}
	if size > maxUpdateSize(base) {
		return nil, fmt.Errorf("update %s of %d bytes from %s is larger than the model", c, size, peer)
	}
	if !r.n.store.Has(c) {
		provs := append([]shards.Provider{{Peer: peer}}, extra...)
		if err := r.n.fetcher.Fetch(ctx, c, size, nil, 0, provs, nil); err != nil {
			return nil, fmt.Errorf("update %s from %s: %w", c, peer, err)
		}
		r.n.metrics.updatesFetched.Inc()
	}
	data, err := r.n.store.Get(c)
	if err != nil {
		return nil, err
	}
	d, err := train.DecodeDelta(data, r.spec.trained(base.m, uint64(base.round)))
	if err != nil {
		return nil, fmt.Errorf("update %s from %s: %w", c, peer, err)
	}
	return &train.Contribution{Sender: peer, Key: entry, Delta: d}, nil
}

// maybeAggregate answers the proposer's aggregation request once every
// roster member's update is in, or a third of a view into the round with a
// quorum's worth.
func (r *runner) maybeAggregate(ctx context.Context) {
	p := r.pending
	if p == nil || r.done {
		return
	}
	if p.Round != r.round {
		r.pending = nil
		return
	}
	// Wait for everyone, or a third of a view for a quorum's worth of
	// updates, which leaves the members the rest of the view to check the
	// proposal. A later view (its proposer took over from a silent one)
	// takes a quorum's worth at once, or what there is after a third of
	// its view.
	_, view, _ := r.spec.ticks()
	wait := time.Duration(view) * roundTick / 3
	enough := r.spec.quorumSize()
	if p.View > 0 && (len(r.contribs) == 0 || len(r.contribs) < enough && time.Since(r.pendingAt) < wait) {
		return
	}
	if p.View == 0 && len(r.contribs) < len(r.spec.Roster) && (time.Since(r.roundAt) < wait || len(r.contribs) < enough) {
		return
	}
	r.pending = nil
	var cs []train.Contribution
	for _, c := range r.contribs {
		cs = append(cs, c.c)
	}
	base, req := r.cur, *p
	r.spawn(func() {
		res, used, err := r.build(base, consensus.Round(req.Round), cs, true)
		if err != nil {
			r.log.Warn("node: aggregating the round", "round", req.Round, "err", err)
			return
		}
		req.Deltas, req.Result = used, res
		r.send(ctx, runEvent{step: &req})
	})
}

// startCheck re-aggregates a proposal and reports whether it gets the same
// result.
func (r *runner) startCheck(ctx context.Context, p consensus.Message) {
	base := r.cur
	have := map[string]train.Contribution{}
	for e, c := range r.contribs {
		have[e] = c.c
	}
	r.spawn(func() {
		ok := false
		defer func() {
			r.send(ctx, runEvent{step: &consensus.Message{Kind: consensus.KindChecked, Round: p.Round, View: p.View,
				Result: p.Result, OK: ok}})
		}()
		if p.Base != base.id || p.Rule != r.spec.Rule {
			return
		}
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		var cs []train.Contribution
		for _, e := range p.Deltas {
			c, found := have[e]
			if !found {
				got, err := r.getUpdate(fctx, base, e, []shards.Provider{{Peer: p.From}})
				if err != nil {
					r.log.Warn("node: checking proposal", "round", p.Round, "proposer", p.From, "err", err)
					return
				}
				c = *got
			}
			cs = append(cs, c)
		}
		res, used, err := r.build(base, p.Round, cs, false)
		if err != nil {
			r.log.Warn("node: re-aggregating proposal", "round", p.Round, "proposer", p.From, "err", err)
			return
		}
		ok = res == p.Result && slices.Equal(used, p.Deltas)
		if !ok {
			r.log.Warn("node: proposal does not reproduce; not voting for it", "round", p.Round, "proposer", p.From,
				"proposed", p.Result, "got", res)
		}
	})
}

// build validates and aggregates cs, applies the outer step to base and
// stores the result as a new version. A proposer drops rejected updates
// (naming their senders); a checker refuses a set with any rejection.
// It returns the result's manifest CID and the entries that went in.
func (r *runner) build(base *baseState, round consensus.Round, cs []train.Contribution, proposer bool) (string, []string, error) {
	ok, rejected := train.Validate(r.spec.trained(base.m, uint64(round)), uint64(round), base.id, cs, train.DefaultLimits())
	for _, rj := range rejected {
		r.log.Warn("node: rejected update", "round", round, "peer", rj.Sender, "err", rj)
		r.n.metrics.updatesRejected.Inc()
	}
	if len(rejected) > 0 && !proposer {
		return "", nil, fmt.Errorf("%d of the proposal's updates fail validation", len(rejected))
	}
	if len(ok) == 0 {
		return "", nil, train.ErrNoDeltas
	}
	slices.SortFunc(ok, func(a, b train.Contribution) int { return strings.Compare(a.Key, b.Key) })
	// One update per CID: two senders of identical bytes count once.
	ok = slices.CompactFunc(ok, func(a, b train.Contribution) bool {
		return strings.SplitN(a.Key, "/", 2)[0] == strings.SplitN(b.Key, "/", 2)[0]
	})
	mean, err := train.Aggregate(r.agg, ok)
	if err != nil {
		return "", nil, err
	}
	outer, err := r.spec.outer()
	if err != nil {
		return "", nil, err
	}
	info := &shards.RoundInfo{Run: r.id, Round: uint64(round), Rule: r.spec.Rule, Loss: mean.Loss}
	if base.man.Round != nil && base.man.Round.Outer != "" {
		oc, err := shards.ParseCID(base.man.Round.Outer)
		if err != nil {
			return "", nil, err
		}
		data, err := r.n.store.Get(oc)
		if err != nil {
			return "", nil, fmt.Errorf("outer optimizer state: %w", err)
		}
		if err := outer.UnmarshalBinary(data); err != nil {
			return "", nil, fmt.Errorf("outer optimizer state: %w", err)
		}
	}
	parent, _ := shards.ParseCID(base.id)
	m, _, _, err := shards.Load(r.n.store, parent, 0, base.m.Config.NLayers, true)
	if err != nil {
		return "", nil, err
	}
	if err := outer.Apply(m, mean); err != nil {
		return "", nil, err
	}
	if outer.Kind == train.OuterNesterov {
		data, err := outer.MarshalBinary()
		if err != nil {
			return "", nil, err
		}
		oc, err := r.n.store.Put(data)
		if err != nil {
			return "", nil, err
		}
		info.Outer = oc.String()
	}
	used := make([]string, len(ok))
	for i, c := range ok {
		used[i] = c.Key
		dc, _, peer, _ := parseEntry(c.Key)
		info.Contributions = append(info.Contributions, shards.Contribution{Peer: peer, Delta: dc.String(),
			Samples: c.Delta.Samples, Loss: c.Delta.Loss})
	}
	id, _, err := shards.ImportRound(r.n.store, m, base.tok, fmt.Sprintf("%s@%d", r.spec.Name, round), parent, info)
	if err != nil {
		return "", nil, err
	}
	return id.String(), used, nil
}

// onCommit records a certified round and moves to the next.
func (r *runner) onCommit(ctx context.Context, c consensus.Certificate) {
	if err := r.appendCert(c); err != nil {
		r.log.Error("node: recording certificate", "round", c.Round, "err", err)
	}
	if r.stopTrain != nil {
		r.stopTrain()
		r.stopTrain = nil
	}
	r.countTraffic(c.Round)
	next := c.Round + 1
	r.round, r.own, r.pending = next, nil, nil
	r.contribs, r.bySender, r.fetching = map[string]*contribution{}, map[string]string{}, map[string]bool{}
	if r.spec.Rounds > 0 && c.Round >= consensus.Round(r.spec.Rounds) {
		r.done = true
	}
	base := c.Next()
	r.spawn(func() {
		b, err := r.loadBase(ctx, next, base)
		if err != nil {
			r.log.Error("node: loading the committed version", "round", c.Round, "model", base, "err", err)
			return
		}
		rec := r.recordOf(c, b)
		r.addHistory(ctx, rec)
		r.n.onVersion(ctx, b)
		r.send(ctx, runEvent{base: b})
	})
}

// maxTraffic bounds the per-round traffic records kept.
const maxTraffic = 1024

// countTraffic records what the node sent and received since the last
// commit, as round's traffic.
func (r *runner) countTraffic(round consensus.Round) {
	sent := r.n.contentSent.Load() + r.gossipSent.Load()
	recv := r.n.fetcher.BytesFetched()
	t := RoundTraffic{Round: uint64(round), Sent: sent - r.markSent, Received: recv - r.markRecv,
		PerStep: int64(train.PerStepGradientBytes(train.Tensors(r.cur.m), r.spec.Steps)) * int64(max(len(r.spec.Roster)-1, 1))}
	r.markSent, r.markRecv = sent, recv
	r.log.Info("node: round traffic", "round", round, "sent", t.Sent, "received", t.Received, "per_step_fp32", t.PerStep)
	r.cmu.Lock()
	r.traffic = append(r.traffic, t)
	if len(r.traffic) > maxTraffic {
		r.traffic = r.traffic[len(r.traffic)-maxTraffic:]
	}
	r.cmu.Unlock()
}

// startRound begins round r.round from base: local training, unless the
// run is over.
func (r *runner) startRound(ctx context.Context, base *baseState) {
	r.cur, r.round, r.roundAt = base, base.round, time.Now()
	r.cmu.Lock()
	r.baseVer = &version{id: base.id, man: base.man}
	r.cmu.Unlock()
	if r.contribs == nil {
		r.contribs, r.bySender, r.fetching = map[string]*contribution{}, map[string]string{}, map[string]bool{}
	}
	if r.done {
		r.log.Info("node: run finished", "rounds", r.spec.Rounds, "model", base.id)
		return
	}
	tctx, cancel := context.WithCancel(ctx)
	r.stopTrain = cancel
	r.spawn(func() {
		c, err := r.trainRound(tctx, base)
		if err != nil {
			if tctx.Err() == nil {
				r.log.Error("node: local training", "round", base.round, "err", err)
			}
			return
		}
		r.send(ctx, runEvent{contrib: c})
	})
}

// RunHistory returns the rounds of the node's training run known to be
// certified, in order; nil if the node is in no run.
func (n *Node) RunHistory() []RoundRecord {
	if n.run == nil {
		return nil
	}
	return n.run.History()
}

// RunID returns the id of the node's training run, or "".
func (n *Node) RunID() string {
	if n.run == nil {
		return ""
	}
	return n.run.id
}
