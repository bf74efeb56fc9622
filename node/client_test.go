package node

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
)

func swarmKey(t *testing.T) []byte {
	t.Helper()
	file, err := mesh.NewSwarmKey()
	if err != nil {
		t.Fatal(err)
	}
	psk, err := mesh.DecodeSwarmKey(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	return psk
}

// TestClientSwarmKey: a node of a private mesh answers a client holding
// its swarm key, and refuses a client without it or with another key, with
// an error that says so (mesh.ErrHandshake), well before the request's
// deadline.
func TestClientSwarmKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	psk := swarmKey(t)
	dir, id := tinyRepo(t)
	n, err := Start(ctx, Config{Repo: dir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, PSK: psk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	addr := n.Addrs()[0]

	member := Client{SwarmKey: psk}
	st, _, err := member.Status(ctx, addr)
	if err != nil || st.Peer != n.ID() {
		t.Fatalf("status with the key: %s, %v; want %s", st.Peer, err, n.ID())
	}
	var text strings.Builder
	if _, err := member.Query(ctx, addr, infer.Request{Prompt: "a", Steps: 5}, func(tok infer.Token) error {
		text.Write(tok.Piece)
		return nil
	}); err != nil || text.Len() == 0 {
		t.Fatalf("generate with the key: %q, %v", text.String(), err)
	}
	if err := member.Reach(ctx, addr); err != nil {
		t.Errorf("Reach with the key: %v", err)
	}

	for name, c := range map[string]Client{"no key": {}, "another key": {SwarmKey: swarmKey(t)}} {
		// A refusal must come from the handshake, not from this deadline.
		qctx, qcancel := context.WithTimeout(ctx, time.Minute)
		_, _, err := c.Status(qctx, addr)
		qcancel()
		if !errors.Is(err, mesh.ErrHandshake) {
			t.Errorf("%s: status err = %v, want mesh.ErrHandshake", name, err)
		}
		t.Logf("%s: %v", name, err)
		if len(c.SwarmKey) > 0 {
			continue // two keys fail only at libp2p's handshake timeout: once is enough
		}
		qctx, qcancel = context.WithTimeout(ctx, time.Minute)
		_, err = c.Query(qctx, addr, infer.Request{Prompt: "a", Steps: 5}, func(infer.Token) error { return nil })
		qcancel()
		if !errors.Is(err, mesh.ErrHandshake) {
			t.Errorf("%s: generate err = %v, want mesh.ErrHandshake", name, err)
		}
	}
	if _, _, err := member.Status(ctx, "/ip4/127.0.0.1/udp/1/quic-v1/p2p/"+n.ID()); err == nil || !strings.Contains(err.Error(), "TCP") {
		t.Errorf("a QUIC address with a key: err = %v, want one asking for a TCP address", err)
	}
}
