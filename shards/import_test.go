package shards

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// stories locates the reference checkpoint beside the module root, or skips.
func stories(tb testing.TB) (ckpt, tok []byte) {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("reference checkpoint not found: no go.mod above the test directory")
		}
		dir = parent
	}
	ref := filepath.Join(dir, "..", "shared", "models", "stories260K")
	ckpt, err = os.ReadFile(filepath.Join(ref, "stories260K.bin"))
	if err != nil {
		tb.Skipf("reference checkpoint not found at %s; it lives in shared/models beside the module", ref)
	}
	tok, err = os.ReadFile(filepath.Join(ref, "tok512.bin"))
	if err != nil {
		tb.Skipf("reference tokenizer not found at %s", ref)
	}
	return ckpt, tok
}

func openStore(tb testing.TB) *Store {
	tb.Helper()
	st, err := Open(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestImportStories(t *testing.T) {
	ckpt, tokBytes := stories(t)
	tok, err := model.ReadTokenizer(tokBytes, 512)
	if err != nil {
		t.Fatal(err)
	}
	st1, st2 := openStore(t), openStore(t)
	c1, man, err := Import(st1, bytes.NewReader(ckpt), tok, "stories260K")
	if err != nil {
		t.Fatal(err)
	}
	tok2, err := model.ReadTokenizer(tokBytes, 512)
	if err != nil {
		t.Fatal(err)
	}
	c2, _, err := Import(st2, bytes.NewReader(ckpt), tok2, "stories260K")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stories260K model CID: %s", c1)
	if !c1.Equals(c2) {
		t.Fatalf("two imports gave different CIDs: %s and %s", c1, c2)
	}
	if c, _ := man.CID(); !c.Equals(c1) {
		t.Errorf("manifest CID %s, Import returned %s", c, c1)
	}
	// Re-importing into the same repo is a no-op with the same id.
	if c3, _, err := Import(st1, bytes.NewReader(ckpt), tok, "stories260K"); err != nil || !c3.Equals(c1) {
		t.Errorf("re-import = %s, %v; want %s", c3, err, c1)
	}
	// Manifest + head + 5 blocks; nothing else.
	if list, err := st1.List(); err != nil || len(list) != 7 {
		t.Errorf("store holds %d objects (%v), want 7", len(list), err)
	}

	orig, err := model.ReadLlama2C(bytes.NewReader(ckpt))
	if err != nil {
		t.Fatal(err)
	}
	m, gotTok, gotMan, err := Load(st2, c1, 0, 5, true)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config != orig.Config || gotMan.Config != orig.Config {
		t.Errorf("config: got %+v, want %+v", m.Config, orig.Config)
	}
	if !reflect.DeepEqual(m.Head, orig.Head) {
		t.Error("loaded head differs from the checkpoint")
	}
	for i := range orig.Blocks {
		if !reflect.DeepEqual(m.Blocks[i], orig.Blocks[i]) {
			t.Errorf("loaded block %d differs from the checkpoint", i)
		}
	}
	want, _ := tok.MarshalBinary()
	if got, err := gotTok.MarshalBinary(); err != nil || !bytes.Equal(got, want) {
		t.Errorf("loaded tokenizer differs (%v)", err)
	}
}

func TestLoadSpan(t *testing.T) {
	cfg := tinyConfig(false)
	cfg.NLayers = 4
	orig := model.Synth(cfg, 9)
	st := openStore(t)
	c, _, err := ImportModel(st, orig, nil, "synth")
	if err != nil {
		t.Fatal(err)
	}
	m, tok, _, err := Load(st, c, 1, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if m.Head != nil || tok != nil {
		t.Error("Load without head returned a head or tokenizer")
	}
	for i, b := range m.Blocks {
		inSpan := i >= 1 && i < 3
		if (b != nil) != inSpan {
			t.Errorf("block %d loaded=%v, want %v", i, b != nil, inSpan)
		}
		if inSpan && !reflect.DeepEqual(b, orig.Blocks[i]) {
			t.Errorf("block %d differs", i)
		}
	}
	if m, _, _, err := Load(st, c, 4, 4, true); err != nil || m.Head == nil {
		t.Errorf("Load head only: %v", err)
	}
	for _, r := range [][2]int{{-1, 2}, {3, 2}, {0, 5}} {
		if _, _, _, err := Load(st, c, r[0], r[1], false); err == nil {
			t.Errorf("Load [%d,%d) succeeded, want range error", r[0], r[1])
		}
	}
}

func TestImportNeedsTokenizer(t *testing.T) {
	ckpt, _ := stories(t)
	_, _, err := Import(openStore(t), bytes.NewReader(ckpt), nil, "x")
	if !errors.Is(err, ErrTokenizer) || !strings.Contains(err.Error(), "vocab 512; pass --tokenizer") {
		t.Errorf("got %v, want ErrTokenizer naming the vocab", err)
	}
	cfg := tinyConfig(true)
	cfg.VocabSize = 258
	if _, _, err := ImportModel(openStore(t), model.Synth(cfg, 1), nil, "x"); !errors.Is(err, ErrTokenizer) {
		t.Errorf("ImportModel vocab 258 without tokenizer: got %v, want ErrTokenizer", err)
	}
	cfg.VocabSize = 259
	if _, _, err := ImportModel(openStore(t), model.Synth(cfg, 1), nil, "x"); err != nil {
		t.Errorf("ImportModel vocab 259 with byte tokenizer: %v", err)
	}
	if _, _, err := Import(openStore(t), strings.NewReader("not a checkpoint"), nil, "x"); err == nil {
		t.Error("Import of garbage succeeded")
	}
}

func TestLoadDetectsDamage(t *testing.T) {
	cfg := tinyConfig(true)
	st := openStore(t)
	c, man, err := ImportModel(st, model.Synth(cfg, 11), nil, "synth")
	if err != nil {
		t.Fatal(err)
	}
	// A flipped byte in a block file: Load reports ErrCorrupt.
	p := filepath.Join(st.Dir(), "objects", man.Blocks[1].CID.String())
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 1
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(st, c, 0, 1, true); err != nil {
		t.Errorf("Load of undamaged span: %v", err)
	}
	if _, _, _, err := Load(st, c, 0, 2, false); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Load of damaged block: got %v, want ErrCorrupt", err)
	}
	// A missing block: ErrNotFound.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(st, c, 1, 2, false); !errors.Is(err, ErrNotFound) {
		t.Errorf("Load of missing block: got %v, want ErrNotFound", err)
	}
	// A manifest that lies about a size: ErrManifest.
	liar := *man
	liar.Blocks = append([]Ref(nil), man.Blocks...)
	liar.Blocks[0].Size++
	enc, err := liar.Encode()
	if err != nil {
		t.Fatal(err)
	}
	lc, err := st.Put(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(st, lc, 0, 1, false); !errors.Is(err, ErrManifest) {
		t.Errorf("Load with lying manifest: got %v, want ErrManifest", err)
	}
	// A block shard stored where the head should be: ErrShard.
	swapped := *man
	swapped.Head = man.Blocks[0]
	enc, _ = swapped.Encode()
	sc, _ := st.Put(enc)
	if _, _, _, err := Load(st, sc, 0, 0, true); !errors.Is(err, ErrShard) {
		t.Errorf("Load with block as head: got %v, want ErrShard", err)
	}
	// A CID that is not a manifest.
	if _, err := LoadManifest(st, man.Blocks[0].CID); !errors.Is(err, ErrManifest) {
		t.Errorf("LoadManifest of a block: got %v, want ErrManifest", err)
	}
}

func BenchmarkImport(b *testing.B) {
	ckpt, tokBytes := stories(b)
	tok, err := model.ReadTokenizer(tokBytes, 512)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(ckpt)))
	for b.Loop() {
		b.StopTimer()
		st := openStore(b)
		b.StartTimer()
		if _, _, err := Import(st, bytes.NewReader(ckpt), tok, "stories260K"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeShards measures the codec alone (no disk): encoding every
// shard of a model and its manifest.
func BenchmarkEncodeShards(b *testing.B) {
	cfg := model.Config{Dim: 256, HiddenDim: 768, NLayers: 4, NHeads: 8, NKVHeads: 4,
		VocabSize: 4096, SeqLen: 256, NormEps: 1e-5, RopeTheta: 10000, SharedClassifier: true}
	m := model.Synth(cfg, 1)
	tok := model.ByteTokenizer(cfg.VocabSize)
	var total int64
	for b.Loop() {
		total = 0
		head, err := EncodeHead(cfg, m.Head, tok)
		if err != nil {
			b.Fatal(err)
		}
		total += int64(len(head))
		for i, blk := range m.Blocks {
			enc, err := EncodeBlock(cfg, i, blk)
			if err != nil {
				b.Fatal(err)
			}
			NewRef(enc, DefaultChunkSize)
			total += int64(len(enc))
		}
	}
	b.SetBytes(total)
}
