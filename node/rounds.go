package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// RoundsProtocol answers with the node's training run and its certified
// history (RunInfo as JSON), then closes the stream.
const RoundsProtocol = "/strata/rounds/1"

// maxRoundsReply bounds a RoundsProtocol answer.
const maxRoundsReply = 32 << 20

// RunInfo describes a node's training run.
type RunInfo struct {
	ID      string        `json:"id"`
	Spec    RunSpec       `json:"spec"`
	Round   uint64        `json:"round"` // the round in progress
	History []RoundRecord `json:"history"`
	// Cert is the latest certificate the node holds (consensus wire
	// format), so a follower can check the version it starts from.
	Cert []byte `json:"cert,omitempty"`
	// Traffic is what this node sent and received per round.
	Traffic []RoundTraffic `json:"traffic,omitempty"`
}

// RunInfo returns the node's run and its history, or false if the node is
// in no run.
func (n *Node) RunInfo() (RunInfo, bool) {
	r := n.run
	if r == nil {
		return RunInfo{}, false
	}
	h := r.History()
	info := RunInfo{ID: r.id, Spec: r.spec, History: h, Round: 1}
	if len(h) > 0 {
		info.Round = h[len(h)-1].Round + 1
	}
	r.cmu.Lock()
	if c := r.certCopy; c != nil {
		info.Cert, _ = c.MarshalBinary()
	}
	info.Traffic = slices.Clone(r.traffic)
	r.cmu.Unlock()
	return info, true
}

func (n *Node) serveRounds(rw io.ReadWriteCloser, remote string) {
	defer rw.Close()
	info, ok := n.RunInfo()
	var reply any = info
	if !ok {
		reply = map[string]string{"error": "this node takes part in no training run"}
	}
	if err := json.NewEncoder(rw).Encode(reply); err != nil {
		n.log.Debug("node: answering a rounds query", "peer", remote, "err", err)
	}
}

// QueryRounds is Client.Rounds with the zero Client and log as its logger.
func QueryRounds(ctx context.Context, addr string, log *slog.Logger) (RunInfo, error) {
	return Client{Logger: log}.Rounds(ctx, addr)
}

// Rounds asks the node at addr (a full multiaddr ending in /p2p/ID) for
// its training run and history.
func (c Client) Rounds(ctx context.Context, addr string) (RunInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rw, peer, done, err := c.dial(ctx, addr, RoundsProtocol)
	if errors.Is(err, errNoProtocol) {
		return RunInfo{}, fmt.Errorf("node: %s does not answer rounds queries: %w", peer, err)
	}
	if err != nil {
		return RunInfo{}, err
	}
	defer done()
	return readRunInfo(rw, peer)
}

// readRunInfo reads a RoundsProtocol answer from peer.
func readRunInfo(rw io.Reader, peer string) (RunInfo, error) {
	var info RunInfo
	data, err := io.ReadAll(io.LimitReader(rw, maxRoundsReply+1))
	if err != nil {
		return info, fmt.Errorf("node: reading the rounds of %s: %w", peer, err)
	}
	if len(data) > maxRoundsReply {
		return info, fmt.Errorf("node: %s sent more than %d bytes of rounds", peer, maxRoundsReply)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return info, errors.New("node: " + peer + ": " + e.Error)
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("node: the rounds of %s do not parse: %w", peer, err)
	}
	return info, nil
}
