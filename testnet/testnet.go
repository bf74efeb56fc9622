package testnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// DefaultConfig is the shape of the seeded random-weight model a testnet
// uses when no checkpoint is given: small enough to start in a second,
// big enough that the kernels and the network both show in the figures.
var DefaultConfig = model.Config{
	Dim: 256, HiddenDim: 688, NLayers: 6, NHeads: 8, NKVHeads: 4, VocabSize: 512, SeqLen: 256,
	SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000,
}

// DefaultSeed seeds the default model's weights.
const DefaultSeed = 20261129

// Options describe a local mesh.
type Options struct {
	// Nodes is the number of nodes (default 3).
	Nodes int
	// Dir holds one repo per node, Dir/node0, Dir/node1, ...
	Dir string
	// Checkpoint and Tokenizer are llama2.c files to serve; without a
	// checkpoint the nodes serve the seeded random model DefaultConfig.
	Checkpoint, Tokenizer string
	// Spans optionally fixes each node's block span; by default the
	// blocks are split evenly in order.
	Spans [][2]int
	// NoBatch turns off continuous batching on every node; ForceBatch
	// turns it on even for small models.
	NoBatch, ForceBatch bool
	// HTTP gives every launched node an HTTP API on a free loopback port.
	HTTP bool
	// Logger receives the nodes' logs.
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Nodes <= 0 {
		o.Nodes = 3
	}
	if o.Dir == "" {
		return errors.New("testnet: no data dir")
	}
	if o.Spans != nil && len(o.Spans) != o.Nodes {
		return fmt.Errorf("testnet: %d spans for %d nodes", len(o.Spans), o.Nodes)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Split divides layers blocks into n contiguous spans in order, as evenly
// as possible, earlier spans taking the remainder: Split(5, 3) is
// [0,2) [2,4) [4,5). With more nodes than blocks, extra nodes serve the
// whole model.
func Split(layers, n int) [][2]int {
	out := make([][2]int, n)
	if n > layers {
		for i := range out {
			out[i] = [2]int{0, layers}
		}
		return out
	}
	lo := 0
	for i := range n {
		size := layers / n
		if i < layers%n {
			size++
		}
		out[i] = [2]int{lo, lo + size}
		lo += size
	}
	return out
}

// LoadModel reads the model a testnet serves: the given llama2.c files, or
// the seeded random default.
func LoadModel(checkpoint, tokenizer string) (*model.Model, *model.Tokenizer, string, error) {
	if checkpoint == "" {
		return model.Synth(DefaultConfig, DefaultSeed), model.ByteTokenizer(DefaultConfig.VocabSize), "synthetic-default", nil
	}
	f, err := os.Open(checkpoint)
	if err != nil {
		return nil, nil, "", err
	}
	defer f.Close()
	var head [4]byte
	if n, _ := f.ReadAt(head[:], 0); model.IsGGUF(head[:n]) {
		fi, err := f.Stat()
		if err != nil {
			return nil, nil, "", err
		}
		m, tok, err := model.ReadGGUF(f, fi.Size())
		if err == nil && tok == nil {
			err = fmt.Errorf("%s holds no tokenizer", checkpoint)
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("testnet: %w", err)
		}
		return m, tok, filepath.Base(checkpoint), nil
	}
	m, err := model.ReadLlama2C(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, nil, "", fmt.Errorf("testnet: %s: %w", checkpoint, err)
	}
	if tokenizer == "" {
		return nil, nil, "", fmt.Errorf("testnet: checkpoint %s needs its tokenizer (--tokenizer)", checkpoint)
	}
	data, err := os.ReadFile(tokenizer)
	if err != nil {
		return nil, nil, "", err
	}
	tok, err := model.ReadTokenizer(data, m.Config.VocabSize)
	if err != nil {
		return nil, nil, "", fmt.Errorf("testnet: %s: %w", tokenizer, err)
	}
	return m, tok, filepath.Base(checkpoint), nil
}

// Prepare imports the model into every node's repo and returns the model
// CID and the node spans.
func Prepare(o *Options) (string, [][2]int, error) {
	if err := o.defaults(); err != nil {
		return "", nil, err
	}
	m, tok, name, err := LoadModel(o.Checkpoint, o.Tokenizer)
	if err != nil {
		return "", nil, err
	}
	spans := o.Spans
	if spans == nil {
		spans = Split(m.Config.NLayers, o.Nodes)
	}
	var id string
	for i := range o.Nodes {
		st, err := shards.Open(Repo(o.Dir, i))
		if err != nil {
			return "", nil, err
		}
		c, _, err := shards.ImportModel(st, m, tok, name)
		if err != nil {
			return "", nil, err
		}
		id = c.String()
	}
	return id, spans, nil
}

// Repo is the repo dir of node i.
func Repo(dir string, i int) string { return filepath.Join(dir, fmt.Sprintf("node%d", i)) }

// Blocks formats a span for --blocks.
func Blocks(s [2]int) string { return fmt.Sprintf("%d:%d", s[0], s[1]) }

// wait polls ready until it reports true or ctx ends.
func wait(ctx context.Context, what string, ready func() bool) error {
	for !ready() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("testnet: %s: %w", what, ctx.Err())
		case <-tick():
		}
	}
	return nil
}
