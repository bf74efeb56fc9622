// Package reftest gives tests the reference checkpoint that lives beside
// the module (shared/models/stories260K) and the outputs recorded in its
// REFERENCE.md. A test on a machine without the checkpoint is skipped with
// a message saying what is missing.
package reftest

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-mesh/strata/model"
)

// Shared returns the path of the shared folder beside the module root
// (shared/, holding models/ and data/), or skips t when no module root is
// found above the test directory.
func Shared(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("module root (go.mod) not found above the test directory")
		}
		dir = parent
	}
}

// Dir returns the reference checkpoint folder, or skips t.
func Dir(t testing.TB) string {
	t.Helper()
	p := filepath.Join(Shared(t), "models", "stories260K")
	if _, err := os.Stat(filepath.Join(p, "stories260K.bin")); err != nil {
		t.Skipf("reference checkpoint not found at %s; it lives beside the module as shared/models/stories260K", p)
	}
	return p
}

// Checkpoint and Tokenizer are the paths of the reference files.
func Checkpoint(t testing.TB) string { return filepath.Join(Dir(t), "stories260K.bin") }
func Tokenizer(t testing.TB) string  { return filepath.Join(Dir(t), "tok512.bin") }

// Load reads the reference model and tokenizer.
func Load(t testing.TB) (*model.Model, *model.Tokenizer) {
	t.Helper()
	f, err := os.Open(Checkpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := model.ReadLlama2C(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("ReadLlama2C: %v", err)
	}
	data, err := os.ReadFile(Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := model.ReadTokenizer(data, m.Config.VocabSize)
	if err != nil {
		t.Fatalf("ReadTokenizer: %v", err)
	}
	return m, tok
}

// Reference is what tests use from REFERENCE.md.
type Reference struct {
	Logits    []float32 // position-0 logits
	Case2IDs  []int     // Case 2 (greedy, 200 steps): next-token ids
	Case2Text string    // Case 2 stdout, including run.c's final newline
}

// Read parses REFERENCE.md.
func Read(t testing.TB) Reference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(Dir(t), "REFERENCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var ref Reference
	for _, f := range strings.Fields(block(t, doc, "All 512 logits")) {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			t.Fatalf("REFERENCE.md logit %q: %v", f, err)
		}
		ref.Logits = append(ref.Logits, float32(v))
	}
	i := strings.Index(doc, "## Case 2")
	if i < 0 {
		t.Fatal("REFERENCE.md: no Case 2")
	}
	case2 := doc[i:]
	for _, f := range strings.Fields(block(t, case2, "Next-token ids")) {
		v, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("REFERENCE.md token id %q: %v", f, err)
		}
		ref.Case2IDs = append(ref.Case2IDs, v)
	}
	ref.Case2Text = block(t, case2, "Verbatim:")
	return ref
}

// block returns the contents of the first ``` block after marker.
func block(t testing.TB, doc, marker string) string {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("REFERENCE.md: %q not found", marker)
	}
	rest := doc[i:]
	j := strings.Index(rest, "```\n")
	if j < 0 {
		t.Fatalf("REFERENCE.md: no code block after %q", marker)
	}
	rest = rest[j+4:]
	k := strings.Index(rest, "```")
	if k < 0 {
		t.Fatalf("REFERENCE.md: unterminated code block after %q", marker)
	}
	return rest[:k]
}
