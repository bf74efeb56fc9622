package infer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// holders is a mesh where peer0 is the entry with blocks 0:2 and peer1 and
// peer2 both hold 2:6; the test edits the server list as adverts would.
type holders struct {
	n    memNet
	svcs []*Service
	mu   sync.Mutex
	list []Server
}

func newHolders(t *testing.T) *holders {
	m, tok := synth(t)
	h := &holders{}
	h.svcs = h.n.mesh(t, m, tok, [][2]int{{0, 2}, {2, 6}, {2, 6}})
	h.list = []Server{{Peer: "peer0", Lo: 0, Hi: 2, Started: 1}, {Peer: "peer1", Lo: 2, Hi: 6, Started: 1},
		{Peer: "peer2", Lo: 2, Hi: 6, Started: 1}}
	for _, svc := range h.svcs {
		svc.cfg.Servers = func(string) []Server {
			h.mu.Lock()
			defer h.mu.Unlock()
			return slices.Clone(h.list)
		}
	}
	return h
}

// restart brings peer i back with a fresh Service; started is the start
// time its adverts now carry.
func (h *holders) restart(t *testing.T, i int, started int64) {
	cfg := h.svcs[i].cfg
	svc, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.n.mu.Lock()
	h.n.svcs[cfg.Transport.Self()] = svc
	h.n.mu.Unlock()
	h.svcs[i] = svc
	h.mu.Lock()
	h.list[i].Started = started
	h.mu.Unlock()
}

func (h *holders) generate(req Request) (string, Stats, error) {
	var out strings.Builder
	st, err := h.svcs[0].Generate(context.Background(), req, func(tk Token) error {
		out.Write(tk.Piece)
		return nil
	})
	return out.String(), st, err
}

// TestBannedHolderLastResort: peer1 fails and is banned for long; it comes
// back without a sign of restart, then peer2, the other holder, dies. The
// entry tries banned peer1 rather than fail, the text is right, and
// peer1's ban is lifted because its chain opened.
func TestBannedHolderLastResort(t *testing.T) {
	m, tok := synth(t)
	var whole memNet
	want, _ := generate(t, whole.mesh(t, m, tok, [][2]int{{0, 6}})[0], Request{Prompt: "ban", Steps: 40})

	h := newHolders(t)
	h.n.kill("peer1")
	if got, _, err := h.generate(Request{Prompt: "ban", Steps: 40}); err != nil || got != want {
		t.Fatalf("peer1 dead: %q, %v; want %q", got, err, want)
	}
	if b := h.svcs[0].Banned(); !slices.Equal(b, []string{"peer1"}) {
		t.Fatalf("banned %v, want [peer1]", b)
	}
	// Make the ban long, as after a few failures in a row.
	for range 4 {
		h.svcs[0].bans.add("peer1", 1, errors.New("earlier failure"), time.Now())
	}
	h.restart(t, 1, 1) // the same start time: the entry cannot tell
	h.n.kill("peer2")
	got, st, err := h.generate(Request{Prompt: "ban", Steps: 40})
	if err != nil || got != want {
		t.Fatalf("peer2 dead, peer1 banned but back: %q, %v; want %q", got, err, want)
	}
	if len(st.Chain) != 2 || st.Chain[1].Peer != "peer1" {
		t.Errorf("chain %v, want it through peer1", st.Chain)
	}
	if b := h.svcs[0].Banned(); !slices.Equal(b, []string{"peer2"}) {
		t.Errorf("banned %v, want [peer2]: peer1 answered", b)
	}
	waitIdle(t, h.svcs)
}

// TestRestartLiftsBan: a banned peer whose adverts show a new start time
// is routed through again at once, with its backoff forgotten.
func TestRestartLiftsBan(t *testing.T) {
	h := newHolders(t)
	h.n.kill("peer1")
	if _, _, err := h.generate(Request{Prompt: "x", Steps: 5}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		h.svcs[0].bans.add("peer1", 1, errors.New("earlier failure"), time.Now())
	}
	h.restart(t, 1, 2)
	_, st, err := h.generate(Request{Prompt: "x", Steps: 5})
	if err != nil || len(st.Failovers) != 0 || st.Chain[1].Peer != "peer1" {
		t.Errorf("after restart: %v, failovers %q, chain %v; want a clean chain through peer1", err, st.Failovers, st.Chain)
	}
	if b := h.svcs[0].Banned(); len(b) != 0 {
		t.Errorf("banned %v after peer1 restarted", b)
	}
	if _, ok := h.svcs[0].bans.last("peer1"); ok {
		t.Error("peer1's backoff is remembered across its restart")
	}
	waitIdle(t, h.svcs)
}

// TestEveryHolderFailed: when both holders are down the request fails,
// and the error says the blocks' holders failed, not that nobody serves
// them, naming the last failure.
func TestEveryHolderFailed(t *testing.T) {
	h := newHolders(t)
	h.n.kill("peer1")
	h.n.kill("peer2")
	_, st, err := h.generate(Request{Prompt: "x", Steps: 5})
	if !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), "blocks 2:6: every holder (2) failed recently: peer peer") ||
		!strings.Contains(err.Error(), "cannot reach peer") {
		t.Fatalf("err = %v, want ErrNoRoute saying both holders of 2:6 failed, naming the last failure", err)
	}
	if len(st.Failovers) != 2 {
		t.Errorf("failovers %q, want both holders tried", st.Failovers)
	}
	t.Log(err)
	// Again, with both banned: each is tried once more as a last resort.
	_, st, err = h.generate(Request{Prompt: "x", Steps: 5})
	if !errors.Is(err, ErrNoRoute) || !strings.Contains(err.Error(), "every holder (2) failed recently") || len(st.Failovers) != 2 {
		t.Errorf("both banned: err = %v, failovers %q", err, st.Failovers)
	}
}
