package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// RunFormat is the value of a run spec's "format" field.
const RunFormat = "strata/run/1"

// RunSpec fixes a federated training run. Every participant uses the same
// spec; the CID of its canonical encoding names the run (RunSpec.ID), so
// peers that disagree on any field are simply in different runs.
type RunSpec struct {
	Format  string   `json:"format"`
	Name    string   `json:"name"`
	Genesis string   `json:"genesis"` // model CID round 1 starts from
	Roster  []string `json:"roster"`  // peer ids of the participants, sorted
	// Rule aggregates a round's updates: fedavg, median, trimmed-mean or
	// centered-clip; Trim and Tau parameterise the last two.
	Rule string  `json:"rule"`
	Trim float64 `json:"trim,omitempty"`
	Tau  float64 `json:"tau,omitempty"`
	// Outer applies the aggregate: "sgd" (lr 1: FedAvg) or "nesterov"
	// (DiLoCo: lr 0.7, momentum 0.9).
	Outer string `json:"outer"`
	// OuterLR and OuterMomentum, if not 0, replace the outer optimizer's
	// learning rate (1 for sgd, 0.7 for nesterov) and momentum (0.9 for
	// nesterov). An outer lr above 1 moves further than the mean update:
	// with n participants, up to n approaches n× as many sequential steps.
	OuterLR       float32 `json:"outer_lr,omitempty"`
	OuterMomentum float32 `json:"outer_momentum,omitempty"`
	Codec         string  `json:"codec"` // fp16 or int8 (blockwise, error feedback)
	// Steps is the local optimizer steps per round, Rounds the run's
	// length (0: no end).
	Steps  int `json:"steps"`
	Rounds int `json:"rounds"`
	// Local training: windows per step, window length, AdamW peak
	// learning rate (warmup, then cosine decay over the run).
	Batch  int     `json:"batch"`
	SeqLen int     `json:"seq_len"`
	LR     float32 `json:"lr"`
	// BlocksPerRound, if not 0, trains only that many blocks per round,
	// moving through the model: round r trains blocks (r−1)·k … r·k−1
	// modulo the layer count, and the head stays as it is. Only those
	// blocks' shards change, so serving peers fetch and switch only them.
	BlocksPerRound int `json:"blocks_per_round,omitempty"`
	// RoundSeconds is a round's deadline: a round that has not committed
	// by then is skipped. A view (one proposer's turn) is a third of it.
	RoundSeconds int `json:"round_seconds"`
	// Quorum is the vote count that commits a round: "" (more than two
	// thirds of the roster, tolerating Byzantine members below a third) or
	// "majority" (more than half: rounds go on with up to half the roster
	// crashed or cut off, for rosters that trust each other's votes).
	Quorum string `json:"quorum,omitempty"`
}

// QuorumMajority is the RunSpec.Quorum of a majority quorum.
const QuorumMajority = "majority"

// quorum is the spec's consensus quorum (0: the Byzantine default).
func (s *RunSpec) quorum() int {
	if s.Quorum == QuorumMajority {
		return len(s.Roster)/2 + 1
	}
	return 0
}

// quorumSize is the number of votes that commits a round.
func (s *RunSpec) quorumSize() int {
	if q := s.quorum(); q > 0 {
		return q
	}
	return consensus.Quorum(len(s.Roster))
}

// DefaultRunSpec returns a spec with the defaults for everything but the
// name, genesis and roster. The outer step is plain FedAvg: DiLoCo's
// Nesterov outer step (lr 0.7, momentum 0.9) is tuned for hundreds of
// local steps per round and trains worse at tens (measured on
// tinyshakespeare, README).
func DefaultRunSpec() RunSpec {
	return RunSpec{
		Format: RunFormat, Rule: "trimmed-mean", Trim: 0.25, Tau: 1, Outer: train.OuterSGD, Codec: "int8",
		Steps: 20, Rounds: 0, Batch: 4, SeqLen: 128, LR: 2e-3, RoundSeconds: 180,
	}
}

// Bounds on a run spec.
const (
	maxRunName     = 128
	maxRunSteps    = 1 << 20
	maxRoundSecs   = 24 * 3600
	roundTick      = 100 * time.Millisecond
	maxRunSpecSize = 1 << 20
)

// Validate checks every field.
func (s *RunSpec) Validate() error {
	bad := func(f string, a ...any) error { return fmt.Errorf("node: run spec: "+f, a...) }
	switch {
	case s.Format != RunFormat:
		return bad("format %q, want %q", s.Format, RunFormat)
	case s.Name == "" || len(s.Name) > maxRunName:
		return bad("name must be 1..%d bytes", maxRunName)
	case len(s.Roster) == 0 || len(s.Roster) > consensus.MaxRoster:
		return bad("roster of %d peers, want 1..%d", len(s.Roster), consensus.MaxRoster)
	case !slices.IsSorted(s.Roster) || len(slices.Compact(slices.Clone(s.Roster))) != len(s.Roster):
		return bad("roster must be sorted and without repeats")
	case s.Steps < 1 || s.Steps > maxRunSteps:
		return bad("%d local steps per round, want 1..%d", s.Steps, maxRunSteps)
	case s.Rounds < 0:
		return bad("negative round count %d", s.Rounds)
	case s.Batch < 1 || s.SeqLen < 2:
		return bad("batch %d and window %d must be >= 1 and >= 2", s.Batch, s.SeqLen)
	case !(s.LR > 0) || s.LR > 10:
		return bad("learning rate %g must be in (0, 10]", s.LR)
	case s.BlocksPerRound < 0 || s.BlocksPerRound > maxRunSteps:
		return bad("%d blocks per round", s.BlocksPerRound)
	case s.RoundSeconds < 3 || s.RoundSeconds > maxRoundSecs:
		return bad("round deadline %ds, want 3..%d", s.RoundSeconds, maxRoundSecs)
	case s.Quorum != "" && s.Quorum != QuorumMajority:
		return bad("quorum %q, want empty or %q", s.Quorum, QuorumMajority)
	}
	if _, err := shards.ParseCID(s.Genesis); err != nil {
		return bad("genesis: %v", err)
	}
	for _, p := range s.Roster {
		if p == "" || len(p) > consensus.MaxID {
			return bad("roster id %q", p)
		}
	}
	if _, err := s.aggregation(); err != nil {
		return bad("%v", err)
	}
	if _, err := s.outer(); err != nil {
		return bad("%v", err)
	}
	if _, err := train.ParseCodec(s.Codec); err != nil {
		return bad("%v", err)
	}
	return nil
}

// aggregation is the spec's aggregation rule.
func (s *RunSpec) aggregation() (train.Aggregation, error) {
	a := train.Aggregation{MaxSampleShare: 2}
	switch s.Rule {
	case "fedavg":
		a.Rule = train.FedAvg
	case "median":
		a.Rule = train.Median
	case "trimmed-mean":
		a.Rule, a.Trim = train.TrimmedMean, s.Trim
	case "centered-clip":
		a.Rule, a.Tau, a.Iters = train.CenteredClip, s.Tau, 3
	default:
		return a, fmt.Errorf("aggregation rule %q; want fedavg, median, trimmed-mean or centered-clip", s.Rule)
	}
	return a, a.Validate()
}

// outer returns a fresh outer optimizer of the spec's kind.
func (s *RunSpec) outer() (*train.Outer, error) {
	var o *train.Outer
	switch s.Outer {
	case train.OuterSGD:
		o = &train.Outer{Kind: train.OuterSGD, LR: 1}
	case train.OuterNesterov:
		o = train.DiLoCo()
	default:
		return nil, fmt.Errorf("outer optimizer %q; want sgd or nesterov", s.Outer)
	}
	if s.OuterLR != 0 {
		o.LR = s.OuterLR
	}
	if s.OuterMomentum != 0 {
		if o.Kind != train.OuterNesterov {
			return nil, fmt.Errorf("outer momentum %g needs the nesterov outer optimizer", s.OuterMomentum)
		}
		o.Momentum = s.OuterMomentum
	}
	if o.LR > 100 {
		return nil, fmt.Errorf("outer lr %g is above 100", o.LR)
	}
	return o, o.Validate()
}

// Encode returns the canonical encoding.
func (s *RunSpec) Encode() ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(s)
}

// ID returns the run id: the CID of the canonical encoding.
func (s *RunSpec) ID() (string, error) {
	b, err := s.Encode()
	if err != nil {
		return "", err
	}
	return shards.Sum(b).String(), nil
}

// DecodeRunSpec parses and validates a canonical run spec.
func DecodeRunSpec(data []byte) (*RunSpec, error) {
	if len(data) > maxRunSpecSize {
		return nil, fmt.Errorf("node: run spec of %d bytes exceeds %d", len(data), maxRunSpecSize)
	}
	var s RunSpec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("node: run spec: %w", err)
	}
	enc, err := s.Encode()
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(enc, data) {
		return nil, errors.New("node: run spec is not in canonical encoding")
	}
	return &s, nil
}

// consensusConfig turns the deadline into consensus ticks of roundTick.
func (s *RunSpec) ticks() (collect, view, round int) {
	round = int(time.Duration(s.RoundSeconds) * time.Second / roundTick)
	return 1, round / 3, round
}

// view returns a model that shares m's weights for the tensors round
// trains and holds nothing else: all of m when every block is trained.
func (s *RunSpec) view(m *model.Model, round uint64) *model.Model {
	k, n := s.BlocksPerRound, len(m.Blocks)
	if k == 0 {
		return m
	}
	v := &model.Model{Config: m.Config, Blocks: make([]*model.Block, n)}
	for j := range min(k, n) {
		i := int(((round-1)*uint64(k) + uint64(j)) % uint64(n))
		v.Blocks[i] = m.Blocks[i]
	}
	return v
}

// trained lists the tensors of m that round trains, in train.Tensors
// order; their Data aliases m.
func (s *RunSpec) trained(m *model.Model, round uint64) []model.Tensor {
	return train.Tensors(s.view(m, round))
}
