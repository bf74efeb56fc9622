package consensus

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestInteraction runs the scenario scripts in testdata/*.txt. Each line is
// a command; "#" starts a comment. Safety invariants are checked after every
// command. Commands:
//
//	timing C V R                    CollectTicks, ViewTicks, RoundTicks for the next net
//	quorum Q                        Config.Quorum for the next net (0: Byzantine quorum)
//	net a b c d [byz x y]           start a network; byz members are not run
//	contribute R nodes|all DELTA    the app validated DELTA for round R
//	tick [N]                        advance every live node N ticks
//	deliver                         deliver the messages queued so far
//	stabilize                       deliver until the queue is empty
//	run N                           N times: tick, stabilize
//	crash X / restart X             stop X / restart it from its persisted state
//	drop X                          lose every queued message to X
//	cut a b | c d                   partition: no message crosses between the groups
//	heal                            end the partition
//	propose X R V d1,d2|skip to...  Byzantine X sends a signed proposal
//	prevote X R V d1,d2|skip to...  Byzantine X sends a signed prevote
//	precommit X R V d1,d2|skip to...  Byzantine X sends a signed precommit
//	expect proposer R V X
//	expect commit R d1,d2|skip nodes...   result is the aggregate of the deltas over the cert's base
//	expect nocommit R nodes...
//	expect round R nodes...
//	expect sameround nodes...
//	expect commits N nodes...        each holds N certificates
//	expect samehistory nodes...      histories agree and end on the same round
//	expect prevoted X R V d1,d2|skip|nil|none      X's prevote in view V of round R
//	expect precommitted X R V d1,d2|skip|nil|none
//	expect view V nodes...
func TestInteraction(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	if len(files) == 0 {
		t.Fatal("no scenario scripts in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, path string) {
	file, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var s *sim
	timing := [3]int{3, 10, 40}
	quorum := 0
	sc := bufio.NewScanner(file)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(strings.SplitN(sc.Text(), "#", 2)[0])
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		if f[0] == "timing" && len(f) == 4 {
			timing = [3]int{atoi(f[1]), atoi(f[2]), atoi(f[3])}
			continue
		}
		if f[0] == "quorum" && len(f) == 2 {
			quorum = atoi(f[1])
			continue
		}
		if f[0] == "net" {
			s = nil
		}
		if err := s.exec(&s, f); err != nil {
			t.Fatalf("%s:%d: %s: %v", path, line, text, err)
		}
		if s != nil {
			if f[0] == "net" {
				s.cfg.CollectTicks, s.cfg.ViewTicks, s.cfg.RoundTicks = timing[0], timing[1], timing[2]
				s.cfg.Quorum = quorum
				s.nodes = map[string]*Node{}
				for _, id := range s.honest() {
					s.start(id)
				}
			}
			if err := s.checkSafety(); err != nil {
				t.Fatalf("%s:%d: %s: safety: %v", path, line, text, err)
			}
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(fmt.Sprintf("bad number %q", s))
	}
	return n
}

func splitDeltas(s string) []string {
	if s == "-" {
		return nil
	}
	d := strings.Split(s, ",")
	slices.Sort(d)
	return d
}

// value is the result named by a script: "skip" or the aggregate of the
// listed deltas over round r's base.
func (s *sim) value(r Round, deltas string) string {
	if deltas == "skip" {
		return ""
	}
	return aggregate(s.base(r), "fedavg", splitDeltas(deltas))
}

// base is the current base of round r as seen by the honest nodes.
func (s *sim) base(r Round) string {
	for _, id := range s.honest() {
		if hs, ok := s.hs[id]; ok && hs.Round == r {
			return hs.Base
		}
		if n := s.nodes[id]; n != nil && n.HardState().Round == r {
			return n.HardState().Base
		}
	}
	return testGenesis
}

func (s *sim) find(id string, r Round) (Certificate, bool) {
	for _, c := range s.commits[id] {
		if c.Round == r {
			return c, true
		}
	}
	return Certificate{}, false
}

func (s *sim) exec(sp **sim, f []string) (err error) {
	var side int
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	if f[0] == "net" {
		ids, byz := f[1:], []string(nil)
		if i := slices.Index(ids, "byz"); i >= 0 {
			ids, byz = ids[:i], ids[i+1:]
		}
		*sp = newSim(ids, byz, nil)
		return nil
	}
	if s == nil {
		return fmt.Errorf("no net yet")
	}
	switch f[0] {
	case "contribute":
		targets := f[2:3]
		if f[2] == "all" {
			targets = s.honest()
		}
		for _, id := range targets {
			s.contribute(id, Round(atoi(f[1])), f[3])
		}
	case "tick":
		n := 1
		if len(f) > 1 {
			n = atoi(f[1])
		}
		for range n {
			s.tick()
		}
	case "deliver":
		s.deliver()
	case "stabilize":
		for s.deliver() {
		}
	case "run":
		for range atoi(f[1]) {
			s.tick()
			for s.deliver() {
			}
		}
	case "crash":
		s.crash(f[1])
	case "restart":
		s.start(f[1])
	case "cut":
		s.cut, side = map[string]int{}, 0
		for _, p := range f[1:] {
			if p == "|" {
				side = 1
				continue
			}
			s.cut[p] = side
		}
	case "heal":
		s.cut = nil
	case "drop":
		s.queue = slices.DeleteFunc(s.queue, func(e envelope) bool { return e.to == f[1] })
	case "propose":
		r, v := Round(atoi(f[2])), uint32(atoi(f[3]))
		m := Message{Kind: KindPropose, Round: r, View: v, From: f[1], Base: s.base(r)}
		if f[4] != "skip" {
			m.Deltas, m.Rule = splitDeltas(f[4]), "fedavg"
			m.Result = aggregate(m.Base, m.Rule, m.Deltas)
		}
		m.Sig = sign(f[1], ProposalBytes(m))
		s.broadcast(f[1], m, f[6:])
	case "prevote", "precommit":
		r, v := Round(atoi(f[2])), uint32(atoi(f[3]))
		m := Message{Kind: KindPrevote, Round: r, View: v, From: f[1], Base: s.base(r), Result: s.value(r, f[4])}
		bytes := PrevoteBytes
		if f[0] == "precommit" {
			m.Kind, bytes = KindPrecommit, PrecommitBytes
		}
		m.Sig = sign(f[1], bytes(r, v, m.Base, m.Result))
		s.broadcast(f[1], m, f[6:])
	case "expect":
		return s.expect(f[1:])
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func (s *sim) expect(f []string) error {
	switch f[0] {
	case "proposer":
		if got := Proposer(s.roster, Round(atoi(f[1])), uint32(atoi(f[2]))); got != f[3] {
			return fmt.Errorf("proposer is %s, want %s", got, f[3])
		}
	case "commit":
		r := Round(atoi(f[1]))
		for _, id := range f[3:] {
			c, ok := s.find(id, r)
			if !ok {
				return fmt.Errorf("%s has no commit for round %d (round %d, view %d)", id, r, s.nodes[id].HardState().Round, s.nodes[id].View())
			}
			want := ""
			if f[2] != "skip" {
				want = aggregate(c.Base, "fedavg", splitDeltas(f[2]))
			}
			if c.Result != want {
				return fmt.Errorf("%s committed %q in round %d, want %q (%s)", id, c.Result, r, want, f[2])
			}
		}
	case "sameround":
		want := s.nodes[f[1]].HardState().Round
		for _, id := range f[2:] {
			if got := s.nodes[id].HardState().Round; got != want {
				return fmt.Errorf("%s is in round %d, %s in round %d", id, got, f[1], want)
			}
		}
	case "commits":
		for _, id := range f[2:] {
			if got := len(s.commits[id]); got != atoi(f[1]) {
				return fmt.Errorf("%s holds %d certificates, want %s", id, got, f[1])
			}
		}
	case "samehistory": // same latest round; same result where both hold a round (catch-up skips some)
		want := s.commits[f[1]]
		for _, id := range f[2:] {
			got := s.commits[id]
			if len(got) == 0 || len(want) == 0 || got[len(got)-1].Round != want[len(want)-1].Round {
				return fmt.Errorf("%s and %s end on different rounds", id, f[1])
			}
			for _, c := range got {
				if o, ok := s.find(f[1], c.Round); ok && o.Result != c.Result {
					return fmt.Errorf("%s and %s differ at round %d", id, f[1], c.Round)
				}
			}
		}
	case "nocommit":
		for _, id := range f[2:] {
			if c, ok := s.find(id, Round(atoi(f[1]))); ok {
				return fmt.Errorf("%s committed %q in round %s", id, c.Result, f[1])
			}
		}
	case "round":
		for _, id := range f[2:] {
			if got := s.nodes[id].HardState().Round; got != Round(atoi(f[1])) {
				return fmt.Errorf("%s is in round %d, want %s", id, got, f[1])
			}
		}
	case "prevoted", "precommitted":
		r, v := Round(atoi(f[2])), uint32(atoi(f[3]))
		k := KindPrevote
		if f[0] == "precommitted" {
			k = KindPrecommit
		}
		vals := s.sent[f[1]][ballotKey{r, v, k}]
		if f[4] == "none" {
			if len(vals) != 0 {
				return fmt.Errorf("%s %s %v in round %d view %d", f[1], f[0], vals, r, v)
			}
			return nil
		}
		want := nilKey
		if f[4] != "nil" {
			want = s.value(r, f[4])
		}
		if len(vals) != 1 || !vals[want] {
			return fmt.Errorf("%s %s %v in round %d view %d, want only %q", f[1], f[0], vals, r, v, want)
		}
	case "view":
		for _, id := range f[2:] {
			if got := s.nodes[id].View(); got != uint32(atoi(f[1])) {
				return fmt.Errorf("%s is in view %d, want %s", id, got, f[1])
			}
		}
	default:
		return fmt.Errorf("unknown expectation %q", f[0])
	}
	return nil
}
