package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/strata-mesh/strata/mesh"
)

// StatusProtocol answers with the node's Status as JSON (what GET
// /api/status of its HTTP API returns), then closes the stream. It lets an
// operator see a node that runs without --http.
const StatusProtocol = "/strata/status/1"

// MaxStatusReply bounds a status document read from a node, over
// StatusProtocol or HTTP.
const MaxStatusReply = 8 << 20

// statusWriteTimeout bounds writing one status answer to a slow reader.
const statusWriteTimeout = 10 * time.Second

func (n *Node) serveStatus(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	if d, ok := rw.(interface{ SetWriteDeadline(time.Time) error }); ok {
		_ = d.SetWriteDeadline(time.Now().Add(statusWriteTimeout))
	}
	if err := json.NewEncoder(rw).Encode(n.Status()); err != nil {
		n.log.Debug("node: answering a status query", "peer", remote, "err", err)
	}
}

// QueryStatus is Client.Status with the zero Client and log as its logger.
func QueryStatus(ctx context.Context, addr string, log *slog.Logger) (Status, []byte, error) {
	return Client{Logger: log}.Status(ctx, addr)
}

// Status asks the node at addr (a full multiaddr ending in /p2p/ID) for
// its status over StatusProtocol. It returns the status and the JSON
// document as it came.
func (c Client) Status(ctx context.Context, addr string) (Status, []byte, error) {
	var st Status
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rw, peer, done, err := c.dial(ctx, addr, StatusProtocol)
	if errors.Is(err, errNoProtocol) {
		return st, nil, fmt.Errorf("node: %s does not answer status queries (is it a Strata node of version %s or later?): %w",
			peer, Version, err)
	}
	if err != nil {
		return st, nil, err
	}
	defer done()
	if d, ok := rw.(interface{ SetReadDeadline(time.Time) error }); ok {
		if dl, ok := ctx.Deadline(); ok {
			_ = d.SetReadDeadline(dl)
		}
	}
	data, err := io.ReadAll(io.LimitReader(rw, MaxStatusReply+1))
	if err != nil {
		return st, nil, fmt.Errorf("node: reading the status of %s: %w", peer, err)
	}
	st, err = DecodeStatus(data)
	if err != nil {
		return st, nil, fmt.Errorf("node: the status of %s: %w", peer, err)
	}
	if st.Peer != peer {
		return st, nil, fmt.Errorf("node: %s answered with the status of another peer, %.80q", peer, st.Peer)
	}
	return st, data, nil
}

// ErrStatus reports a status document that is too large or not a node's
// status.
var ErrStatus = errors.New("not a node status")

// DecodeStatus parses a status document from the network (StatusProtocol
// or GET /api/status): at most MaxStatusReply bytes, one JSON object with
// a peer id.
func DecodeStatus(data []byte) (Status, error) {
	var st Status
	if len(data) > MaxStatusReply {
		return st, fmt.Errorf("%w: more than %d bytes", ErrStatus, MaxStatusReply)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return Status{}, fmt.Errorf("%w: %v", ErrStatus, err)
	}
	if st.Peer == "" {
		return Status{}, fmt.Errorf("%w: no peer id; is it a Strata node?", ErrStatus)
	}
	return st, nil
}

// queryLimits are the resource limits of the protocols that answer one
// small document per stream (StatusProtocol, RoundsProtocol): operators
// and tools ask now and then, so a few streams per peer are plenty.
func queryLimits() []mesh.ProtocolLimit {
	l := mesh.ProtocolLimit{StreamsInbound: 64, StreamsOutbound: 16, Memory: 64 << 20, PeerStreamsInbound: 4, PeerStreamsOutbound: 4}
	status, rounds := l, l
	status.ID, rounds.ID = StatusProtocol, RoundsProtocol
	return []mesh.ProtocolLimit{status, rounds}
}
