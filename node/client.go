package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
)

// Client asks nodes for text, status and training rounds, each request
// from a throwaway host with a throwaway identity. The zero value dials
// the public mesh and logs nothing.
type Client struct {
	// SwarmKey, if set, is the 32-byte key of a private mesh (see
	// mesh.LoadSwarmKey). The client then speaks only to nodes holding the
	// same key, over TCP; a node without it (or with another key) refuses
	// the handshake, an error wrapping mesh.ErrHandshake.
	SwarmKey []byte
	// Logger receives the throwaway host's events; nil discards them.
	Logger *slog.Logger
}

// Query dials the node at addr (a full multiaddr ending in /p2p/ID), sends
// req and calls emit with each piece of text as it arrives. The dialled
// node is the entry peer of the request. Failures other than emit's and
// ctx's name that peer.
func (c Client) Query(ctx context.Context, addr string, req infer.Request, emit func(infer.Token) error) (infer.Stats, error) {
	rw, peer, done, err := c.dial(ctx, addr, infer.GenerateProtocolID)
	if errors.Is(err, errNoProtocol) {
		return infer.Stats{}, fmt.Errorf("node: %s does not answer generate requests (is it serving a model?): %w", peer, err)
	}
	if err != nil {
		return infer.Stats{}, err
	}
	defer done()
	var emitErr error
	st, err := infer.Query(ctx, rw, req, func(t infer.Token) error {
		emitErr = emit(t)
		return emitErr
	})
	if err == nil || err == emitErr || ctx.Err() != nil {
		return st, err
	}
	// The entry hung up or failed: say which peer, as a bare "stream
	// reset" does not.
	return st, fmt.Errorf("node: generation via %s: %w", peer, err)
}

// Reach connects to the node at addr and hangs up, to tell early whether
// it can be reached at all (for example with this client's swarm key).
func (c Client) Reach(ctx context.Context, addr string) error {
	m, _, err := c.connect(ctx, addr)
	if err != nil {
		return err
	}
	return m.Close()
}

// Query is Client.Query with the zero Client and log as its logger.
func Query(ctx context.Context, addr string, req infer.Request, emit func(infer.Token) error, log *slog.Logger) (infer.Stats, error) {
	return Client{Logger: log}.Query(ctx, addr, req, emit)
}

// errNoProtocol: the dialled node did not open a stream of the protocol.
var errNoProtocol = errors.New("no stream of the protocol")

// dial reaches the node at addr (a full multiaddr ending in /p2p/ID) from
// a throwaway host and opens a stream of proto. It returns the stream, the
// node's peer id and a function that closes both. If the node cannot be
// reached the error says so; if it does not open the stream, the error
// wraps errNoProtocol, so callers can say what the node should serve.
func (c Client) dial(ctx context.Context, addr, proto string) (io.ReadWriteCloser, string, func(), error) {
	m, peer, err := c.connect(ctx, addr)
	if err != nil {
		return nil, peer, nil, err
	}
	rw, err := m.Open(ctx, peer, nil, proto)
	if err != nil {
		m.Close()
		return nil, peer, nil, fmt.Errorf("%w: %w", errNoProtocol, err)
	}
	return rw, peer, func() { rw.Close(); m.Close() }, nil
}

// connect starts a throwaway host (on the private mesh of c's swarm key,
// if any) and connects it to the node at addr.
func (c Client) connect(ctx context.Context, addr string) (*mesh.Mesh, string, error) {
	info, err := mesh.ParseAddr(addr)
	if err != nil {
		return nil, "", err
	}
	peer := info.ID.String()
	if len(c.SwarmKey) > 0 && strings.Contains(addr, "/quic") {
		return nil, peer, fmt.Errorf("node: %s is a QUIC address, but a private mesh runs over TCP only; give the node's /tcp/ address", addr)
	}
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		return nil, peer, err
	}
	m, err := mesh.New(ctx, mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: c.Logger, NoDHT: true, PSK: c.SwarmKey})
	if err != nil {
		return nil, peer, err
	}
	if _, err := m.Connect(ctx, addr); err != nil {
		m.Close()
		return nil, peer, fmt.Errorf("node: cannot reach %s: %w", addr, err)
	}
	return m, peer, nil
}
