package node

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
)

// Query dials the node at addr (a full multiaddr ending in /p2p/ID) with a
// throwaway identity, sends req and calls emit with each piece of text as
// it arrives. The dialled node is the entry peer of the request.
func Query(ctx context.Context, addr string, req infer.Request, emit func(infer.Token) error, log *slog.Logger) (infer.Stats, error) {
	info, err := mesh.ParseAddr(addr)
	if err != nil {
		return infer.Stats{}, err
	}
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		return infer.Stats{}, err
	}
	m, err := mesh.New(ctx, mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Logger: log, NoDHT: true})
	if err != nil {
		return infer.Stats{}, err
	}
	defer m.Close()
	if _, err := m.Connect(ctx, addr); err != nil {
		return infer.Stats{}, fmt.Errorf("node: cannot reach %s: %w", addr, err)
	}
	rw, err := m.Open(ctx, info.ID.String(), nil, infer.GenerateProtocolID)
	if err != nil {
		return infer.Stats{}, fmt.Errorf("node: %s does not answer generate requests (is it serving a model?): %w", info.ID, err)
	}
	defer rw.Close()
	return infer.Query(ctx, rw, req, emit)
}
