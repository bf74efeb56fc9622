package main

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/term"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/train"
)

// trainPresets are shapes for new byte-level models.
var trainPresets = map[string]model.Config{
	"tiny":  {Dim: 128, HiddenDim: 384, NLayers: 4, NHeads: 8, NKVHeads: 8, VocabSize: train.ByteVocab, SeqLen: 256, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000},
	"small": {Dim: 256, HiddenDim: 768, NLayers: 6, NHeads: 8, NKVHeads: 8, VocabSize: train.ByteVocab, SeqLen: 256, SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000},
}

type trainCmd struct {
	Repo        string        `help:"Repo dir: the start model, checkpoints and the result live here." required:"" type:"path"`
	Data        []string      `help:"Text files to train on; they never leave this machine." required:"" type:"existingfile"`
	Model       string        `help:"CID of the model to start from (default: a new byte-level model of --preset)."`
	Preset      string        `help:"Shape of a new model: tiny or small." default:"tiny" enum:"tiny,small"`
	Name        string        `help:"Run name: its checkpoint and saved versions are named after it; running again resumes it." default:"run"`
	Steps       int           `help:"Optimizer steps (the schedule's budget)." default:"1000"`
	Time        time.Duration `help:"Stop after this long even if steps remain (the checkpoint is saved; run again to continue)."`
	SeqLen      int           `name:"seq-len" help:"Tokens per window." default:"256"`
	Batch       int           `help:"Windows per step." default:"4"`
	Optimizer   string        `help:"sgd, momentum, nesterov, adagrad, rmsprop, adam or adamw." default:"adamw"`
	LR          float32       `name:"lr" help:"Peak learning rate." default:"0.003"`
	MinLR       float32       `name:"min-lr" help:"Learning rate at the end of the cosine decay." default:"0.0003"`
	Warmup      int           `help:"Warmup steps." default:"50"`
	WeightDecay float32       `name:"weight-decay" help:"Decoupled weight decay (adamw, sgd)." default:"0.01"`
	Clip        float32       `help:"Clip gradients to this global norm (0: off)." default:"1.0"`
	Seed        uint64        `help:"Seed for the data order and a new model's weights." default:"1"`
	HoldOut     float64       `name:"holdout" help:"Fraction of the data, from its end, held out for evaluation." default:"0.1"`
	Part        string        `help:"Train on part I of the data cut into N disjoint ranges, as I/N (e.g. 0/3)." default:"0/1"`
	EvalEvery   int           `name:"eval-every" help:"Steps between held-out evaluations." default:"200"`
	SaveEvery   int           `name:"save-every" help:"Steps between checkpoints." default:"100"`
}

func (c *trainCmd) Run(e *env) error {
	opt := train.DefaultConfig(train.Kind(c.Optimizer), c.LR)
	switch opt.Kind {
	case train.AdamW, train.SGD:
		opt.WeightDecay = c.WeightDecay
	}
	opt.ClipNorm = c.Clip
	if err := opt.Validate(); err != nil {
		return err
	}
	var part, parts int
	if _, err := fmt.Sscanf(c.Part, "%d/%d", &part, &parts); err != nil || parts < 1 || part < 0 || part >= parts {
		return fmt.Errorf("--part %q is not I/N with 0 ≤ I < N", c.Part)
	}
	tty := term.IsTerminal(int(os.Stderr.Fd()))
	var last time.Time
	res, err := node.Train(e.ctx, node.TrainConfig{
		Repo: c.Repo, Data: c.Data, Model: c.Model, New: trainPresets[c.Preset], Name: c.Name,
		Steps: c.Steps, Duration: c.Time, SeqLen: c.SeqLen, BatchSize: c.Batch, Optimizer: opt,
		Warmup: c.Warmup, MinLR: c.MinLR, Seed: c.Seed, HoldOut: c.HoldOut, Part: part, Parts: parts,
		EvalEvery: c.EvalEvery, EvalWindows: 64, SaveEvery: c.SaveEvery, Logger: e.log,
		Progress: func(p node.TrainProgress) {
			if time.Since(last) < time.Second && p.Step < p.Steps {
				return
			}
			last = time.Now()
			line := fmt.Sprintf("step %d/%d  loss %.4f  held-out %.4f  %.0f tok/s  elapsed %s  ETA %s",
				p.Step, p.Steps, p.Loss, p.EvalLoss, p.TokPerSec, p.Elapsed.Round(time.Second), p.ETA.Round(time.Second))
			if tty {
				fmt.Fprintf(os.Stderr, "\r\033[K%s", line)
			} else {
				fmt.Fprintln(os.Stderr, line)
			}
		},
	})
	if tty {
		fmt.Fprintln(os.Stderr)
	}
	if res.Model != "" {
		fmt.Fprintf(os.Stderr, "held-out loss %.4f → %.4f nats/token over %d tokens; %d steps (resumed at %d), %.0f tok/s\n",
			res.EvalBefore, res.EvalAfter, res.EvalTokens, res.Steps, res.Resumed, res.TokPerSec)
		fmt.Println(res.Model)
	}
	return err
}
