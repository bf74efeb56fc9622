package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/node"
)

func TestPrintStatus(t *testing.T) {
	self := "12D3KooWAbCdEfGhIjKlMnOpQrStUvWxYz0123456789selfAAAA"
	other := "12D3KooWZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210otherBB"
	for _, tc := range []struct {
		name string
		st   node.Status
		want []string // lines, each with its cells separated by runs of spaces
		not  []string
	}{
		{
			name: "covered",
			st: node.Status{
				Peer: self, Version: "0.1.0", Uptime: 75, Model: "bafkmodel", ModelName: "stories260K", Layers: 5, Context: 512,
				Blocks: [2]int{0, 2}, Sessions: 1, Requests: 2, Addrs: []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/10.0.0.1/tcp/4001"},
				Peers: []node.PeerStatus{
					{Peer: self, Blocks: [2]int{0, 2}, GFLOPS: 1.5, BlockMillis: 0.25, Load: 0.5, Cores: 2, Version: "0.1.0"},
					{Peer: other, Blocks: [2]int{2, 5}, Loading: true, GFLOPS: 3, BlockMillis: 0.125, Cores: 8, Version: "0.1.0", Score: ptr(12.5)},
				},
				Covered: true,
				Route:   []infer.Hop{{Peer: self, Lo: 0, Hi: 2}, {Peer: other, Lo: 2, Hi: 5}},
				Banned:  []string{other},
			},
			want: []string{
				"peer " + self,
				"uptime 1m15s",
				"model bafkmodel (stories260K, 5 blocks, context 512)",
				"blocks 0:2",
				"sessions 1",
				"requests 2",
				"addrs /ip4/127.0.0.1/tcp/4001",
				"/ip4/10.0.0.1/tcp/4001",
				"peers (2)",
				"PEER BLOCKS LOADING GFLOPS BLOCK MS LOAD CORES SCORE VERSION",
				"…selfAAAA 0:2 1.50 0.250 0.50 2 - 0.1.0",
				"…0otherBB 2:5 yes 3.00 0.125 0.00 8 12.5 0.1.0",
				"coverage every block is served",
				"route …selfAAAA 0:2 -> …0otherBB 2:5",
				"banned …0otherBB",
			},
		},
		{
			name: "missing",
			st:   node.Status{Peer: self, Model: "bafkmodel", Blocks: [2]int{0, 2}, Loading: []int{2, 4}, Missing: "2:5"},
			want: []string{"blocks 0:2 (loading 2:4)", "peers (0)", "coverage blocks 2:5 are served by no peer", "banned none"},
			not:  []string{"route", "refused", "gossip scores"},
		},
		{
			name: "training run and fetches",
			st: node.Status{Peer: self, Run: &node.RunStatus{ID: "bafkrun", Name: "go", Round: 4, Rounds: 20,
				Last: &node.RoundRecord{Round: 3, Loss: 2.5, Peers: []string{self, other}}},
				Fetches: []node.FetchProgress{{What: "block 3", Done: 256, Total: 1024}}},
			want: []string{"training run go (bafkrun), round 4 in progress; round 3 committed with loss 2.5000 from 2 peers",
				"fetching block 3: 256 of 1024 bytes (25%)"},
		},
		{
			name: "guard",
			st: node.Status{Peer: self, Guard: &node.GuardStatus{
				RateLimited: map[string]uint64{"/strata/content/1": 3190, "/strata/status/1": 7}, Blocked: map[string]uint64{"/strata/status/1": 2},
				BlockedConns: 1, ScoredPeers: 3, BelowGossip: 1, BelowPublish: 1, Graylisted: 1, Graylistings: 2,
				Worst: []node.PeerScore{{Peer: other, Score: -4059.4}}, FetchBans: 1}},
			want: []string{
				"refused rate limit: 3190 on /strata/content/1, 7 on /strata/status/1; resource limits: 2 on /strata/status/1; 0 streams and 1 connections at the resource manager's other limits",
				"gossip scores 3 peers scored: 1 below the gossip threshold, 1 below publish, 1 graylisted now; 2 graylisted since start",
				"lowest scores …0otherBB -4059",
				"fetch bans 1",
			},
		},
		{
			name: "no model",
			st:   node.Status{Peer: self},
			want: []string{"model (none)", "blocks -", "coverage serves no model"},
		},
		{
			name: "hostile text",
			st:   node.Status{Peer: self, Version: "1\x1b[2J\nfake row\t9"},
			want: []string{"version 1[2Jfake row9"},
			not:  []string{"\x1b"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			if err := printStatus(&b, tc.st); err != nil {
				t.Fatal(err)
			}
			out := b.String()
			lines := map[string]bool{}
			for _, l := range strings.Split(out, "\n") {
				lines[strings.Join(strings.Fields(l), " ")] = true
			}
			for _, w := range tc.want {
				if !lines[w] {
					t.Errorf("no line %q in\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("output holds %q:\n%s", n, out)
				}
			}
		})
	}
}

func TestFetchStatus(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/status":
			fmt.Fprint(w, `{"peer":"12D3KooWx","blocks":[0,3],"sessions":4}`)
		default:
			http.Error(w, "nope", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, addr := range []string{host, srv.URL, srv.URL + "/"} {
		st, _, err := fetchStatus(ctx, addr)
		if err != nil || st.Peer != "12D3KooWx" || st.Blocks != [2]int{0, 3} || st.Sessions != 4 {
			t.Errorf("fetchStatus(%q) = %+v, %v", addr, st, err)
		}
	}

	for name, h := range map[string]http.HandlerFunc{
		"500":      func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) },
		"not json": func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>") },
		"no peer":  func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"blocks":[0,1]}`) },
		"too big": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"peer":"`+strings.Repeat("a", maxStatus)+`"}`)
		},
	} {
		bad := httptest.NewServer(h)
		_, _, err := fetchStatus(ctx, bad.URL)
		bad.Close()
		if err == nil || !strings.HasPrefix(err.Error(), "status: ") {
			t.Errorf("%s: err = %v, want a status: error", name, err)
		}
	}
	if _, _, err := fetchStatus(ctx, "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("no server: err = %v, want cannot reach", err)
	}
}

// TestStatusPeer asks a running node for its status over libp2p, as
// strata status --peer does.
func TestStatusPeer(t *testing.T) {
	ctx := context.Background()
	n, err := node.Start(ctx, node.Config{Repo: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var b strings.Builder
	c := &statusCmd{Peer: n.Addrs()[0], Timeout: 30 * time.Second}
	if err := c.run(ctx, nil, &b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"peer " + n.ID(), "coverage serves no model", "banned none"} {
		if !strings.Contains(collapse(b.String()), want) {
			t.Errorf("strata status --peer printed\n%s\nwant a line with %q", b.String(), want)
		}
	}
	c = &statusCmd{Peer: "/ip4/127.0.0.1/tcp/1/p2p/" + n.ID(), Timeout: 10 * time.Second}
	if err := c.run(ctx, nil, &b); err == nil || !strings.HasPrefix(err.Error(), "status: ") {
		t.Errorf("a closed port: err = %v, want a status: error", err)
	}
	if err := (&statusCmd{Timeout: time.Second}).run(ctx, nil, &b); err == nil || !strings.Contains(err.Error(), "--peer") {
		t.Errorf("no address: err = %v, want one naming --http and --peer", err)
	}
}

// collapse turns runs of spaces into one, as tabwriter pads cells.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestStatusPeerSwarmKey: strata status --peer reaches a node of a private
// mesh with --swarm-key, and without it fails at once, naming the flag.
func TestStatusPeerSwarmKey(t *testing.T) {
	ctx := context.Background()
	file, err := mesh.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(keyPath, file, 0o600); err != nil {
		t.Fatal(err)
	}
	psk, err := mesh.LoadSwarmKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(ctx, node.Config{Repo: t.TempDir(), Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PSK: psk})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var b strings.Builder
	c := &statusCmd{Peer: n.Addrs()[0], Timeout: 30 * time.Second, swarmKeyFlag: swarmKeyFlag{SwarmKey: keyPath}}
	if err := c.run(ctx, nil, &b); err != nil {
		t.Fatalf("with --swarm-key: %v", err)
	}
	if !strings.Contains(collapse(b.String()), "peer "+n.ID()) {
		t.Errorf("with --swarm-key, strata status printed\n%s", b.String())
	}
	c = &statusCmd{Peer: n.Addrs()[0], Timeout: 30 * time.Second}
	if err := c.run(ctx, nil, &b); !errors.Is(err, mesh.ErrHandshake) || !strings.Contains(err.Error(), "--swarm-key") {
		t.Errorf("without --swarm-key: err = %v, want a handshake failure naming --swarm-key", err)
	}
}

func ptr[T any](v T) *T { return &v }
