package train

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering fails if a non-test file of this package imports os, net,
// syscall or libp2p: training data and state arrive as bytes from the
// caller, which does the I/O.
func TestLayering(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == "os" || strings.HasPrefix(p, "os/") || p == "net" || strings.HasPrefix(p, "net/") ||
				p == "syscall" || strings.Contains(p, "libp2p") {
				t.Errorf("%s imports %q; train must not do I/O", name, p)
			}
		}
	}
}
