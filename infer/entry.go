package infer

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/strata-mesh/strata/model"
)

// Generate runs req with this peer as the entry: it tokenizes, plans a
// chain over the known servers, streams activations through it, samples
// with the head and calls emit with each piece of text, prompt included,
// in order. It returns when the steps are done, a stop token is sampled
// (model.Tokenizer.IsStop: BOS as in run.c, or a BPE tokenizer's end of
// text or turn), emit fails or ctx ends.
func (s *Service) Generate(ctx context.Context, req Request, emit func(Token) error) (st Stats, err error) {
	if err := req.Validate(); err != nil {
		return st, err
	}
	sv := s.cur.Load()
	m, tok := sv.m, s.cfg.Tokenizer
	if req.Model != "" && req.Model != s.cfg.ModelID {
		return st, fmt.Errorf("%w: model %s is not served by this peer (it fronts %s)", ErrModel, req.Model, s.cfg.ModelID)
	}
	if m.Head == nil || tok == nil {
		return st, fmt.Errorf("%w: this peer holds no head and tokenizer for model %s", ErrModel, s.cfg.ModelID)
	}
	cfg := m.Config
	prompt := tok.Encode(req.Prompt, true, false)
	if len(prompt) == 0 {
		return st, fmt.Errorf("%w: the prompt is empty and the tokenizer adds no BOS to start from", ErrRequest)
	}
	steps := req.Steps
	if steps <= 0 || steps > cfg.SeqLen {
		steps = cfg.SeqLen
	}
	if len(prompt) > cfg.SeqLen || (req.MaxTokens > 0 && len(prompt)+req.MaxTokens > cfg.SeqLen) {
		return st, fmt.Errorf("%w: the prompt is %d tokens and %d more were asked for; the model's context is %d",
			ErrContext, len(prompt), req.MaxTokens, cfg.SeqLen)
	}
	st.PromptTokens = len(prompt)
	if !s.enter() {
		return st, fmt.Errorf("%w: this entry runs %d requests, its limit", ErrBusy, cap(s.requests))
	}
	defer s.leave()

	run := &runner{s: s, sv: sv, avoid: map[string]bool{}}
	defer func() {
		run.close()
		st.Chain, st.Failovers = run.chain, run.failed
	}()

	start := time.Now()
	say := func(prev, next int, forced bool) error {
		return emit(Token{ID: next, Piece: []byte(tok.Print(prev, next)), Prompt: forced})
	}
	sampler := model.NewSampler(cfg.VocabSize, req.Temperature, req.TopP, req.Seed)
	logits := make([]float32, cfg.VocabSize)
	finish := func(stop string) (Stats, error) {
		st.Stop = stop
		st.Seconds = time.Since(start).Seconds()
		if st.Seconds > 0 {
			st.TokensPerSec = float64(st.Forward) / st.Seconds
		}
		return st, nil
	}

	// The prompt runs as one batch; its pieces are forced, as in run.c.
	// Without a BOS first (a BPE tokenizer that adds none), the first
	// prompt token is text too.
	k := min(len(prompt), steps)
	if tok.BOS() < 0 {
		if err := say(-1, prompt[0], true); err != nil {
			return st, err
		}
	}
	for i := 0; i+1 < k; i++ {
		if prompt[i+1] == model.BOS && tok.Format() == model.TokenizerLlama2C { // run.c stops at a BOS in the prompt
			return finish(StopBOS)
		}
		if err := say(prompt[i], prompt[i+1], true); err != nil {
			return st, err
		}
	}
	if k < len(prompt) {
		return finish(StopSteps)
	}
	token, pos := prompt[k-1], k
	stepAt := time.Now()
	x, err := run.forward(ctx, prompt, 0)
	if err != nil {
		return st, err
	}
	st.Forward += k
	for {
		stepSecs := time.Since(stepAt).Seconds()
		m.Logits(x, logits)
		next := sampler.Sample(logits)
		if tok.IsStop(next) {
			return finish(StopBOS)
		}
		if err := say(token, next, false); err != nil {
			return st, err
		}
		st.Generated++
		s.observe(Event{Kind: EventToken, Seconds: stepSecs})
		switch {
		case req.MaxTokens > 0 && st.Generated >= req.MaxTokens:
			return finish(StopMaxTokens)
		case pos >= steps:
			return finish(StopSteps)
		}
		token = next
		stepAt = time.Now()
		if x, err = run.forward(ctx, []int{token}, pos); err != nil {
			return st, err
		}
		st.Forward++
		pos++
	}
}

// servers returns the planner's view of the mesh, with this peer's own
// span in it even before its first advert has been seen.
func (s *Service) servers(sv *serving) []Server {
	self := s.cfg.Transport.Self()
	var out []Server
	for _, srv := range s.cfg.Servers(s.cfg.ModelID) {
		if srv.Peer != self { // our own advert may be older than our span
			out = append(out, srv)
		}
	}
	if sv.lo == sv.hi {
		return out
	}
	return append(out, Server{Peer: self, Lo: sv.lo, Hi: sv.hi})
}

// blameDelay is how long a broken return stream waits for a more precise
// error from the chain before it blames the last hop.
const blameDelay = 200 * time.Millisecond

// pending is an entry session waiting for results from its last hop.
type pending struct {
	id      string
	lastHop string
	results chan []float32 // activation of the last position of each step
	errs    chan error
}

func (p *pending) deliver(pos int, x []float32) {
	select {
	case p.results <- append([]float32(nil), x...):
	default:
		p.fail(fmt.Errorf("%w: unsolicited result at position %d", ErrProtocol, pos))
	}
}

func (p *pending) fail(err error) {
	select {
	case p.errs <- err:
	default:
	}
}

func (s *Service) lookup(id string) *pending {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending[id]
}

// receive reads the last hop's results for an entry session.
func (s *Service) receive(c *conn, remote, id string) {
	p := s.lookup(id)
	if p == nil || p.lastHop != remote {
		s.refuse(c, remote, errNoSession(id))
		return
	}
	if err := c.write(frameAck, nil); err != nil {
		p.fail(&HopError{Peer: remote, Code: CodeFailed, Message: "return stream: " + err.Error()})
		return
	}
	cfg := s.cfg.Model.Config
	var buf []float32
	for {
		c.expect(s.cfg.IdleTimeout)
		typ, payload, err := c.read()
		if err != nil {
			if s.lookup(id) == p { // still running: the last hop went away
				// A hop further up that failed closes this stream too; give
				// the chain's own report, which names the culprit, a moment
				// to arrive first.
				time.AfterFunc(blameDelay, func() {
					p.fail(&HopError{Peer: remote, Code: CodeFailed, Message: "return stream closed: " + err.Error()})
				})
			}
			return
		}
		if typ == frameError {
			p.fail(decodeError(payload))
			return
		}
		pos, n, x, err := decodeActs(payload, cfg.Dim, cfg.SeqLen, buf)
		if err == nil && (typ != frameResult || n != 1) {
			err = fmt.Errorf("%w: frame type %d with %d positions on a return stream", ErrProtocol, typ, n)
		}
		if err != nil {
			p.fail(&HopError{Peer: remote, Code: CodeProtocol, Message: err.Error()})
			return
		}
		buf = x
		p.deliver(pos, x)
	}
}

// entrySession is the entry's end of a chain: the blocks it runs itself
// first, then a stream to the first remote hop.
type entrySession struct {
	fresh   bool // its hops hold no positions yet
	chain   []Hop
	first   string // the first remote hop
	kv      int64  // KV budget held for local
	s       *Service
	m       *model.Model
	local   *stepper // the entry's own leading blocks, or nil
	remote  bool
	rw      io.ReadWriteCloser
	c       *conn
	p       *pending
	wg      sync.WaitGroup
	xs      []float32
	timeout time.Duration
}

// open builds the chain for one request.
func (s *Service) open(ctx context.Context, sv *serving, chain []Hop) (*entrySession, error) {
	self := s.cfg.Transport.Self()
	es := &entrySession{s: s, m: sv.m, chain: chain, timeout: s.cfg.StepTimeout}
	if chain[0].Peer == self {
		es.kv = sv.m.StateBytes(chain[0].Lo, chain[0].Hi)
		if err := s.reserve(es.kv); err != nil {
			es.kv = 0
			return nil, &HopError{Peer: self, Code: CodeBusy, Message: err.Error()}
		}
		es.local = s.newStepper(sv.m, sv.m.NewState(chain[0].Lo, chain[0].Hi))
		chain = chain[1:]
	}
	if len(chain) == 0 {
		return es, nil
	}
	es.remote, es.first = true, chain[0].Peer
	var raw [16]byte
	if _, err := io.ReadFull(s.cfg.Rand, raw[:]); err != nil {
		return nil, fmt.Errorf("infer: session id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	es.p = &pending{id: id, lastHop: chain[len(chain)-1].Peer, results: make(chan []float32, 1), errs: make(chan error, 1)}
	s.mu.Lock()
	s.pending[id] = es.p
	s.mu.Unlock()

	octx, cancel := context.WithTimeout(ctx, s.cfg.StepTimeout)
	defer cancel()
	first := chain[0]
	rw, err := s.cfg.Transport.Open(octx, first.Peer, first.Addrs, ProtocolID)
	if err != nil {
		es.close()
		return nil, &HopError{Peer: first.Peer, Code: CodeFailed, Message: fmt.Sprintf("cannot reach peer: %v", err)}
	}
	es.rw, es.c = rw, newConn(rw)
	stop := context.AfterFunc(octx, func() { rw.Close() })
	err = es.c.writeJSON(frameOpen, openMsg{
		Session: id, Model: s.cfg.ModelID, Lo: first.Lo, Hi: first.Hi, Next: chain[1:],
		Entry: Hop{Peer: self, Addrs: s.cfg.Transport.Addrs()},
	})
	if err == nil {
		err = es.c.readJSON(frameAck, nil)
	}
	if !stop() && err != nil {
		err = fmt.Errorf("timed out after %s opening the chain %s: %w", s.cfg.StepTimeout, describe(chain), err)
	}
	if err != nil {
		es.close()
		return nil, asHopError(err, first.Peer)
	}
	es.wg.Add(1)
	go func() { // errors travel back up the chain on this stream
		defer es.wg.Done()
		for {
			typ, payload, err := es.c.read()
			if err != nil {
				es.p.fail(&HopError{Peer: first.Peer, Code: CodeFailed, Message: "stream closed: " + err.Error()})
				return
			}
			if typ == frameError {
				es.p.fail(decodeError(payload))
				return
			}
		}
	}()
	return es, nil
}

// forward runs tokens at positions pos.. through the whole chain and
// returns the final activation of the last position.
func (es *entrySession) forward(ctx context.Context, tokens []int, pos int) ([]float32, error) {
	m := es.m
	dim := m.Config.Dim
	if need := len(tokens) * dim; cap(es.xs) < need {
		es.xs = make([]float32, need)
	}
	xs := es.xs[:len(tokens)*dim]
	for i, t := range tokens {
		m.Embed(t, xs[i*dim:(i+1)*dim])
	}
	if es.local != nil {
		es.local.forward(xs, pos, len(tokens))
	}
	if !es.remote {
		return xs[len(xs)-dim:], nil
	}
	if err := es.c.writeActs(frameStep, pos, len(tokens), xs); err != nil {
		select { // the reader may already know why the stream broke
		case err := <-es.p.errs:
			return nil, err
		default:
		}
		return nil, &HopError{Peer: es.first, Code: CodeFailed, Message: fmt.Sprintf("sending step at position %d: %v", pos, err)}
	}
	timer := time.NewTimer(es.timeout)
	defer timer.Stop()
	select {
	case x := <-es.p.results:
		return x, nil
	case err := <-es.p.errs:
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		return nil, fmt.Errorf("infer: no result for position %d within %s from the chain %s", pos, es.timeout, describe(es.chain))
	}
}

// close tears the chain down; every hop frees its cache when its upstream
// stream ends.
func (es *entrySession) close() {
	es.s.unreserve(es.kv)
	es.kv = 0
	if es.local != nil {
		es.local.close()
		es.local = nil
	}
	if es.p != nil {
		es.s.mu.Lock()
		delete(es.s.pending, es.p.id)
		es.s.mu.Unlock()
	}
	if es.rw != nil {
		es.rw.Close()
	}
	es.wg.Wait()
}

func describe(chain []Hop) string {
	out := ""
	for i, h := range chain {
		if i > 0 {
			out += " → "
		}
		out += fmt.Sprintf("%s[%d:%d]", short(h.Peer), h.Lo, h.Hi)
	}
	return out
}

// short abbreviates a peer id for messages.
func short(id string) string {
	if len(id) > 12 {
		return id[:4] + "…" + id[len(id)-6:]
	}
	return id
}
