package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

// batchConfigs are synthetic shapes that exercise the batched pass:
// grouped-query attention, widths that are not multiples of the kernels'
// eight lanes or four rows, and a short context.
var batchConfigs = []struct {
	name string
	cfg  Config
}{
	{"gqa", Config{Dim: 72, HiddenDim: 100, NLayers: 4, NHeads: 6, NKVHeads: 2, VocabSize: 97, SeqLen: 40, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}},
	{"mha-odd", Config{Dim: 30, HiddenDim: 77, NLayers: 3, NHeads: 3, NKVHeads: 3, VocabSize: 50, SeqLen: 24, NormEps: 1e-5, RopeTheta: 500}},
	{"mqa", Config{Dim: 64, HiddenDim: 160, NLayers: 2, NHeads: 8, NKVHeads: 1, VocabSize: 64, SeqLen: 32, SharedClassifier: true, NormEps: 1e-6, RopeTheta: 10000}},
}

// sameBits fails the test unless got and want are bitwise equal.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s[%d] = %v, want %v (bitwise)", what, i, got[i], want[i])
		}
	}
}

// sameCache fails unless two States hold bitwise the same KV cache.
func sameCache(t *testing.T, what string, got, want *State) {
	t.Helper()
	for i := range got.key {
		sameBits(t, fmt.Sprintf("%s key block %d", what, i), got.key[i], want.key[i])
		sameBits(t, fmt.Sprintf("%s value block %d", what, i), got.val[i], want.val[i])
	}
}

// checkBatchSessions runs nSess sessions that start at staggered times and
// advance together, each round batched in a seeded random order (and
// random subsets), against the same sessions run one step at a time with
// Forward. Activations and caches must match bit for bit.
func checkBatchSessions(t *testing.T, m *Model, lo, hi, nSess, rounds int, seed uint64) {
	t.Helper()
	c := m.Config
	r := rand.New(rand.NewPCG(seed, 99))
	b := m.NewBatch(lo, hi, nSess)
	type session struct {
		batched, alone *State
		pos            int
		tok            int
	}
	sess := make([]*session, nSess)
	for i := range sess {
		sess[i] = &session{batched: m.NewState(lo, hi), alone: m.NewState(lo, hi), pos: -1 - i, tok: r.IntN(c.VocabSize)}
	}
	xs := make([][]float32, 0, nSess)
	states := make([]*State, 0, nSess)
	pos := make([]int, 0, nSess)
	want := make([]float32, c.Dim)
	for round := range rounds {
		xs, states, pos = xs[:0], states[:0], pos[:0]
		var active []*session
		for _, i := range r.Perm(nSess) {
			s := sess[i]
			s.pos++
			// Sessions that have not started, are finished, or sit this
			// round out (a server batches whatever is pending).
			if s.pos < 0 || s.pos >= c.SeqLen || r.IntN(5) == 0 {
				if s.pos >= 0 && s.pos < c.SeqLen {
					s.pos-- // skipped: retry this position next round
				}
				continue
			}
			active = append(active, s)
			x := make([]float32, c.Dim)
			m.Embed((s.tok+s.pos*7)%c.VocabSize, x)
			xs, states, pos = append(xs, x), append(states, s.batched), append(pos, s.pos)
		}
		b.Forward(states, xs, pos)
		for j, s := range active {
			m.Embed((s.tok+s.pos*7)%c.VocabSize, want)
			m.Forward(s.alone, want, s.pos)
			sameBits(t, fmt.Sprintf("round %d step %d (pos %d) of %d", round, j, s.pos, len(active)), xs[j], want)
		}
	}
	for i, s := range sess {
		sameCache(t, fmt.Sprintf("session %d", i), s.batched, s.alone)
	}
}

func TestBatchForwardSynthetic(t *testing.T) {
	for _, bc := range batchConfigs {
		m := Synth(bc.cfg, 7)
		for _, sp := range [][2]int{{0, bc.cfg.NLayers}, {1, bc.cfg.NLayers}, {0, 1}} {
			for _, n := range []int{1, 2, 3, 5, 9} {
				t.Run(fmt.Sprintf("%s/[%d,%d)/n%d", bc.name, sp[0], sp[1], n), func(t *testing.T) {
					checkBatchSessions(t, m, sp[0], sp[1], n, bc.cfg.SeqLen+n, uint64(n))
				})
			}
		}
	}
}

func TestBatchForwardStories(t *testing.T) {
	m, _ := loadStories(t)
	for _, n := range []int{2, 4, 7} {
		t.Run(fmt.Sprintf("n%d", n), func(t *testing.T) {
			checkBatchSessions(t, m, 0, m.Config.NLayers, n, 60, uint64(n))
		})
	}
	t.Run("span", func(t *testing.T) {
		checkBatchSessions(t, m, 2, 4, 5, 40, 3)
	})
}

// TestBatchGreedyStories decodes several greedy sessions from different
// prompts with every step batched, and checks each token sequence against
// the same session decoded alone with Step.
func TestBatchGreedyStories(t *testing.T) {
	m, tok := loadStories(t)
	c := m.Config
	prompts := []string{"Once upon a time", "Lily", "The dog was", "One day, a big", "Tom and Sue"}
	const steps = 80
	logits := make([]float32, c.VocabSize)
	smp := NewSampler(c.VocabSize, 0, 0, 1)
	solo := make([][]int, len(prompts))
	for i, p := range prompts {
		ids := tok.Encode(p, true, false)
		s := m.NewState(0, c.NLayers)
		next := ids[0]
		for pos := range steps {
			m.Step(s, next, pos, logits)
			if pos+1 < len(ids) {
				next = ids[pos+1]
			} else {
				next = smp.Sample(logits)
			}
			solo[i] = append(solo[i], next)
		}
	}
	b := m.NewBatch(0, c.NLayers, len(prompts))
	states := make([]*State, len(prompts))
	xs := make([][]float32, len(prompts))
	pos := make([]int, len(prompts))
	next := make([]int, len(prompts))
	got := make([][]int, len(prompts))
	for i, p := range prompts {
		states[i], xs[i] = m.NewState(0, c.NLayers), make([]float32, c.Dim)
		next[i] = tok.Encode(p, true, false)[0]
	}
	for step := range steps {
		for i := range prompts {
			m.Embed(next[i], xs[i])
			pos[i] = step
		}
		b.Forward(states, xs, pos)
		for i, p := range prompts {
			m.Logits(xs[i], logits)
			ids := tok.Encode(p, true, false)
			if step+1 < len(ids) {
				next[i] = ids[step+1]
			} else {
				next[i] = smp.Sample(logits)
			}
			got[i] = append(got[i], next[i])
		}
	}
	for i := range prompts {
		for j := range got[i] {
			if got[i][j] != solo[i][j] {
				t.Fatalf("prompt %q token %d: batched %d, alone %d", prompts[i], j, got[i][j], solo[i][j])
			}
		}
	}
}

// checkSeq compares ForwardSeq over chunks of positions with Forward run
// position by position.
func checkSeq(t *testing.T, m *Model, lo, hi int, chunks []int) {
	t.Helper()
	c := m.Config
	total := 0
	for _, n := range chunks {
		total += n
	}
	xs := make([]float32, total*c.Dim)
	for p := range total {
		m.Embed((p*13+5)%c.VocabSize, xs[p*c.Dim:(p+1)*c.Dim])
	}
	want := append([]float32(nil), xs...)
	alone := m.NewState(lo, hi)
	for p := range total {
		m.Forward(alone, want[p*c.Dim:(p+1)*c.Dim], p)
	}
	seq := m.NewState(lo, hi)
	b := m.NewBatch(lo, hi, max(1, maxInt(chunks)))
	p := 0
	for _, n := range chunks {
		b.ForwardSeq(seq, xs[p*c.Dim:(p+n)*c.Dim], p)
		p += n
	}
	sameBits(t, "ForwardSeq activations", xs, want)
	sameCache(t, "ForwardSeq", seq, alone)

	// The Model-level helper, in one call.
	for p := range total {
		m.Embed((p*13+5)%c.VocabSize, xs[p*c.Dim:(p+1)*c.Dim])
	}
	seq2 := m.NewState(lo, hi)
	m.ForwardSeq(seq2, xs, 0, total)
	sameBits(t, "Model.ForwardSeq activations", xs, want)
	sameCache(t, "Model.ForwardSeq", seq2, alone)
}

func maxInt(v []int) int {
	m := 0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

func TestForwardSeqSynthetic(t *testing.T) {
	for _, bc := range batchConfigs {
		m := Synth(bc.cfg, 11)
		sl := bc.cfg.SeqLen
		for _, chunks := range [][]int{{sl}, {1, sl - 1}, {5, 0, 3, 1, sl - 9}, {7, 7, 7}} {
			t.Run(fmt.Sprintf("%s/%v", bc.name, chunks), func(t *testing.T) {
				checkSeq(t, m, 1, bc.cfg.NLayers, chunks)
				checkSeq(t, m, 0, bc.cfg.NLayers, chunks)
			})
		}
	}
}

func TestForwardSeqStories(t *testing.T) {
	m, _ := loadStories(t)
	// 150 positions: Model.ForwardSeq splits them into batches of 64.
	checkSeq(t, m, 0, m.Config.NLayers, []int{3, 33, 64, 50})
}

func TestBatchNoAllocs(t *testing.T) {
	cfg := batchConfigs[0].cfg
	m := Synth(cfg, 3)
	const n = 4
	b := m.NewBatch(0, cfg.NLayers, 8)
	states := make([]*State, n)
	xs := make([][]float32, n)
	pos := make([]int, n)
	for j := range n {
		states[j], xs[j], pos[j] = m.NewState(0, cfg.NLayers), make([]float32, cfg.Dim), j+3
		m.Embed(j, xs[j])
	}
	if a := testing.AllocsPerRun(20, func() { b.Forward(states, xs, pos) }); a != 0 {
		t.Errorf("Batch.Forward: %v allocations per call, want 0", a)
	}
	seq := make([]float32, 8*cfg.Dim)
	if a := testing.AllocsPerRun(20, func() { b.ForwardSeq(states[0], seq, 10) }); a != 0 {
		t.Errorf("Batch.ForwardSeq: %v allocations per call, want 0", a)
	}
}

// TestBatchConcurrent runs two Batches on one shared model from two
// goroutines, with a model wide enough that tensor.MatMul uses its worker
// pool (run with -race).
func TestBatchConcurrent(t *testing.T) {
	cfg := Config{Dim: 256, HiddenDim: 688, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: 64, SeqLen: 8, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	m := Synth(cfg, 5)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for g := range 2 {
		wg.Go(func() {
			b := m.NewBatch(0, cfg.NLayers, n)
			states, xs, pos := make([]*State, n), make([][]float32, n), make([]int, n)
			for j := range n {
				states[j], xs[j] = m.NewState(0, cfg.NLayers), make([]float32, cfg.Dim)
				m.Embed(j+g, xs[j])
			}
			b.Forward(states, xs, pos)
			want := make([]float32, cfg.Dim)
			for j := range n {
				m.Embed(j+g, want)
				m.Forward(m.NewState(0, cfg.NLayers), want, 0)
				for i := range want {
					if math.Float32bits(xs[j][i]) != math.Float32bits(want[i]) {
						errs[g] = fmt.Errorf("goroutine %d step %d: x[%d] = %v, want %v", g, j, i, xs[j][i], want[i])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestBatchPanics(t *testing.T) {
	cfg := batchConfigs[0].cfg
	m := Synth(cfg, 3)
	other := Synth(batchConfigs[1].cfg, 3)
	b := m.NewBatch(0, 2, 2)
	s1, s2 := m.NewState(0, 2), m.NewState(0, 2)
	x := func() []float32 { return make([]float32, cfg.Dim) }
	cases := map[string]func(){
		"length mismatch": func() { b.Forward([]*State{s1}, [][]float32{x(), x()}, []int{0}) },
		"too many":        func() { b.Forward([]*State{s1, s2, m.NewState(0, 2)}, [][]float32{x(), x(), x()}, []int{0, 0, 0}) },
		"duplicate state": func() { b.Forward([]*State{s1, s1}, [][]float32{x(), x()}, []int{0, 1}) },
		"wrong span":      func() { b.Forward([]*State{m.NewState(0, 3)}, [][]float32{x()}, []int{0}) },
		"wrong config":    func() { b.Forward([]*State{other.NewState(0, 2)}, [][]float32{x()}, []int{0}) },
		"bad activation":  func() { b.Forward([]*State{s1}, [][]float32{make([]float32, 3)}, []int{0}) },
		"negative pos":    func() { b.Forward([]*State{s1}, [][]float32{x()}, []int{-1}) },
		"pos past seq":    func() { b.Forward([]*State{s1}, [][]float32{x()}, []int{cfg.SeqLen}) },
		"seq not dim":     func() { b.ForwardSeq(s1, make([]float32, cfg.Dim+1), 0) },
		"seq too many":    func() { b.ForwardSeq(s1, make([]float32, 3*cfg.Dim), 0) },
		"seq past end":    func() { b.ForwardSeq(s1, make([]float32, 2*cfg.Dim), cfg.SeqLen-1) },
		"model seq n":     func() { m.ForwardSeq(s1, make([]float32, 2*cfg.Dim), 0, 3) },
		"maxN zero":       func() { m.NewBatch(0, 2, 0) },
		"bad span":        func() { m.NewBatch(2, 2, 1) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		})
	}
	// Empty calls are no-ops.
	b.Forward(nil, nil, nil)
	b.ForwardSeq(s1, nil, 0)
	m.ForwardSeq(s1, nil, 0, 0)
}
