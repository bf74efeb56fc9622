package train

import (
	"fmt"
	"math"
	"sort"

	"github.com/strata-mesh/strata/model"
)

// Contribution is one participant's decoded delta for a round.
type Contribution struct {
	Sender string // peer ID of the participant, for logs and rejections
	Key    string // the delta's CID: aggregation sorts by it
	Delta  *Delta
}

// Limits bound what Validate accepts.
type Limits struct {
	// NormFactor k rejects a delta whose L2 norm exceeds k × the median
	// norm of the round's otherwise valid deltas (0: no relative check).
	// Needs at least 3 deltas to apply, so a median exists that one
	// sender cannot set on its own.
	NormFactor float64
	// MaxNorm rejects a delta whose L2 norm exceeds it (0: no cap).
	MaxNorm float64
}

// DefaultLimits rejects norms above 10 × the round's median.
func DefaultLimits() Limits { return Limits{NormFactor: 10} }

// Validate checks limits' values.
func (l Limits) Validate() error {
	if !(l.NormFactor >= 0) || math.IsInf(l.NormFactor, 0) || (l.NormFactor != 0 && l.NormFactor < 1) ||
		!(l.MaxNorm >= 0) || math.IsInf(l.MaxNorm, 0) {
		return fmt.Errorf("%w: norm factor %g (0 or >= 1) and max norm %g (>= 0) must be finite", ErrConfig, l.NormFactor, l.MaxNorm)
	}
	return nil
}

// Rejection is a delta that failed validation: Error reads "train:
// rejected delta from <sender>: NaN in blocks.2.w1[17]".
type Rejection struct {
	Sender, Key string
	Tensor      string // the tensor at fault, if one is
	Err         error  // wraps ErrShape, ErrNonFinite, ErrOutlier or ErrDelta
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("train: rejected delta %s from %s: %v", r.Key, r.Sender, r.Err)
}

// Unwrap gives ErrRejected and the cause.
func (r *Rejection) Unwrap() []error { return []error{ErrRejected, r.Err} }

// Validate splits a round's contributions into accepted and rejected.
// A delta is rejected if it is missing, is for another round or base (base
// "" skips that check), does not have exactly expect's tensor names and
// shapes (expect's Data is ignored), holds a NaN or ±Inf value, claims no
// samples, reports a non-finite or negative loss, has an L2 norm above
// lim.MaxNorm, or (with 3 or more deltas left) above lim.NormFactor × the
// median norm of the deltas that passed the other checks. A sender or key
// that appears twice is rejected for its later occurrences. Accepted
// contributions keep their input order.
func Validate(expect []model.Tensor, round uint64, base string, cs []Contribution, lim Limits) (ok []Contribution, rejected []*Rejection) {
	norms := make([]float64, 0, len(cs))
	seenSender, seenKey := map[string]bool{}, map[string]bool{}
	var pass []Contribution
	for _, c := range cs {
		if rej := check(expect, round, base, c, lim, seenSender, seenKey); rej != nil {
			rejected = append(rejected, rej)
			continue
		}
		pass = append(pass, c)
		norms = append(norms, c.Delta.Norm())
	}
	if lim.NormFactor == 0 || len(pass) < 3 {
		return pass, rejected
	}
	med := median64(append([]float64(nil), norms...))
	for i, c := range pass {
		if norms[i] > lim.NormFactor*med {
			rejected = append(rejected, &Rejection{Sender: c.Sender, Key: c.Key,
				Err: fmt.Errorf("%w: L2 norm %.4g is over %g × the round's median %.4g", ErrOutlier, norms[i], lim.NormFactor, med)})
			continue
		}
		ok = append(ok, c)
	}
	return ok, rejected
}

// check applies the per-delta checks of Validate.
func check(expect []model.Tensor, round uint64, base string, c Contribution, lim Limits, senders, keys map[string]bool) *Rejection {
	rej := func(tensor string, err error) *Rejection {
		return &Rejection{Sender: c.Sender, Key: c.Key, Tensor: tensor, Err: err}
	}
	if senders[c.Sender] {
		return rej("", fmt.Errorf("%w: a second delta from the same sender this round", ErrDelta))
	}
	if keys[c.Key] {
		return rej("", fmt.Errorf("%w: the same delta twice", ErrDelta))
	}
	senders[c.Sender], keys[c.Key] = true, true
	d := c.Delta
	if d == nil {
		return rej("", fmt.Errorf("%w: no delta", ErrDelta))
	}
	if d.Round != round || (base != "" && d.Base != base) {
		return rej("", fmt.Errorf("%w: delta for round %d from base %q; this round is %d from %q", ErrDelta, d.Round, d.Base, round, base))
	}
	if d.Samples == 0 {
		return rej("", fmt.Errorf("%w: claims 0 samples", ErrDelta))
	}
	if l := float64(d.Loss); math.IsNaN(l) || math.IsInf(l, 0) || l < 0 {
		return rej("", fmt.Errorf("%w: reported loss %g", ErrNonFinite, d.Loss))
	}
	if err := sameShapes(expect, d.Tensors); err != nil {
		return rej("", err)
	}
	for _, t := range d.Tensors {
		for j, v := range t.Data {
			if math.IsNaN(float64(v)) {
				return rej(t.Name, fmt.Errorf("%w: NaN in %s[%d]", ErrNonFinite, t.Name, j))
			}
			if math.IsInf(float64(v), 0) {
				return rej(t.Name, fmt.Errorf("%w: %g in %s[%d]", ErrNonFinite, v, t.Name, j))
			}
		}
	}
	if n := d.Norm(); lim.MaxNorm > 0 && n > lim.MaxNorm {
		return rej("", fmt.Errorf("%w: L2 norm %.4g is over the cap %g", ErrOutlier, n, lim.MaxNorm))
	}
	return nil
}

// median64 sorts x and returns its median (mean of the middle two for an
// even count).
func median64(x []float64) float64 {
	sort.Float64s(x)
	n := len(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return x[n/2-1]/2 + x[n/2]/2
}
