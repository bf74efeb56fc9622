package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// writeFiles writes name → bytes into a new directory under parent.
func writeFiles(t *testing.T, parent, dir string, files map[string][]byte) string {
	t.Helper()
	dir = filepath.Join(parent, dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// importDir runs `strata import` on ckpt into repo and returns the CID.
func importDir(t *testing.T, c importCmd) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c.out = &out
	if c.Name == "" {
		c.Name = "sharded-test"
	}
	err := c.Run(&env{ctx: context.Background()})
	return strings.TrimSpace(out.String()), err
}

// TestImportShardedHF: a Hugging Face directory with the weights in three
// shards and model.safetensors.index.json imports to the same model CID as
// the directory with one model.safetensors; a missing shard or a shard
// name leaving the directory is refused.
func TestImportShardedHF(t *testing.T) {
	root := t.TempDir()
	cfg := model.Config{Dim: 16, HiddenDim: 24, NLayers: 3, NHeads: 2, NKVHeads: 1, VocabSize: 300, SeqLen: 32,
		NormEps: 1e-6, RopeTheta: 1e6, QKVBias: true}
	m := model.Synth(cfg, 7)
	tokBin, err := model.ByteTokenizer(cfg.VocabSize).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(root, "tok.bin")
	if err := os.WriteFile(tokFile, tokBin, 0o644); err != nil {
		t.Fatal(err)
	}
	config, weights, err := model.WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	single := writeFiles(t, root, "single", map[string][]byte{"config.json": config, "model.safetensors": weights})
	config3, index, parts, err := model.WriteHFSharded(m, 3)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"config.json": config3, model.HFIndexFile: index}
	for i, p := range parts {
		files[model.HFShardName(i, len(parts))] = p
	}
	sharded := writeFiles(t, root, "sharded", files)

	repo := filepath.Join(root, "repo")
	want, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: single})
	if err != nil {
		t.Fatal(err)
	}
	got, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: sharded})
	if err != nil {
		t.Fatal(err)
	}
	if got != want || got == "" {
		t.Errorf("sharded import: CID %s, want %s as for model.safetensors", got, want)
	}

	for _, tc := range []struct {
		name  string
		edit  func(dir string)
		wantE string
	}{
		{"missing shard", func(dir string) { os.Remove(filepath.Join(dir, model.HFShardName(1, 3))) },
			model.HFShardName(1, 3)},
		{"shard outside the directory", func(dir string) {
			ix := strings.Replace(string(index), `"`+model.HFShardName(2, 3)+`"`, `"../`+model.HFShardName(2, 3)+`"`, 1)
			os.WriteFile(filepath.Join(dir, model.HFIndexFile), []byte(ix), 0o644)
			// The file it names exists, next to the checkpoint.
			os.WriteFile(filepath.Join(root, model.HFShardName(2, 3)), parts[2], 0o644)
		}, "not a plain name"},
		{"no weights", func(dir string) { os.Remove(filepath.Join(dir, model.HFIndexFile)) }, "no " + model.HFIndexFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, t.TempDir(), "ckpt", files)
			tc.edit(dir)
			_, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: dir})
			if err == nil || !strings.Contains(err.Error(), tc.wantE) {
				t.Fatalf("got error %v, want one containing %q", err, tc.wantE)
			}
		})
	}
}

// TestImportMaxContext: --max-context lowers the context a model is
// served with, and the manifest records it; a value at or above the
// checkpoint's changes nothing.
func TestImportMaxContext(t *testing.T) {
	root := t.TempDir()
	cfg := model.Config{Dim: 16, HiddenDim: 24, NLayers: 2, NHeads: 2, NKVHeads: 2, VocabSize: 300, SeqLen: 64,
		NormEps: 1e-5, RopeTheta: 10000}
	m := model.Synth(cfg, 3)
	tokBin, err := model.ByteTokenizer(cfg.VocabSize).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	config, weights, err := model.WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	dir := writeFiles(t, root, "ckpt", map[string][]byte{"config.json": config, "model.safetensors": weights, "tok.bin": tokBin})
	tokFile := filepath.Join(dir, "tok.bin")
	repo := filepath.Join(root, "repo")
	st, err := shards.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	seqLen := func(id string) int {
		t.Helper()
		c, err := cid.Decode(id)
		if err != nil {
			t.Fatalf("CID %q: %v", id, err)
		}
		man, err := shards.LoadManifest(st, c)
		if err != nil {
			t.Fatal(err)
		}
		return man.Config.SeqLen
	}
	full, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ max, want int }{{16, 16}, {63, 63}, {64, 64}, {1 << 20, 64}} {
		id, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: dir, MaxContext: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		if got := seqLen(id); got != tc.want {
			t.Errorf("--max-context %d: manifest seq_len %d, want %d", tc.max, got, tc.want)
		}
		if (id == full) != (tc.want == cfg.SeqLen) {
			t.Errorf("--max-context %d: CID %s, without the flag %s", tc.max, id, full)
		}
	}
	// The capped model loads and runs up to its new context.
	id, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: dir, MaxContext: 8})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cid.Decode(id)
	back, _, _, err := shards.Load(st, c, 0, cfg.NLayers, true)
	if err != nil {
		t.Fatal(err)
	}
	if back.Config.SeqLen != 8 {
		t.Fatalf("loaded seq_len %d, want 8", back.Config.SeqLen)
	}
	s := back.NewState(0, cfg.NLayers)
	logits, ref := make([]float32, cfg.VocabSize), make([]float32, cfg.VocabSize)
	rs := m.NewState(0, cfg.NLayers)
	for pos := range 8 {
		back.Step(s, pos+3, pos, logits)
		m.Step(rs, pos+3, pos, ref)
	}
	for i := range ref {
		if logits[i] != ref[i] {
			t.Fatalf("logit %d at position 7: %g, want %g as with the full context", i, logits[i], ref[i])
		}
	}
	if _, err := importDir(t, importCmd{Repo: repo, Tokenizer: tokFile, Checkpoint: dir, MaxContext: -1}); err == nil {
		t.Error("--max-context -1 succeeded")
	}
}
