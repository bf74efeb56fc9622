package testnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/strata-mesh/strata/node"
)

// RunOptions describe a local federated training run: node processes that
// train a new model together, each on its own slice of a directory of
// text.
type RunOptions struct {
	// Nodes is the number of participants (default 4).
	Nodes int
	// Dir holds one repo per node and the nodes' logs.
	Dir string
	// Data is a directory of text files; node i trains on every Nodes-th
	// file starting at the i-th (`strata node --part i/Nodes`), so no two
	// nodes share a file.
	Data string
	// HTTP gives every node an HTTP API on a free loopback port.
	HTTP bool

	// The run, passed to every node as `strata node` flags; zero values
	// leave the node's defaults. Rounds 0 means a run without end.
	Preset       string // shape of the new model: tiny or small
	Rounds       int
	LocalSteps   int // local optimizer steps per round
	Batch        int // windows per local step
	SeqLen       int // bytes per window
	LR           float32
	RoundSeconds int    // a round not committed after this long is skipped
	Quorum       string // bft (the default) or majority
	Rule         string // fedavg, median, trimmed-mean or centered-clip
	Outer        string // sgd or nesterov
	Codec        string // fp16 or int8
	InitSeed     uint64 // seed of the new model's weights
	MaxData      int64  // bytes of text each node reads at most (0: the corpus limit)
}

// DefaultRunOptions are the settings of `strata testnet`: four nodes
// training the tiny preset with rounds short enough to watch (on two
// cores, a round every 10 to 30 seconds).
func DefaultRunOptions() RunOptions {
	return RunOptions{Nodes: 4, HTTP: true, Preset: "tiny", LocalSteps: 10, Batch: 4, SeqLen: 128, RoundSeconds: 90,
		MaxData: 8 << 20}
}

// runArgs are the run flags every participant passes.
func (o *RunOptions) runArgs(roster []string) []string {
	args := []string{"--train", o.Data, "--roster", strings.Join(roster, ","),
		"--rounds", strconv.Itoa(o.Rounds)}
	flag := func(name, v string) {
		if v != "" && v != "0" {
			args = append(args, "--"+name, v)
		}
	}
	flag("preset", o.Preset)
	flag("max-data", strconv.FormatInt(o.MaxData, 10))
	flag("local-steps", strconv.Itoa(o.LocalSteps))
	flag("run-batch", strconv.Itoa(o.Batch))
	flag("run-seq-len", strconv.Itoa(o.SeqLen))
	if o.LR != 0 {
		flag("run-lr", strconv.FormatFloat(float64(o.LR), 'g', -1, 32))
	}
	flag("round-seconds", strconv.Itoa(o.RoundSeconds))
	flag("quorum", o.Quorum)
	flag("rule", o.Rule)
	flag("outer", o.Outer)
	flag("codec", o.Codec)
	flag("init-seed", strconv.FormatUint(o.InitSeed, 10))
	return args
}

// LaunchRun starts a federated training run of o.Nodes `bin node`
// processes on loopback: it creates each node's repo and identity, puts
// every peer id on the roster, starts node 0 and waits until it has
// joined the run, then starts the others bootstrapping from it. Each node
// builds the same seeded genesis model itself. It returns once every node
// answers rounds queries for the same run (Procs.Run), or ctx ends.
func LaunchRun(ctx context.Context, bin string, o RunOptions) (*Procs, error) {
	if o.Nodes <= 0 {
		o.Nodes = 4
	}
	if o.Dir == "" {
		return nil, errors.New("testnet: no directory for the nodes' repos")
	}
	if fi, err := os.Stat(o.Data); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("testnet: training data %q is not a directory", o.Data)
	}
	roster := make([]string, o.Nodes)
	for i := range roster {
		id, err := PeerID(Repo(o.Dir, i))
		if err != nil {
			return nil, err
		}
		roster[i] = id
	}
	ps := &Procs{}
	for i := range o.Nodes {
		args := append(o.runArgs(roster), "--part", fmt.Sprintf("%d/%d", i, o.Nodes))
		if i > 0 {
			args = append(args, "--bootstrap", ps.Nodes[0].Addr)
		}
		p, err := ps.start(bin, o.Dir, i, o.HTTP, args)
		if err != nil {
			ps.Stop()
			return nil, err
		}
		if i == 0 {
			if err := ps.waitRun(ctx, p); err != nil {
				ps.Stop()
				return nil, err
			}
		}
	}
	for _, p := range ps.Nodes[1:] {
		if err := ps.waitRun(ctx, p); err != nil {
			ps.Stop()
			return nil, err
		}
	}
	return ps, nil
}

// waitRun waits until p answers a rounds query, and checks that it is in
// the same run as the nodes before it.
func (ps *Procs) waitRun(ctx context.Context, p *Proc) error {
	var info node.RunInfo
	var last error
	err := wait(ctx, fmt.Sprintf("node %d joining the run", p.Index), func() bool {
		select {
		case <-p.done:
			last = fmt.Errorf("testnet: node %d exited: see %s", p.Index, p.Log)
			return true
		default:
		}
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		info, last = node.QueryRounds(qctx, p.Addr, nil)
		return last == nil
	})
	switch {
	case last != nil && err != nil:
		return fmt.Errorf("%w (last error: %v)", err, last)
	case last != nil:
		return last
	case err != nil:
		return err
	case ps.Run != "" && info.ID != ps.Run:
		return fmt.Errorf("testnet: node %d is in run %s, node 0 in %s: see %s", p.Index, info.ID, ps.Run, p.Log)
	}
	ps.Run, ps.Spec = info.ID, info.Spec
	return nil
}

// FollowRounds asks the run's nodes for its certified history every
// period and calls commit with each round certified since the last call,
// in order (skipped rounds included). It asks node 0, or while node 0
// does not answer the next node that does. It returns when ctx ends.
func (ps *Procs) FollowRounds(ctx context.Context, every time.Duration, commit func(node.RoundRecord)) {
	var seen uint64
	for {
		for _, p := range ps.Nodes {
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			info, err := node.QueryRounds(qctx, p.Addr, nil)
			cancel()
			if err != nil {
				continue
			}
			for _, r := range info.History {
				if r.Round > seen {
					seen = r.Round
					commit(r)
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

// Index returns the index of the node with peer id id, or -1.
func (ps *Procs) Index(id string) int {
	for _, p := range ps.Nodes {
		if p.ID == id {
			return p.Index
		}
	}
	return -1
}

// GoSource returns the source tree of the Go distribution, GOROOT/src, a
// corpus that is on every machine that builds Go: GOROOT is what
// `go env GOROOT` says, or where this binary was built from when `go` is
// not on the PATH.
func GoSource(ctx context.Context) (string, error) {
	var tried []string
	if out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output(); err == nil {
		if root := strings.TrimSpace(string(out)); root != "" {
			tried = append(tried, root)
		}
	}
	// Deprecated because the build's root may be gone at run time; that
	// is checked below.
	if root := runtime.GOROOT(); root != "" {
		tried = append(tried, root)
	}
	for _, root := range tried {
		src := filepath.Join(root, "src")
		if fi, err := os.Stat(src); err == nil && fi.IsDir() {
			return src, nil
		}
	}
	if len(tried) == 0 {
		return "", errors.New("testnet: cannot find the Go distribution (no `go` on the PATH): give a directory of text files with --data")
	}
	return "", fmt.Errorf("testnet: the Go distribution at %s has no src directory: give a directory of text files with --data",
		strings.Join(tried, " or "))
}
