package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/internal/reftest"
)

// TestChaos runs a short chaos soak of `strata chaos` (75 s of kills, a
// kill every 5 s or so): three nodes serving stories260K, four training,
// generations checked against REFERENCE.md Case 2. It must exit 0 and
// print zero wrong outputs, zero divergent histories and zero corrupt
// objects, after at least one kill and restart, correct generations and a
// committed round, and no node may have exited without being killed.
func TestChaos(t *testing.T) {
	ckpt, tok := reftest.Checkpoint(t), reftest.Tokenizer(t)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "chaos", "--duration", "75s", "--kill-every", "5s", "--seed", "7",
		"--model", ckpt, "--tokenizer", tok, "--dir", t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("stdout:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("strata chaos: %v\nstderr:\n%s", err, tail(stderr.String(), 80))
	}
	out := stdout.String()
	count := func(re string) int {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no match for %q in the output", re)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	if !strings.Contains(out, "REFERENCE.md Case 2") {
		t.Error("the soak does not say it checks generations against REFERENCE.md Case 2")
	}
	for _, c := range []struct {
		re   string
		want func(int) bool
		what string
	}{
		{`(?m)^generations +\d+ ok, \d+ failed, (\d+) wrong`, func(n int) bool { return n == 0 }, "wrong outputs: want 0"},
		{`(?m)^histories .*, (\d+) divergent`, func(n int) bool { return n == 0 }, "divergent histories: want 0"},
		{`(?m)^histories .*, (\d+) malformed`, func(n int) bool { return n == 0 }, "malformed histories: want 0"},
		{`(?m)^stores .*, (\d+) corrupt`, func(n int) bool { return n == 0 }, "corrupt objects: want 0"},
		{`(?m)^generations +(\d+) ok`, func(n int) bool { return n > 0 }, "correct generations: want some"},
		{`(?m)^kills +(\d+)`, func(n int) bool { return n > 0 }, "kills: want some"},
		{`(?m)^kills .*, (\d+) restarts`, func(n int) bool { return n > 0 }, "restarts: want some"},
		{`(?m)^rounds +(\d+) committed`, func(n int) bool { return n > 0 }, "committed rounds: want some"},
		{`(?m)^kills .*, (\d+) unexpected exits`, func(n int) bool { return n == 0 }, "nodes that exited without being killed: want 0"},
	} {
		if n := count(c.re); !c.want(n) {
			t.Errorf("%s: got %d", c.what, n)
		}
	}
}
