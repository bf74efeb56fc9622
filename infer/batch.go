package infer

import (
	"github.com/strata-mesh/strata/model"
)

// maxBatch bounds how many sessions' steps one batched pass carries.
const maxBatch = 64

// batchMinBytes is the size of a block's weights below which batching is
// off: smaller weights stay in the CPU's caches, so sharing their loads
// saves nothing and the hand-off between goroutines only adds latency
// (measured with BenchmarkLoad in package testnet).
const batchMinBytes = 8 << 20

// blockBytes is the size of one block's weight matrices.
func blockBytes(c model.Config) int {
	return 4 * (2*c.Dim*c.Dim + 2*c.KVDim()*c.Dim + 3*c.HiddenDim*c.Dim)
}

// batchKey identifies the sessions that can share a pass: the same
// weights and the same block span.
type batchKey struct {
	m      *model.Model
	lo, hi int
}

// batcher runs the single-position steps of concurrent sessions on one
// span together (continuous batching): whatever steps are waiting when a
// pass starts go into it, so sessions share each load of the weights.
// Results are bitwise those of running each step alone.
type batcher struct {
	key  batchKey
	jobs chan *job
	refs int // sessions using it; guarded by Service.mu
}

// job is one session's step. A session reuses its job for every step.
type job struct {
	st   *model.State
	x    []float32
	pos  int
	done chan struct{}
}

// run serves jobs until the channel closes.
func (b *batcher) run() {
	batch := b.key.m.NewBatch(b.key.lo, b.key.hi, maxBatch)
	states := make([]*model.State, 0, maxBatch)
	xs := make([][]float32, 0, maxBatch)
	pos := make([]int, 0, maxBatch)
	jobs := make([]*job, 0, maxBatch)
	for j := range b.jobs {
		jobs = append(jobs[:0], j)
	drain:
		for len(jobs) < maxBatch {
			select {
			case j, ok := <-b.jobs:
				if !ok {
					break drain
				}
				jobs = append(jobs, j)
			default:
				break drain
			}
		}
		states, xs, pos = states[:0], xs[:0], pos[:0]
		for _, j := range jobs {
			states, xs, pos = append(states, j.st), append(xs, j.x), append(pos, j.pos)
		}
		batch.Forward(states, xs, pos)
		for _, j := range jobs {
			j.done <- struct{}{}
		}
	}
}

// stepper runs a session's forward passes, batched with other sessions
// on the same span unless batching is off.
type stepper struct {
	s  *Service
	m  *model.Model
	st *model.State
	b  *batcher
	j  job
}

func (s *Service) newStepper(m *model.Model, st *model.State) *stepper {
	sp := &stepper{s: s, m: m, st: st}
	if s.cfg.NoBatch || (blockBytes(m.Config) < batchMinBytes && !s.cfg.ForceBatch) {
		return sp
	}
	key := batchKey{m, st.Lo(), st.Hi()}
	s.mu.Lock()
	b := s.batchers[key]
	if b == nil {
		b = &batcher{key: key, jobs: make(chan *job, maxBatch)}
		s.batchers[key] = b
		go b.run()
	}
	b.refs++
	s.mu.Unlock()
	sp.b, sp.j = b, job{st: st, done: make(chan struct{}, 1)}
	return sp
}

// forward runs n consecutive positions from pos on xs (n·dim values) in
// place. A single position goes through the batcher.
func (sp *stepper) forward(xs []float32, pos, n int) {
	dim := sp.m.Config.Dim
	if n == 1 && sp.b != nil {
		sp.j.x, sp.j.pos = xs[:dim], pos
		sp.b.jobs <- &sp.j
		<-sp.j.done
		return
	}
	sp.m.ForwardSeq(sp.st, xs, pos, n)
}

// close releases the batcher; the last session on a span stops it.
func (sp *stepper) close() {
	if sp.b == nil {
		return
	}
	s := sp.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sp.b.refs--; sp.b.refs == 0 {
		delete(s.batchers, sp.b.key)
		close(sp.b.jobs)
	}
	sp.b = nil
}
