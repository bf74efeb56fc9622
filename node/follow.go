package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/mesh"
)

// A follower serves the newest version of a training run without training:
// it learns the run from a participant, starts from the version of the
// latest certificate, then listens on the run's topic and switches to the
// result of every certificate it can verify against the roster.

// findRun asks peers (the bootstrap peers, then any in the peer table)
// for run id until one answers, and returns its spec and the version of
// its latest verified certificate.
func (n *Node) findRun(ctx context.Context, id string) (RunSpec, *consensus.Certificate, error) {
	deadline := time.Now().Add(n.cfg.FindTimeout)
	var last error
	for {
		var peers []string
		for _, a := range n.cfg.Bootstrap {
			if pi, err := mesh.ParseAddr(a); err == nil {
				peers = append(peers, pi.ID.String())
			}
		}
		for _, a := range n.gossip.Table().All() {
			if p := a.Peer.String(); p != n.ID() {
				peers = append(peers, p)
			}
		}
		for _, p := range peers {
			spec, cert, err := n.askRun(ctx, p, id)
			if err == nil {
				return spec, cert, nil
			}
			last = err
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = errors.New("no peers")
			}
			return RunSpec{}, nil, fmt.Errorf("node: no peer answered for run %s within %s: %w", id, n.cfg.FindTimeout, last)
		}
		select {
		case <-ctx.Done():
			return RunSpec{}, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (n *Node) askRun(ctx context.Context, peer, id string) (RunSpec, *consensus.Certificate, error) {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rw, err := n.mesh.Open(qctx, peer, nil, RoundsProtocol)
	if err != nil {
		return RunSpec{}, nil, err
	}
	defer rw.Close()
	info, err := readRunInfo(rw, peer)
	if err != nil {
		return RunSpec{}, nil, err
	}
	if got, err := info.Spec.ID(); err != nil || got != id {
		return RunSpec{}, nil, fmt.Errorf("node: %s takes part in run %s, not %s", peer, got, id)
	}
	if len(info.Cert) == 0 {
		return info.Spec, nil, nil // no round certified yet: the genesis
	}
	c, err := consensus.UnmarshalCertificate(info.Cert)
	if err != nil {
		return RunSpec{}, nil, fmt.Errorf("node: %s sent a bad certificate: %w", peer, err)
	}
	if err := consensus.VerifyCertificate(info.Spec.Roster, info.Spec.quorum(), c, mesh.Verify); err != nil {
		return RunSpec{}, nil, fmt.Errorf("node: %s sent a certificate that does not verify: %w", peer, err)
	}
	return info.Spec, &c, nil
}

// follower tracks a run's certificates.
type follower struct {
	n      *Node
	spec   RunSpec
	id     string
	round  consensus.Round // latest certified round applied
	latest chan string     // newest version to switch to (capacity 1)
}

// follow joins run id's topic and switches to each certified version.
func (n *Node) follow(ctx context.Context, spec RunSpec, id string, from *consensus.Certificate) error {
	f := &follower{n: n, spec: spec, id: id, latest: make(chan string, 1)}
	if from != nil {
		f.round = from.Round
	}
	certs := make(chan consensus.Certificate, 64)
	ch, err := n.gossip.Join(runTopic(id), maxRunMessage, func(_ string, data []byte) error {
		if len(data) < 2 || (data[0] != msgAnnounce && data[0] != msgConsensus) {
			return errors.New("unknown run message")
		}
		return nil
	}, func(_ string, data []byte) {
		if data[0] != msgConsensus {
			return
		}
		m, err := consensus.Unmarshal(data[1:])
		if err != nil || m.Kind != consensus.KindCommit {
			return
		}
		select {
		case certs <- m.Certificate():
		default:
		}
	})
	if err != nil {
		return err
	}
	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		defer ch.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-certs:
				if c.Round <= f.round || consensus.VerifyCertificate(spec.Roster, spec.quorum(), c, mesh.Verify) != nil {
					continue
				}
				f.round = c.Round
				n.log.Info("node: run committed", "round", c.Round, "model", c.Next(), "skipped", c.Skipped())
				if c.Skipped() {
					continue
				}
				select { // keep only the newest
				case <-f.latest:
				default:
				}
				f.latest <- c.Result
			}
		}
	}()
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case v := <-f.latest:
				if err := n.SwitchVersion(ctx, v); err != nil && ctx.Err() == nil {
					n.log.Warn("node: switching to the run's new version failed; still serving the old one", "model", v, "err", err)
				}
			}
		}
	}()
	n.log.Info("node: following run", "run", spec.Name, "id", id, "from_round", f.round)
	return nil
}
