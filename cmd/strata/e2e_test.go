package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
	"github.com/strata-mesh/strata/testnet"
)

// binary builds the strata command once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the strata binary; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "strata")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestProcesses drives the binary as a user does: nodes as separate
// processes on loopback serving 0:2, 2:4 and 4:5 (and one serving 0:5),
// and `strata generate` dialling each; stdout must be REFERENCE.md Case 2
// byte for byte.
func TestProcesses(t *testing.T) {
	ref := reftest.Read(t)
	bin := binary(t)
	for _, spans := range [][][2]int{{{0, 2}, {2, 4}, {4, 5}}, {{0, 5}}} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		ps, err := testnet.Launch(ctx, bin, testnet.Options{
			Nodes: len(spans), Spans: spans, Dir: t.TempDir(),
			Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t),
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps.Nodes {
			stdout, stderr, err := run(t, bin, "generate", "--peer", p.Addr, "-n", "200", "--temperature", "0")
			if err != nil {
				t.Fatalf("generate via node %d: %v\n%s", p.Index, err, stderr)
			}
			if stdout != ref.Case2Text {
				t.Errorf("spans %v, via node %d: stdout\n%s\nwant\n%s", spans, p.Index, stdout, ref.Case2Text)
			}
		}
		// A prompt is echoed and continued.
		stdout, _, err := run(t, bin, "generate", "--peer", ps.Nodes[0].Addr, "-n", "40", "-t", "0", "Once upon a time")
		if err != nil || !strings.HasPrefix(stdout, "Once upon a time, there was a little girl named Lily.") {
			t.Errorf("prompted generate: %v, stdout %q", err, stdout)
		}
		ps.Stop()
		for _, p := range ps.Nodes {
			if !p.Cmd.ProcessState.Success() {
				log, _ := os.ReadFile(p.Log)
				t.Errorf("node %d did not exit cleanly on SIGTERM: %v\n%s", p.Index, p.Cmd.ProcessState, log)
			}
		}
	}
}

// TestBadFiles checks that truncated or malformed files get a clear error
// and a non-zero exit, never a crash.
func TestBadFiles(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	ckpt, err := os.ReadFile(reftest.Checkpoint(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(reftest.Tokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good, goodTok := write("good.bin", ckpt), write("tok.bin", tok)
	for _, tc := range []struct {
		name, ckpt, tok, want string
	}{
		{"truncated checkpoint", write("trunc.bin", ckpt[:len(ckpt)/2]), goodTok, "truncated"},
		{"header only", write("hdr.bin", ckpt[:28]), goodTok, "truncated"},
		{"garbage checkpoint", write("garbage.bin", bytes.Repeat([]byte{0xff}, 4096)), goodTok, "invalid config"},
		{"empty checkpoint", write("empty.bin", nil), goodTok, "checkpoint"},
		{"truncated tokenizer", good, write("ttok.bin", tok[:len(tok)/2]), "tokenizer"},
		{"garbage tokenizer", good, write("gtok.bin", bytes.Repeat([]byte{0x7f}, 64)), "tokenizer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := run(t, bin, "import", "--repo", filepath.Join(dir, "repo"), "--tokenizer", tc.tok, tc.ckpt)
			if err == nil {
				t.Fatal("import succeeded")
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if !strings.Contains(stderr, tc.want) || strings.Contains(stderr, "panic") {
				t.Errorf("stderr %q, want a clear error mentioning %q", stderr, tc.want)
			}
		})
	}
	out, _, err := run(t, bin, "import", "--repo", filepath.Join(dir, "repo"), "--tokenizer", goodTok, good)
	if err != nil || !strings.HasPrefix(out, "bafkrei") {
		t.Errorf("good import: %v, %q", err, out)
	}
}

// TestFailoverProcesses kills -9 the middle node of a running chain at
// about token 100; a fourth node holding the same blocks takes over and
// the text is still REFERENCE.md Case 2. The pause the failure causes is
// logged.
func TestFailoverProcesses(t *testing.T) {
	ref := reftest.Read(t)
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ps, err := testnet.Launch(ctx, bin, testnet.Options{
		Nodes: 4, Spans: [][2]int{{0, 2}, {2, 4}, {4, 5}, {2, 4}}, Dir: t.TempDir(), HTTP: true,
		Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Stop()
	var out bytes.Buffer
	var gaps []time.Duration
	last, count := time.Now(), 0
	var victim *testnet.Proc
	st, err := node.Query(ctx, ps.Nodes[0].Addr, infer.Request{Steps: 200}, func(tk infer.Token) error {
		now := time.Now()
		gaps = append(gaps, now.Sub(last))
		last = now
		out.Write(tk.Piece)
		if count++; count == 100 {
			for _, i := range []int{1, 3} { // the holders of blocks 2:4: kill the one in the chain
				if sessions(t, ps.Nodes[i].HTTP) > 0 {
					victim = ps.Nodes[i]
				}
			}
			if victim == nil {
				t.Fatal("no holder of blocks 2:4 serves the session")
			}
			if err := victim.Cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("generation did not survive the failure: %v", err)
	}
	if out.String()+"\n" != ref.Case2Text {
		t.Errorf("text after failover differs from REFERENCE.md Case 2:\n%s", out.String())
	}
	if len(st.Failovers) == 0 {
		t.Errorf("no failover recorded; chain %v", st.Chain)
	}
	slices.Sort(gaps[1:])
	t.Logf("killed node %d at token 100; failovers %q; new chain %v; pause %v (median gap %v)",
		victim.Index, st.Failovers, st.Chain, gaps[len(gaps)-1], gaps[len(gaps)/2])
}

// sessions reads the number of sessions a node serves from its status API.
func sessions(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Sessions int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st.Sessions
}

// TestFetchResume kills -9 a `strata fetch` of a 400 MB synthetic model
// part way and runs it again: the second run fetches exactly what the
// first did not finish and verify — finished objects and verified chunks
// of the interrupted one are not fetched again.
func TestFetchResume(t *testing.T) {
	bin := binary(t)
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	out, stderr, err := run(t, bin, "synth", "--repo", seed, "--preset", "400m", "--seed", "7")
	if err != nil {
		t.Fatalf("synth: %v\n%s", err, stderr)
	}
	id := strings.TrimSpace(out)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	port := freeTCPPort(t)
	seedID, _, err := run(t, bin, "id", "--repo", seed)
	if err != nil {
		t.Fatal(err)
	}
	boot := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, strings.TrimSpace(seedID))
	seedNode := exec.CommandContext(ctx, bin, "node", "--repo", seed, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port), "--no-mdns")
	if err := seedNode.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { seedNode.Process.Kill(); seedNode.Wait() }()

	repo := filepath.Join(dir, "fresh")
	fetch := func() *exec.Cmd {
		cmd := exec.CommandContext(ctx, bin, "fetch", "--repo", repo, "--bootstrap", boot, "--listen", "/ip4/127.0.0.1/tcp/0", id)
		var buf bytes.Buffer
		cmd.Stderr = &buf
		cmd.Stdout = &buf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// Kill the first fetch once the manifest, the head and a block are in
	// and the next block is under way.
	first := fetch()
	objects := filepath.Join(repo, "objects")
	for {
		if entries, _ := os.ReadDir(objects); len(entries) >= 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("first fetch made no progress")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(60 * time.Millisecond)
	first.Process.Kill()
	first.Wait()

	// What the repo holds now, verified the way a fetch verifies it.
	st, err := shards.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := shards.ParseCID(id)
	man, err := shards.LoadManifest(st, c)
	if err != nil {
		t.Fatal(err)
	}
	var missing, partialVerified int64
	for _, ref := range append([]shards.Ref{man.Head}, man.Blocks...) {
		if st.Has(ref.CID) {
			continue
		}
		missing += ref.Size
		part, err := os.ReadFile(filepath.Join(repo, "partial", ref.CID.String()))
		if err != nil {
			continue
		}
		for k := range ref.Chunks {
			lo := int64(k) * int64(man.ChunkSize)
			hi := min(lo+int64(man.ChunkSize), ref.Size)
			if hi <= int64(len(part)) && man.VerifyChunk(ref, k, part[lo:hi]) == nil {
				partialVerified += hi - lo
			}
		}
	}
	second := exec.CommandContext(ctx, bin, "fetch", "--repo", repo, "--bootstrap", boot, "--listen", "/ip4/127.0.0.1/tcp/0", id)
	msg, err := second.CombinedOutput()
	if err != nil {
		t.Fatalf("second fetch: %v\n%s", err, msg)
	}
	var got int64
	if _, err := fmt.Sscanf(string(msg[strings.Index(string(msg), "into "):]), "into "+repo+": %d bytes from peers", &got); err != nil {
		t.Fatalf("cannot read the byte count from %q: %v", msg, err)
	}
	if want := missing - partialVerified; got != want {
		t.Errorf("second fetch took %d bytes from peers, want %d (%d missing, %d already verified in the partial file)", got, want, missing, partialVerified)
	}
	t.Logf("after kill -9: %d bytes missing, %d of them already verified in the partial file; the restart fetched %d", missing, partialVerified, got)
	if _, _, _, err := shards.Load(st, c, 0, man.Config.NLayers, true); err != nil {
		t.Errorf("fetched model does not load: %v", err)
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
