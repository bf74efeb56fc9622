package train

import (
	"fmt"

	"github.com/strata-mesh/strata/model"
)

// Trainer runs local training steps: each step averages the gradients of
// BatchSize windows from the data, then applies the optimizer at the
// schedule's rate. It is pure and deterministic: the same model, data,
// seed and settings give bitwise the same weights, whether or not the run
// was interrupted and resumed from a Checkpoint in between.
type Trainer struct {
	Model     *model.Model
	Opt       *Optimizer
	Sched     Schedule
	Data      *Batches
	BatchSize int

	tape   *model.Tape
	grads  *model.Grads
	params []Param
}

// NewTrainer prepares training of every block and the head of m on data
// windows of seqLen tokens.
func NewTrainer(m *model.Model, opt *Optimizer, sched Schedule, data *Batches, batchSize, seqLen int) (*Trainer, error) {
	if batchSize < 1 {
		return nil, fmt.Errorf("%w: batch size %d", ErrConfig, batchSize)
	}
	if seqLen < 1 || seqLen > m.Config.SeqLen {
		return nil, fmt.Errorf("%w: window of %d tokens; the model's context is %d", ErrConfig, seqLen, m.Config.SeqLen)
	}
	if err := sched.Validate(); err != nil {
		return nil, err
	}
	if err := m.CheckTrainable(0, m.Config.NLayers); err != nil {
		return nil, err
	}
	t := &Trainer{Model: m, Opt: opt, Sched: sched, Data: data, BatchSize: batchSize}
	t.tape = m.NewTape(0, m.Config.NLayers, seqLen, true)
	t.grads = model.NewGrads(m, 0, m.Config.NLayers, true)
	t.params = m.Params(t.grads)
	return t, nil
}

// Step takes one optimizer step and returns the mean training loss of its
// windows, in nats per token.
func (t *Trainer) Step() (float32, error) {
	t.grads.Zero()
	var loss float64
	for range t.BatchSize {
		tokens, targets := t.Data.Next()
		loss += float64(t.Model.LossAndGrad(t.tape, tokens, targets, t.grads))
	}
	if t.BatchSize > 1 {
		inv := 1 / float32(t.BatchSize)
		for _, p := range t.params {
			for i := range p.G {
				p.G[i] *= inv
			}
		}
	}
	lr := t.Sched.LR(int(t.Opt.Steps()))
	if _, err := t.Opt.Step(t.params, lr); err != nil {
		return 0, err
	}
	return float32(loss / float64(t.BatchSize)), nil
}

// Checkpoint records the training position; the caller stores the
// weights as a model version and fills in its CID.
func (t *Trainer) Checkpoint(seed uint64, seqLen int) (*Checkpoint, error) {
	state, err := t.Opt.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &Checkpoint{Step: t.Opt.Steps(), SeqLen: seqLen, Seed: seed, Position: t.Data.Position(), Optimizer: state}, nil
}

// Evaluate returns the mean loss, in nats per token, of m on the first
// maxWindows windows of eval taken in order (all of them if maxWindows is
// 0), and the number of tokens it counted.
func Evaluate(m *model.Model, eval *Corpus, seqLen, maxWindows int) (float64, int, error) {
	if eval.Tokens() < 2 {
		return 0, 0, fmt.Errorf("%w: nothing to evaluate on", ErrEmpty)
	}
	if err := m.CheckTrainable(0, m.Config.NLayers); err != nil {
		return 0, 0, err
	}
	seqLen = min(seqLen, eval.Tokens()-1)
	tape := m.NewTape(0, m.Config.NLayers, seqLen, true)
	stream := eval.toks
	tokens, targets := make([]int, seqLen), make([]int, seqLen)
	var sum float64
	counted, windows := 0, 0
	for start := 0; start+1 < len(stream) && (maxWindows == 0 || windows < maxWindows); start += seqLen {
		n := min(seqLen, len(stream)-1-start)
		for i := range n {
			tokens[i], targets[i] = int(stream[start+i]), int(stream[start+i+1])
		}
		sum += float64(m.Loss(tape, tokens[:n], targets[:n])) * float64(n)
		counted += n
		windows++
	}
	return sum / float64(counted), counted, nil
}
