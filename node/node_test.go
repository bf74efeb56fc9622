package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

func TestParseBlocks(t *testing.T) {
	for _, tc := range []struct {
		in      string
		lo, hi  int
		wantErr string
	}{
		{"0:5", 0, 5, ""},
		{"2:4", 2, 4, ""},
		{"4:5", 4, 5, ""},
		{"0:6", 0, 0, "outside the model's 5 blocks"},
		{"3:3", 0, 0, "outside"},
		{"-1:2", 0, 0, "outside"},
		{"2", 0, 0, "not LO:HI"},
		{"a:b", 0, 0, "not LO:HI"},
		{"", 0, 0, "not LO:HI"},
	} {
		lo, hi, err := ParseBlocks(tc.in, 5)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseBlocks(%q) err = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || lo != tc.lo || hi != tc.hi {
			t.Errorf("ParseBlocks(%q) = %d, %d, %v; want %d, %d", tc.in, lo, hi, err, tc.lo, tc.hi)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Repo: "r", Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	for name, c := range map[string]Config{
		"no repo":          {Listen: ok.Listen},
		"no listen":        {Repo: "r"},
		"blocks, no model": {Repo: "r", Listen: ok.Listen, Blocks: "0:1"},
		"malformed blocks": {Repo: "r", Listen: ok.Listen, Model: "m", Blocks: "x"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestRestart starts a node on a repo, stops it and starts it again: the
// identity and the served model come back from the repo alone.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	st, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Dim: 32, HiddenDim: 48, NLayers: 3, NHeads: 4, NKVHeads: 2, VocabSize: 300, SeqLen: 32,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	id, _, err := shards.ImportModel(st, model.Synth(cfg, 1), model.ByteTokenizer(300), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := func() *Node {
		n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	n := start()
	first := n.ID()
	if n.Model() != id.String() {
		t.Errorf("model %q, want the repo's only model %s", n.Model(), id)
	}
	if lo, hi := n.Blocks(); lo != 0 || hi != 3 {
		t.Errorf("blocks %d:%d, want all of 0:3", lo, hi)
	}
	var got strings.Builder
	if _, err := n.Generate(ctx, infer.Request{Prompt: "abc", Steps: 8}, func(tk infer.Token) error { got.Write(tk.Piece); return nil }); err != nil || got.Len() == 0 {
		t.Errorf("Generate: %v, %q", err, got.String())
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	n = start()
	defer n.Close()
	if n.ID() != first {
		t.Errorf("peer id changed across restart: %s, then %s", first, n.ID())
	}
	if n.Model() != id.String() {
		t.Errorf("model after restart %q, want %s", n.Model(), id)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Model: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Blocks: "0:1", FindTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy") {
		t.Errorf("model not in repo: err = %v, want it to name the model", err)
	}
	_, err = Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: "not-a-cid"})
	if err == nil || !strings.Contains(err.Error(), "not a CID") {
		t.Errorf("bad model id: err = %v", err)
	}
}
