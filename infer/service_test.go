package infer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/model"
)

// memNet connects Services (or Muxes) through in-memory pipes. net.Pipe
// is unbuffered, which is stricter than a libp2p stream: a protocol that
// relies on buffering deadlocks here.
type memNet struct {
	mu    sync.Mutex
	svcs  map[string]handler
	conns map[string][]io.Closer // streams into each peer, for kill
}

// kill makes peer vanish as a kill -9 would: its streams break and it can
// no longer be reached.
func (n *memNet) kill(peer string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.svcs, peer)
	for _, c := range n.conns[peer] {
		c.Close()
	}
}

// handler is what a peer registers for the two protocols.
type handler interface {
	HandleStream(rw io.ReadWriteCloser, remote string)
	HandleClient(rw io.ReadWriteCloser, remote string)
}

var (
	_ handler = (*Service)(nil)
	_ handler = (*Mux)(nil)
)

type memTransport struct {
	net *memNet
	id  string
}

func (t memTransport) Self() string    { return t.id }
func (t memTransport) Addrs() []string { return []string{"/memory/" + t.id} }

func (t memTransport) Open(ctx context.Context, peer string, addrs []string, proto string) (io.ReadWriteCloser, error) {
	t.net.mu.Lock()
	svc := t.net.svcs[peer]
	t.net.mu.Unlock()
	if svc == nil {
		return nil, fmt.Errorf("no route to %s", peer)
	}
	a, b := net.Pipe()
	t.net.mu.Lock()
	if t.net.conns == nil {
		t.net.conns = map[string][]io.Closer{}
	}
	t.net.conns[peer] = append(t.net.conns[peer], a, b)
	t.net.conns[t.id] = append(t.net.conns[t.id], a, b)
	t.net.mu.Unlock()
	if proto == ProtocolID {
		go svc.HandleStream(b, t.id)
	} else {
		go svc.HandleClient(b, t.id)
	}
	return a, nil
}

// end is one end of a duplex pipe that can close its writing half.
type end struct {
	r *io.PipeReader
	w *io.PipeWriter
}

func (e end) Read(p []byte) (int, error)  { return e.r.Read(p) }
func (e end) Write(p []byte) (int, error) { return e.w.Write(p) }
func (e end) Close() error                { e.w.Close(); return e.r.Close() }

func duplex() (end, end) {
	ar, bw := io.Pipe()
	br, aw := io.Pipe()
	return end{ar, aw}, end{br, bw}
}

// mesh builds one Service per span, all knowing each other.
func (n *memNet) mesh(t *testing.T, m *model.Model, tok *model.Tokenizer, spans [][2]int) []*Service {
	t.Helper()
	n.svcs = map[string]handler{}
	var servers []Server
	for i, sp := range spans {
		servers = append(servers, Server{Peer: fmt.Sprintf("peer%d", i), Lo: sp[0], Hi: sp[1]})
	}
	var out []*Service
	for i, sp := range spans {
		id := fmt.Sprintf("peer%d", i)
		svc, err := New(Config{
			ModelID: "model", Model: m, Tokenizer: tok, Lo: sp[0], Hi: sp[1],
			Transport: memTransport{n, id},
			Servers:   func(string) []Server { return servers },
		})
		if err != nil {
			t.Fatal(err)
		}
		n.svcs[id] = svc
		out = append(out, svc)
	}
	return out
}

func synth(t testing.TB) (*model.Model, *model.Tokenizer) {
	t.Helper()
	cfg := model.Config{Dim: 64, HiddenDim: 96, NLayers: 6, NHeads: 8, NKVHeads: 4, VocabSize: 300, SeqLen: 64,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	return model.Synth(cfg, 7), model.ByteTokenizer(300)
}

func generate(t *testing.T, svc *Service, req Request) (string, Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := svc.Generate(context.Background(), req, func(tk Token) error {
		out.Write(tk.Piece)
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return out.String(), st
}

// TestSplitEqualsWhole checks that a model split over peers, entered at
// any peer, gives the same greedy text as one peer holding every block.
func TestSplitEqualsWhole(t *testing.T) {
	m, tok := synth(t)
	var whole memNet
	want, _ := generate(t, whole.mesh(t, m, tok, [][2]int{{0, 6}})[0], Request{Prompt: "hello", Steps: 40})
	if len(want) == 0 {
		t.Fatal("empty output")
	}
	for _, spans := range [][][2]int{
		{{0, 2}, {2, 4}, {4, 6}},
		{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}},
		{{0, 0}, {0, 3}, {3, 6}}, // entry serves nothing
		{{3, 6}, {0, 3}},         // entry serves the last blocks
	} {
		var n memNet
		svcs := n.mesh(t, m, tok, spans)
		for i, svc := range svcs {
			got, st := generate(t, svc, Request{Prompt: "hello", Steps: 40})
			if got != want {
				t.Errorf("spans %v entry %d: got %q, want %q", spans, i, got, want)
			}
			if st.Forward != 40 {
				t.Errorf("spans %v: %d forward passes, want 40", spans, st.Forward)
			}
		}
		waitIdle(t, svcs)
	}
}

// TestBatchingSameOutput runs concurrent sessions through a mesh that
// batches every step: each text is the one the session prints alone.
func TestBatchingSameOutput(t *testing.T) {
	m, tok := synth(t)
	var alone memNet
	svc := alone.mesh(t, m, tok, [][2]int{{0, 6}})[0]
	prompts := []string{"a", "hello", "the cat", "x y z", "mesh", "strata", "batch", "seven"}
	want := map[string]string{}
	for _, p := range prompts {
		want[p], _ = generate(t, svc, Request{Prompt: p, Steps: 40})
	}
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 3}, {3, 6}})
	for _, s := range svcs {
		s.cfg.ForceBatch = true
	}
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			var out bytes.Buffer
			_, err := svcs[i%2].Generate(context.Background(), Request{Prompt: p, Steps: 40}, func(tk Token) error {
				out.Write(tk.Piece)
				return nil
			})
			if err != nil {
				t.Error(err)
			} else if out.String() != want[p] {
				t.Errorf("prompt %q batched: %q, alone: %q", p, out.String(), want[p])
			}
		})
	}
	wg.Wait()
	waitIdle(t, svcs)
	for _, s := range svcs {
		s.mu.Lock()
		if len(s.batchers) != 0 {
			t.Errorf("%d batchers still running after every session ended", len(s.batchers))
		}
		s.mu.Unlock()
	}
}

// waitIdle waits until every service has freed its sessions: hops free
// them as the closing of the entry's stream travels down the chain.
func waitIdle(t *testing.T, svcs []*Service) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, svc := range svcs {
		for svc.Sessions() != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("a service still holds %d sessions", svc.Sessions())
			}
			time.Sleep(time.Millisecond)
		}
	}
}

func TestGenerateMissingBlocks(t *testing.T) {
	m, tok := synth(t)
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 2}, {4, 6}})
	_, err := svcs[0].Generate(context.Background(), Request{Prompt: "x", Steps: 5}, func(Token) error { return nil })
	if !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), "blocks 2:4") {
		t.Fatalf("err = %v, want ErrNoRoute naming blocks 2:4", err)
	}
}

func TestGenerateDeadPeer(t *testing.T) {
	m, tok := synth(t)
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 3}, {3, 6}})
	n.mu.Lock()
	delete(n.svcs, "peer1")
	n.mu.Unlock()
	_, err := svcs[0].Generate(context.Background(), Request{Prompt: "x", Steps: 5}, func(Token) error { return nil })
	if !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), "peer1: cannot reach peer") {
		t.Fatalf("err = %v, want no route, naming the failure of peer1", err)
	}
}

// TestAdmission checks that sessions beyond a peer's KV budget or
// request limit are refused with ErrBusy, and that a busy hop is routed
// around without being banned.
func TestAdmission(t *testing.T) {
	m, tok := synth(t)
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 6}, {0, 6}})
	svcs[0].cfg.MaxKVBytes = 1
	_, err := svcs[0].Generate(context.Background(), Request{Prompt: "a", Steps: 4}, func(Token) error { return nil })
	if !errors.Is(err, ErrBusy) {
		t.Errorf("entry over its KV budget: err = %v, want ErrBusy", err)
	}
	svcs[0].cfg.MaxKVBytes = 1 << 30

	// peer1 full: a request entering at peer1 is busy; one entering at
	// peer0 runs on peer0 alone.
	svcs[1].cfg.MaxKVBytes = 1
	if _, err := svcs[1].Generate(context.Background(), Request{Prompt: "a", Steps: 4}, func(Token) error { return nil }); !errors.Is(err, ErrBusy) {
		t.Errorf("err = %v, want ErrBusy", err)
	}
	// An entry serving nothing itself meets a busy hop: it routes around it.
	var n2 memNet
	svcs = n2.mesh(t, m, tok, [][2]int{{0, 0}, {0, 6}, {0, 6}})
	svcs[1].cfg.MaxKVBytes = 1
	st, err := svcs[0].Generate(context.Background(), Request{Prompt: "a", Steps: 8}, func(Token) error { return nil })
	if err != nil || st.Chain[0].Peer != "peer2" {
		t.Errorf("busy hop: %v, chain %v; want a chain through peer2", err, st.Chain)
	}
	if b := svcs[0].Banned(); len(b) != 0 {
		t.Errorf("a busy peer was banned: %v", b)
	}
	// Every server busy: the request fails and says why.
	svcs[2].cfg.MaxKVBytes = 1
	_, err = svcs[0].Generate(context.Background(), Request{Prompt: "a", Steps: 8}, func(Token) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Errorf("all busy: err = %v, want it to say busy", err)
	}
	waitIdle(t, svcs)
}

// TestFailover kills a hop in the middle of a generation; a peer holding
// the same blocks takes over, the history is replayed to it, and the text
// is the same as without the failure.
func TestFailover(t *testing.T) {
	m, tok := synth(t)
	var whole memNet
	want, _ := generate(t, whole.mesh(t, m, tok, [][2]int{{0, 6}})[0], Request{Prompt: "fail", Steps: 60})
	for _, victim := range []string{"peer1", "peer2"} { // the middle hop, then the last
		var n memNet
		svcs := n.mesh(t, m, tok, [][2]int{{0, 2}, {2, 4}, {4, 6}, {2, 6}})
		// Make peer3 the fallback: it is slower, so the first chain avoids it.
		servers := []Server{{Peer: "peer0", Lo: 0, Hi: 2}, {Peer: "peer1", Lo: 2, Hi: 4}, {Peer: "peer2", Lo: 4, Hi: 6},
			{Peer: "peer3", Lo: 2, Hi: 6, BlockMillis: 10}}
		for _, svc := range svcs {
			svc.cfg.Servers = func(string) []Server { return servers }
		}
		var out bytes.Buffer
		count := 0
		st, err := svcs[0].Generate(context.Background(), Request{Prompt: "fail", Steps: 60}, func(tk Token) error {
			out.Write(tk.Piece)
			if count++; count == 30 {
				n.kill(victim)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("kill %s: %v", victim, err)
		}
		if out.String() != want {
			t.Errorf("kill %s: got %q, want %q", victim, out.String(), want)
		}
		if len(st.Failovers) == 0 || !strings.Contains(st.Failovers[0], victim) {
			t.Errorf("kill %s: failovers %q, want one naming it", victim, st.Failovers)
		}
		if got := svcs[0].Banned(); len(got) != 1 || got[0] != victim {
			t.Errorf("kill %s: banned %v", victim, got)
		}
	}
}

// TestHostileFrames sends malformed streams to a server; each gets an
// error or a closed stream, and the server still serves afterwards.
func TestHostileFrames(t *testing.T) {
	m, tok := synth(t)
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 6}, {0, 6}})
	frame := func(typ byte, payload []byte) []byte {
		return append([]byte{typ, byte(len(payload) >> 24), byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload))}, payload...)
	}
	open := `{"session":"s1","model":"model","lo":0,"hi":6,"entry":{"peer":"peer0"}}`
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\n")},
		{"huge length", []byte{frameOpen, 0xff, 0xff, 0xff, 0xff}},
		{"unknown type", frame(42, nil)},
		{"bad json", frame(frameOpen, []byte("{"))},
		{"wrong model", frame(frameOpen, []byte(`{"session":"s","model":"other","lo":0,"hi":6,"entry":{"peer":"peer0"}}`))},
		{"span not served", frame(frameOpen, []byte(`{"session":"s","model":"model","lo":0,"hi":9,"entry":{"peer":"peer0"}}`))},
		{"broken chain", frame(frameOpen, []byte(`{"session":"s","model":"model","lo":0,"hi":2,"next":[{"peer":"p","lo":5,"hi":6}],"entry":{"peer":"peer0"}}`))},
		{"unknown return", frame(frameReturn, []byte(`{"session":"nope"}`))},
		{"step before open", frame(frameStep, make([]byte, 8))},
		{"short step", append(frame(frameOpen, []byte(open)), frame(frameStep, []byte{1, 2, 3})...)},
		{"step past context", append(frame(frameOpen, []byte(open)), frame(frameStep, []byte{255, 255, 0, 0, 1, 0, 0, 0})...)},
		{"step with gap", append(frame(frameOpen, []byte(open)), frame(frameStep, append([]byte{5, 0, 0, 0, 1, 0, 0, 0}, make([]byte, 4*64)...))...)},
		{"nan activation", append(frame(frameOpen, []byte(open)), frame(frameStep, append([]byte{0, 0, 0, 0, 1, 0, 0, 0}, bytes.Repeat([]byte{0, 0, 0xc0, 0x7f}, 64)...))...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := duplex()
			done := make(chan struct{})
			go func() { svcs[1].HandleStream(b, "peer0"); close(done) }()
			go func() { a.Write(tc.in); a.w.Close() }()
			reply, _ := io.ReadAll(a)
			a.Close()
			<-done
			if tc.name != "empty" && tc.name != "huge length" && len(reply) == 0 {
				t.Errorf("no reply to %s", tc.name)
			}
		})
	}
	if got, _ := generate(t, svcs[0], Request{Prompt: "a", Steps: 8}); got == "" {
		t.Error("server stopped working after hostile input")
	}
	waitIdle(t, svcs)
}

func TestQueryOverStream(t *testing.T) {
	m, tok := synth(t)
	var n memNet
	svcs := n.mesh(t, m, tok, [][2]int{{0, 3}, {3, 6}})
	want, _ := generate(t, svcs[0], Request{Prompt: "hi", Steps: 20})
	rw, err := memTransport{&n, "client"}.Open(context.Background(), "peer1", nil, GenerateProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	var got bytes.Buffer
	st, err := Query(context.Background(), rw, Request{Prompt: "hi", Steps: 20}, func(tk Token) error {
		got.Write(tk.Piece)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want || st.Forward != 20 {
		t.Errorf("Query = %q (%d passes), want %q (20)", got.String(), st.Forward, want)
	}
	_, err = Query(context.Background(), rw, Request{Prompt: "hi", Temperature: -1}, func(Token) error { return nil })
	if err == nil {
		t.Error("negative temperature accepted")
	}
}

// TestReferenceAcrossPeers runs REFERENCE.md Case 2 (greedy, 200 steps,
// empty prompt) on stories260K split over three peers, entering at each,
// and on one peer: the text must match run.c byte for byte.
func TestReferenceAcrossPeers(t *testing.T) {
	m, tok := reftest.Load(t)
	ref := reftest.Read(t)
	for _, spans := range [][][2]int{{{0, 5}}, {{0, 2}, {2, 4}, {4, 5}}} {
		var n memNet
		svcs := n.mesh(t, m, tok, spans)
		for i, svc := range svcs {
			var ids []int
			var out bytes.Buffer
			st, err := svc.Generate(context.Background(), Request{Steps: 200}, func(tk Token) error {
				ids = append(ids, tk.ID)
				out.Write(tk.Piece)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			out.WriteString("\n") // run.c's final newline
			if out.String() != ref.Case2Text {
				t.Errorf("spans %v entry %d: text\n%s\nwant\n%s", spans, i, out.String(), ref.Case2Text)
			}
			if fmt.Sprint(ids) != fmt.Sprint(ref.Case2IDs) || st.Forward != 200 || st.Stop != "steps" {
				t.Errorf("spans %v entry %d: ids %v (%d passes, stop %s), want %v", spans, i, ids, st.Forward, st.Stop, ref.Case2IDs)
			}
		}
		waitIdle(t, svcs)
	}
}
