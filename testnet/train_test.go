package testnet

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/train"
)

// TestFineTuneServes fine-tunes stories260K on a few hundred lines of
// text: the held-out loss on that text falls, the result is a new version
// naming stories260K as its parent, and it generates through a mesh.
func TestFineTuneServes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	o := Options{Nodes: 2, Dir: dir, Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t)}
	base, _, err := Prepare(&o)
	if err != nil {
		t.Fatal(err)
	}
	// A few hundred lines in the model's own register.
	var text strings.Builder
	for i := range 300 {
		text.WriteString([]string{
			"Tom had a red kite. He flew it high in the sky every day.",
			"The kite went up and up, and Tom laughed with his dog Max.",
			"One day the wind was strong and the kite got stuck in a tree.",
			"Max barked and Tom's dad came to help. They got the kite back.",
		}[i%4] + "\n")
	}
	data := filepath.Join(dir, "kite.txt")
	if err := os.WriteFile(data, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := train.DefaultConfig(train.AdamW, 1e-3)
	res, err := node.Train(ctx, node.TrainConfig{
		Repo: Repo(dir, 0), Data: []string{data}, Model: base, Name: "kite",
		Steps: 30, SeqLen: 128, BatchSize: 2, Optimizer: opt, Warmup: 5, MinLR: 1e-4, Seed: 1, HoldOut: 0.1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fine-tuning: held-out loss %.4f → %.4f nats/token; new version %s", res.EvalBefore, res.EvalAfter, res.Model)
	if res.EvalAfter >= res.EvalBefore {
		t.Errorf("held-out loss did not fall: %.4f → %.4f", res.EvalBefore, res.EvalAfter)
	}
	if res.Parent != base {
		t.Errorf("parent %q, want %s", res.Parent, base)
	}
	st, err := shards.Open(Repo(dir, 0))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := shards.ParseCID(res.Model)
	if man, err := shards.LoadManifest(st, c); err != nil || man.Parent.String() != base {
		t.Errorf("manifest of the new version: %v, parent %v", err, man)
	}

	// Serve the new version on two nodes, the second fetching it.
	seed, err := node.Start(ctx, fastNode(Repo(dir, 0), nil, res.Model, "0:3", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer seed.Close()
	other, err := node.Start(ctx, fastNode(t.TempDir(), seed.Addrs()[:1], res.Model, "3:5", 0))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := wait(ctx, "the new version covered", func() bool { return seed.Covered() }); err != nil {
		t.Fatal(err)
	}
	text2, _, st2 := query(t, ctx, other.Addrs()[0], infer.Request{Model: res.Model, Prompt: "Tom had", Steps: 40})
	if !strings.HasPrefix(text2, "Tom had") || len(st2.Chain) != 2 {
		t.Errorf("generation with the new version: %q through %v", text2, st2.Chain)
	}
	t.Logf("the new version says: %q", text2)
}
