package train

import (
	"math"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// TestInitLoss checks that a fresh model predicts nearly uniformly: its
// loss on any text starts close to ln(vocab).
func TestInitLoss(t *testing.T) {
	cfg := model.Config{Dim: 64, HiddenDim: 128, NLayers: 2, NHeads: 4, NKVHeads: 4, VocabSize: ByteVocab, SeqLen: 64,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	m := Init(cfg, 1)
	c, err := NewCorpus([][]byte{[]byte("To be, or not to be, that is the question.\nWhether 'tis nobler in the mind to suffer")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	loss, n, err := Evaluate(m, c, 64, 0)
	if err != nil || n == 0 {
		t.Fatal(err, n)
	}
	if want := math.Log(ByteVocab); math.Abs(loss-want) > 0.1 {
		t.Errorf("initial loss %.3f nats, want about ln(%d) = %.3f", loss, ByteVocab, want)
	}
	if Init(cfg, 1).Blocks[1].Wq[7] != m.Blocks[1].Wq[7] {
		t.Error("Init is not deterministic")
	}
}
