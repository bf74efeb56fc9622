package node

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
		Logger: testLogger(rm.t, fmt.Sprintf("n%d", i))}
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
	for _, r := range want {
		t.Logf("round %d: model %s, %d peers, loss %.3f, skipped %v", r.Round, r.Model, len(r.Peers), r.Loss, r.Skipped)
		if r.Skipped || len(r.Peers) != 4 {
			t.Errorf("round %d: skipped %v with %d peers; want all 4 in", r.Round, r.Skipped, len(r.Peers))
		}
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
