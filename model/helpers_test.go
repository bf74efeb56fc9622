package model

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// refPath returns the reference checkpoint folder, which lives beside the
// module root as shared/models/stories260K: the directory above the first
// directory holding go.mod, walking up from the test's working directory.
// ok is false if it is not there.
func refPath() (p string, ok bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
	p = filepath.Join(dir, "..", "shared", "models", "stories260K")
	if _, err := os.Stat(filepath.Join(p, "stories260K.bin")); err != nil {
		return p, false
	}
	return p, true
}

// refDir returns refPath or skips the test.
func refDir(t testing.TB) string {
	t.Helper()
	p, ok := refPath()
	if !ok {
		t.Skipf("reference checkpoint not found at %q; it lives beside the module as shared/models/stories260K", p)
	}
	return p
}

func loadStories(t testing.TB) (*Model, *Tokenizer) {
	t.Helper()
	dir := refDir(t)
	f, err := os.Open(filepath.Join(dir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ReadLlama2C(bufio.NewReader(f))
	if err != nil {
		t.Fatalf("ReadLlama2C: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ReadTokenizer(data, m.Config.VocabSize)
	if err != nil {
		t.Fatalf("ReadTokenizer: %v", err)
	}
	return m, tok
}

// reference holds what the tests use from REFERENCE.md.
type reference struct {
	logits    []float32 // position-0 logits
	case2IDs  []int     // greedy next-token ids
	case2Text string    // stdout, including run.c's final newline
}

// codeBlockAfter returns the contents of the first ``` block after marker.
func codeBlockAfter(t testing.TB, doc, marker string) string {
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

func loadReference(t testing.TB) reference {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(refDir(t), "REFERENCE.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var ref reference
	for _, f := range strings.Fields(codeBlockAfter(t, doc, "All 512 logits")) {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			t.Fatalf("REFERENCE.md logit %q: %v", f, err)
		}
		ref.logits = append(ref.logits, float32(v))
	}
	case2 := doc[strings.Index(doc, "## Case 2"):]
	for _, f := range strings.Fields(codeBlockAfter(t, case2, "Next-token ids")) {
		v, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("REFERENCE.md token id %q: %v", f, err)
		}
		ref.case2IDs = append(ref.case2IDs, v)
	}
	ref.case2Text = codeBlockAfter(t, case2, "Verbatim:")
	return ref
}
