package consensus

import (
	"cmp"
	"slices"
)

// nilKey is the tally key of nil votes; results are CIDs or empty (skip),
// never this.
const nilKey = "\x00nil"

func valueKey(result string, isNil bool) string {
	if isNil {
		return nilKey
	}
	return result
}

func splitKey(key string) (result string, isNil bool) {
	if key == nilKey {
		return "", true
	}
	return key, false
}

// tally holds the verified votes of one phase in the current round, by
// view, value and voter. An honest member casts one vote per phase and
// view; a voter is counted for at most two values per view, so that
// equivocation stays bounded in memory (MaxViews × roster × 2) and a proof
// of lock holding an equivocator's other vote still counts. Two values
// cannot both reach a quorum in one view: the quorums would share an
// honest member.
type tally struct {
	byView map[uint32]map[string]map[string][]byte // view -> result -> voter -> sig
	voted  map[uint32]map[string]int               // view -> voter -> values counted
}

// room reports whether from's vote for result in view v would be counted.
func (t *tally) room(v uint32, from, result string) bool {
	_, dup := t.byView[v][result][from]
	return !dup && t.voted[v][from] < 2
}

func (t *tally) add(v uint32, from, result string, sig []byte) {
	if !t.room(v, from, result) {
		return
	}
	if t.byView == nil {
		t.byView, t.voted = map[uint32]map[string]map[string][]byte{}, map[uint32]map[string]int{}
	}
	if t.byView[v] == nil {
		t.byView[v], t.voted[v] = map[string]map[string][]byte{}, map[string]int{}
	}
	if t.byView[v][result] == nil {
		t.byView[v][result] = map[string][]byte{}
	}
	t.byView[v][result][from] = sig
	t.voted[v][from]++
}

func (t *tally) count(v uint32, result string) int { return len(t.byView[v][result]) }

// votes is the number of voters counted in view v, whatever their value.
func (t *tally) votes(v uint32) int { return len(t.voted[v]) }

// quorum returns the votes for result in view v, sorted by voter, if there
// are at least q of them; nil otherwise.
func (t *tally) quorum(v uint32, result string, q int) []Vote {
	vs := t.byView[v][result]
	if len(vs) < q {
		return nil
	}
	out := make([]Vote, 0, len(vs))
	for from, sig := range vs {
		out = append(out, Vote{From: from, Sig: sig})
	}
	slices.SortFunc(out, func(a, b Vote) int { return cmp.Compare(a.From, b.From) })
	return out
}

// decided returns the value with at least q votes in view v, if any.
func (t *tally) decided(v uint32, q int) (string, bool) {
	for res, vs := range t.byView[v] {
		if len(vs) >= q {
			return res, true
		}
	}
	return "", false
}
