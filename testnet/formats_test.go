package testnet

import (
	"bytes"
	"testing"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// TestFormatsSameCID imports stories260K from the llama2.c checkpoint,
// from our GGUF export of it and from our Hugging Face (safetensors)
// export of it: the three imports must give the same model CID, since the
// weights, SeqLen and tokenizer agree.
func TestFormatsSameCID(t *testing.T) {
	m, tok := reftest.Load(t)
	st, err := shards.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := shards.ImportModel(st, m, tok, "stories260K")
	if err != nil {
		t.Fatal(err)
	}

	var gg bytes.Buffer
	if err := model.WriteGGUF(&gg, m, tok); err != nil {
		t.Fatal(err)
	}
	gm, gtok, err := model.ReadGGUF(bytes.NewReader(gg.Bytes()), int64(gg.Len()))
	if err != nil {
		t.Fatalf("ReadGGUF of our export: %v", err)
	}
	if got, _, err := shards.ImportModel(st, gm, gtok, "stories260K"); err != nil || got != want {
		t.Errorf("GGUF export imports as %v (err %v), want %v", got, err, want)
	}

	cfg, w, err := model.WriteHF(m)
	if err != nil {
		t.Fatal(err)
	}
	hm, err := model.ReadHF(cfg, bytes.NewReader(w), int64(len(w)))
	if err != nil {
		t.Fatalf("ReadHF of our export: %v", err)
	}
	if got, _, err := shards.ImportModel(st, hm, tok, "stories260K"); err != nil || got != want {
		t.Errorf("safetensors export imports as %v (err %v), want %v", got, err, want)
	}
}
