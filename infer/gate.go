package infer

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// gate is what an inbound stream meets before a service takes it: it reads
// and checks the first frame, and refuses streams that break the protocol.
// A Service and a Mux share it, so a stream is judged the same way by both.
type gate struct {
	self    string        // this peer, named in refusals
	timeout time.Duration // wait for the first frame
	log     *slog.Logger
}

// refuse answers a stream with an error frame naming this peer.
func (g gate) refuse(c *conn, remote string, err error) {
	g.log.Warn("infer: refused stream", "peer", remote, "err", err)
	_ = c.writeError(err, g.self)
}

// first reads the first frame of a ProtocolID stream: an open frame, which
// starts a session of a chain on this peer (returned validated), or a return
// frame, on which the last hop sends results for a session this peer
// fronts. A stream that breaks the protocol is refused and one that ends
// before its first frame is dropped; ok is false for both.
func (g gate) first(c *conn, remote string) (open *openMsg, ret *returnMsg, ok bool) {
	c.expect(g.timeout)
	typ, payload, err := c.read()
	if errors.Is(err, ErrProtocol) {
		g.refuse(c, remote, err)
		return nil, nil, false
	}
	if err != nil {
		g.log.Debug("infer: stream ended before its first frame", "peer", remote, "err", err)
		return nil, nil, false
	}
	switch typ {
	case frameOpen:
		var m openMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			g.refuse(c, remote, fmt.Errorf("%w: open frame: %v", ErrProtocol, err))
			return nil, nil, false
		}
		if err := m.validate(); err != nil {
			g.refuse(c, remote, err)
			return nil, nil, false
		}
		return &m, nil, true
	case frameReturn:
		var m returnMsg
		if err := json.Unmarshal(payload, &m); err != nil {
			g.refuse(c, remote, fmt.Errorf("%w: return frame: %v", ErrProtocol, err))
			return nil, nil, false
		}
		return nil, &m, true
	default:
		g.refuse(c, remote, fmt.Errorf("%w: stream starts with frame type %d", ErrProtocol, typ))
		return nil, nil, false
	}
}

// request reads the request frame of a GenerateProtocolID stream; a stream
// that does not start with a decodable request is refused (ok false).
func (g gate) request(c *conn, remote string) (req Request, ok bool) {
	c.expect(g.timeout)
	if err := c.readJSON(frameRequest, &req); err != nil {
		g.refuse(c, remote, err)
		return req, false
	}
	return req, true
}

// gate is the gate of a stream this service serves alone.
func (s *Service) gate() gate {
	return gate{self: s.cfg.Transport.Self(), timeout: s.cfg.StepTimeout, log: s.log}
}

// refuseModel is the refusal of an open frame for a model this peer does
// not serve (or not the blocks asked for); serves says what it does serve.
// It is CodeRefused, not CodeModel: the entry routes around this peer
// rather than giving the request up.
func refuseModel(self string, m *openMsg, serves string) error {
	return &HopError{Peer: self, Code: CodeRefused, Message: fmt.Sprintf(
		"asked for blocks %d:%d of model %s; this peer serves %s", m.Lo, m.Hi, m.Model, serves)}
}

// errNoSession refuses a return stream for a session this peer does not
// front, or not with remote as its last hop.
func errNoSession(id string) error {
	return fmt.Errorf("%w: no session %q expects results from this peer", ErrProtocol, id)
}
