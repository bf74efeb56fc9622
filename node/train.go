package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// TrainConfig describes a local training run. The data files never leave
// the node.
type TrainConfig struct {
	Repo string
	// Data lists the text files to train on (one document each).
	Data []string
	// Model is the CID of the model to start from; empty starts a new
	// byte-level model of shape New.
	Model string
	New   model.Config
	// Name names the run: its checkpoint (Repo/train/NAME.ckpt) and the
	// versions it saves.
	Name string
	// Steps is the optimizer-step budget (it also sets the learning-rate
	// schedule); Duration, if set, stops the run earlier.
	Steps    int
	Duration time.Duration
	// SeqLen is the window length, BatchSize the windows per step.
	SeqLen, BatchSize int
	Optimizer         train.Config
	Warmup            int     // warmup steps of the schedule
	MinLR             float32 // the schedule's floor
	Seed              uint64  // data shuffling (and a new model's weights)
	HoldOut           float64 // fraction of the data, from the end, kept for evaluation
	// Part and Parts, with Parts > 1, train on part Part of the data cut
	// into Parts disjoint contiguous ranges, as one of several
	// participants would.
	Part, Parts int
	EvalEvery   int // steps between evaluations (0: only at the end)
	EvalWindows int // windows per intermediate evaluation (0: all)
	SaveEvery   int // steps between checkpoints (0: only at the end)
	Logger      *slog.Logger
	Progress    func(TrainProgress)
}

// TrainProgress is reported after every step.
type TrainProgress struct {
	Step, Steps int
	Loss        float32 // this step's training loss, nats per token
	EvalLoss    float64 // the latest held-out loss, or 0 before the first
	TokPerSec   float64
	Elapsed     time.Duration
	ETA         time.Duration
}

// TrainResult describes a finished run.
type TrainResult struct {
	Model      string  // CID of the new version
	Parent     string  // CID it was trained from, "" for a new model
	Steps      int     // optimizer steps taken in total
	Resumed    int     // the step the run resumed from (0: a fresh run)
	EvalBefore float64 // held-out loss before training (nats per token)
	EvalAfter  float64 // held-out loss after
	EvalTokens int
	TokPerSec  float64
}

// Train runs local training: it starts from cfg.Model (or a new model),
// resumes from the run's checkpoint if there is one, trains until the step
// budget or Duration, evaluates on the held-out tail of the data, and
// saves the result as a new model version whose manifest names its parent.
func Train(ctx context.Context, cfg TrainConfig) (TrainResult, error) {
	var res TrainResult
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" || filepath.Base(cfg.Name) != cfg.Name || cfg.Name[0] == '.' {
		return res, fmt.Errorf("node: training run name %q must be a plain file name", cfg.Name)
	}
	if cfg.Steps <= 0 {
		return res, fmt.Errorf("node: a training budget of %d steps; give at least 1", cfg.Steps)
	}
	if cfg.HoldOut <= 0 || cfg.HoldOut >= 1 {
		return res, fmt.Errorf("node: held-out fraction %g must be in (0, 1)", cfg.HoldOut)
	}
	st, err := shards.Open(cfg.Repo)
	if err != nil {
		return res, err
	}
	m, tok, parent, err := trainStart(st, cfg)
	if err != nil {
		return res, err
	}
	res.Parent = parent.String()
	if !parent.Defined() {
		res.Parent = ""
	}
	trainSet, eval, err := trainData(cfg, tok)
	if err != nil {
		return res, err
	}
	seqLen := min(cfg.SeqLen, m.Config.SeqLen)
	sched := train.Schedule{Base: cfg.Optimizer.LR, Min: cfg.MinLR, Warmup: min(cfg.Warmup, cfg.Steps), Total: cfg.Steps}
	opt, err := train.New(cfg.Optimizer)
	if err != nil {
		return res, err
	}
	batches, err := trainSet.Batches(cfg.Seed, seqLen)
	if err != nil {
		return res, err
	}

	// Resume from the run's checkpoint, if any.
	ckptPath := filepath.Join(cfg.Repo, "train", cfg.Name+".ckpt")
	if data, err := os.ReadFile(ckptPath); err == nil {
		var ck train.Checkpoint
		if err := ck.UnmarshalBinary(data); err != nil {
			return res, fmt.Errorf("node: checkpoint %s: %w", ckptPath, err)
		}
		if ck.SeqLen != seqLen || ck.Seed != cfg.Seed {
			return res, fmt.Errorf("node: checkpoint %s was made with window %d and seed %d, not %d and %d; use another --name",
				ckptPath, ck.SeqLen, ck.Seed, seqLen, cfg.Seed)
		}
		c, err := shards.ParseCID(ck.Model)
		if err != nil {
			return res, fmt.Errorf("node: checkpoint %s: %w", ckptPath, err)
		}
		if m, _, _, err = shards.Load(st, c, 0, m.Config.NLayers, true); err != nil {
			return res, fmt.Errorf("node: checkpoint %s: weights: %w", ckptPath, err)
		}
		if err := opt.UnmarshalBinary(ck.Optimizer); err != nil {
			return res, fmt.Errorf("node: checkpoint %s: %w", ckptPath, err)
		}
		if err := batches.Seek(ck.Position); err != nil {
			return res, fmt.Errorf("node: checkpoint %s: %w", ckptPath, err)
		}
		res.Resumed = int(ck.Step)
		log.Info("node: resuming training", "run", cfg.Name, "step", ck.Step)
	} else if !errors.Is(err, os.ErrNotExist) {
		return res, err
	}

	tr, err := train.NewTrainer(m, opt, sched, batches, cfg.BatchSize, seqLen)
	if err != nil {
		return res, err
	}
	if res.EvalBefore, res.EvalTokens, err = train.Evaluate(m, eval, seqLen, 0); err != nil {
		return res, err
	}
	save := func() error {
		id, _, err := shards.ImportVersion(st, m, tok, fmt.Sprintf("%s@%d", cfg.Name, opt.Steps()), parent)
		if err != nil {
			return err
		}
		if err := st.Pin(id); err != nil {
			return err
		}
		ck, err := tr.Checkpoint(cfg.Seed, seqLen)
		if err != nil {
			return err
		}
		ck.Model = id.String()
		data, err := ck.MarshalBinary()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(ckptPath, data); err != nil {
			return err
		}
		res.Model = id.String()
		return nil
	}

	start := time.Now()
	evalLoss := res.EvalBefore
	tokens := 0
	for step := int(opt.Steps()); step < cfg.Steps; step = int(opt.Steps()) {
		if ctx.Err() != nil || (cfg.Duration > 0 && time.Since(start) >= cfg.Duration) {
			break
		}
		loss, err := tr.Step()
		if err != nil {
			return res, fmt.Errorf("node: training step %d: %w", step, err)
		}
		tokens += cfg.BatchSize * seqLen
		done := int(opt.Steps())
		if cfg.EvalEvery > 0 && done%cfg.EvalEvery == 0 && done < cfg.Steps {
			if evalLoss, _, err = train.Evaluate(m, eval, seqLen, cfg.EvalWindows); err != nil {
				return res, err
			}
			log.Info("node: training", "step", done, "loss", loss, "eval_loss", evalLoss)
		}
		if cfg.SaveEvery > 0 && done%cfg.SaveEvery == 0 && done < cfg.Steps {
			if err := save(); err != nil {
				return res, fmt.Errorf("node: saving checkpoint at step %d: %w", done, err)
			}
		}
		if cfg.Progress != nil {
			el := time.Since(start)
			p := TrainProgress{Step: done, Steps: cfg.Steps, Loss: loss, EvalLoss: evalLoss, Elapsed: el}
			if el > 0 {
				p.TokPerSec = float64(tokens) / el.Seconds()
				p.ETA = time.Duration(float64(el) / float64(done-res.Resumed) * float64(cfg.Steps-done))
			}
			cfg.Progress(p)
		}
	}
	if s := time.Since(start).Seconds(); s > 0 {
		res.TokPerSec = float64(tokens) / s
	}
	res.Steps = int(opt.Steps())
	if res.EvalAfter, _, err = train.Evaluate(m, eval, seqLen, 0); err != nil {
		return res, err
	}
	if err := save(); err != nil {
		return res, fmt.Errorf("node: saving the trained model: %w", err)
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("node: training interrupted at step %d (checkpoint saved; run again to resume): %w", res.Steps, ctx.Err())
	}
	return res, nil
}

// trainStart loads the model to train from the repo, or makes a new one.
func trainStart(st *shards.Store, cfg TrainConfig) (*model.Model, *model.Tokenizer, cid.Cid, error) {
	if cfg.Model == "" {
		c := cfg.New
		c.VocabSize = max(c.VocabSize, train.ByteVocab)
		if err := c.Validate(); err != nil {
			return nil, nil, cid.Undef, err
		}
		return train.Init(c, cfg.Seed), model.ByteTokenizer(c.VocabSize), cid.Undef, nil
	}
	c, err := shards.ParseCID(cfg.Model)
	if err != nil {
		return nil, nil, cid.Undef, fmt.Errorf("node: model %q: %w", cfg.Model, err)
	}
	if !st.Has(c) {
		return nil, nil, cid.Undef, fmt.Errorf("node: model %s is not in repo %s; fetch it first (strata fetch)", c, cfg.Repo)
	}
	man, err := shards.LoadManifest(st, c)
	if err != nil {
		return nil, nil, cid.Undef, err
	}
	m, tok, _, err := shards.Load(st, c, 0, man.Config.NLayers, true)
	if err != nil {
		return nil, nil, cid.Undef, fmt.Errorf("node: model %s: %w", c, err)
	}
	return m, tok, c, nil
}

// trainData reads the data files and splits off the held-out tail.
func trainData(cfg TrainConfig, tok *model.Tokenizer) (*train.Corpus, *train.Corpus, error) {
	if len(cfg.Data) == 0 {
		return nil, nil, errors.New("node: no data files to train on")
	}
	texts, err := readTexts(cfg.Data)
	if err != nil {
		return nil, nil, err
	}
	opt := train.Options{}
	if tok.VocabSize() > train.ByteVocab { // a byte-level model reads bytes
		opt.Tokenizer = tok
	}
	corpus, err := train.NewCorpus(texts, opt)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Parts > 1 {
		if corpus, err = corpus.Split(cfg.Parts, cfg.Part, train.ByRange); err != nil {
			return nil, nil, err
		}
	}
	return corpus.HoldOut(cfg.HoldOut)
}

// writeFileAtomic writes data to path through a synced temporary file, so
// a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// readTexts reads and validates training text files.
func readTexts(files []string) ([][]byte, error) {
	var texts [][]byte
	var total int64
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, err
		}
		if total += fi.Size(); total > train.MaxCorpusBytes {
			return nil, fmt.Errorf("node: data files exceed %d bytes", int64(train.MaxCorpusBytes))
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := train.ValidateText(data); err != nil {
			return nil, fmt.Errorf("node: data file %s: %w", f, err)
		}
		texts = append(texts, data)
	}
	return texts, nil
}
