//go:build linux

package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/testnet"
)

// wan is the link of the wide-area scenarios: 20 ms ± 5 ms each way
// (40 ms round trips), 1% loss.
var wan = Link{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, Loss: 0.01}

// strataNet is a net whose nodes run the strata binary.
type strataNet struct {
	t     *testing.T
	n     *Net
	bin   string
	dir   string
	ids   []string // peer id of node i
	procs []*Proc
	logs  []string
}

// newStrataNet builds the strata binary and makes a net of nodes
// namespaces, each with a repo and identity.
func newStrataNet(t *testing.T, o Options) *strataNet {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping: builds and runs strata node processes in network namespaces; skipped with -short")
	}
	n := newNet(t, o)
	dir := t.TempDir()
	bin := filepath.Join(dir, "strata")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/strata-mesh/strata/cmd/strata").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	s := &strataNet{t: t, n: n, bin: bin, dir: dir, procs: make([]*Proc, o.Nodes), logs: make([]string, o.Nodes)}
	for i := range o.Nodes {
		id, err := testnet.PeerID(s.repo(i))
		if err != nil {
			t.Fatal(err)
		}
		s.ids = append(s.ids, id)
	}
	// STRATA_NETNS_KEEP_LOGS=DIR keeps the nodes' logs of a failed test
	// in DIR. Registered after newNet's clean-up, so it runs first: the logs of
	// a failed test are shown while the nodes still run.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if keep := os.Getenv("STRATA_NETNS_KEEP_LOGS"); keep != "" {
			for i, log := range s.logs {
				if data, err := os.ReadFile(log); err == nil {
					os.WriteFile(filepath.Join(keep, fmt.Sprintf("%s.node%d.log", strings.ReplaceAll(t.Name(), "/", "_"), i)), data, 0o644)
				}
			}
		}
		for i, log := range s.logs {
			if data, err := os.ReadFile(log); err == nil {
				t.Logf("node %d (%s) log, last lines:\n%s", i, s.ids[i], tail(string(data), 40))
			}
		}
	})
	t.Logf("%d namespaces, backend %s, links %+v", o.Nodes, n.Backend(), o.Link)
	return s
}

func (s *strataNet) repo(i int) string { return filepath.Join(s.dir, fmt.Sprintf("node%d", i)) }

// listen and addr are node i's libp2p addresses.
func (s *strataNet) listen(i int) string { return fmt.Sprintf("/ip4/%s/tcp/4001", s.n.IP(i)) }
func (s *strataNet) addr(i int) string   { return s.listen(i) + "/p2p/" + s.ids[i] }

// start starts `strata node` in node i with its repo and address; nodes
// after the first bootstrap from node 0.
func (s *strataNet) start(i int, args ...string) {
	s.t.Helper()
	s.logs[i] = filepath.Join(s.dir, fmt.Sprintf("node%d.log", i))
	args = append([]string{"node", "--repo", s.repo(i), "--listen", s.listen(i), "--no-mdns"}, args...)
	if i > 0 {
		args = append(args, "--bootstrap", s.addr(0))
	}
	p, err := s.n.Start(i, s.logs[i], s.bin, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.procs[i] = p
}

// strata runs a strata command in node i's namespace.
func (s *strataNet) strata(ctx context.Context, i int, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := s.n.Command(ctx, i, s.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// rounds asks node i, from its own namespace, for its run's history.
func (s *strataNet) rounds(ctx context.Context, i int) (node.RunInfo, error) {
	var info node.RunInfo
	out, stderr, err := s.strata(ctx, i, "rounds", "--peer", s.addr(i), "--json")
	if err != nil {
		return info, fmt.Errorf("strata rounds on node %d: %w: %s", i, err, strings.TrimSpace(stderr))
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return info, fmt.Errorf("strata rounds --json on node %d: %w", i, err)
	}
	return info, nil
}

// waitFor polls cond every second until it holds, failing the test when
// ctx ends or a node exits first.
func (s *strataNet) waitFor(ctx context.Context, what string, cond func() bool) {
	s.t.Helper()
	for !cond() {
		for i, p := range s.procs {
			if p == nil {
				continue
			}
			select {
			case <-p.Done():
				s.t.Fatalf("waiting for %s: node %d exited: %v", what, i, p.Err())
			default:
			}
		}
		select {
		case <-ctx.Done():
			s.t.Fatalf("gave up waiting for %s: %v", what, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// stop stops every node and checks that each exits cleanly.
func (s *strataNet) stop() {
	s.t.Helper()
	for i, p := range s.procs {
		if p == nil {
			continue
		}
		if err := p.Stop(15 * time.Second); err != nil {
			s.t.Errorf("node %d did not exit cleanly on SIGTERM: %v", i, err)
		}
	}
}

// achievedRE matches what strata generate prints on stderr at the end.
var achievedRE = regexp.MustCompile(`achieved tok/s: (\S+) \((\d+) forward passes through (.*)\)`)

// TestWANServe serves stories260K from three nodes in their own
// namespaces, blocks 0:2, 2:4 and 4:5, over links of 20 ms ± 5 ms each way
// with 1% loss; a client in a fourth namespace runs strata generate
// through node 0 and must print REFERENCE.md Case 2. It logs tokens/s and
// the latency each network hop adds.
func TestWANServe(t *testing.T) {
	ref := reftest.Read(t)
	ckpt, tok := reftest.Checkpoint(t), reftest.Tokenizer(t)
	s := newStrataNet(t, Options{Nodes: 4, Link: wan, Backend: Auto, Seed: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const client = 3
	spans := []string{"0:2", "2:4", "4:5"}
	var model string
	for i := range spans {
		cmd := exec.CommandContext(ctx, s.bin, "import", "--repo", s.repo(i), "--tokenizer", tok, ckpt)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("strata import: %v", err)
		}
		model = strings.TrimSpace(string(out))
	}
	for i, span := range spans {
		s.start(i, "--model", model, "--blocks", span)
	}
	start := time.Now()
	s.waitFor(ctx, "a generate request through the chain", func() bool {
		_, _, err := s.strata(ctx, client, "generate", "--peer", s.addr(0), "-n", "1", "-t", "0")
		return err == nil
	})
	t.Logf("three nodes serve the whole model %v after starting", time.Since(start).Round(time.Millisecond))

	// The round-trip time of the links, as TCP between two namespaces.
	if lines, err := tool(t, s.n, 0, "ping", serve(t, s.n, 1), "20"); err == nil && len(lines) == 20 {
		var rtts []int
		for _, l := range lines {
			us, _ := strconv.Atoi(l)
			rtts = append(rtts, us)
		}
		slices.Sort(rtts)
		t.Logf("TCP round trip node 0 to node 1: min %.1f ms, median %.1f ms, max %.1f ms", float64(rtts[0])/1e3,
			float64(rtts[10])/1e3, float64(rtts[19])/1e3)
	}

	started := time.Now()
	stdout, stderr, err := s.strata(ctx, client, "generate", "--peer", s.addr(0), "-n", "200", "--temperature", "0")
	took := time.Since(started)
	if err != nil {
		t.Fatalf("generate: %v\n%s", err, stderr)
	}
	if stdout != ref.Case2Text {
		t.Errorf("stdout over the WAN\n%s\nwant REFERENCE.md Case 2\n%s", stdout, ref.Case2Text)
	}
	m := achievedRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no tok/s line in generate's stderr: %q", stderr)
	}
	tokps, _ := strconv.ParseFloat(m[1], 64)
	// The entry, node 0, holds the first blocks: a token crosses the net
	// from it to node 1, node 1 to node 2 and node 2 back to it.
	const crossings = 3
	perToken := time.Duration(float64(time.Second) / tokps)
	t.Logf("generate -n 200 -t 0 through %s: %.2f tok/s (%v per token), %v in all; %v per network hop (one-way link delay %v ± %v, loss %.0f%%)",
		m[3], tokps, perToken.Round(100*time.Microsecond), took.Round(time.Millisecond),
		(perToken / crossings).Round(100*time.Microsecond), wan.Delay, wan.Jitter, 100*wan.Loss)
	if st := s.n.Stats(); st != nil {
		t.Logf("packets per node (delivered/lost): %s", statsLine(st))
	}
	s.stop()
}

func statsLine(st []Stats) string {
	var parts []string
	for i, s := range st {
		parts = append(parts, fmt.Sprintf("%d: %d/%d", i, s.Sent, s.Lost))
	}
	return strings.Join(parts, ", ")
}

// trainingData gives each node a directory of text: a few files of the
// Go source tree, different for each node.
func trainingData(t *testing.T, nodes int) []string {
	t.Helper()
	src, err := testnet.GoSource(context.Background())
	if err != nil {
		t.Skipf("skipping: no training text: %v", err)
	}
	files, err := filepath.Glob(filepath.Join(src, "strings", "*.go"))
	if err != nil || len(files) < nodes*2 {
		t.Skipf("skipping: too few files in %s/strings for training text", src)
	}
	var dirs []string
	for i := range nodes {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("data%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k := i; k < len(files) && k < 6*nodes; k += nodes {
			data, err := os.ReadFile(files[k])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, filepath.Base(files[k])+".txt"), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs = append(dirs, dir)
	}
	return dirs
}

// startRun starts every node of s as a participant of one run with the
// given run flags, node 0 first.
func (s *strataNet) startRun(ctx context.Context, rounds int, roundSeconds int, extra ...string) {
	s.t.Helper()
	data := trainingData(s.t, len(s.ids))
	flags := []string{"--roster", strings.Join(s.ids, ","), "--preset", "tiny", "--rounds", strconv.Itoa(rounds),
		"--local-steps", "3", "--run-batch", "2", "--run-seq-len", "64", "--round-seconds", strconv.Itoa(roundSeconds),
		"--run-name", "netns"}
	flags = append(flags, extra...)
	for i := range s.ids {
		s.start(i, append([]string{"--train", data[i]}, flags...)...)
		if i == 0 {
			s.waitFor(ctx, "node 0 to join the run", func() bool { _, err := s.rounds(ctx, 0); return err == nil })
		}
	}
}

// histories asks every node in nodes for its history; a node that does
// not answer gives nil.
func (s *strataNet) histories(ctx context.Context, nodes []int) map[int][]node.RoundRecord {
	out := map[int][]node.RoundRecord{}
	for _, i := range nodes {
		if info, err := s.rounds(ctx, i); err == nil {
			out[i] = info.History
		}
	}
	return out
}

// certified is the number of rounds in h that committed a model (not
// skipped).
func certified(h []node.RoundRecord) int {
	k := 0
	for _, r := range h {
		if !r.Skipped {
			k++
		}
	}
	return k
}

func sameRound(a, b node.RoundRecord) bool {
	return a.Round == b.Round && a.Model == b.Model && a.Skipped == b.Skipped && slices.Equal(a.Peers, b.Peers)
}

// agree reports whether every node in nodes has a history of at least
// least rounds and all agree on the rounds they all have (a run that goes
// on commits while the nodes are asked one after the other).
func agree(hs map[int][]node.RoundRecord, nodes []int, least int) bool {
	common := -1
	for _, i := range nodes {
		h, ok := hs[i]
		if !ok || len(h) < least {
			return false
		}
		if common < 0 || len(h) < common {
			common = len(h)
		}
	}
	want := hs[nodes[0]][:common]
	for _, i := range nodes[1:] {
		if !slices.EqualFunc(hs[i][:common], want, sameRound) {
			return false
		}
	}
	return true
}

func logHistory(t *testing.T, h []node.RoundRecord, ids []string) {
	t.Helper()
	for _, r := range h {
		var who []string
		for _, p := range r.Peers {
			who = append(who, strconv.Itoa(slices.Index(ids, p)))
		}
		t.Logf("round %d: skipped %-5v nodes [%s] votes %d loss %.4f model %s", r.Round, r.Skipped, strings.Join(who, " "),
			r.Votes, r.Loss, r.Model)
	}
}

// logHistories logs the last histories read from nodes, for a test
// that failed waiting for them to agree.
func logHistories(t *testing.T, hs map[int][]node.RoundRecord, nodes []int, ids []string) {
	t.Helper()
	for _, i := range nodes {
		h, ok := hs[i]
		if !ok {
			t.Logf("node %d: no history (its rounds query failed)", i)
			continue
		}
		t.Logf("node %d: history of %d rounds", i, len(h))
		logHistory(t, h, ids)
	}
}

func all(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// TestWANTrain runs a federated run of three nodes over the links of
// TestWANServe; they must commit three rounds with identical histories.
func TestWANTrain(t *testing.T) {
	s := newStrataNet(t, Options{Nodes: 3, Link: wan, Backend: Auto, Seed: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const rounds = 3
	start := time.Now()
	s.startRun(ctx, rounds, 20)
	var hs map[int][]node.RoundRecord
	defer func() {
		if t.Failed() {
			logHistories(t, hs, all(3), s.ids)
		}
	}()
	s.waitFor(ctx, "three rounds on every node", func() bool {
		hs = s.histories(ctx, all(3))
		return agree(hs, all(3), rounds)
	})
	t.Logf("three nodes agree on %d rounds %v after starting", rounds, time.Since(start).Round(time.Millisecond))
	logHistory(t, hs[0], s.ids)
	if k := certified(hs[0]); k != rounds {
		t.Errorf("%d of %d rounds committed a model; want all", k, rounds)
	}
	if st := s.n.Stats(); st != nil {
		t.Logf("packets per node (delivered/lost): %s", statsLine(st))
	}
	s.stop()
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

// TestPartitionRun runs a federated run of five nodes and, after round
// 2, cuts the net in two for about two rounds' time, then heals it. The
// side too small for a quorum of the roster (more than two thirds) must
// commit nothing while cut, a side that holds a quorum must go on, and
// after healing all five must report the same history, with a round
// committed after the cut.
//
// With the Byzantine quorum (4 of 5) and the cut {0,1,2} | {3,4}, neither
// side holds a quorum, so the whole run waits for the heal; {0,1,2,3} | {4}
// leaves a quorum on one side. With a majority quorum (3 of 5) the side of
// three goes on.
func TestPartitionRun(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sides    [2][]int
		majority bool
	}{
		{"3|2", [2][]int{{0, 1, 2}, {3, 4}}, false},
		{"4|1", [2][]int{{0, 1, 2, 3}, {4}}, false},
		{"3|2-majority", [2][]int{{0, 1, 2}, {3, 4}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.majority && os.Getenv("STRATA_NETNS_SCENARIOS") == "" {
				t.Skip("skipping: a minute or two each; set STRATA_NETNS_SCENARIOS=1 to run the cuts with the Byzantine quorum too")
			}
			partitionRun(t, tc.sides, tc.majority)
		})
	}
}

func partitionRun(t *testing.T, sides [2][]int, majority bool) {
	const nodes, roundSeconds = 5, 15
	quorum := 2*nodes/3 + 1
	var extra []string
	if majority {
		quorum, extra = nodes/2+1, []string{"--quorum", "majority"}
	}
	s := newStrataNet(t, Options{Nodes: nodes, Link: Link{Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond},
		Backend: Auto, Seed: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	s.startRun(ctx, 0, roundSeconds, extra...)
	var hs map[int][]node.RoundRecord
	defer func() {
		if t.Failed() {
			logHistories(t, hs, all(nodes), s.ids)
		}
	}()
	s.waitFor(ctx, "round 2 on every node", func() bool {
		hs = s.histories(ctx, all(nodes))
		return agree(hs, all(nodes), 2)
	})
	t.Logf("five nodes agree on round 2 %v after starting", time.Since(start).Round(time.Millisecond))

	if err := s.n.Partition(sides[0], sides[1]); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	// A round whose votes all crossed before the cut may still complete
	// on either side; what is in flight settles first.
	settle := roundSeconds * time.Second / 3
	time.Sleep(settle)
	before := s.histories(ctx, all(nodes))
	cut := 2 * roundSeconds * time.Second
	for time.Since(cutAt) < cut {
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
	during := s.histories(ctx, all(nodes))
	for k, side := range sides {
		for _, i := range side {
			if during[i] == nil || before[i] == nil {
				t.Fatalf("node %d stopped answering rounds queries while cut", i)
			}
			grew := len(during[i]) - len(before[i])
			t.Logf("side %d %v, node %d: %d rounds %v after the cut, %d at %v (%d more)", k, side, i,
				len(before[i]), settle, len(during[i]), cut, grew)
			switch {
			case len(side) < quorum && grew != 0:
				t.Errorf("node %d, on a side of %d with no quorum (%d of %d), went from %d to %d rounds while cut",
					i, len(side), quorum, nodes, len(before[i]), len(during[i]))
			case len(side) >= quorum && certified(during[i]) <= certified(before[i]):
				t.Errorf("node %d, on a side of %d holding a quorum, committed nothing in %v while cut", i, len(side), cut)
			}
		}
	}

	if err := s.n.Heal(); err != nil {
		t.Fatal(err)
	}
	healedAt := time.Now()
	least := 0
	for _, h := range during {
		least = max(least, len(h)+1)
	}
	s.waitFor(ctx, fmt.Sprintf("all five nodes to agree on %d rounds after healing", least), func() bool {
		hs = s.histories(ctx, all(nodes))
		return agree(hs, all(nodes), least)
	})
	t.Logf("healed after a cut of %v; all five agree on %d rounds (more than any had when healed) %v later",
		healedAt.Sub(cutAt).Round(time.Second), least, time.Since(healedAt).Round(time.Millisecond))
	logHistory(t, hs[0][:least], s.ids)
	if st := s.n.Stats(); st != nil {
		var cutPackets int64
		for _, x := range st {
			cutPackets += x.Cut
		}
		t.Logf("packets dropped by the cut: %d", cutPackets)
	}
	s.stop()
}
