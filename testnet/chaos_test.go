package testnet

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
)

// TestGreedyReference checks the soak's expected text against
// REFERENCE.md Case 2 (its stdout is the text plus run.c's final newline).
func TestGreedyReference(t *testing.T) {
	ref := reftest.Read(t)
	m, tok := reftest.Load(t)
	if got := Greedy(m, tok, 200) + "\n"; got != ref.Case2Text {
		t.Errorf("Greedy:\n%s\nwant REFERENCE.md Case 2:\n%s", got, ref.Case2Text)
	}
}

func TestChaosSpans(t *testing.T) {
	for _, tc := range []struct {
		layers, servers int
		want            [][2]int
	}{
		{5, 1, [][2]int{{0, 5}}},
		{5, 2, [][2]int{{0, 5}, {0, 5}}},
		{5, 3, [][2]int{{0, 5}, {0, 3}, {3, 5}}},
		{6, 4, [][2]int{{0, 6}, {0, 2}, {2, 4}, {4, 6}}},
	} {
		if got := chaosSpans(tc.layers, tc.servers); !slices.Equal(got, tc.want) {
			t.Errorf("chaosSpans(%d, %d) = %v, want %v", tc.layers, tc.servers, got, tc.want)
		}
	}
}

// TestKillable checks the soak's rule: a kill must leave every block held
// and a quorum of the roster among the nodes up for at least KillEvery.
func TestKillable(t *testing.T) {
	now := time.Now()
	old, fresh := now.Add(-time.Minute), now.Add(-time.Second)
	s := &soak{o: ChaosOptions{Trainers: 4, KillEvery: 8 * time.Second}, layers: 5}
	for i, sp := range chaosSpans(5, 3) {
		s.members = append(s.members, &member{i: i, span: sp, up: true, since: old})
	}
	for i := range 4 {
		s.members = append(s.members, &member{i: i, trainer: true, up: true, since: old})
	}
	server, trainer := s.members[:3], s.members[3:]
	for _, m := range s.members {
		if !s.killable(m, now) {
			t.Errorf("all up: member %d (trainer %v) not killable", m.i, m.trainer)
		}
	}
	// One trainer down: quorum of 4 is 3, so no other trainer may go.
	trainer[0].up = false
	if s.killable(trainer[1], now) {
		t.Error("a second trainer of four killable")
	}
	// A trainer restarted a second ago does not count yet.
	trainer[0].up, trainer[0].since = true, fresh
	if s.killable(trainer[1], now) {
		t.Error("a trainer killable while another has just restarted")
	}
	// Server 1 (blocks 0:3) down: server 0 is the only other holder of
	// 0:3, so it must stay; server 2 (3:5) may go, as server 0 holds 3:5.
	server[1].up = false
	if s.killable(server[0], now) {
		t.Error("server 0 killable while server 1 is down")
	}
	if !s.killable(server[2], now) {
		t.Error("server 2 not killable while only server 1 is down")
	}
}

func TestChainError(t *testing.T) {
	h := []node.RoundRecord{
		{Round: 1, Base: "g", Model: "m1"},
		{Round: 2, Base: "m1", Model: "m1", Skipped: true},
		{Round: 3, Base: "m1", Model: "m3"},
	}
	if e := chainError(h, "g"); e != "" {
		t.Errorf("good chain: %s", e)
	}
	for name, bad := range map[string]func([]node.RoundRecord){
		"gap":          func(h []node.RoundRecord) { h[2].Round = 4 },
		"wrong base":   func(h []node.RoundRecord) { h[2].Base = "m0" },
		"genesis":      func(h []node.RoundRecord) { h[0].Base = "x" },
		"skip changes": func(h []node.RoundRecord) { h[1].Model = "m2" },
	} {
		c := slices.Clone(h)
		bad(c)
		if chainError(c, "g") == "" {
			t.Errorf("%s: chainError found nothing", name)
		}
	}
}

func TestErrorClass(t *testing.T) {
	a := errors.New("node: cannot reach /ip4/127.0.0.1/tcp/32909/p2p/12D3KooWF3N985FA2P5ygXUsKRaNjVbLNSd7ib9g4S6wMxtixjow: failed\n  * [/ip4/127.0.0.1/tcp/32909] dial tcp4 127.0.0.1:32909: connect: connection refused")
	b := errors.New("node: cannot reach /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWAbCdEfGhJkLmNpQrStUvWxYz123456789abcdefghij: failed\n  * [/ip4/127.0.0.1/tcp/4001] dial tcp4 127.0.0.1:4001: connect: connection refused")
	if ca, cb := errorClass(a), errorClass(b); ca != cb || strings.Contains(ca, "\n") {
		t.Errorf("one kind of failure, two classes:\n%q\n%q", ca, cb)
	}
}

// TestJudgeHistories: a history that repeats rounds is malformed but not
// divergent; two results for one round are divergent; the figures come
// from the union of the histories.
func TestJudgeHistories(t *testing.T) {
	rec := func(round uint64, base, model string, peers int) node.RoundRecord {
		r := node.RoundRecord{Round: round, Base: base, Model: model, Skipped: base == model}
		for range peers {
			r.Peers = append(r.Peers, "p")
		}
		return r
	}
	good := []node.RoundRecord{rec(1, "g", "m1", 4), rec(2, "m1", "m1", 0), rec(3, "m1", "m3", 2)}
	repeats := append(slices.Clone(good[:2]), good[0], good[1], good[2])
	longer := append(slices.Clone(good), rec(4, "m3", "m4", 3))
	info := func(h []node.RoundRecord) *node.RunInfo { return &node.RunInfo{ID: "run", History: h} }

	var r ChaosReport
	judgeHistories(&r, []*node.RunInfo{info(good), info(repeats), nil, info(longer)}, "run", "g", 3)
	if r.Divergent != 0 || r.Malformed != 1 || r.Unanswered != 1 {
		t.Errorf("divergent %d, malformed %d, unanswered %d; want 0, 1, 1 (%q)", r.Divergent, r.Malformed, r.Unanswered, r.Diverged)
	}
	if r.Rounds != 3 || r.Skipped != 1 || r.LastRound != 4 || r.Thin != 1 {
		t.Errorf("rounds %d, skipped %d, last %d, thin %d; want 3, 1, 4, 1", r.Rounds, r.Skipped, r.LastRound, r.Thin)
	}
	if !slices.Equal(r.Histories, []int{3, 5, -1, 4}) {
		t.Errorf("lengths %v", r.Histories)
	}

	other := slices.Clone(good)
	other[2] = rec(3, "m1", "x3", 3)
	r = ChaosReport{}
	judgeHistories(&r, []*node.RunInfo{info(good), info(other), {ID: "another", History: good}}, "run", "g", 3)
	if r.Divergent != 1 || r.Malformed != 1 {
		t.Errorf("divergent %d, malformed %d; want 1 (round 3), 1 (another run): %q", r.Divergent, r.Malformed, r.Diverged)
	}
}
