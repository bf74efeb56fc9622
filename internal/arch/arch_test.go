package arch

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/strata-mesh/strata"

// rank orders the layers of the architecture: a package may import only
// packages of a strictly lower rank, so packages on one layer never
// import each other.
var rank = map[string]int{
	"tensor":    0,
	"model":     1,
	"consensus": 2,
	"shards":    2,
	"mesh":      3,
	"gossip":    3,
	"infer":     4,
	"train":     4,
	"node":      5,
	"testnet":   6,
	"cmd":       7,
}

// pure packages take time, randomness and I/O as inputs.
var pure = map[string]bool{"tensor": true, "model": true, "consensus": true, "train": true}

// libp2p may be used directly only by these packages; the protocols above
// them (infer, the content protocol in shards) reach the network through
// small interfaces that mesh implements.
var libp2pAllowed = map[string]bool{"mesh": true, "gossip": true, "testnet": true}

// leaves import no other package of the module: the two network adapters
// must stay independent of each other and of the workloads.
var leaves = map[string]bool{"mesh": true, "gossip": true}

// forbiddenInPure reports whether a pure package may not import path.
func forbiddenInPure(path string) bool {
	for _, p := range []string{"os", "net", "syscall", "time", "math/rand", "io/fs"} {
		if path == p || strings.HasPrefix(path, p+"/") && p != "math/rand" {
			return true
		}
	}
	return false
}

type pkg struct {
	ImportPath string
	Doc        string
	Imports    []string
}

func list(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// layer names a package by its top-level folder ("cmd/strata" → "cmd").
func layer(path string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	top, _, _ := strings.Cut(rel, "/")
	return top
}

func TestLayering(t *testing.T) {
	for _, p := range list(t) {
		from := layer(p.ImportPath)
		if from == "internal" {
			continue
		}
		r, ok := rank[from]
		if !ok {
			t.Errorf("package %s is in no layer of the architecture", p.ImportPath)
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case strings.HasPrefix(imp, module+"/"):
				to := layer(imp)
				if to == "internal" {
					continue
				}
				if rank[to] >= r {
					t.Errorf("%s imports %s: imports must point down the layers", p.ImportPath, imp)
				}
				if to == "node" && from != "cmd" && from != "testnet" {
					t.Errorf("%s imports node; only cmd and testnet may", p.ImportPath)
				}
				if leaves[from] {
					t.Errorf("%s imports %s; %s must not depend on other packages of the module", p.ImportPath, imp, from)
				}
			case strings.Contains(imp, "libp2p") && !libp2pAllowed[from]:
				t.Errorf("%s imports %s; only mesh, gossip and testnet touch libp2p", p.ImportPath, imp)
			case pure[from] && forbiddenInPure(imp):
				t.Errorf("pure package %s imports %s", p.ImportPath, imp)
			}
		}
	}
}

func TestEveryPackageDocumented(t *testing.T) {
	for _, p := range list(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s has no package doc comment", p.ImportPath)
		}
	}
}
