package infer

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// HandleClient serves one GenerateProtocolID stream: a request frame in,
// token frames and a done (or error) frame out. If the client goes away
// the request is cancelled and the chain torn down.
func (s *Service) HandleClient(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	c := newConn(rw)
	if req, ok := s.gate().request(c, remote); ok {
		s.answer(rw, c, remote, req)
	}
}

// answer runs req, read from the client stream rw (framed by c), and
// streams its tokens back.
func (s *Service) answer(rw io.Reader, c *conn, remote string, req Request) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.expect(365 * 24 * time.Hour) // the request may run long; the client only hangs up
	go func() {                    // the client sends nothing more; EOF or reset means it left
		var b [1]byte
		_, _ = rw.Read(b[:])
		cancel()
	}()
	st, err := s.Generate(ctx, req, func(t Token) error {
		return c.writeJSON(frameToken, t)
	})
	if err != nil {
		s.log.Info("infer: request failed", "peer", remote, "err", err)
		_ = c.writeError(err, s.cfg.Transport.Self())
		return
	}
	_ = c.writeJSON(frameDone, st)
}

// Query sends req over a GenerateProtocolID stream and calls emit with each
// piece as it arrives. The caller owns rw and closes it afterwards.
func Query(ctx context.Context, rw io.ReadWriteCloser, req Request, emit func(Token) error) (Stats, error) {
	var st Stats
	if err := req.Validate(); err != nil {
		return st, err
	}
	stop := context.AfterFunc(ctx, func() { rw.Close() })
	defer stop()
	c := newConn(rw)
	if err := c.writeJSON(frameRequest, req); err != nil {
		return st, fmt.Errorf("infer: sending request: %w", err)
	}
	for {
		typ, payload, err := c.read()
		if err != nil {
			if ctx.Err() != nil {
				return st, ctx.Err()
			}
			return st, fmt.Errorf("infer: reading reply: %w", err)
		}
		switch typ {
		case frameToken:
			var t Token
			if err := json.Unmarshal(payload, &t); err != nil {
				return st, fmt.Errorf("%w: token frame: %v", ErrProtocol, err)
			}
			if err := emit(t); err != nil {
				return st, err
			}
		case frameDone:
			if err := json.Unmarshal(payload, &st); err != nil {
				return st, fmt.Errorf("%w: done frame: %v", ErrProtocol, err)
			}
			return st, nil
		case frameError:
			return st, decodeError(payload)
		default:
			return st, fmt.Errorf("%w: unexpected frame type %d in a reply", ErrProtocol, typ)
		}
	}
}
