package shards

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering fails if a non-test file of this package imports anything
// beyond the standard library, go-cid, go-multihash and the module's pure
// packages. In particular no libp2p package: the content protocol, which
// needs the network, is a separate concern built on top of this core.
func TestLayering(t *testing.T) {
	allowed := map[string]bool{
		"github.com/ipfs/go-cid":               true,
		"github.com/multiformats/go-multihash": true,
		"github.com/strata-mesh/strata/model":  true,
		"github.com/strata-mesh/strata/tensor": true,
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
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
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			std := !strings.Contains(first, ".")
			if strings.Contains(path, "libp2p") || (!std && !allowed[path]) {
				t.Errorf("%s imports %q; shards may import only the standard library, go-cid, go-multihash and model", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}
