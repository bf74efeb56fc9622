package testnet

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestGoSource finds GOROOT/src through `go env GOROOT`, and without the
// go command on the PATH through the root the binary was built with.
func TestGoSource(t *testing.T) {
	for _, path := range []string{os.Getenv("PATH"), ""} {
		t.Setenv("PATH", path)
		src, err := GoSource(context.Background())
		if err != nil {
			t.Fatalf("PATH=%q: %v", path, err)
		}
		if fi, err := os.Stat(filepath.Join(src, "runtime", "proc.go")); err != nil || fi.IsDir() {
			t.Errorf("PATH=%q: %s is not the Go source tree: %v", path, src, err)
		}
	}
}

// TestRunArgs: every participant gets the same run flags, zero values
// leave the node's defaults, and the roster lists every node.
func TestRunArgs(t *testing.T) {
	o := DefaultRunOptions()
	o.Data, o.LR = "data", 0.003
	got := strings.Join(o.runArgs([]string{"A", "B"}), " ")
	want := "--train data --roster A,B --rounds 0 --preset tiny --max-data 8388608 --local-steps 10 --run-batch 4 --run-seq-len 128 --run-lr 0.003 --round-seconds 90"
	if got != want {
		t.Errorf("run args\n got %s\nwant %s", got, want)
	}
	o = RunOptions{Data: "d", Rounds: 5, Rule: "median", Outer: "sgd", Codec: "fp16", InitSeed: 7}
	args := o.runArgs([]string{"A"})
	for _, f := range []string{"--rule", "median", "--outer", "sgd", "--codec", "fp16", "--init-seed", "7", "--rounds", "5"} {
		if !slices.Contains(args, f) {
			t.Errorf("run args %v lack %s", args, f)
		}
	}
	if slices.Contains(args, "--local-steps") {
		t.Errorf("run args %v give --local-steps though it is zero", args)
	}
}
