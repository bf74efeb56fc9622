package testnet

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
)

// ChaosReport is what a chaos soak saw. A soak passes (Pass) with zero
// wrong outputs, zero divergent histories and zero corrupt objects.
type ChaosReport struct {
	Seed              uint64
	ModelName, Model  string // the served model: its name and CID
	Run               string // the training run's id
	Servers, Trainers int
	Quorum            int           // trainers whose votes certify a round
	Soaked            time.Duration // how long the chaos ran

	// Generations: OK gave exactly the expected text (Failover of them
	// after routing around a failed hop); Failed ended with an error
	// after a correct prefix of it (Failures counts them by error, peer
	// ids and addresses elided); Wrong gave other text, with or without
	// an error (Wrongs describes the first few).
	OK, Failover, Failed, Wrong int
	Failures                    map[string]int
	Wrongs                      []string
	GenTimes                    []time.Duration // of the OK generations

	// Kills by SIGKILL (of serving nodes and of trainers), restarts from
	// the repo (the final restart of nodes still down included), and
	// nodes that exited without being killed.
	Kills, ServerKills, TrainerKills, Restarts, Crashes int

	// The run: rounds committed when the chaos started and at the end,
	// rounds skipped and the last round, over all trainers' histories.
	RoundsBefore, Rounds, Skipped int
	LastRound                     uint64
	// Thin counts committed rounds that aggregated fewer updates than a
	// quorum of the roster (a figure, not a failure: the consensus
	// certifies the result, not the number of contributions).
	Thin int
	// Histories is each trainer's history length (-1: it never answered).
	// Divergent counts rounds for which the trainers' certified records
	// name different results (or a skip and a result); Malformed counts
	// trainers whose history is not a chain of consecutive rounds from the
	// genesis (a repeated round, a gap, a base that is not the previous
	// round's version). Diverged says how, for both.
	Histories  []int
	Unanswered int // trainers that never answered
	Divergent  int
	Malformed  int
	Diverged   []string

	// Stores: repos verified, the objects and bytes re-hashed, and the
	// corrupt objects (CorruptObjects names them).
	Repos, Objects int
	Unverified     int // repos that could not be read
	Bytes          int64
	Corrupt        int
	CorruptObjects []string
}

// Pass reports whether the soak found no wrong output, no divergent or
// malformed history and no corrupt object, and could check every
// trainer's history and every repo.
func (r *ChaosReport) Pass() bool {
	return r.Wrong == 0 && r.Divergent == 0 && r.Malformed == 0 && r.Corrupt == 0 && r.Unanswered == 0 && r.Unverified == 0
}

// genTimeout bounds one generation; a mesh that cannot finish one in
// this time fails it with the context's error.
const genTimeout = 60 * time.Second

// dialGrace is how long a (re)started node is given to listen before
// clients dial it.
const dialGrace = 3 * time.Second

// client generates through random live serving nodes, those started at
// least dialGrace ago, until ctx ends.
func (s *soak) client(ctx context.Context, rng *rand.Rand) {
	for ctx.Err() == nil {
		var up []*member
		s.mu.Lock()
		now := time.Now()
		for _, m := range s.members {
			if !m.trainer && m.up && now.Sub(m.since) >= dialGrace {
				up = append(up, m)
			}
		}
		s.mu.Unlock()
		if len(up) == 0 {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		s.generate(ctx, up[rng.IntN(len(up))])
	}
}

// generate asks m for one greedy generation and records the outcome. A
// generation cut short by the end of the soak is not counted.
func (s *soak) generate(ctx context.Context, m *member) {
	addr := m.proc().Addr
	gctx, cancel := context.WithTimeout(ctx, genTimeout)
	defer cancel()
	var out strings.Builder
	start := time.Now()
	st, err := node.Query(gctx, addr, infer.Request{Model: s.model, Steps: s.o.Steps}, func(t infer.Token) error {
		out.Write(t.Piece)
		return nil
	}, nil)
	took := time.Since(start)
	if err != nil && ctx.Err() != nil {
		return
	}
	text, want := out.String(), s.o.Expected
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rep
	switch {
	case err == nil && text == want:
		r.OK++
		r.GenTimes = append(r.GenTimes, took)
		if len(st.Failovers) > 0 {
			r.Failover++
		}
	case err == nil || !strings.HasPrefix(want, text):
		r.Wrong++
		d := fmt.Sprintf("via %s: %d bytes, first difference at byte %d (err %v; chain %v): %.120q",
			m.name, len(text), diffAt(text, want), err, st.Chain, text)
		if len(r.Wrongs) < 10 {
			r.Wrongs = append(r.Wrongs, d)
		}
		s.o.Logger.Error("chaos: WRONG OUTPUT", "detail", d)
	default:
		r.Failed++
		r.Failures[errorClass(err)]++
		s.o.Logger.Info("chaos: generation failed", "via", m.name, "after_bytes", len(text), "err", err)
	}
}

// diffAt is the first byte at which a and b differ.
func diffAt(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

var (
	peerIDRE = regexp.MustCompile(`\b(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{20,}`)
	maddrRE  = regexp.MustCompile(`/ip[46]/[^\s:,;)\]]+`)
	numberRE = regexp.MustCompile(`\b\d+(\.\d+)?(ms|s|µs)?\b`)
	spaceRE  = regexp.MustCompile(`\s+`)
)

// errorClass is err's message with peer ids, addresses and numbers
// elided, so failures of one kind count together.
func errorClass(err error) string {
	msg := spaceRE.ReplaceAllString(err.Error(), " ")
	msg = peerIDRE.ReplaceAllString(msg, "<peer>")
	msg = maddrRE.ReplaceAllString(msg, "<addr>")
	msg = numberRE.ReplaceAllString(msg, "N")
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// history asks trainer i for the run and its certified history, trying
// again until it answers or patience runs out.
func (s *soak) history(ctx context.Context, i int, patience time.Duration) (node.RunInfo, bool) {
	ctx, cancel := context.WithTimeout(ctx, patience)
	defer cancel()
	for {
		info, err := node.QueryRounds(ctx, s.trainers.Nodes[i].Addr, nil)
		if err == nil {
			return info, true
		}
		select {
		case <-ctx.Done():
			s.o.Logger.Warn("chaos: trainer does not answer rounds queries", "trainer", i, "err", err)
			return node.RunInfo{}, false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// committed counts the rounds of h that committed a new version.
func committed(h []node.RoundRecord) int {
	n := 0
	for _, r := range h {
		if !r.Skipped {
			n++
		}
	}
	return n
}

// catchUp is how long the trainers get after the soak to reach the same
// round before their histories are compared; the comparison is over the
// common prefix either way.
const catchUp = 45 * time.Second

// compareHistories asks every trainer for its certified history, after
// giving restarted ones up to catchUp to reach the same last round as the
// others, and judges the histories (judgeHistories).
func (s *soak) compareHistories(ctx context.Context) {
	n := len(s.trainers.Nodes)
	infos := make([]*node.RunInfo, n)
	deadline := time.Now().Add(catchUp)
	for {
		for i := range n {
			if info, ok := s.history(ctx, i, max(time.Until(deadline), 5*time.Second)); ok {
				infos[i] = &info
			}
		}
		last := map[uint64]bool{}
		for _, info := range infos {
			if info != nil {
				last[lastRound(info.History)] = true
			}
		}
		if len(last) <= 1 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	judgeHistories(s.rep, infos, s.trainers.Run, s.trainers.Spec.Genesis, s.quorum())
	for _, d := range s.rep.Diverged {
		s.o.Logger.Error("chaos: HISTORIES DISAGREE", "what", d)
	}
}

func lastRound(h []node.RoundRecord) uint64 {
	if len(h) == 0 {
		return 0
	}
	return h[len(h)-1].Round
}

// roundResult is what the trainers must agree on for one round.
type roundResult struct {
	skipped     bool
	model, base string
}

// judgeHistories fills r's history counts from the trainers' answers
// (nil: never answered). A round is divergent when two trainers' records
// of it (or two records in one trainer's history) name different
// results; a history is malformed when it is not a chain of consecutive
// rounds from genesis, each starting from the version the previous one
// left (a repeated round, a gap, a wrong base), or belongs to another
// run. The run's figures (rounds committed and skipped, the last round,
// thin rounds) come from the union of the histories.
func judgeHistories(r *ChaosReport, infos []*node.RunInfo, run, genesis string, quorum int) {
	results := map[uint64]map[roundResult][]int{} // round → result → trainers
	peers := map[uint64]int{}
	for i, info := range infos {
		if info == nil {
			r.Histories = append(r.Histories, -1)
			r.Unanswered++
			continue
		}
		r.Histories = append(r.Histories, len(info.History))
		why := chainError(info.History, genesis)
		if info.ID != run {
			why = fmt.Sprintf("is in run %s, not %s", info.ID, run)
		}
		if why != "" {
			r.Malformed++
			r.Diverged = append(r.Diverged, fmt.Sprintf("trainer %d's history %s", i, why))
		}
		for _, rec := range info.History {
			k := roundResult{rec.Skipped, rec.Model, rec.Base}
			if results[rec.Round] == nil {
				results[rec.Round] = map[roundResult][]int{}
			}
			if ts := results[rec.Round][k]; !slices.Contains(ts, i) {
				results[rec.Round][k] = append(ts, i)
			}
			if !rec.Skipped {
				peers[rec.Round] = max(peers[rec.Round], len(rec.Peers))
			}
		}
	}
	rounds := slices.Sorted(maps.Keys(results))
	for _, round := range rounds {
		byResult := results[round]
		if len(byResult) > 1 {
			r.Divergent++
			var says []string
			for k, ts := range byResult {
				says = append(says, fmt.Sprintf("trainers %v: %s", ts, describe(node.RoundRecord{Skipped: k.skipped, Model: k.model, Base: k.base})))
			}
			slices.Sort(says)
			r.Diverged = append(r.Diverged, fmt.Sprintf("round %d: %s", round, strings.Join(says, "; ")))
			continue
		}
		for k := range byResult {
			if k.skipped {
				r.Skipped++
			} else {
				r.Rounds++
				if peers[round] < quorum {
					r.Thin++
				}
			}
		}
	}
	if len(rounds) > 0 {
		r.LastRound = rounds[len(rounds)-1]
	}
}

// chainError says how h fails to be a history of consecutive rounds from
// genesis, each starting from the version the previous one left, or "".
func chainError(h []node.RoundRecord, genesis string) string {
	prev := genesis
	for k, r := range h {
		switch {
		case r.Round != uint64(k+1):
			return fmt.Sprintf("holds round %d at position %d", r.Round, k+1)
		case r.Base != prev:
			return fmt.Sprintf("round %d starts from %s, but the version before it is %s", r.Round, r.Base, prev)
		case r.Skipped && r.Model != r.Base:
			return fmt.Sprintf("round %d is skipped but names a new version %s", r.Round, r.Model)
		}
		prev = r.Model
	}
	return ""
}

func describe(r node.RoundRecord) string {
	if r.Skipped {
		return "skipped"
	}
	return fmt.Sprintf("%s from %s", r.Model, r.Base)
}

// verifyStores re-hashes every object of every node's repo.
func (s *soak) verifyStores(ctx context.Context) {
	r := s.rep
	for _, m := range s.members {
		st, err := shards.Open(m.repo)
		if err == nil {
			var v shards.VerifyReport
			v, err = st.Verify(ctx)
			r.Objects += v.Objects
			r.Bytes += v.Bytes
			r.Corrupt += len(v.Corrupt)
			for _, c := range v.Corrupt {
				r.CorruptObjects = append(r.CorruptObjects, fmt.Sprintf("%s: %v", m.name, c.Err))
				s.o.Logger.Error("chaos: CORRUPT OBJECT", "node", m.name, "cid", c.CID, "err", c.Err)
			}
		}
		if err != nil {
			s.o.Logger.Error("chaos: cannot verify a repo", "node", m.name, "repo", m.repo, "err", err)
			r.Unverified++
			continue
		}
		r.Repos++
	}
	slices.Sort(r.CorruptObjects)
}
