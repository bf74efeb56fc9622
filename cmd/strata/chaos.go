package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/strata-mesh/strata/testnet"
)

type chaosCmd struct {
	Duration  time.Duration `help:"How long to kill and restart nodes." default:"10m"`
	Nodes     int           `help:"Number of node processes: --trainers of them train, the others serve the model (the first holding every block, the rest splitting them). A lone serving node is never killed." default:"7"`
	Trainers  int           `help:"Nodes on the training run's roster. Trainers are killed only while a quorum (more than 2/3) stays up, so 4 is the smallest roster that sees kills." default:"4"`
	Seed      uint64        `help:"Seed of every random choice: which node is killed, when and for how long, which node a client dials." default:"1"`
	KillEvery time.Duration `name:"kill-every" help:"Mean time between kills (±50%); a killed node stays down as long." default:"8s"`
	Clients   int           `help:"Concurrent generation loops." default:"1"`
	Steps     int           `short:"n" help:"Positions of each greedy generation (REFERENCE.md Case 2 is 200)." default:"200"`
	Model     string        `help:"llama2.c checkpoint to serve (default: a seeded random-weight model)." type:"existingfile"`
	Tokenizer string        `help:"llama2.c tokenizer for --model." type:"existingfile"`
	Reference string        `help:"REFERENCE.md whose Case 2 every generation must print (default: the REFERENCE.md beside --model, if any; without one, the model's greedy output in this process)." type:"existingfile"`
	Data      string        `help:"Directory of text files to train on (default: the Go distribution's source tree, GOROOT/src)." type:"existingdir"`
	Dir       string        `help:"Directory for the nodes' repos and logs (default: a temporary directory, removed when the soak passes)." type:"path"`
}

func (c *chaosCmd) Run(e *env) error {
	if c.Trainers < 1 || c.Nodes-c.Trainers < 1 {
		return fmt.Errorf("--nodes %d with --trainers %d leaves no serving node or no trainer", c.Nodes, c.Trainers)
	}
	if c.Tokenizer != "" && c.Model == "" {
		return errors.New("--tokenizer goes with --model")
	}
	m, tok, name, err := testnet.LoadModel(c.Model, c.Tokenizer)
	if err != nil {
		return err
	}
	want := testnet.Greedy(m, tok, c.Steps)
	expected := fmt.Sprintf("the greedy output of %s in this process", name)
	ref := c.Reference
	if ref == "" && c.Model != "" {
		if p := filepath.Join(filepath.Dir(c.Model), "REFERENCE.md"); fileExists(p) {
			ref = p
		}
	}
	if ref != "" {
		text, err := referenceCase2(ref)
		if err != nil {
			return err
		}
		if c.Steps != 200 {
			return fmt.Errorf("%s Case 2 is 200 steps; -n %d cannot be checked against it", ref, c.Steps)
		}
		if text != want {
			return fmt.Errorf("the greedy output of %s in this process differs from %s Case 2 at byte %d: the wrong checkpoint?",
				name, ref, firstDiff(text, want))
		}
		expected = ref + " Case 2"
	}
	data := c.Data
	if data == "" {
		if data, err = testnet.GoSource(e.ctx); err != nil {
			return err
		}
	}
	dir, keep := c.Dir, c.Dir != ""
	if dir == "" {
		if dir, err = os.MkdirTemp("", "strata-chaos-"); err != nil {
			return err
		}
		defer func() {
			if !keep {
				os.RemoveAll(dir)
			}
		}()
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	servers := c.Nodes - c.Trainers
	fmt.Printf("chaos soak of %v, seed %d: %d nodes on loopback in %s, %d serving %s and %d training; every generation must print %s\n",
		c.Duration, c.Seed, c.Nodes, dir, servers, name, c.Trainers, expected)
	rep, err := testnet.Chaos(e.ctx, bin, testnet.ChaosOptions{
		Dir: dir, Duration: c.Duration, Servers: servers, Trainers: c.Trainers, Seed: c.Seed,
		Checkpoint: c.Model, Tokenizer: c.Tokenizer, Steps: c.Steps, Expected: want, Data: data,
		KillEvery: c.KillEvery, Clients: c.Clients, Logger: e.log,
	})
	if rep != nil {
		printChaos(os.Stdout, rep)
	}
	if err != nil {
		keep = true
		return fmt.Errorf("chaos soak: %w (logs kept in %s)", err, dir)
	}
	if !rep.Pass() {
		keep = true
		return fmt.Errorf("chaos soak failed: %d wrong outputs, %d divergent rounds, %d malformed histories, %d corrupt objects, %d trainers unanswered, %d repos unreadable (logs kept in %s)",
			rep.Wrong, rep.Divergent, rep.Malformed, rep.Corrupt, rep.Unanswered, rep.Unverified, dir)
	}
	fmt.Println("PASS: zero wrong outputs, zero divergent or malformed histories, zero corrupt objects")
	return nil
}

// printChaos prints the soak's counts and figures.
func printChaos(w io.Writer, r *testnet.ChaosReport) {
	fmt.Fprintf(w, "\nchaos soak: %v of chaos, seed %d, model %s (%s), run %s\n", r.Soaked.Round(time.Second), r.Seed, r.ModelName, r.Model, r.Run)
	med, worst := medianMax(r.GenTimes)
	fmt.Fprintf(w, "generations  %d ok, %d failed, %d wrong  (%d of the ok ones after a failover; median %v, max %v)\n",
		r.OK, r.Failed, r.Wrong, r.Failover, med.Round(time.Millisecond), worst.Round(time.Millisecond))
	type class struct {
		msg string
		n   int
	}
	var classes []class
	for msg, n := range r.Failures {
		classes = append(classes, class{msg, n})
	}
	slices.SortFunc(classes, func(a, b class) int { return b.n - a.n })
	for _, c := range classes {
		fmt.Fprintf(w, "  failed %3d× %s\n", c.n, c.msg)
	}
	for _, d := range r.Wrongs {
		fmt.Fprintf(w, "  WRONG %s\n", d)
	}
	fmt.Fprintf(w, "kills        %d (%d serving, %d training), %d restarts, %d unexpected exits\n",
		r.Kills, r.ServerKills, r.TrainerKills, r.Restarts, r.Crashes)
	fmt.Fprintf(w, "rounds       %d committed (%d during the soak), %d skipped, last round %d; %d committed with updates from fewer than a quorum (%d of %d)\n",
		r.Rounds, r.Rounds-r.RoundsBefore, r.Skipped, r.LastRound, r.Thin, r.Quorum, r.Trainers)
	lens := make([]string, len(r.Histories))
	for i, n := range r.Histories {
		lens[i] = fmt.Sprint(n)
	}
	fmt.Fprintf(w, "histories    %d trainers (lengths %s), %d unanswered, %d divergent rounds, %d malformed histories\n",
		len(r.Histories), strings.Join(lens, " "), r.Unanswered, r.Divergent, r.Malformed)
	for _, d := range r.Diverged {
		fmt.Fprintf(w, "  DISAGREE %s\n", d)
	}
	fmt.Fprintf(w, "stores       %d repos, %d objects, %d bytes re-hashed, %d unreadable, %d corrupt\n",
		r.Repos, r.Objects, r.Bytes, r.Unverified, r.Corrupt)
	for _, c := range r.CorruptObjects {
		fmt.Fprintf(w, "  CORRUPT %s\n", c)
	}
}

func medianMax(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[len(s)/2], s[len(s)-1]
}

// referenceCase2 reads the stdout of Case 2 from a REFERENCE.md (the
// first ``` block after "Verbatim:" under "## Case 2"), without run.c's
// final newline.
func referenceCase2(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	doc := string(raw)
	_, rest, ok := strings.Cut(doc, "## Case 2")
	if ok {
		_, rest, ok = strings.Cut(rest, "Verbatim:")
	}
	if ok {
		_, rest, ok = strings.Cut(rest, "```\n")
	}
	if ok {
		rest, _, ok = strings.Cut(rest, "```")
	}
	if !ok || !strings.HasSuffix(rest, "\n") {
		return "", fmt.Errorf("%s: no verbatim output of Case 2 (a ``` block after \"Verbatim:\" under \"## Case 2\")", path)
	}
	return strings.TrimSuffix(rest, "\n"), nil
}

func firstDiff(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
