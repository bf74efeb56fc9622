package mesh

import (
	"context"
	"testing"
	"time"
)

func TestPingRecordsRTT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
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
		defer m.Close()
		ms = append(ms, m)
	}
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
