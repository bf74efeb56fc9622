package infer

import (
	"hash/fnv"
	"math"
)

// Placement rules. A node serves the contiguous window of blocks the mesh
// needs most: the window whose weakest block has the least serving
// throughput (and, among equals, the least total). It moves only for a
// clear gain — when the weakest block of the best window has less than
// MoveRatio of the throughput of the weakest block of its own window,
// counting others only — and never when leaving would leave one of its
// blocks unserved.
const MoveRatio = 0.5

// Placement is the input of Place.
type Placement struct {
	// Servers are the other peers serving (or loading) the model; the
	// placing peer's own advert must not be among them.
	Servers []Server
	// Layers is the number of blocks of the model.
	Layers int
	// MaxBlocks is how many blocks the placing peer can hold (≥ 1).
	MaxBlocks int
	// Self is the placing peer's id; it breaks ties between windows so
	// that peers placing at the same moment spread out.
	Self string
	// Current is the span the peer serves now; Lo == Hi means none.
	Current Span
}

// Place returns the span the peer should serve and whether that is a
// change from p.Current.
func Place(p Placement) (Span, bool) {
	width := min(max(p.MaxBlocks, 1), p.Layers)
	thr := Throughput(p.Servers, p.Layers)
	best, bestScore := Span{}, score{}
	for lo := 0; lo+width <= p.Layers; lo++ {
		s := windowScore(thr, lo, lo+width, p.Self)
		if best.Hi == 0 || s.less(bestScore) {
			best, bestScore = Span{lo, lo + width}, s
		}
	}
	cur := p.Current
	if cur.Hi <= cur.Lo || cur.Hi > p.Layers {
		return best, true
	}
	if best == cur {
		return cur, false
	}
	curScore := windowScore(thr, cur.Lo, cur.Hi, p.Self)
	if curScore.min == 0 || !(bestScore.min < MoveRatio*curScore.min) {
		return cur, false
	}
	return best, true
}

// Throughput returns, per block, the sum over servers holding it of their
// speed in tokens per second (1000 / BlockMillis; unknown speeds count as
// DefaultBlockMillis).
func Throughput(servers []Server, layers int) []float64 {
	thr := make([]float64, layers)
	for _, s := range servers {
		ms := s.BlockMillis
		if ms <= 0 {
			ms = DefaultBlockMillis
		}
		for b := max(s.Lo, 0); b < min(s.Hi, layers); b++ {
			thr[b] += 1000 / ms
		}
	}
	return thr
}

type score struct {
	min, sum float64
	// aligned windows start or end where the throughput changes (or at
	// the model's ends): filling a hole from its edge leaves one smaller
	// hole instead of two fragments.
	aligned bool
	tie     uint64
}

func (a score) less(b score) bool {
	const eps = 1e-9
	switch {
	case math.Abs(a.min-b.min) > eps:
		return a.min < b.min
	case math.Abs(a.sum-b.sum) > eps:
		return a.sum < b.sum
	case a.aligned != b.aligned:
		return a.aligned
	}
	return a.tie < b.tie
}

func windowScore(thr []float64, lo, hi int, self string) score {
	s := score{min: math.Inf(1)}
	for _, t := range thr[lo:hi] {
		s.min = min(s.min, t)
		s.sum += t
	}
	s.aligned = lo == 0 || hi == len(thr) || thr[lo-1] != thr[lo] || thr[hi] != thr[hi-1]
	h := fnv.New64a()
	h.Write([]byte(self))
	h.Write([]byte{byte(lo), byte(lo >> 8), byte(hi), byte(hi >> 8)})
	s.tie = h.Sum64()
	return s
}
