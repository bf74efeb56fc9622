package infer

import (
	"fmt"
	"testing"
)

func TestPlace(t *testing.T) {
	srv := func(peer string, lo, hi int) Server { return Server{Peer: peer, Lo: lo, Hi: hi} }
	for _, tc := range []struct {
		name     string
		p        Placement
		want     Span
		wantMove bool
	}{
		{"empty mesh, whole model fits", Placement{Layers: 5, MaxBlocks: 10, Self: "a"}, Span{0, 5}, true},
		{"uncovered blocks first", Placement{Servers: []Server{srv("s", 0, 2)}, Layers: 5, MaxBlocks: 3, Self: "a"}, Span{2, 5}, true},
		{"the hole, not the covered part", Placement{Servers: []Server{srv("s", 0, 2), srv("t", 4, 5)}, Layers: 5, MaxBlocks: 2, Self: "a"}, Span{2, 4}, true},
		{"weakest window", Placement{Servers: []Server{srv("s", 0, 5), srv("t", 0, 3)}, Layers: 5, MaxBlocks: 2, Self: "a"}, Span{3, 5}, true},
		{"stay when the gain is small", Placement{Servers: []Server{srv("s", 0, 5), srv("t", 0, 2), srv("u", 2, 5), srv("v", 3, 5)},
			Layers: 5, MaxBlocks: 2, Self: "a", Current: Span{3, 5}}, Span{3, 5}, false},
		{"move to a hole", Placement{Servers: []Server{srv("s", 0, 3), srv("t", 0, 3)}, Layers: 5, MaxBlocks: 2, Self: "a", Current: Span{0, 2}}, Span{3, 5}, true},
		{"never leave a block unserved", Placement{Servers: []Server{srv("s", 3, 5)}, Layers: 5, MaxBlocks: 3, Self: "a", Current: Span{0, 3}}, Span{0, 3}, false},
		{"stay on the best span", Placement{Servers: []Server{srv("s", 0, 2)}, Layers: 4, MaxBlocks: 2, Self: "a", Current: Span{2, 4}}, Span{2, 4}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, move := Place(tc.p)
			if got != tc.want || move != tc.wantMove {
				t.Errorf("Place = %v, move %v; want %v, move %v", got, move, tc.want, tc.wantMove)
			}
		})
	}
}

// TestPlaceConverges simulates peers joining one at a time (each sees
// the others' choices) and re-checking in turns: every block ends up
// served, and placement reaches a fixed point without oscillating.
func TestPlaceConverges(t *testing.T) {
	for _, tc := range []struct {
		layers, peers, maxBlocks int
		together                 bool // all peers place before seeing each other
	}{
		{5, 3, 2, false}, {5, 4, 2, false}, {12, 5, 3, false}, {32, 8, 4, false}, {7, 7, 1, false}, {5, 2, 5, false},
		{5, 3, 2, true}, {12, 5, 3, true}, {32, 8, 4, true}, {7, 7, 1, true},
	} {
		t.Run(fmt.Sprintf("L%d_n%d_w%d_together%v", tc.layers, tc.peers, tc.maxBlocks, tc.together), func(t *testing.T) {
			spans := make([]Span, tc.peers)
			others := func(i int) []Server {
				var out []Server
				for j, s := range spans {
					if j != i && s.Hi > s.Lo {
						out = append(out, Server{Peer: fmt.Sprint("p", j), Lo: s.Lo, Hi: s.Hi})
					}
				}
				return out
			}
			for i := range spans {
				var seen []Server
				if !tc.together {
					seen = others(i)
				}
				spans[i], _ = Place(Placement{Servers: seen, Layers: tc.layers, MaxBlocks: tc.maxBlocks, Self: fmt.Sprint("p", i)})
			}
			moves := 0
			for round := 0; round < 20; round++ {
				moved := false
				for i := range spans {
					s, move := Place(Placement{Servers: others(i), Layers: tc.layers, MaxBlocks: tc.maxBlocks, Self: fmt.Sprint("p", i), Current: spans[i]})
					if move {
						spans[i], moved = s, true
						moves++
					}
				}
				if !moved {
					break
				}
			}
			var all []Server
			for j, s := range spans {
				all = append(all, Server{Peer: fmt.Sprint("p", j), Lo: s.Lo, Hi: s.Hi})
			}
			if tc.peers*tc.maxBlocks >= tc.layers {
				if m := Missing(all, tc.layers); len(m) > 0 {
					t.Errorf("spans %v leave blocks %s unserved", spans, FormatSpans(m))
				}
			}
			if !tc.together && moves > tc.peers {
				t.Errorf("%d moves for %d peers: placement oscillates (%v)", moves, tc.peers, spans)
			}
		})
	}
}
