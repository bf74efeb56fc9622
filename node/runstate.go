package node

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// A run's local state lives in REPO/runs/RUNID/: state.json, the consensus
// hard state, written atomically and synced before any message it implies
// is sent; certs, one base64 certificate per line, appended and synced.

// maxCertLine bounds one line of the certificate log.
const maxCertLine = 4 << 20

func (r *runner) loadState() (consensus.HardState, error) {
	var hs consensus.HardState
	data, err := os.ReadFile(filepath.Join(r.dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return hs, nil
	}
	if err != nil {
		return hs, err
	}
	if err := json.Unmarshal(data, &hs); err != nil {
		return hs, fmt.Errorf("node: run state %s: %w (move it away to rejoin the run from its latest certificate)",
			filepath.Join(r.dir, "state.json"), err)
	}
	if hs.Round > 0 {
		if _, err := shards.ParseCID(hs.Base); err != nil {
			return hs, fmt.Errorf("node: run state: base: %w", err)
		}
	}
	return hs, nil
}

func (r *runner) saveState(hs consensus.HardState) error {
	data, err := json.Marshal(hs)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(r.dir, "state.json"), data)
}

// appendCert adds c to the certificate log.
func (r *runner) appendCert(c consensus.Certificate) error {
	b, err := c.MarshalBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(r.dir, "certs"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(b) + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadHistory reads the certificate log (ignoring a torn last line) and
// rebuilds the history from it and the manifests in the repo.
func (r *runner) loadHistory() error {
	f, err := os.Open(filepath.Join(r.dir, "certs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxCertLine)
	for sc.Scan() {
		b, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			continue
		}
		c, err := consensus.UnmarshalCertificate(b)
		if err != nil || consensus.VerifyCertificate(r.spec.Roster, r.spec.quorum(), c, verifyPeer) != nil {
			continue
		}
		r.lastCert, r.certCopy = &c, &c
		var b2 *baseState
		if !c.Skipped() {
			if man, err := r.manifest(c.Result); err == nil {
				b2 = &baseState{id: c.Result, man: man}
			}
		}
		r.addHistory(context.Background(), r.recordOf(c, b2))
	}
	return nil
}

func (r *runner) manifest(id string) (*shards.Manifest, error) {
	c, err := shards.ParseCID(id)
	if err != nil {
		return nil, err
	}
	return shards.LoadManifest(r.n.store, c)
}

// recordOf describes certificate c; b is the version it made, if known.
func (r *runner) recordOf(c consensus.Certificate, b *baseState) RoundRecord {
	rec := RoundRecord{Round: uint64(c.Round), Skipped: c.Skipped(), Model: c.Next(), Base: c.Base, Votes: len(c.Votes)}
	if b != nil && b.man != nil && b.man.Round != nil && !c.Skipped() { // a skip's version is the round before's
		ri := b.man.Round
		rec.Rule, rec.Loss = ri.Rule, ri.Loss
		for _, ct := range ri.Contributions {
			rec.Peers = append(rec.Peers, ct.Peer)
			rec.Samples += ct.Samples
		}
		slices.Sort(rec.Peers)
	}
	return rec
}

// addHistory records rec. After a jump (a certificate for a later round
// than the next expected) it fills the gap from the manifest chain,
// fetching manifests the repo lacks: a round number missing from the
// chain was skipped, since each round has one certificate and the next
// round starts from its result.
func (r *runner) addHistory(ctx context.Context, rec RoundRecord) {
	// Commits load their versions concurrently; two catch-ups filling the
	// same gap must not both append it.
	r.addMu.Lock()
	defer r.addMu.Unlock()
	r.hmu.Lock()
	var last uint64
	if n := len(r.history); n > 0 {
		last = r.history[n-1].Round
	}
	r.hmu.Unlock()
	if rec.Round <= last {
		return
	}
	var gap []RoundRecord
	id := rec.Base
	for want := rec.Round - 1; want > last; want-- {
		man, err := r.manifestOrFetch(ctx, id)
		if err != nil || man.Round == nil || man.Round.Run != r.id || man.Round.Round > want {
			if err != nil {
				r.log.Warn("node: filling the run's history", "round", want, "err", err)
			}
			if id == r.spec.Genesis {
				for ; want > last; want-- {
					gap = append(gap, RoundRecord{Round: want, Skipped: true, Model: id, Base: id})
				}
			}
			break
		}
		if man.Round.Round < want {
			gap = append(gap, RoundRecord{Round: want, Skipped: true, Model: id, Base: id})
			continue
		}
		gap = append(gap, r.recordOf(consensus.Certificate{Round: consensus.Round(want), Base: man.Parent.String(), Result: id},
			&baseState{man: man}))
		id = man.Parent.String()
	}
	slices.Reverse(gap)
	r.hmu.Lock()
	r.history = append(r.history, gap...)
	r.history = append(r.history, rec)
	r.hmu.Unlock()
	if r.cfg.OnCommit != nil {
		for _, g := range gap {
			r.cfg.OnCommit(g)
		}
		r.cfg.OnCommit(rec)
	}
}

// manifestOrFetch loads manifest id, fetching it from the roster if the
// repo lacks it.
func (r *runner) manifestOrFetch(ctx context.Context, id string) (*shards.Manifest, error) {
	c, err := shards.ParseCID(id)
	if err != nil {
		return nil, err
	}
	if !r.n.store.Has(c) {
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		if _, err := r.n.fetcher.FetchManifest(fctx, c, r.rosterProviders()); err != nil {
			return nil, err
		}
	}
	return shards.LoadManifest(r.n.store, c)
}

func (r *runner) rosterProviders() []shards.Provider {
	var provs []shards.Provider
	for _, p := range r.spec.Roster {
		if p != r.n.ID() {
			provs = append(provs, shards.Provider{Peer: p})
		}
	}
	return provs
}

// History returns the rounds this node knows were certified, in order.
func (r *runner) History() []RoundRecord {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	return slices.Clone(r.history)
}

// loadBase makes sure the repo holds every object of version id (fetching
// it from the roster when it does not), pins it and loads it.
func (r *runner) loadBase(ctx context.Context, round consensus.Round, id string) (*baseState, error) {
	c, err := shards.ParseCID(id)
	if err != nil {
		return nil, err
	}
	n := r.n
	provs := r.rosterProviders()
	fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	if !n.store.Has(c) {
		if _, err := n.fetcher.FetchManifest(fctx, c, provs); err != nil {
			return nil, fmt.Errorf("node: fetching version %s: %w", id, err)
		}
	}
	man, err := shards.LoadManifest(n.store, c)
	if err != nil {
		return nil, err
	}
	for _, ref := range append([]shards.Ref{man.Head}, man.Blocks...) {
		if !n.store.Has(ref.CID) {
			if err := n.fetcher.FetchRef(fctx, man, ref, provs, nil); err != nil {
				return nil, fmt.Errorf("node: fetching version %s: %w", id, err)
			}
		}
	}
	for _, o := range append([]cid.Cid{c}, man.Objects()...) {
		if err := n.store.Pin(o); err != nil {
			return nil, err
		}
	}
	m, tok, _, err := shards.Load(n.store, c, 0, man.Config.NLayers, true)
	if err != nil {
		return nil, err
	}
	if man.Round != nil && man.Round.Outer != "" {
		oc, err := shards.ParseCID(man.Round.Outer)
		if err != nil {
			return nil, err
		}
		if !n.store.Has(oc) {
			// The state's size follows from the model: a header, then the
			// momentum of every tensor in float32. The CID verifies it.
			size := int64(outerHeader + train.EncodedSize(&train.Delta{Codec: train.FP32, Tensors: train.Tensors(m)}))
			if err := n.fetcher.Fetch(fctx, oc, size, nil, 0, provs, nil); err != nil {
				return nil, fmt.Errorf("node: fetching the outer optimizer state of %s: %w", id, err)
			}
		}
		if err := n.store.Pin(oc); err != nil {
			return nil, err
		}
	}
	return &baseState{round: round, id: id, man: man, m: m, tok: tok}, nil
}

// outerHeader is the size of train.Outer's encoding before its momentum.
const outerHeader = 9

var verifyPeer = mesh.Verify
