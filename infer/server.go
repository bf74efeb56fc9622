package infer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/strata-mesh/strata/model"
)

// HandleStream serves one inbound stream of ProtocolID from peer remote:
// either a session of the chain (the stream starts with an open frame) or
// the last hop returning results to this entry (a return frame). It returns
// when the stream ends; the caller closes rw afterwards.
func (s *Service) HandleStream(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	c := newConn(rw)
	open, ret, ok := s.gate().first(c, remote)
	switch {
	case !ok:
	case open != nil:
		s.serve(c, remote, open)
	default:
		s.receive(c, remote, ret.Session)
	}
}

// refuse answers a stream with an error frame naming this peer.
func (s *Service) refuse(c *conn, remote string, err error) {
	s.gate().refuse(c, remote, err)
}

// hopLink is the link from one hop to the next: a stream to the next hop,
// a stream back to the entry, or (when this peer is the entry) the local
// session.
type hopLink struct {
	c     *conn
	peer  string // the next hop, or the entry on the last hop
	close func()
	local *pending
}

// serve runs one session of the chain on this peer; m has been validated
// (gate.first).
func (s *Service) serve(up *conn, remote string, m *openMsg) {
	sv := s.cur.Load()
	if m.Model != s.cfg.ModelID || m.Lo < sv.lo || m.Hi > sv.hi {
		s.refuse(up, remote, refuseModel(s.cfg.Transport.Self(), m,
			fmt.Sprintf("blocks %d:%d of model %s", sv.lo, sv.hi, s.cfg.ModelID)))
		return
	}
	if !s.admit() {
		s.refuse(up, remote, fmt.Errorf("%w: serving %d sessions, the limit", ErrBusy, cap(s.slots)))
		return
	}
	defer s.release()
	kv := sv.m.StateBytes(m.Lo, m.Hi)
	if err := s.reserve(kv); err != nil {
		s.refuse(up, remote, err)
		return
	}
	defer s.unreserve(kv)

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StepTimeout)
	down, err := s.link(ctx, m)
	cancel()
	if err != nil {
		_ = up.writeError(err, s.cfg.Transport.Self())
		return
	}
	defer down.close()

	var upMu sync.Mutex // the relay goroutine and this one both write up
	var wg sync.WaitGroup
	var ending atomic.Bool // set once this hop closes its downstream itself
	if down.c != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.relayErrors(down, up, &upMu, &ending)
		}()
	}
	err = s.run(up, down, m, sv.m)
	ending.Store(true)
	down.close()
	wg.Wait()
	if err != nil && !errors.Is(err, io.EOF) {
		s.log.Info("infer: session ended", "session", m.Session, "peer", remote, "err", err)
		upMu.Lock()
		_ = up.writeError(err, s.cfg.Transport.Self())
		upMu.Unlock()
	}
}

// link opens the rest of the chain: the next hop with the remaining route,
// or, on the last hop, the return stream to the entry.
func (s *Service) link(ctx context.Context, m *openMsg) (*hopLink, error) {
	self := s.cfg.Transport.Self()
	if len(m.Next) == 0 && m.Entry.Peer == self {
		p := s.lookup(m.Session)
		if p == nil {
			return nil, fmt.Errorf("infer: no local session %q to return to", m.Session)
		}
		return &hopLink{local: p, close: func() {}}, nil
	}
	target, first := m.Entry, frameReturn
	var msg any = returnMsg{Session: m.Session}
	if len(m.Next) > 0 {
		target, first = m.Next[0], frameOpen
		msg = openMsg{Session: m.Session, Model: m.Model, Lo: m.Next[0].Lo, Hi: m.Next[0].Hi, Next: m.Next[1:], Entry: m.Entry}
	}
	rw, err := s.cfg.Transport.Open(ctx, target.Peer, target.Addrs, ProtocolID)
	if err != nil {
		return nil, &HopError{Peer: target.Peer, Code: CodeFailed, Message: fmt.Sprintf("cannot reach peer: %v", err)}
	}
	c := newConn(rw)
	var once sync.Once
	closer := func() { once.Do(func() { rw.Close() }) }
	stop := context.AfterFunc(ctx, closer)
	err = c.writeJSON(first, msg)
	if err == nil {
		err = c.readJSON(frameAck, nil)
	}
	if !stop() {
		err = fmt.Errorf("timed out opening the chain: %w", ctx.Err())
	}
	if err != nil {
		closer()
		return nil, asHopError(err, target.Peer)
	}
	return &hopLink{c: c, peer: target.Peer, close: closer}, nil
}

// relayErrors forwards error frames from the next hop towards the entry
// until the downstream stream ends; if it ends before this hop closes it,
// the next hop is blamed.
func (s *Service) relayErrors(down *hopLink, up *conn, mu *sync.Mutex, ending *atomic.Bool) {
	for {
		typ, payload, err := down.c.read()
		if err != nil {
			if !ending.Load() {
				mu.Lock()
				_ = up.writeError(&HopError{Peer: down.peer, Code: CodeFailed, Message: "link lost: " + err.Error()}, "")
				mu.Unlock()
			}
			return
		}
		if typ != frameError {
			continue
		}
		mu.Lock()
		_ = up.write(frameError, payload)
		mu.Unlock()
	}
}

// run processes step frames until the upstream closes the session.
func (s *Service) run(up *conn, down *hopLink, m *openMsg, weights *model.Model) error {
	cfg := weights.Config
	dim := cfg.Dim
	st := weights.NewState(m.Lo, m.Hi)
	step := s.newStepper(weights, st)
	defer step.close()
	if err := up.write(frameAck, nil); err != nil {
		return err
	}
	var acts []float32
	filled := 0 // positions held in the KV cache
	for {
		up.expect(s.cfg.IdleTimeout)
		typ, payload, err := up.read()
		if err != nil {
			return err
		}
		if typ != frameStep {
			return fmt.Errorf("%w: got frame type %d in a session, want a step", ErrProtocol, typ)
		}
		pos, n, xs, err := decodeActs(payload, dim, cfg.SeqLen, acts)
		if err != nil {
			return err
		}
		acts = xs
		if pos > filled {
			return fmt.Errorf("%w: step at position %d but only %d positions are cached", ErrProtocol, pos, filled)
		}
		step.forward(xs, pos, n)
		s.observe(Event{Kind: EventHop, Positions: n})
		filled = pos + n
		last := xs[(n-1)*dim:]
		switch {
		case down.local != nil:
			down.local.deliver(pos+n-1, last)
		case len(m.Next) > 0:
			err = down.c.writeActs(frameStep, pos, n, xs)
		default:
			err = down.c.writeActs(frameResult, pos+n-1, 1, last)
		}
		if err != nil {
			return &HopError{Peer: down.peer, Code: CodeFailed, Message: "sending activations: " + err.Error()}
		}
	}
}
