package infer

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestPlan(t *testing.T) {
	srv := func(peer string, lo, hi int) Server { return Server{Peer: peer, Lo: lo, Hi: hi} }
	for _, tc := range []struct {
		name    string
		servers []Server
		layers  int
		self    string
		want    []Hop
	}{
		{"one peer serves all", []Server{srv("a", 0, 5)}, 5, "x", []Hop{{Peer: "a", Lo: 0, Hi: 5}}},
		{"three peers", []Server{srv("c", 4, 5), srv("a", 0, 2), srv("b", 2, 4)}, 5, "x",
			[]Hop{{Peer: "a", Lo: 0, Hi: 2}, {Peer: "b", Lo: 2, Hi: 4}, {Peer: "c", Lo: 4, Hi: 5}}},
		{"fewest hops wins on equal speed", []Server{srv("a", 0, 3), srv("b", 3, 5), srv("c", 0, 5)}, 5, "x",
			[]Hop{{Peer: "c", Lo: 0, Hi: 5}}},
		{"self costs no hop", []Server{{Peer: "a", Lo: 0, Hi: 5, HopMillis: 3}, srv("me", 0, 2), srv("b", 2, 5)}, 5, "me",
			[]Hop{{Peer: "me", Lo: 0, Hi: 2}, {Peer: "b", Lo: 2, Hi: 5}}},
		{"overlapping spans use the cheaper path", []Server{
			{Peer: "slow", Lo: 0, Hi: 5, BlockMillis: 10},
			{Peer: "a", Lo: 0, Hi: 3, BlockMillis: 1},
			{Peer: "b", Lo: 2, Hi: 5, BlockMillis: 0.5},
		}, 5, "x", []Hop{{Peer: "a", Lo: 0, Hi: 2}, {Peer: "b", Lo: 2, Hi: 5}}},
		{"loaded server avoided", []Server{
			{Peer: "busy", Lo: 0, Hi: 4, Load: 1},
			{Peer: "idle", Lo: 0, Hi: 4},
		}, 4, "x", []Hop{{Peer: "idle", Lo: 0, Hi: 4}}},
		{"tie broken by peer id", []Server{srv("b", 0, 2), srv("a", 0, 2)}, 2, "x", []Hop{{Peer: "a", Lo: 0, Hi: 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Plan(tc.servers, tc.layers, tc.self)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Plan = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPlanNamesMissingBlocks(t *testing.T) {
	_, err := Plan([]Server{{Peer: "a", Lo: 0, Hi: 2}, {Peer: "b", Lo: 4, Hi: 5}, {Peer: "c", Lo: 6, Hi: 7}}, 8, "x")
	if !errors.Is(err, ErrNoRoute) {
		t.Fatalf("err = %v, want ErrNoRoute", err)
	}
	if want := "blocks 2:4, 5:6, 7:8 are not served"; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %q, want it to contain %q", err, want)
	}
	if _, err := Plan(nil, 3, "x"); err == nil || !strings.Contains(err.Error(), "blocks 0:3") {
		t.Errorf("Plan(no servers) err = %v, want it to name blocks 0:3", err)
	}
}

// TestPlanCoversInOrder checks the invariant every plan must hold, over
// many pseudo-random server sets: hops are contiguous from 0 to L and each
// lies within its server's span.
func TestPlanCoversInOrder(t *testing.T) {
	state := uint64(1)
	next := func(n int) int { // xorshift; deterministic
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		return int(state % uint64(n))
	}
	for trial := 0; trial < 500; trial++ {
		layers := 1 + next(12)
		var servers []Server
		for i := 0; i < 1+next(6); i++ {
			lo := next(layers)
			servers = append(servers, Server{Peer: string(rune('a' + i)), Lo: lo, Hi: lo + 1 + next(layers-lo), BlockMillis: float64(1 + next(5))})
		}
		chain, err := Plan(servers, layers, "a")
		if len(Missing(servers, layers)) > 0 {
			if err == nil {
				t.Fatalf("trial %d: Plan succeeded with blocks missing", trial)
			}
			continue
		}
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		at := 0
		for _, h := range chain {
			if h.Lo != at || h.Hi <= h.Lo {
				t.Fatalf("trial %d: chain %+v not contiguous at %d", trial, chain, at)
			}
			ok := false
			for _, s := range servers {
				ok = ok || (s.Peer == h.Peer && s.Lo <= h.Lo && h.Hi <= s.Hi)
			}
			if !ok {
				t.Fatalf("trial %d: hop %+v outside its server's span", trial, h)
			}
			at = h.Hi
		}
		if at != layers {
			t.Fatalf("trial %d: chain ends at %d, want %d", trial, at, layers)
		}
	}
}
