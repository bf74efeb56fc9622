package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
)

// Query dials the node at addr (a full multiaddr ending in /p2p/ID) with a
// throwaway identity, sends req and calls emit with each piece of text as
// it arrives. The dialled node is the entry peer of the request.
func Query(ctx context.Context, addr string, req infer.Request, emit func(infer.Token) error, log *slog.Logger) (infer.Stats, error) {
	rw, peer, done, err := dial(ctx, addr, infer.GenerateProtocolID, log)
	if errors.Is(err, errNoProtocol) {
		return infer.Stats{}, fmt.Errorf("node: %s does not answer generate requests (is it serving a model?): %w", peer, err)
	}
	if err != nil {
		return infer.Stats{}, err
	}
	defer done()
	return infer.Query(ctx, rw, req, emit)
}

// errNoProtocol: the dialled node did not open a stream of the protocol.
var errNoProtocol = errors.New("no stream of the protocol")

// dial reaches the node at addr (a full multiaddr ending in /p2p/ID) from
// a throwaway host and opens a stream of proto. It returns the stream, the
// node's peer id and a function that closes both. If the node cannot be
// reached the error says so; if it does not open the stream, the error
// wraps errNoProtocol, so callers can say what the node should serve.
func dial(ctx context.Context, addr, proto string, log *slog.Logger) (io.ReadWriteCloser, string, func(), error) {
	info, err := mesh.ParseAddr(addr)
	if err != nil {
		return nil, "", nil, err
	}
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		return nil, "", nil, err
	}
	m, err := mesh.New(ctx, mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: log, NoDHT: true})
	if err != nil {
		return nil, "", nil, err
	}
	peer := info.ID.String()
	if _, err := m.Connect(ctx, addr); err != nil {
		m.Close()
		return nil, peer, nil, fmt.Errorf("node: cannot reach %s: %w", addr, err)
	}
	rw, err := m.Open(ctx, peer, nil, proto)
	if err != nil {
		m.Close()
		return nil, peer, nil, fmt.Errorf("%w: %w", errNoProtocol, err)
	}
	return rw, peer, func() { rw.Close(); m.Close() }, nil
}
