package mesh

import (
	"context"
	"io"
	"testing"
	"time"
)

// pair starts two loopback meshes, closed when the test ends.
func pair(t *testing.T, ctx context.Context) []*Mesh {
	t.Helper()
	var ms []*Mesh
	for range 2 {
		key, err := NewEphemeralKey()
		if err != nil {
			t.Fatal(err)
		}
		m, err := New(ctx, Config{Key: key, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, NoDHT: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		ms = append(ms, m)
	}
	return ms
}

func TestPingRecordsRTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ms := pair(t, ctx)
	b := ms[1].ID().String()
	if got := ms[0].RTT(b); got != 0 {
		t.Errorf("RTT before any ping = %v, want 0", got)
	}
	if err := ms[0].ConnectAddrs(ctx, b, ms[1].AddrStrings()); err != nil {
		t.Fatal(err)
	}
	rtt, err := ms[0].Ping(ctx, b)
	if err != nil || rtt <= 0 {
		t.Fatalf("Ping = %v, %v; want a positive RTT", rtt, err)
	}
	if got := ms[0].RTT(b); got <= 0 {
		t.Errorf("RTT after a ping = %v, want > 0", got)
	}
	if _, err := ms[0].Ping(ctx, "not-a-peer"); err == nil {
		t.Error("Ping of a malformed peer id succeeded")
	}
}

func TestOpenProtected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ms := pair(t, ctx)
	ms[1].Handle("/test/echo/1", func(rw io.ReadWriteCloser, remote string) { io.Copy(rw, rw) })
	b := ms[1].ID()
	rw, err := ms[0].OpenProtected(ctx, b.String(), ms[1].AddrStrings(), "/test/echo/1")
	if err != nil {
		t.Fatal(err)
	}
	if !ms[0].cm.IsProtected(b, "") {
		t.Error("connection not protected while the pipeline stream is open")
	}
	rw.Close()
	if ms[0].cm.IsProtected(b, "") {
		t.Error("connection still protected after the stream closed")
	}
}
