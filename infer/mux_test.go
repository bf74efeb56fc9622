package infer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/internal/reftest"
	"github.com/strata-mesh/strata/model"
)

// versions returns two versions of the reference model, as a training
// round makes them: the same config, head and tokenizer; the blocks' FFN
// output weights of v2 are v1's scaled by 1.25, enough to change the text.
func versions(t testing.TB) (v1, v2 *model.Model, tok *model.Tokenizer) {
	t.Helper()
	v1, tok = reftest.Load(t)
	return v1, mixed(v1, v1, 0, 1.25), tok
}

// mixed is a model with a's blocks below split and b's from split on, the
// latter's FFN output weights scaled by f.
func mixed(a, b *model.Model, split int, f float32) *model.Model {
	m := *a
	m.Blocks = slices.Clone(a.Blocks)
	for i := split; i < len(m.Blocks); i++ {
		blk := *b.Blocks[i]
		blk.W2 = slices.Clone(blk.W2)
		for j := range blk.W2 {
			blk.W2[j] *= f
		}
		m.Blocks[i] = &blk
	}
	return &m
}

// synthVersions is two versions of the synthetic model, for tests that do
// not depend on what the text says.
func synthVersions(t testing.TB) (v1, v2 *model.Model, tok *model.Tokenizer) {
	t.Helper()
	v1, tok = synth(t)
	return v1, model.Synth(v1.Config, 8), tok
}

// alone is the text m prints for req on one peer holding every block.
func alone(t *testing.T, m *model.Model, tok *model.Tokenizer, req Request) string {
	t.Helper()
	var n memNet
	text, _ := generate(t, n.mesh(t, m, tok, [][2]int{{0, m.Config.NLayers}})[0], req)
	return text
}

// muxes gives each peer a Mux on n.
func (n *memNet) muxes(peers ...string) []*Mux {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.svcs == nil {
		n.svcs = map[string]handler{}
	}
	var out []*Mux
	for _, p := range peers {
		x := NewMux(nil)
		n.svcs[p] = x
		out = append(out, x)
	}
	return out
}

// service builds the Service of model id on peer, serving blocks [lo, hi)
// and knowing servers.
func (n *memNet) service(t *testing.T, peer, id string, m *model.Model, tok *model.Tokenizer, lo, hi int, servers []Server) *Service {
	t.Helper()
	svc, err := New(Config{
		ModelID: id, Model: m, Tokenizer: tok, Lo: lo, Hi: hi,
		Transport: memTransport{n, peer},
		Servers:   func(string) []Server { return servers },
	})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// query sends req to peer over GenerateProtocolID and returns the text.
func query(n *memNet, peer string, req Request) (string, error) {
	rw, err := memTransport{n, "client"}.Open(context.Background(), peer, nil, GenerateProtocolID)
	if err != nil {
		return "", err
	}
	defer rw.Close()
	var out bytes.Buffer
	_, err = Query(context.Background(), rw, req, func(tk Token) error {
		out.Write(tk.Piece)
		return nil
	})
	return out.String(), err
}

func rawFrame(typ byte, payload string) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

// firstReply feeds in to a ProtocolID handler and returns the error frame
// it answers with (nil for an ack or no reply).
func firstReply(t *testing.T, h handler, in []byte) error {
	t.Helper()
	a, b := duplex()
	done := make(chan struct{})
	go func() { h.HandleStream(b, "peer9"); close(done) }()
	go func() { a.Write(in); a.w.Close() }()
	reply, _ := io.ReadAll(a)
	a.Close()
	<-done
	if len(reply) == 0 {
		return nil
	}
	return newConn(bytes.NewBuffer(reply)).readJSON(frameAck, nil)
}

// TestMuxSwapVersions serves two versions of a model split over two peers,
// each with a Mux. A session opened on v1 is still running when both peers
// add v2 and remove v1: it finishes on v1 and prints v1's text, while a
// request made meanwhile is served by v2 and prints v2's.
func TestMuxSwapVersions(t *testing.T) {
	m1, m2, tok := versions(t)
	req := Request{Prompt: "Once upon a time", Steps: 60}
	const split = 3
	L := m1.Config.NLayers
	want1, want2 := alone(t, m1, tok, req), alone(t, m2, tok, req)
	// A hop that switched versions mid-session would change the text.
	for _, m := range []*model.Model{m2, mixed(m1, m1, split, 1.25), mixed(m2, m1, split, 1)} {
		if got := alone(t, m, tok, req); got == want1 {
			t.Fatalf("a mix of versions prints v1's %q; the test needs them to differ", want1)
		}
	}
	var n memNet
	x := n.muxes("peer0", "peer1")
	servers := []Server{{Peer: "peer0", Lo: 0, Hi: split}, {Peer: "peer1", Lo: split, Hi: L}}
	old := []*Service{
		n.service(t, "peer0", "v1", m1, tok, 0, split, servers),
		n.service(t, "peer1", "v1", m1, tok, split, L, servers),
	}
	next := []*Service{
		n.service(t, "peer0", "v2", m2, tok, 0, split, servers),
		n.service(t, "peer1", "v2", m2, tok, split, L, servers),
	}
	x[0].Add(old[0])
	x[1].Add(old[1])

	if got, err := query(&n, "peer0", req); err != nil || got != want1 {
		t.Fatalf("before the swap: %q, %v; want v1's %q", got, err, want1)
	}

	var out bytes.Buffer
	count := 0
	_, err := x[0].Service("v1").Generate(context.Background(), req, func(tk Token) error {
		out.Write(tk.Piece)
		if count++; count != 10 {
			return nil
		}
		for i := range x {
			x[i].Add(next[i])
			if got := x[i].Remove("v1"); got != old[i] {
				t.Errorf("peer%d: Remove(v1) = %p, want %p", i, got, old[i])
			}
			if ids := serviceIDs(x[i]); ids != "v2" {
				t.Errorf("peer%d serves %s after the swap, want v2", i, ids)
			}
		}
		if s := old[1].Sessions(); s != 1 {
			t.Errorf("removed v1 hop holds %d sessions mid-request, want 1", s)
		}
		if got, err := query(&n, "peer0", req); err != nil || got != want2 {
			t.Errorf("new request during the swap: %q, %v; want v2's %q", got, err, want2)
		}
		if _, err := query(&n, "peer0", Request{Model: "v1", Prompt: "Once", Steps: 4}); !errors.Is(err, ErrModel) {
			t.Errorf("request for removed v1: err = %v, want ErrModel", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want1 {
		t.Errorf("session opened on v1: got %q, want v1's %q", out.String(), want1)
	}
	waitIdle(t, append(old, next...))
}

func serviceIDs(x *Mux) string {
	var ids []string
	for _, s := range x.Services() {
		ids = append(ids, s.ModelID())
	}
	return strings.Join(ids, ",")
}

// TestMuxRemovedEntryFailsOver removes v1 from the entry's Mux while it
// fronts a v1 request, then kills the request's last hop. The new chain's
// return stream reaches the removed service through the Mux, so the
// request finishes with v1's text and only the dead hop is banned.
func TestMuxRemovedEntryFailsOver(t *testing.T) {
	m1, m2, tok := versions(t)
	req := Request{Prompt: "Once upon a time", Steps: 60}
	want := alone(t, m1, tok, req)
	const split = 3
	L := m1.Config.NLayers
	var n memNet
	x := n.muxes("peer0", "peer1", "peer2")
	// peer2 is slower, so the first chain goes through peer1.
	servers := []Server{{Peer: "peer0", Lo: 0, Hi: split}, {Peer: "peer1", Lo: split, Hi: L}, {Peer: "peer2", Lo: split, Hi: L, BlockMillis: 10}}
	entry := n.service(t, "peer0", "v1", m1, tok, 0, split, servers)
	x[0].Add(entry)
	x[1].Add(n.service(t, "peer1", "v1", m1, tok, split, L, servers))
	x[2].Add(n.service(t, "peer2", "v1", m1, tok, split, L, servers))

	var out bytes.Buffer
	count := 0
	st, err := entry.Generate(context.Background(), req, func(tk Token) error {
		out.Write(tk.Piece)
		if count++; count == 20 {
			x[0].Add(n.service(t, "peer0", "v2", m2, tok, 0, split, servers))
			x[0].Remove("v1")
			n.kill("peer1")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if len(st.Failovers) != 1 || !strings.Contains(st.Failovers[0], "peer1") || st.Chain[1].Peer != "peer2" {
		t.Errorf("failovers %q, chain %v; want one failover naming peer1, then a chain through peer2", st.Failovers, st.Chain)
	}
	if b := entry.Banned(); len(b) != 1 || b[0] != "peer1" {
		t.Errorf("banned %v, want [peer1]", b)
	}
}

// TestMuxRefusals checks that streams a Mux cannot serve get a clean
// error frame, with the codes a Service uses, and that it serves after.
func TestMuxRefusals(t *testing.T) {
	m1, _, tok := synthVersions(t)
	var n memNet
	x := n.muxes("peer0", "empty")
	svc := n.service(t, "peer0", "v1", m1, tok, 0, 6, []Server{{Peer: "peer0", Lo: 0, Hi: 6}})
	x[0].Add(svc)
	open := func(model string) []byte {
		return rawFrame(frameOpen, `{"session":"s1","model":"`+model+`","lo":0,"hi":6,"entry":{"peer":"peer9"}}`)
	}
	for _, tc := range []struct {
		name string
		mux  *Mux
		in   []byte
		code string
		says string
	}{
		{"unknown model", x[0], open("v3"), CodeRefused, "model v3; this peer serves models v1"},
		{"no model served", x[1], open("v1"), CodeRefused, "this peer serves no model"},
		{"wrong span", x[0], rawFrame(frameOpen, `{"session":"s","model":"v1","lo":0,"hi":9,"entry":{"peer":"peer9"}}`), CodeRefused, "serves blocks 0:6"},
		{"unknown session", x[0], rawFrame(frameReturn, `{"session":"nope"}`), CodeProtocol, `no session "nope"`},
		{"bad json", x[0], rawFrame(frameOpen, "{"), CodeProtocol, "open frame"},
		{"step first", x[0], rawFrame(frameStep, "12345678"), CodeProtocol, "frame type 4"},
		{"unknown type", x[0], rawFrame(42, ""), CodeProtocol, "unknown frame type 42"},
		{"long model id", x[0], open(strings.Repeat("b", maxModel+1)), CodeProtocol, "model id of"},
	} {
		err := firstReply(t, tc.mux, tc.in)
		var he *HopError
		if !errors.As(err, &he) || he.Code != tc.code || !strings.Contains(he.Message, tc.says) {
			t.Errorf("%s: reply %v, want code %s saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	if _, err := query(&n, "peer0", Request{Model: "v3", Prompt: "a", Steps: 4}); !errors.Is(err, ErrModel) {
		t.Errorf("request for an unknown model: err = %v, want ErrModel", err)
	}
	if _, err := query(&n, "empty", Request{Prompt: "a", Steps: 4}); !errors.Is(err, ErrModel) {
		t.Errorf("request to a Mux serving nothing: err = %v, want ErrModel", err)
	}
	want := alone(t, m1, tok, Request{Prompt: "a", Steps: 8})
	for _, model := range []string{"", "v1"} {
		if got, err := query(&n, "peer0", Request{Model: model, Prompt: "a", Steps: 8}); err != nil || got != want {
			t.Errorf("model %q after hostile streams: %q, %v; want %q", model, got, err, want)
		}
	}
	waitIdle(t, []*Service{svc})
}

// TestMuxBookkeeping checks Add, Remove and Services, and that a removed
// service nothing holds any more is forgotten.
func TestMuxBookkeeping(t *testing.T) {
	m1, m2, tok := synthVersions(t)
	var n memNet
	x := n.muxes("peer0")[0]
	mk := func(id string, m *model.Model) *Service { return n.service(t, "peer0", id, m, tok, 0, 6, nil) }
	a, b, a2 := mk("a", m1), mk("b", m2), mk("a", m2)
	x.Add(a)
	x.Add(b)
	if ids := serviceIDs(x); ids != "a,b" {
		t.Errorf("services %s, want a,b", ids)
	}
	x.Add(a2)
	if ids := serviceIDs(x); ids != "b,a" || x.Service("a") != a2 || x.front("") != a2 || x.front("b") != b {
		t.Errorf("after replacing a: services %s; Service(a) new: %v; newest is a: %v", ids, x.Service("a") == a2, x.front("") == a2)
	}
	if got := x.Remove("b"); got != b || x.Remove("b") != nil || x.Service("b") != nil {
		t.Errorf("Remove(b) = %p, want %p; a second Remove returns nil", got, b)
	}
	if x.Remove("a") != a2 || len(x.Services()) != 0 || x.front("") != nil {
		t.Errorf("after removing every service: %s", serviceIDs(x))
	}

	// a, b and a2 are no longer used: once collected, the Mux forgets them.
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		x.owner("s")
		x.mu.Lock()
		left := len(x.retired)
		x.mu.Unlock()
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d removed services still held by the Mux", left)
		}
		time.Sleep(time.Millisecond)
	}
}

// FuzzMuxFirstFrame feeds arbitrary streams to a Mux serving two versions:
// it answers with an ack or an error frame, or nothing, returns once the
// input ends, and frees every session it took.
func FuzzMuxFirstFrame(f *testing.F) {
	m1, m2, tok := synthVersions(f)
	open := func(model string) []byte {
		return rawFrame(frameOpen, `{"session":"s1","model":"`+model+`","lo":0,"hi":6,"entry":{"peer":"peer9"}}`)
	}
	step := rawFrame(frameStep, string(append([]byte{0, 0, 0, 0, 1, 0, 0, 0}, make([]byte, 4*m1.Config.Dim)...)))
	for _, seed := range [][]byte{
		nil,
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{frameOpen, 0xff, 0xff, 0xff, 0xff},
		rawFrame(42, ""),
		open("v1"),
		open("v2"),
		open("v3"),
		append(open("v1"), step...),
		rawFrame(frameOpen, `{"session":"s","model":"v2","lo":0,"hi":3,"next":[{"peer":"peer0","lo":3,"hi":6}],"entry":{"peer":"peer0"}}`),
		rawFrame(frameOpen, `{"session":"s","model":"v1","lo":0,"hi":6,"entry":{"peer":"peer0"}}`),
		rawFrame(frameReturn, `{"session":"nope"}`),
		rawFrame(frameReturn, `[`),
		rawFrame(frameError, `{"message":"x"}`),
	} {
		f.Add(seed)
	}
	var n memNet
	x := n.muxes("peer0")[0]
	servers := []Server{{Peer: "peer0", Lo: 0, Hi: 6}}
	var svcs []*Service
	for i, m := range []*model.Model{m1, m2} {
		svc, err := New(Config{
			ModelID: []string{"v1", "v2"}[i], Model: m, Tokenizer: tok, Lo: 0, Hi: 6,
			Transport: memTransport{&n, "peer0"}, Servers: func(string) []Server { return servers },
			StepTimeout: 2 * time.Second, IdleTimeout: 2 * time.Second,
		})
		if err != nil {
			f.Fatal(err)
		}
		x.Add(svc)
		svcs = append(svcs, svc)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		a, b := duplex()
		done, read := make(chan struct{}), make(chan []byte)
		go func() { x.HandleStream(b, "peer9"); close(done) }()
		go func() { a.Write(in); a.w.Close() }()
		go func() { reply, _ := io.ReadAll(a); read <- reply }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("HandleStream still running 10s after its input ended")
		}
		reply := <-read
		a.Close()
		if len(reply) > 0 {
			if reply[0] != frameAck && reply[0] != frameError {
				t.Errorf("reply starts with frame type %d, want an ack or an error", reply[0])
			}
			if reply[0] == frameError {
				if err := newConn(bytes.NewBuffer(reply)).readJSON(frameAck, nil); !errors.As(err, new(*HopError)) {
					t.Errorf("undecodable error reply: %v", err)
				}
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for _, svc := range svcs {
			for svc.Sessions() != 0 || svc.KVBytes() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%s still holds %d sessions, %d KV bytes", svc.ModelID(), svc.Sessions(), svc.KVBytes())
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
}
