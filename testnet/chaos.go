package testnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/node"
)

// ChaosOptions describe a chaos soak: a serving mesh and a federated
// training run on loopback, random nodes killed with SIGKILL and
// restarted from their repos while clients generate text through the
// serving mesh.
type ChaosOptions struct {
	// Dir holds the repos and logs: Dir/serve/node<i> for the serving
	// nodes, Dir/train/node<i> for the trainers.
	Dir string
	// Duration is how long the chaos lasts (default 1 minute).
	Duration time.Duration
	// Servers serve the model (default 3): the first holds every block,
	// the others split the blocks between them, so every block has two
	// holders. Trainers are the run's roster (default 4, the smallest
	// roster that commits with a member down).
	Servers, Trainers int
	// Seed seeds every random choice of the soak: which node is killed,
	// when, for how long, and which peer a client dials.
	Seed uint64
	// Checkpoint and Tokenizer are the llama2.c files served; without a
	// checkpoint the seeded random model DefaultConfig is served.
	Checkpoint, Tokenizer string
	// Steps is the positions of each greedy generation (default 200).
	Steps int
	// Expected is the text every generation must give: the pieces as
	// they arrive, without run.c's final newline. By default it is the
	// greedy output of the model in this process (Greedy).
	Expected string
	// Data is the directory of text the trainers train on (each its own
	// slice of the files).
	Data string
	// KillEvery is the mean time between kills (default 8 s, jittered by
	// ±50%); a killed node stays down for KillEvery ±50% too.
	KillEvery time.Duration
	// Clients is the number of concurrent generation loops (default 1).
	Clients int
	// Logger receives the soak's events: kills, restarts, commits,
	// failed generations.
	Logger *slog.Logger
}

func (o *ChaosOptions) defaults() error {
	if o.Dir == "" {
		return errors.New("testnet: chaos: no directory for the nodes' repos")
	}
	if o.Data == "" {
		return errors.New("testnet: chaos: no training data directory")
	}
	if o.Duration <= 0 {
		o.Duration = time.Minute
	}
	if o.Servers <= 0 {
		o.Servers = 3
	}
	if o.Trainers <= 0 {
		o.Trainers = 4
	}
	if o.Steps <= 0 {
		o.Steps = 200
	}
	if o.KillEvery <= 0 {
		o.KillEvery = 8 * time.Second
	}
	if o.Clients <= 0 {
		o.Clients = 1
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// ChaosRunOptions are the soak's training run: the tiny preset with
// rounds of a few local steps on small windows, so that on two cores a
// round commits every few seconds, and a short deadline, so a round
// stalled by a kill is skipped soon.
func ChaosRunOptions() RunOptions {
	return RunOptions{Preset: "tiny", LocalSteps: 3, Batch: 2, SeqLen: 64, RoundSeconds: 15, MaxData: 1 << 20}
}

// Greedy returns the text of a greedy generation of steps positions from
// BOS in this process, as the mesh streams it: run.c's loop and printing
// (safe_printf of each decoded piece), without its final newline.
func Greedy(m *model.Model, tok *model.Tokenizer, steps int) string {
	st := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	sampler := model.NewSampler(m.Config.VocabSize, 0, 0, 1)
	var out strings.Builder
	token := model.BOS
	for pos := range min(steps, m.Config.SeqLen) {
		m.Step(st, token, pos, logits)
		next := sampler.Sample(logits)
		if next == model.BOS {
			break
		}
		out.WriteString(model.SafePrint(tok.Decode(token, next)))
		token = next
	}
	return out.String()
}

// chaosSpans gives every block two holders when there are at least two
// servers: server 0 holds all layers, the others split them in order.
func chaosSpans(layers, servers int) [][2]int {
	if servers == 1 {
		return [][2]int{{0, layers}}
	}
	return append([][2]int{{0, layers}}, Split(layers, servers-1)...)
}

// member is one node of the soak, as the chaos loop sees it.
type member struct {
	name    string // "server 1", "trainer 2"
	ps      *Procs
	i       int
	repo    string
	trainer bool
	span    [2]int
	up      bool
	since   time.Time // when it was last (re)started
	back    time.Time // when a downed node is to be restarted
	killed  bool      // its latest process was killed by the soak
}

func (m *member) proc() *Proc { return m.ps.Nodes[m.i] }

// soak is the state shared by the chaos loop and the clients.
type soak struct {
	o        ChaosOptions
	model    string // CID served
	layers   int
	members  []*member
	servers  *Procs
	trainers *Procs

	mu  sync.Mutex // guards members' up, since, back, killed and rep
	rep *ChaosReport
}

// Chaos runs a chaos soak and reports what it saw. It launches the
// serving mesh and the training run, then for o.Duration kills a random
// node with SIGKILL every o.KillEvery or so — only while the nodes that
// have been up for at least o.KillEvery, the victim aside, still hold
// every block and a quorum of the roster — and restarts it from its repo
// some seconds later, while o.Clients loops ask random live serving nodes
// for greedy generations and check each against o.Expected. Afterwards it
// restarts every node still down, compares the trainers' certified
// histories, stops every node with SIGTERM and verifies every repo.
//
// The error is for a soak that could not be run (a mesh that did not
// start); what the soak found is in the report (see ChaosReport.Pass).
func Chaos(ctx context.Context, bin string, o ChaosOptions) (*ChaosReport, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	m, tok, name, err := LoadModel(o.Checkpoint, o.Tokenizer)
	if err != nil {
		return nil, err
	}
	if o.Expected == "" {
		o.Expected = Greedy(m, tok, o.Steps)
	}
	s := &soak{o: o, layers: m.Config.NLayers, rep: &ChaosReport{
		Seed: o.Seed, ModelName: name, Servers: o.Servers, Trainers: o.Trainers, Quorum: consensus.Quorum(o.Trainers),
		Failures: map[string]int{},
	}}
	spans := chaosSpans(s.layers, o.Servers)
	o.Logger.Info("chaos: starting the serving mesh", "nodes", o.Servers, "model", name)
	s.servers, err = Launch(ctx, bin, Options{Nodes: o.Servers, Dir: filepath.Join(o.Dir, "serve"),
		Checkpoint: o.Checkpoint, Tokenizer: o.Tokenizer, Spans: spans, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	defer s.servers.Stop()
	s.model, s.rep.Model = s.servers.Model, s.servers.Model
	ro := ChaosRunOptions()
	ro.Nodes, ro.Dir, ro.Data = o.Trainers, filepath.Join(o.Dir, "train"), o.Data
	o.Logger.Info("chaos: starting the training run", "nodes", o.Trainers)
	s.trainers, err = LaunchRun(ctx, bin, ro)
	if err != nil {
		return nil, err
	}
	defer s.trainers.Stop()
	s.rep.Run = s.trainers.Run

	now := time.Now()
	for i := range s.servers.Nodes {
		s.members = append(s.members, &member{name: fmt.Sprintf("server %d", i), ps: s.servers, i: i,
			repo: Repo(filepath.Join(o.Dir, "serve"), i), span: spans[i], up: true, since: now})
	}
	for i := range s.trainers.Nodes {
		s.members = append(s.members, &member{name: fmt.Sprintf("trainer %d", i), ps: s.trainers, i: i,
			repo: Repo(ro.Dir, i), trainer: true, up: true, since: now})
	}
	if h, ok := s.history(ctx, 0, 10*time.Second); ok {
		s.rep.RoundsBefore = committed(h.History)
	}

	soakCtx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range o.Clients {
		wg.Go(func() { s.client(soakCtx, rand.New(rand.NewPCG(o.Seed, uint64(c)+1))) })
	}
	wg.Go(func() {
		s.trainers.FollowRounds(soakCtx, 2*time.Second, func(r node.RoundRecord) {
			if r.Skipped {
				o.Logger.Info("chaos: round skipped", "round", r.Round)
			} else {
				o.Logger.Info("chaos: round committed", "round", r.Round, "peers", len(r.Peers), "loss", r.Loss)
			}
		})
	})
	s.chaos(soakCtx, rand.New(rand.NewPCG(o.Seed, 0)))
	wg.Wait()
	s.rep.Soaked = time.Since(start)
	if err := ctx.Err(); err != nil {
		return s.rep, err
	}

	// Every node up again, then the checks.
	s.restartAll()
	s.compareHistories(ctx)
	s.servers.Stop()
	s.trainers.Stop()
	s.verifyStores(ctx)
	return s.rep, ctx.Err()
}

// quorum is the number of trainers that must stay healthy.
func (s *soak) quorum() int { return consensus.Quorum(s.o.Trainers) }

// killable reports whether victim may be killed now: the healthy nodes
// without it (up for at least KillEvery) must still hold every block and
// a quorum of the roster. s.mu is held.
func (s *soak) killable(victim *member, now time.Time) bool {
	covered := make([]bool, s.layers)
	trainers := 0
	for _, m := range s.members {
		if m == victim || !m.up || now.Sub(m.since) < s.o.KillEvery {
			continue
		}
		if m.trainer {
			trainers++
			continue
		}
		for b := m.span[0]; b < m.span[1]; b++ {
			covered[b] = true
		}
	}
	if victim.trainer {
		return trainers >= s.quorum()
	}
	return !slices.Contains(covered, false)
}

// jitter returns d ±50%.
func jitter(rng *rand.Rand, d time.Duration) time.Duration {
	return d/2 + time.Duration(rng.Int64N(int64(d)+1))
}

// chaos is the kill loop: it runs until ctx ends. Every random choice
// (the gaps, the victim among the killable nodes, the down times) comes
// from rng; which nodes are killable at a given moment depends on timing,
// so a seed replays the same choices, not always the same kills.
func (s *soak) chaos(ctx context.Context, rng *rand.Rand) {
	log := s.o.Logger
	next := time.Now().Add(jitter(rng, s.o.KillEvery))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		s.mu.Lock()
		for _, m := range s.members {
			switch {
			case !m.up && !now.Before(m.back):
				s.restart(m, now)
			case m.up && !m.killed && exited(m.proc()):
				log.Warn("chaos: node exited without being killed", "node", m.name, "state", m.proc().Cmd.ProcessState, "log", m.proc().Log)
				s.rep.Crashes++
				m.up, m.back = false, now.Add(time.Second)
			}
		}
		if now.Before(next) {
			s.mu.Unlock()
			continue
		}
		next = now.Add(jitter(rng, s.o.KillEvery))
		var cands []*member
		for _, m := range s.members {
			if m.up && s.killable(m, now) {
				cands = append(cands, m)
			}
		}
		if len(cands) == 0 {
			s.mu.Unlock()
			log.Info("chaos: no node can be killed now without uncovering a block or breaking the quorum")
			continue
		}
		m := cands[rng.IntN(len(cands))]
		down := jitter(rng, s.o.KillEvery)
		if err := m.ps.Kill(m.i); err != nil {
			log.Warn("chaos: kill failed", "node", m.name, "err", err)
			s.mu.Unlock()
			continue
		}
		m.up, m.killed, m.back = false, true, now.Add(down)
		s.rep.Kills++
		if m.trainer {
			s.rep.TrainerKills++
		} else {
			s.rep.ServerKills++
		}
		s.mu.Unlock()
		log.Info("chaos: killed (SIGKILL)", "node", m.name, "down", down.Round(100*time.Millisecond))
	}
}

// restart starts m again; s.mu is held.
func (s *soak) restart(m *member, now time.Time) {
	if err := m.ps.Restart(m.i); err != nil {
		s.o.Logger.Warn("chaos: restart failed; trying again in a second", "node", m.name, "err", err)
		m.back = now.Add(time.Second)
		return
	}
	m.up, m.killed, m.since = true, false, now
	s.rep.Restarts++
	s.o.Logger.Info("chaos: restarted from its repo", "node", m.name)
}

// restartAll restarts every node that is down.
func (s *soak) restartAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, m := range s.members {
		if !m.up || exited(m.proc()) {
			s.restart(m, now)
		}
	}
}

func exited(p *Proc) bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}
