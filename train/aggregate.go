package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/strata-mesh/strata/model"
)

// Rule is how a round's deltas are combined into one.
type Rule int

const (
	// FedAvg is the sample-weighted mean (McMahan et al. 2017), each
	// participant's sample count capped (Aggregation.MaxSampleShare,
	// SampleCap) so an inflated claim cannot dominate.
	FedAvg Rule = iota
	// Median is the coordinate-wise median (Yin et al. 2018); for an even
	// count, the mean of the middle two.
	Median
	// TrimmedMean drops, per coordinate, the ⌊βN⌋ largest and ⌊βN⌋
	// smallest values and averages the rest (Yin et al. 2018), β =
	// Aggregation.Trim.
	TrimmedMean
	// CenteredClip starts from the coordinate-wise median and iterates
	// v ← v + (1/N)·Σᵢ clip(xᵢ − v, τ), where clip(z, τ) = z·min(1,
	// τ/‖z‖₂) over the whole delta (Karimireddy, He & Jaggi 2021,
	// "Learning from History for Byzantine Robust Optimization", eq. 2).
	CenteredClip
)

func (r Rule) String() string {
	switch r {
	case FedAvg:
		return "fedavg"
	case Median:
		return "median"
	case TrimmedMean:
		return "trimmed-mean"
	case CenteredClip:
		return "centered-clip"
	}
	return fmt.Sprintf("Rule(%d)", int(r))
}

// Aggregation configures Aggregate.
type Aggregation struct {
	Rule Rule
	// MaxSampleShare caps each FedAvg weight at this multiple of the
	// median sample count (0: no cap relative to the median).
	MaxSampleShare float64
	// SampleCap caps each FedAvg weight at this many samples (0: none).
	SampleCap uint64
	// Trim is TrimmedMean's β in [0, 0.5).
	Trim float64
	// Tau is CenteredClip's clipping radius τ > 0, in L2 norm of a delta.
	Tau float64
	// Iters is CenteredClip's number of iterations (>= 1).
	Iters int
}

// Validate checks the fields the rule uses.
func (a Aggregation) Validate() error {
	bad := func(f string, v ...any) error { return fmt.Errorf("%w: "+f, append([]any{ErrConfig}, v...)...) }
	if !(a.MaxSampleShare >= 0) || math.IsInf(a.MaxSampleShare, 0) {
		return bad("max sample share %g must be finite and >= 0", a.MaxSampleShare)
	}
	switch a.Rule {
	case FedAvg, Median:
	case TrimmedMean:
		if !(a.Trim >= 0 && a.Trim < 0.5) {
			return bad("trim %g must be in [0, 0.5)", a.Trim)
		}
	case CenteredClip:
		if !(a.Tau > 0) || math.IsInf(a.Tau, 0) || a.Iters < 1 || a.Iters > 100 {
			return bad("centered clipping needs a finite tau > 0 (got %g) and 1 to 100 iterations (got %d)", a.Tau, a.Iters)
		}
	default:
		return bad("unknown rule %d", int(a.Rule))
	}
	return nil
}

// Aggregate combines a round's validated contributions with a.Rule into
// one delta (Codec FP32) for the outer optimizer. Samples of the result
// is the sum of the (capped) sample counts, Loss their sample-weighted
// mean loss.
//
// The result is bitwise the same on every node and for every order of
// cs: contributions are sorted by Key first; sums are float64 in that
// order with every product rounded explicitly (no fused multiply-add),
// and each output value is rounded to float32 once. Errors: ErrNoDeltas,
// ErrConfig, ErrDelta (keys repeat, or rounds or bases differ), ErrShape
// (tensors differ), ErrNonFinite.
func Aggregate(a Aggregation, cs []Contribution) (*Delta, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, ErrNoDeltas
	}
	cs = append([]Contribution(nil), cs...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Key < cs[j].Key })
	first := cs[0].Delta
	for i, c := range cs {
		d := c.Delta
		if d == nil {
			return nil, fmt.Errorf("%w: contribution %s from %s has no delta", ErrDelta, c.Key, c.Sender)
		}
		if i > 0 && c.Key == cs[i-1].Key {
			return nil, fmt.Errorf("%w: delta %s appears twice", ErrDelta, c.Key)
		}
		if d.Round != first.Round || d.Base != first.Base {
			return nil, fmt.Errorf("%w: delta %s from %s is for round %d base %q, others for round %d base %q",
				ErrDelta, c.Key, c.Sender, d.Round, d.Base, first.Round, first.Base)
		}
		if err := sameShapes(first.Tensors, d.Tensors); err != nil {
			return nil, fmt.Errorf("delta %s from %s: %w", c.Key, c.Sender, err)
		}
	}
	xs := make([][]float32, len(cs))
	for i, c := range cs {
		x, err := flatten(c.Delta)
		if err != nil {
			return nil, fmt.Errorf("delta %s from %s: %w", c.Key, c.Sender, err)
		}
		xs[i] = x
	}
	w := sampleWeights(a, cs)
	out := make([]float32, len(xs[0]))
	switch a.Rule {
	case FedAvg:
		fedAvg(xs, w, out)
	case Median:
		trimmedMean(xs, (len(xs)-1)/2, out)
	case TrimmedMean:
		trimmedMean(xs, int(math.Floor(a.Trim*float64(len(xs)))), out)
	case CenteredClip:
		centeredClip(xs, a.Tau, a.Iters, out)
	}
	res := &Delta{Round: first.Round, Base: first.Base, Codec: FP32, Tensors: make([]model.Tensor, len(first.Tensors))}
	var total, loss float64
	for i, c := range cs {
		total += w[i]
		loss += float64(w[i] * float64(c.Delta.Loss))
	}
	res.Samples, res.Loss = uint64(total), float32(loss/total)
	off := 0
	for i, t := range first.Tensors {
		n := len(t.Data)
		res.Tensors[i] = model.Tensor{Name: t.Name, Shape: append([]int(nil), t.Shape...), Data: out[off : off+n : off+n]}
		off += n
	}
	return res, nil
}

// flatten concatenates d's tensors, rejecting non-finite values.
func flatten(d *Delta) ([]float32, error) {
	x := make([]float32, 0, d.Elems())
	for _, t := range d.Tensors {
		for j, v := range t.Data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("%w: %g in %s[%d]", ErrNonFinite, v, t.Name, j)
			}
		}
		x = append(x, t.Data...)
	}
	return x, nil
}

// sampleWeights returns each contribution's sample count capped at
// MaxSampleShare × the median count and at SampleCap.
func sampleWeights(a Aggregation, cs []Contribution) []float64 {
	w := make([]float64, len(cs))
	for i, c := range cs {
		w[i] = float64(c.Delta.Samples)
	}
	limit := math.Inf(1)
	if a.MaxSampleShare > 0 {
		limit = a.MaxSampleShare * median64(append([]float64(nil), w...))
	}
	if a.SampleCap > 0 {
		limit = min(limit, float64(a.SampleCap))
	}
	for i := range w {
		w[i] = max(min(w[i], limit), 1)
	}
	return w
}

// fedAvg writes Σ wᵢxᵢ / Σ wᵢ per coordinate.
func fedAvg(xs [][]float32, w []float64, out []float32) {
	var total float64
	for _, v := range w {
		total += v
	}
	for c := range out {
		var s float64
		for i, x := range xs {
			s += float64(w[i] * float64(x[c]))
		}
		out[c] = float32(s / total)
	}
}

// trimmedMean writes, per coordinate, the mean of the values left after
// dropping the k smallest and k largest; k = (N−1)/2 is the median.
func trimmedMean(xs [][]float32, k int, out []float32) {
	n := len(xs)
	col := make([]float64, n)
	for c := range out {
		for i, x := range xs {
			col[i] = float64(x[c])
		}
		insertionSort(col)
		var s float64
		for _, v := range col[k : n-k] {
			s += v
		}
		out[c] = float32(s / float64(n-2*k))
	}
}

// insertionSort sorts a short slice in place.
func insertionSort(x []float64) {
	for i := 1; i < len(x); i++ {
		v := x[i]
		j := i
		for ; j > 0 && x[j-1] > v; j-- {
			x[j] = x[j-1]
		}
		x[j] = v
	}
}

// centeredClip runs iters rounds of centered clipping from the
// coordinate-wise median, in float64.
func centeredClip(xs [][]float32, tau float64, iters int, out []float32) {
	n := len(xs)
	v := make([]float64, len(out))
	col := make([]float64, n)
	k := (n - 1) / 2
	for c := range v {
		for i, x := range xs {
			col[i] = float64(x[c])
		}
		insertionSort(col)
		var s float64
		for _, y := range col[k : n-k] {
			s += y
		}
		v[c] = s / float64(n-2*k)
	}
	acc := make([]float64, len(v))
	for range iters {
		clear(acc)
		for _, x := range xs {
			var sq float64
			for c, y := range x {
				z := float64(y) - v[c]
				sq += float64(z * z)
			}
			scale := 1.0
			if norm := math.Sqrt(sq); norm > tau {
				scale = tau / norm
			}
			for c, y := range x {
				acc[c] += float64(scale * float64(float64(y)-v[c]))
			}
		}
		for c := range v {
			v[c] += acc[c] / float64(n)
		}
	}
	for c, y := range v {
		out[c] = float32(y)
	}
}
