package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/train"
)

const trainText = `First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.
`

func tinyTrain(t *testing.T, repo, data string) TrainConfig {
	t.Helper()
	opt := train.DefaultConfig(train.AdamW, 3e-3)
	opt.ClipNorm = 1
	return TrainConfig{
		Repo: repo, Data: []string{data}, Name: "t",
		New: model.Config{Dim: 32, HiddenDim: 64, NLayers: 2, NHeads: 4, NKVHeads: 2, SeqLen: 64,
			SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000},
		Steps: 12, SeqLen: 32, BatchSize: 2, Optimizer: opt, Warmup: 2, MinLR: 3e-4, Seed: 3,
		HoldOut: 0.2, SaveEvery: 4,
	}
}

// TestTrainResume interrupts a run and runs it again: it resumes from its
// last checkpoint and ends with bitwise the same weights (the same model
// CID) as a run that was never interrupted.
func TestTrainResume(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data.txt")
	if err := os.WriteFile(data, []byte(strings.Repeat(trainText, 4)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	straight, err := Train(ctx, tinyTrain(t, filepath.Join(dir, "a"), data))
	if err != nil {
		t.Fatal(err)
	}
	if straight.EvalAfter >= straight.EvalBefore {
		t.Errorf("held-out loss did not fall: %.3f → %.3f", straight.EvalBefore, straight.EvalAfter)
	}

	// Interrupt at step 6, keeping the checkpoint written at step 4 as
	// a kill -9 after step 6 would leave it; resume from it.
	repo := filepath.Join(dir, "b")
	ckpt := filepath.Join(repo, "train", "t.ckpt")
	var at4 []byte
	cctx, cancel := context.WithCancel(ctx)
	cfg := tinyTrain(t, repo, data)
	cfg.Progress = func(p TrainProgress) {
		switch p.Step {
		case 5:
			at4, _ = os.ReadFile(ckpt)
		case 6:
			cancel()
		}
	}
	if _, err := Train(cctx, cfg); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: err = %v, want context.Canceled", err)
	}
	if len(at4) == 0 {
		t.Fatal("no checkpoint after step 4")
	}
	// A clean stop saves where it stopped: resuming from step 6 ...
	resumed, err := Train(ctx, tinyTrain(t, repo, data))
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Resumed != 6 || resumed.Model != straight.Model {
		t.Errorf("after a stop at 6: resumed at %d, ends at %s; want 6 and %s", resumed.Resumed, resumed.Model, straight.Model)
	}
	// ... and a kill leaves the step-4 checkpoint: resuming from it too.
	if err := os.WriteFile(ckpt, at4, 0o644); err != nil {
		t.Fatal(err)
	}
	resumed, err = Train(ctx, tinyTrain(t, repo, data))
	if err != nil {
		t.Fatal(err)
	}
	if resumed.Resumed != 4 || resumed.Model != straight.Model {
		t.Errorf("after a kill: resumed at %d, ends at %s; want 4 and %s", resumed.Resumed, resumed.Model, straight.Model)
	}
	if resumed.Parent != "" {
		t.Errorf("a new model's version names parent %q", resumed.Parent)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.txt", []byte(strings.Repeat(trainText, 4)))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(*TrainConfig)
		want error
		text string
	}{
		{"empty file", func(c *TrainConfig) { c.Data = []string{write("empty.txt", nil)} }, train.ErrEmpty, "empty.txt"},
		{"binary file", func(c *TrainConfig) { c.Data = []string{write("bin.dat", []byte{0x7f, 'E', 'L', 'F', 0, 0, 1, 2})} }, train.ErrBinary, "bin.dat"},
		{"missing model", func(c *TrainConfig) { c.Model = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy" }, nil, "is not in repo"},
		{"zero budget", func(c *TrainConfig) { c.Steps = 0 }, nil, "budget of 0 steps"},
		{"no data", func(c *TrainConfig) { c.Data = nil }, nil, "no data files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyTrain(t, filepath.Join(dir, tc.name), good)
			tc.edit(&cfg)
			_, err := Train(ctx, cfg)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.want, tc.text)
			}
		})
	}
}
