package testnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/node"
)

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		layers, n int
		want      string
	}{
		{5, 3, "[[0 2] [2 4] [4 5]]"},
		{5, 1, "[[0 5]]"},
		{6, 3, "[[0 2] [2 4] [4 6]]"},
		{2, 3, "[[0 2] [0 2] [0 2]]"},
	} {
		if got := fmt.Sprint(Split(tc.layers, tc.n)); got != tc.want {
			t.Errorf("Split(%d, %d) = %s, want %s", tc.layers, tc.n, got, tc.want)
		}
	}
}

// startCovered starts an in-process mesh, stopped when the test ends, and
// waits until every node sees every block served.
func startCovered(t testing.TB, ctx context.Context, o Options) *Net {
	t.Helper()
	net, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	if err := net.WaitCovered(ctx); err != nil {
		t.Fatal(err)
	}
	return net
}

func query(t *testing.T, ctx context.Context, addr string, req infer.Request) (string, []int, infer.Stats) {
	t.Helper()
	var out bytes.Buffer
	var ids []int
	st, err := node.Query(ctx, addr, req, func(tk infer.Token) error {
		out.Write(tk.Piece)
		ids = append(ids, tk.ID)
		return nil
	}, nil)
	if err != nil {
		t.Fatalf("Query %s: %v", addr, err)
	}
	return out.String(), ids, st
}

// TestReferenceThreeNodes starts three real nodes in this process on
// loopback, serving blocks 0:2, 2:4 and 4:5 of stories260K, and checks
// that greedy generation dialling each of them prints REFERENCE.md Case 2
// exactly.
func TestReferenceThreeNodes(t *testing.T) {
	ref := reftest.Read(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	net := startCovered(t, ctx, Options{Nodes: 3, Dir: t.TempDir(), Checkpoint: reftest.Checkpoint(t), Tokenizer: reftest.Tokenizer(t)})
	for i, n := range net.Nodes {
		lo, hi := n.Blocks()
		if want := Split(5, 3)[i]; lo != want[0] || hi != want[1] {
			t.Fatalf("node %d serves %d:%d, want %v", i, lo, hi, want)
		}
		text, ids, st := query(t, ctx, n.Addrs()[0], infer.Request{Steps: 200, Temperature: 0})
		if text+"\n" != ref.Case2Text {
			t.Errorf("via node %d: got\n%s\nwant\n%s", i, text, ref.Case2Text)
		}
		if fmt.Sprint(ids) != fmt.Sprint(ref.Case2IDs) {
			t.Errorf("via node %d: ids differ from REFERENCE.md", i)
		}
		if len(st.Chain) != 3 {
			t.Errorf("via node %d: chain %+v, want 3 hops", i, st.Chain)
		}
	}
	// Prompts: the mesh prints what run.c's loop prints in one process.
	m, tok := reftest.Load(t)
	for _, prompt := range []string{"Once upon a time", "Lily and Tom went to the park", "x"} {
		want := runC(m, tok, prompt, 100)
		got, _, _ := query(t, ctx, net.Nodes[1].Addrs()[0], infer.Request{Prompt: prompt, Steps: 100})
		if got != want {
			t.Errorf("prompt %q: got\n%s\nwant\n%s", prompt, got, want)
		}
	}
}

// runC is llama2.c run.c's generate loop, greedy, one token at a time in
// one process: the reference the mesh is held to.
func runC(m *model.Model, tok *model.Tokenizer, prompt string, steps int) string {
	ids := tok.Encode(prompt, true, false)
	st := m.NewState(0, m.Config.NLayers)
	logits := make([]float32, m.Config.VocabSize)
	sampler := model.NewSampler(m.Config.VocabSize, 0, 0.9, 1)
	var out strings.Builder
	token := ids[0]
	for pos := 0; pos < steps; pos++ {
		m.Step(st, token, pos, logits)
		next := ids[min(pos+1, len(ids)-1)]
		if pos >= len(ids)-1 {
			next = sampler.Sample(logits)
		}
		if next == model.BOS {
			break
		}
		out.WriteString(model.SafePrint(tok.Decode(token, next)))
		token = next
	}
	return out.String()
}

// TestErrors checks that requests that cannot be served fail fast with an
// error that says why.
func TestErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	net, err := Start(ctx, Options{Nodes: 2, Dir: t.TempDir(), Spans: [][2]int{{0, 2}, {4, 6}}})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	addr := net.Nodes[0].Addrs()[0]
	err = wait(ctx, "second node advertised", func() bool { return net.Nodes[0].Peers() == 2 })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = node.Query(ctx, addr, infer.Request{Steps: 4}, func(infer.Token) error { return nil }, nil)
	if err == nil || !strings.Contains(err.Error(), "blocks 2:4") {
		t.Errorf("uncovered blocks: err = %v, want it to name blocks 2:4", err)
	}
	t.Logf("uncovered blocks reported after %v: %v", time.Since(start), err)

	_, err = node.Query(ctx, addr, infer.Request{Model: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", Steps: 4}, func(infer.Token) error { return nil }, nil)
	var he *infer.HopError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "not served") {
		t.Errorf("unknown model: err = %v, want a clear 'not served' error", err)
	}
}

// TestHostilePeer opens raw streams to a real node and sends it garbage on
// each of its protocols: the node drops them and keeps serving.
func TestHostilePeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	net, err := Start(ctx, Options{Nodes: 1, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	target := net.Nodes[0]
	key, err := mesh.NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	evil, err := mesh.New(ctx, mesh.Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	for _, proto := range []string{infer.ProtocolID, infer.GenerateProtocolID} {
		for _, junk := range [][]byte{
			[]byte("GET / HTTP/1.1\r\n\r\n"),
			{1, 0xff, 0xff, 0xff, 0xff},
			{1, 0, 0, 0, 2, '{', '}'},
			{4, 0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0},
			{7, 0, 0, 0, 9, '{', '"', 's', 't', 'e', 'p', 's', '"', ':'},
		} {
			rw, err := evil.Open(ctx, target.ID(), target.Addrs(), proto)
			if err != nil {
				t.Fatal(err)
			}
			rw.Write(junk)
			reply := make([]byte, 1)
			rw.Read(reply) // an error frame or a closed stream, never a hang
			rw.Close()
		}
	}
	text, _, _ := query(t, ctx, target.Addrs()[0], infer.Request{Prompt: "still", Steps: 16})
	if text == "" {
		t.Error("node stopped serving after hostile streams")
	}
}

// TestGGUFThreeNodes serves the GGUF copy of stories260K across three
// nodes: greedy output is REFERENCE.md Case 2, as from the llama2.c file.
func TestGGUFThreeNodes(t *testing.T) {
	ref := reftest.Read(t)
	gguf := filepath.Join(reftest.Dir(t), "stories260K.gguf")
	if _, err := os.Stat(gguf); err != nil {
		t.Skipf("%s not found; the GGUF copy of the reference model is needed", gguf)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	net := startCovered(t, ctx, Options{Nodes: 3, Dir: t.TempDir(), Checkpoint: gguf})
	for i, n := range net.Nodes {
		text, ids, st := query(t, ctx, n.Addrs()[0], infer.Request{Steps: 200})
		if text+"\n" != ref.Case2Text || fmt.Sprint(ids) != fmt.Sprint(ref.Case2IDs) || len(st.Chain) != 3 {
			t.Errorf("via node %d (chain %v): got\n%s", i, st.Chain, text)
		}
	}
}
