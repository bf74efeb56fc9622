package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// runMesh is a federated run of in-process nodes on loopback.
type runMesh struct {
	t     *testing.T
	dir   string
	repos []string
	ids   []string
	data  []string
	spec  RunSpec
	nodes []*Node
	log   *slog.Logger // every node's logger, if set
	http  string       // every node's Config.HTTP, if set
}

// newRunMesh prepares n repos holding the same fresh genesis model, their
// identities and a disjoint slice of text each.
func newRunMesh(t *testing.T, n int, mutate func(*RunSpec)) *runMesh {
	t.Helper()
	dir := t.TempDir()
	cfg := model.Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, VocabSize: train.ByteVocab, SeqLen: 64,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	rm := &runMesh{t: t, dir: dir, nodes: make([]*Node, n)}
	var genesis string
	text := strings.Repeat(trainText, 8)
	for i := range n {
		repo := filepath.Join(dir, fmt.Sprintf("n%d", i))
		st, err := shards.Open(repo)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := shards.ImportModel(st, train.Init(cfg, 7), nil, "genesis")
		if err != nil {
			t.Fatal(err)
		}
		if genesis != "" && genesis != c.String() {
			t.Fatal("genesis is not deterministic")
		}
		genesis = c.String()
		key, err := mesh.LoadIdentity(filepath.Join(repo, IdentityFile))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := mesh.IDFromKey(key)
		part := filepath.Join(dir, fmt.Sprintf("part%d.txt", i))
		lo, hi := i*len(text)/n, (i+1)*len(text)/n
		if err := os.WriteFile(part, []byte(text[lo:hi]), 0o644); err != nil {
			t.Fatal(err)
		}
		rm.repos, rm.ids, rm.data = append(rm.repos, repo), append(rm.ids, id), append(rm.data, part)
	}
	spec := DefaultRunSpec()
	spec.Name, spec.Genesis, spec.Roster = "test", genesis, slices.Sorted(slices.Values(rm.ids))
	spec.Steps, spec.Rounds, spec.Batch, spec.SeqLen, spec.LR, spec.RoundSeconds = 3, 3, 2, 32, 3e-3, 30
	if mutate != nil {
		mutate(&spec)
	}
	rm.spec = spec
	return rm
}

// start starts node i, bootstrapping from node 0 unless it is node 0.
func (rm *runMesh) start(i int, tamper func(*train.Delta, []byte) []byte) *Node {
	rm.t.Helper()
	cfg := Config{Repo: rm.repos[i], Listen: []string{"/ip4/127.0.0.1/tcp/0"}, AdvertEvery: 500 * time.Millisecond,
		Run:    &RunConfig{Spec: rm.spec, Data: []string{rm.data[i]}, Seed: uint64(i), tamper: tamper},
		Logger: testLogger(rm.t, fmt.Sprintf("n%d", i)), HTTP: rm.http}
	if rm.log != nil {
		cfg.Logger = rm.log.With("node", i)
	}
	if i > 0 && rm.nodes[0] != nil {
		cfg.Bootstrap = []string{rm.nodes[0].Addrs()[0]}
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		rm.t.Fatal(err)
	}
	rm.nodes[i] = n
	rm.t.Cleanup(func() { n.Close() })
	return n
}

// waitRounds waits until every running node knows round want is certified.
func (rm *runMesh) waitRounds(want uint64, timeout time.Duration) {
	rm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for _, n := range rm.nodes {
			if n == nil {
				continue
			}
			h := n.RunHistory()
			if len(h) == 0 || h[len(h)-1].Round < want {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for i, n := range rm.nodes {
				if n != nil {
					rm.t.Logf("node %d history: %+v", i, n.RunHistory())
				}
			}
			rm.t.Fatalf("round %d not certified on every node within %s", want, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRunFourNodes(t *testing.T) {
	rm := newRunMesh(t, 4, nil)
	for i := range 4 {
		rm.start(i, nil)
	}
	rm.waitRounds(3, 3*time.Minute)
	want := rm.nodes[0].RunHistory()
	for i, n := range rm.nodes[1:] {
		if got := n.RunHistory(); !slices.EqualFunc(got, want, func(a, b RoundRecord) bool {
			return a.Round == b.Round && a.Model == b.Model && a.Skipped == b.Skipped && slices.Equal(a.Peers, b.Peers)
		}) {
			t.Fatalf("node %d history differs:\n%+v\nwant\n%+v", i+1, got, want)
		}
	}
	// A node still starting can miss round 1 on a loaded machine; every
	// round must still commit with a quorum, and every node contribute.
	in := map[string]bool{}
	for _, r := range want {
		t.Logf("round %d: model %s, %d peers, loss %.3f, skipped %v", r.Round, r.Model, len(r.Peers), r.Loss, r.Skipped)
		if r.Skipped || len(r.Peers) < 3 {
			t.Errorf("round %d: skipped %v with %d peers; want a quorum of 3 or more", r.Round, r.Skipped, len(r.Peers))
		}
		for _, p := range r.Peers {
			in[p] = true
		}
	}
	if len(in) != 4 {
		t.Errorf("%d of 4 nodes contributed to some round", len(in))
	}
}

// testLogger logs at info level through t.Log when -v is given.
func testLogger(t *testing.T, name string) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestRunRestart stops one participant after the first round and restarts
// it later from its repo: the run goes on without it, and the restarted
// node catches up to the latest commit and contributes again.
func TestRunRestart(t *testing.T) {
	rm := newRunMesh(t, 4, func(s *RunSpec) { s.Rounds, s.RoundSeconds = 6, 15 })
	for i := range 4 {
		rm.start(i, nil)
	}
	rm.waitRounds(1, 2*time.Minute)
	rm.nodes[3].Close()
	rm.nodes[3] = nil
	rm.waitRounds(3, 2*time.Minute)
	n3 := rm.start(3, nil)
	rm.waitRounds(6, 3*time.Minute)
	hist := rm.nodes[0].RunHistory()
	var back bool
	for _, r := range hist {
		t.Logf("round %d: skipped %v, peers %d", r.Round, r.Skipped, len(r.Peers))
		if r.Round > 3 && slices.Contains(r.Peers, n3.ID()) {
			back = true
		}
	}
	if !back {
		t.Errorf("the restarted node contributed to no round after it came back")
	}
	got := n3.RunHistory()
	for _, r := range got {
		t.Logf("restarted node: round %d: skipped %v, peers %d", r.Round, r.Skipped, len(r.Peers))
	}
	if len(got) != len(hist) {
		t.Fatalf("restarted node knows %d rounds, node 0 knows %d", len(got), len(hist))
	}
	for i := range got {
		if got[i].Round != hist[i].Round || got[i].Model != hist[i].Model || got[i].Skipped != hist[i].Skipped ||
			!slices.Equal(got[i].Peers, hist[i].Peers) {
			t.Errorf("round %d: restarted node has %s, node 0 %s", hist[i].Round, got[i].Model, hist[i].Model)
		}
	}
}

// TestRunByzantine runs a participant that sends its update scaled by 100
// and one that sends NaNs: both are rejected with the sender named, and
// the committed model's held-out loss stays within 10% of an honest run.
func TestRunByzantine(t *testing.T) {
	eval := func(n *Node) float64 {
		t.Helper()
		h := n.RunHistory()
		c, _ := shards.ParseCID(h[len(h)-1].Model)
		m, _, _, err := shards.Load(n.store, c, 0, 2, true)
		if err != nil {
			t.Fatal(err)
		}
		corpus, err := train.NewCorpus([][]byte{[]byte(strings.Repeat(trainText, 2))}, train.Options{})
		if err != nil {
			t.Fatal(err)
		}
		loss, _, err := train.Evaluate(m, corpus, 32, 0)
		if err != nil {
			t.Fatal(err)
		}
		return loss
	}
	honest := newRunMesh(t, 4, nil)
	for i := range 4 {
		honest.start(i, nil)
	}
	honest.waitRounds(3, 2*time.Minute)
	want := eval(honest.nodes[0])

	logs := &lockedBuffer{}
	bad := newRunMesh(t, 4, nil)
	bad.log = slog.New(slog.NewTextHandler(logs, nil))
	bad.start(0, nil)
	bad.start(1, nil)
	bad.start(2, func(d *train.Delta, _ []byte) []byte { return scaledUpdate(t, d, 100) })
	cfgNaN := func(d *train.Delta, _ []byte) []byte { return nanUpdate(t, d) }
	bad.start(3, cfgNaN)
	bad.waitRounds(3, 2*time.Minute)
	got := eval(bad.nodes[0])
	t.Logf("held-out loss: honest run %.4f, with a ×100 and a NaN participant %.4f", want, got)
	if got > want*1.1 {
		t.Errorf("held-out loss %.4f is more than 10%% above the honest run's %.4f", got, want)
	}
	for _, id := range []string{bad.ids[2], bad.ids[3]} {
		if !logs.has("rejected update", id) {
			t.Logf("node 0 log:\n%s", logs.String())
			t.Errorf("no rejection naming %s logged", id)
		}
	}
}

func scaledUpdate(t *testing.T, d *train.Delta, k float32) []byte {
	x := *d
	x.Codec = train.FP16
	x.Tensors = slices.Clone(d.Tensors)
	for i, ts := range x.Tensors {
		v := slices.Clone(ts.Data)
		for j := range v {
			v[j] *= k
		}
		x.Tensors[i].Data = v
	}
	enc, err := train.EncodeDelta(&x)
	if err != nil {
		t.Error(err)
	}
	return enc
}

// nanUpdate encodes d in float32 with its first value replaced by NaN,
// which EncodeDelta itself refuses to write.
func nanUpdate(t *testing.T, d *train.Delta) []byte {
	x := *d
	x.Codec = train.FP32
	x.Tensors = slices.Clone(d.Tensors)
	v := slices.Clone(x.Tensors[0].Data)
	const marker = float32(1234.5)
	v[0] = marker
	x.Tensors[0].Data = v
	enc, err := train.EncodeDelta(&x)
	if err != nil {
		t.Error(err)
	}
	var m, nan [4]byte
	binary.LittleEndian.PutUint32(m[:], math.Float32bits(marker))
	binary.LittleEndian.PutUint32(nan[:], 0x7fc00000)
	i := bytes.Index(enc, m[:])
	if i < 0 {
		t.Fatal("marker not found in the encoding")
	}
	copy(enc[i:], nan[:])
	return enc
}

// lockedBuffer collects log text from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// has reports whether one line holds all of subs.
func (b *lockedBuffer) has(subs ...string) bool {
	for _, line := range strings.Split(b.String(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			return true
		}
	}
	return false
}

// TestRunRollout runs a load against a trainer and against a node that
// follows the run while rounds commit: every request succeeds, and both
// end up serving the last committed version.
func TestRunRollout(t *testing.T) {
	rm := newRunMesh(t, 3, func(s *RunSpec) { s.Rounds = 4 })
	for i := range 3 {
		rm.start(i, nil)
	}
	runID, err := rm.spec.ID()
	if err != nil {
		t.Fatal(err)
	}
	fol, err := Start(context.Background(), Config{Repo: filepath.Join(rm.dir, "follower"), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap: []string{rm.nodes[0].Addrs()[0]}, Follow: runID, AdvertEvery: 500 * time.Millisecond,
		Logger: testLogger(t, "follower")})
	if err != nil {
		t.Fatal(err)
	}
	defer fol.Close()

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	requests, failures := 0, []error{}
	models := map[string]bool{}
	for _, n := range []*Node{rm.nodes[1], fol} {
		wg.Go(func() {
			for ctx.Err() == nil {
				var text strings.Builder
				_, err := n.Generate(ctx, infer.Request{Prompt: "First", Steps: 24, Temperature: 0}, func(tk infer.Token) error {
					text.Write(tk.Piece)
					return nil
				})
				mu.Lock()
				requests++
				if err != nil && ctx.Err() == nil {
					failures = append(failures, err)
				}
				models[n.Model()] = true
				mu.Unlock()
			}
		})
	}
	rm.waitRounds(4, 3*time.Minute)
	final := rm.nodes[0].RunHistory()[3].Model
	deadline := time.Now().Add(time.Minute)
	for (rm.nodes[1].Model() != final || fol.Model() != final) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stop()
	wg.Wait()
	t.Logf("%d requests across the switches, %d failed; versions seen: %d", requests, len(failures), len(models))
	for _, err := range failures {
		t.Errorf("request failed during the roll-out: %v", err)
	}
	if got := rm.nodes[1].Model(); got != final {
		t.Errorf("trainer serves %s, want the last commit %s", got, final)
	}
	if got := fol.Model(); got != final {
		t.Errorf("follower serves %s, want the last commit %s", got, final)
	}
}

// TestRunPartial trains one block per round: each commit changes exactly
// that block's shard, and the head and the other block keep their CIDs.
func TestRunPartial(t *testing.T) {
	rm := newRunMesh(t, 3, func(s *RunSpec) { s.Rounds, s.BlocksPerRound = 3, 1 })
	for i := range 3 {
		rm.start(i, nil)
	}
	rm.waitRounds(3, 2*time.Minute)
	st := rm.nodes[0].store
	man := func(id string) *shards.Manifest {
		c, _ := shards.ParseCID(id)
		m, err := shards.LoadManifest(st, c)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	prev := man(rm.spec.Genesis)
	for _, r := range rm.nodes[0].RunHistory() {
		if r.Skipped {
			t.Fatalf("round %d skipped", r.Round)
		}
		cur := man(r.Model)
		trained := int(r.Round-1) % 2
		for b := range 2 {
			if changed := !cur.Blocks[b].CID.Equals(prev.Blocks[b].CID); changed != (b == trained) {
				t.Errorf("round %d: block %d changed %v, want %v", r.Round, b, changed, b == trained)
			}
		}
		if !cur.Head.CID.Equals(prev.Head.CID) {
			t.Errorf("round %d changed the head", r.Round)
		}
		prev = cur
	}
}
