package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTestnetTrains runs `strata testnet` in its default mode, federated
// training, on a few KB of text split between three nodes with tiny
// rounds: at least two rounds commit with every node in them, a node
// generates text through the mesh after a commit, and Ctrl-C stops
// everything cleanly.
func TestTestnetTrains(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		var b strings.Builder
		for j := range 12 {
			fmt.Fprintf(&b, "func f%d_%d(x int) int {\n\treturn x * %d\n}\n\n", i, j, i+j)
		}
		if err := os.WriteFile(filepath.Join(data, fmt.Sprintf("f%d.go", i)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "testnet", "--dir", filepath.Join(dir, "net"), "--data", data, "--nodes", "3",
		"--local-steps", "3", "--run-batch", "2", "--run-seq-len", "32", "--round-seconds", "20", "--sample-steps", "24")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	commit := regexp.MustCompile(`^round +(\d+) +loss +[0-9.]+ +nodes (\S+) +model (bafk\S+)`)
	sample := regexp.MustCompile(`^ +node \d+: (".*")`)
	var commits []int
	var text string
	for len(commits) < 2 || text == "" {
		line, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("strata testnet stopped after %d commits, sample %q; stderr:\n%s", len(commits), text, stderr.String())
		}
		t.Log(line)
		if m := commit.FindStringSubmatch(line); m != nil {
			r, _ := strconv.Atoi(m[1])
			if len(commits) > 0 && r <= commits[len(commits)-1] {
				t.Errorf("round %d printed after round %d", r, commits[len(commits)-1])
			}
			commits = append(commits, r)
			if nodes := strings.Split(m[2], ","); len(nodes) != 3 {
				t.Errorf("round %s committed with nodes %v; want all 3", m[1], nodes)
			}
			continue
		}
		if m := sample.FindStringSubmatch(line); m != nil && len(commits) > 0 {
			s, err := strconv.Unquote(m[1])
			if err != nil {
				t.Fatalf("sample %s: %v", m[1], err)
			}
			// Samples of a model this young are mostly blanks; they
			// must still hold the prompt and something after it.
			if i := strings.Index(s, "func "); i < 0 || len(s) <= i+len("func ") {
				t.Errorf("sample %q does not continue the prompt \"func \"", s)
			}
			text = s
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for range lines {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("strata testnet after Ctrl-C: %v; stderr:\n%s", err, stderr.String())
	}
}
