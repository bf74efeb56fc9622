package infer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// ErrNoRoute is returned (wrapped) when the known servers do not cover
// every block of the model.
var ErrNoRoute = errors.New("infer: no route")

// Server is what the planner knows about one peer serving a model: the
// block span it holds and how fast it is. It is filled from capacity adverts.
type Server struct {
	Peer  string
	Addrs []string
	Lo    int // first block served
	Hi    int // one past the last block served
	// BlockMillis is the measured compute time of one block for one token,
	// in milliseconds; zero means unknown and is priced at DefaultBlockMillis.
	BlockMillis float64
	// HopMillis is the measured round-trip time to the peer; zero means
	// unknown and is priced at DefaultHopMillis. The entry's own blocks cost
	// no hop.
	HopMillis float64
	// Load is the fraction of the server's capacity in use, 0..1; it
	// multiplies compute time by 1+Load.
	Load float64
	// Started is when the peer's process started, in unix milliseconds on
	// its own clock, as its adverts say; zero means unknown. A value other
	// than the one a peer failed with means it restarted since, which lifts
	// its ban.
	Started int64
}

// Hop is one link of a planned chain: Peer runs blocks [Lo, Hi).
type Hop struct {
	Peer  string   `json:"peer"`
	Addrs []string `json:"addrs,omitempty"`
	Lo    int      `json:"lo"`
	Hi    int      `json:"hi"`
}

// Prices used when a server has not measured itself.
const (
	DefaultBlockMillis = 1.0
	DefaultHopMillis   = 1.0
)

// Plan returns the cheapest chain of hops that runs blocks [0, layers) in
// order, as a shortest path over block boundaries: an edge i→j exists for
// every server whose span contains [i, j), costing the hop latency (zero for
// self) plus (j-i) blocks at the server's speed, scaled by its load.
//
// Ties are broken by fewer hops, then by peer id, so the plan is a pure
// function of its inputs. When the servers leave blocks uncovered the error
// wraps ErrNoRoute and names the missing blocks.
func Plan(servers []Server, layers int, self string) ([]Hop, error) {
	if layers <= 0 {
		return nil, fmt.Errorf("%w: model has %d blocks", ErrNoRoute, layers)
	}
	if missing := Missing(servers, layers); len(missing) > 0 {
		return nil, fmt.Errorf("%w: blocks %s are not served by any known peer", ErrNoRoute, FormatSpans(missing))
	}
	sorted := append([]Server(nil), servers...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Peer < sorted[b].Peer })

	type label struct {
		cost float64
		hops int
		prev int // boundary the best edge came from
		srv  int // index into sorted
	}
	best := make([]label, layers+1)
	for i := range best {
		best[i] = label{cost: math.Inf(1), prev: -1, srv: -1}
	}
	best[0].cost = 0
	// Edges only go forward, so boundaries in increasing order are a
	// topological order of the graph.
	for i := 0; i < layers; i++ {
		if math.IsInf(best[i].cost, 1) {
			continue
		}
		for k, s := range sorted {
			if s.Lo > i || s.Hi <= i {
				continue
			}
			hop, block := s.HopMillis, s.BlockMillis
			if hop <= 0 {
				hop = DefaultHopMillis
			}
			if s.Peer == self {
				hop = 0
			}
			if block <= 0 {
				block = DefaultBlockMillis
			}
			load := math.Min(math.Max(s.Load, 0), 10)
			for j := i + 1; j <= min(s.Hi, layers); j++ {
				c := best[i].cost + hop + float64(j-i)*block*(1+load)
				h := best[i].hops + 1
				cur := best[j]
				if c < cur.cost-1e-9 || (math.Abs(c-cur.cost) <= 1e-9 && h < cur.hops) {
					best[j] = label{cost: c, hops: h, prev: i, srv: k}
				}
			}
		}
	}
	var chain []Hop
	for j := layers; j > 0; j = best[j].prev {
		s := sorted[best[j].srv]
		chain = append(chain, Hop{Peer: s.Peer, Addrs: s.Addrs, Lo: best[j].prev, Hi: j})
	}
	for a, b := 0, len(chain)-1; a < b; a, b = a+1, b-1 {
		chain[a], chain[b] = chain[b], chain[a]
	}
	return merge(chain), nil
}

// merge joins consecutive hops on the same peer into one.
func merge(chain []Hop) []Hop {
	out := chain[:0]
	for _, h := range chain {
		if n := len(out); n > 0 && out[n-1].Peer == h.Peer && out[n-1].Hi == h.Lo {
			out[n-1].Hi = h.Hi
			continue
		}
		out = append(out, h)
	}
	return out
}

// Span is a half-open range of blocks [Lo, Hi).
type Span struct{ Lo, Hi int }

// Missing returns the maximal spans of [0, layers) that no server covers.
func Missing(servers []Server, layers int) []Span {
	covered := make([]bool, layers)
	for _, s := range servers {
		for b := max(s.Lo, 0); b < min(s.Hi, layers); b++ {
			covered[b] = true
		}
	}
	var out []Span
	for b := 0; b < layers; b++ {
		if covered[b] {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Hi == b {
			out[n-1].Hi = b + 1
		} else {
			out = append(out, Span{b, b + 1})
		}
	}
	return out
}

// FormatSpans writes spans as "2:4, 7:8" (LO:HI, half-open, as on the
// command line).
func FormatSpans(spans []Span) string {
	parts := make([]string, len(spans))
	for i, s := range spans {
		parts[i] = fmt.Sprintf("%d:%d", s.Lo, s.Hi)
	}
	return strings.Join(parts, ", ")
}
