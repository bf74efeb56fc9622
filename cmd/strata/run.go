package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// runFlags are `strata node`'s flags for joining a federated training run.
// Every participant must give the same run flags (all but --train, --part
// and --seed): they make the run's spec, whose CID names the run.
type runFlags struct {
	Train          string   `help:"Join a federated training run, training on the text files under this directory (they never leave this machine)." type:"existingdir" group:"Federated training"`
	Part           string   `help:"Train on the files of part I of N (sorted by path, every N-th), as I/N." default:"0/1" group:"Federated training"`
	Roster         []string `help:"Peer ids of the run's participants (strata id --repo DIR prints one); must include this node." group:"Federated training"`
	RunName        string   `name:"run-name" help:"Name of the run." default:"run" group:"Federated training"`
	Preset         string   `help:"Without --model, the run starts from a new byte-level model of this shape." default:"tiny" enum:"tiny,small" group:"Federated training"`
	InitSeed       uint64   `name:"init-seed" help:"Seed of the new model's weights (the same on every participant)." default:"1" group:"Federated training"`
	Rule           string   `help:"Aggregation rule: fedavg, median, trimmed-mean or centered-clip." default:"trimmed-mean" group:"Federated training"`
	Outer          string   `help:"Outer optimizer: sgd (FedAvg) or nesterov (DiLoCo lr 0.7, momentum 0.9, made for hundreds of local steps per round)." default:"sgd" enum:"sgd,nesterov" group:"Federated training"`
	OuterLR        float32  `name:"outer-lr" help:"Outer learning rate (0: 1 for sgd, 0.7 for nesterov)." group:"Federated training"`
	OuterMomentum  float32  `name:"outer-momentum" help:"Outer momentum for nesterov (0: 0.9)." group:"Federated training"`
	Codec          string   `help:"Update encoding: fp16, or int8 (blockwise, with error feedback)." default:"int8" enum:"fp16,int8" group:"Federated training"`
	LocalSteps     int      `name:"local-steps" help:"Local optimizer steps per round." default:"20" group:"Federated training"`
	Rounds         int      `help:"Rounds in the run (0: no end)." default:"0" group:"Federated training"`
	RunBatch       int      `name:"run-batch" help:"Windows per local step." default:"4" group:"Federated training"`
	RunSeqLen      int      `name:"run-seq-len" help:"Tokens per window." default:"128" group:"Federated training"`
	RunLR          float32  `name:"run-lr" help:"Peak learning rate of local AdamW." default:"0.002" group:"Federated training"`
	BlocksPerRound int      `name:"blocks-per-round" help:"Train only this many blocks per round, moving through the model (0: every block and the head)." default:"0" group:"Federated training"`
	RoundSeconds   int      `name:"round-seconds" help:"A round that has not committed after this long is skipped." default:"180" group:"Federated training"`
	Quorum         string   `help:"Votes that commit a round: bft (more than two thirds; tolerates Byzantine members) or majority (more than half; goes on with up to half the roster crashed or cut off, but trusts every vote)." default:"bft" enum:"bft,majority" group:"Federated training"`
	MaxData        int64    `name:"max-data" help:"Read at most this many bytes of the files under --train (0: up to the corpus limit)." default:"0" group:"Federated training"`
	DataSeed       uint64   `name:"data-seed" help:"Seed of the local data order." default:"1" group:"Federated training"`
}

// config builds the run from the flags; without a model it creates the
// run's genesis model in repo (the same bytes on every participant).
func (f *runFlags) config(repo, modelID string) (*node.RunConfig, error) {
	if len(f.Roster) == 0 {
		return nil, errors.New("--train needs --roster: the peer ids of every participant (strata id --repo DIR)")
	}
	var part, parts int
	if _, err := fmt.Sscanf(f.Part, "%d/%d", &part, &parts); err != nil || parts < 1 || part < 0 || part >= parts {
		return nil, fmt.Errorf("--part %q is not I/N with 0 ≤ I < N", f.Part)
	}
	files, err := textFiles(f.Train, part, parts, f.MaxData)
	if err != nil {
		return nil, err
	}
	if modelID == "" {
		st, err := shards.Open(repo)
		if err != nil {
			return nil, err
		}
		c, _, err := shards.ImportModel(st, train.Init(trainPresets[f.Preset], f.InitSeed), nil, f.RunName+"@0")
		if err != nil {
			return nil, err
		}
		if err := st.Pin(c); err != nil {
			return nil, err
		}
		modelID = c.String()
	}
	spec := node.DefaultRunSpec()
	spec.Name, spec.Genesis = f.RunName, modelID
	spec.Roster = slices.Sorted(slices.Values(f.Roster))
	spec.Rule, spec.Outer, spec.Codec = f.Rule, f.Outer, f.Codec
	spec.OuterLR, spec.OuterMomentum = f.OuterLR, f.OuterMomentum
	spec.Steps, spec.Rounds, spec.Batch, spec.SeqLen, spec.LR = f.LocalSteps, f.Rounds, f.RunBatch, f.RunSeqLen, f.RunLR
	spec.RoundSeconds, spec.BlocksPerRound = f.RoundSeconds, f.BlocksPerRound
	if f.Quorum == node.QuorumMajority {
		spec.Quorum = node.QuorumMajority
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	return &node.RunConfig{Spec: spec, Data: files, Seed: f.DataSeed}, nil
}

// maxFileBytes skips files too large to be training text.
const maxFileBytes = 4 << 20

// textFiles lists the text files under dir (skipping binary files, hidden
// directories and files over 4 MiB), sorted by path, and keeps every
// parts-th one starting at part, up to maxBytes (0: the corpus limit).
func textFiles(dir string, part, parts int, maxBytes int64) ([]string, error) {
	if maxBytes <= 0 || maxBytes > train.MaxCorpusBytes {
		maxBytes = train.MaxCorpusBytes
	}
	var all []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable entries are skipped
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			all = append(all, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(all)
	var out []string
	var total int64
	for i, p := range all {
		if i%parts != part {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Size() == 0 || fi.Size() > maxFileBytes {
			continue
		}
		if total+fi.Size() > maxBytes {
			break
		}
		data, err := os.ReadFile(p)
		if err != nil || train.ValidateText(data) != nil {
			continue
		}
		total += fi.Size()
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no text files under %s for part %d/%d", dir, part, parts)
	}
	return out, nil
}

func printRound(r node.RoundRecord) {
	fmt.Fprintln(os.Stderr, roundLine(r))
}

func roundLine(r node.RoundRecord) string {
	if r.Skipped {
		return fmt.Sprintf("round %4d  skipped                  base %s", r.Round, r.Model)
	}
	return fmt.Sprintf("round %4d  loss %7.4f  peers %2d  model %s", r.Round, r.Loss, len(r.Peers), r.Model)
}

type roundsCmd struct {
	Peer string `help:"Full multiaddr of a peer taking part in the run." required:""`
	JSON bool   `name:"json" help:"Print the run and its history as JSON."`

	swarmKeyFlag `embed:""`
}

func (c *roundsCmd) Run(e *env) error {
	client, err := c.client(quiet())
	if err != nil {
		return err
	}
	info, err := client.Rounds(e.ctx, c.Peer)
	if err != nil {
		return c.hint(err)
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	s := info.Spec
	fmt.Printf("run %s (%s): %d participants, rule %s, outer %s, %s updates, %d local steps per round\n",
		info.ID, s.Name, len(s.Roster), s.Rule, s.Outer, s.Codec, s.Steps)
	fmt.Printf("genesis %s; round %d in progress\n", s.Genesis, info.Round)
	for _, r := range info.History {
		fmt.Println(roundLine(r))
		if !r.Skipped {
			fmt.Printf("            participants %s\n", strings.Join(r.Peers, " "))
		}
	}
	if len(info.Traffic) > 0 {
		var sent, perStep int64
		for _, t := range info.Traffic {
			sent += t.Sent
			perStep += t.PerStep
		}
		k := int64(len(info.Traffic))
		fmt.Printf("this peer sent %.2f MB per round on average over %d rounds; fp32 gradients to the same peers every step would be %.2f MB (%.0f×)\n",
			float64(sent/k)/1e6, k, float64(perStep/k)/1e6, float64(perStep)/float64(max(sent, 1)))
	}
	return nil
}
