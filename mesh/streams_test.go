package mesh

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

func TestHandleAndOpen(t *testing.T) {
	const proto = "/strata/test-echo/1"
	srv := newTestMesh(t, Config{})
	remotes := make(chan string, 1)
	srv.Handle(proto, func(rw io.ReadWriteCloser, remote string) {
		remotes <- remote
		p, err := ReadFrame(rw, 1024)
		if err != nil {
			return
		}
		_ = WriteFrame(rw, append([]byte("echo:"), p...))
	})
	cli := newTestMesh(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Not connected yet: Open must dial using the advertised addresses,
	// skipping junk and addresses of other peers.
	addrs := append([]string{"garbage", "/ip4/127.0.0.1/tcp/1/p2p/" + testID}, srv.AddrStrings()...)
	rw, err := cli.Open(ctx, srv.ID().String(), addrs, proto)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer rw.Close()
	if err := WriteFrame(rw, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFrame(rw, 1024)
	if err != nil || string(got) != "echo:hi" {
		t.Fatalf("reply = %q, %v; want \"echo:hi\"", got, err)
	}
	if r := <-remotes; r != cli.ID().String() {
		t.Fatalf("handler saw remote %s, want %s", r, cli.ID())
	}
}

func TestOpenErrors(t *testing.T) {
	m := newTestMesh(t, Config{})
	ctx := context.Background()
	if _, err := m.Open(ctx, "not-a-peer", nil, "/x/1"); !errors.Is(err, ErrBadAddr) {
		t.Fatalf("bad id: err = %v, want ErrBadAddr", err)
	}
	if _, err := m.Open(ctx, m.ID().String(), nil, "/x/1"); err == nil {
		t.Fatal("Open to self succeeded")
	}
	ctx2, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := m.Open(ctx2, testID, []string{"/ip4/127.0.0.1/tcp/1"}, "/x/1"); err == nil {
		t.Fatal("Open to an unreachable peer succeeded")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(ctx, testID, nil, "/x/1"); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: err = %v, want ErrClosed", err)
	}
}

func TestIDFromKey(t *testing.T) {
	k, err := NewEphemeralKey()
	if err != nil {
		t.Fatal(err)
	}
	id, err := IDFromKey(k)
	if err != nil || id == "" {
		t.Fatalf("IDFromKey = %q, %v", id, err)
	}
	if _, err := IDFromKey(nil); err == nil {
		t.Fatal("IDFromKey(nil) succeeded")
	}
}
