package gossip

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type inbox struct {
	mu   sync.Mutex
	msgs []string
}

func (b *inbox) add(from string, data []byte) {
	b.mu.Lock()
	b.msgs = append(b.msgs, from+":"+string(data))
	b.mu.Unlock()
}

func (b *inbox) has(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.msgs {
		if m == s {
			return true
		}
	}
	return false
}

func TestChannel(t *testing.T) {
	ha, hb := newHost(t), newHost(t)
	link(t, ha, hb)
	ga, gb := newGossip(t, ha, Config{}), newGossip(t, hb, Config{})
	check := func(_ string, data []byte) error {
		if string(data) == "bad" {
			return errors.New("bad message")
		}
		return nil
	}
	var ia, ib inbox
	ca, err := ga.Join("/test/chan", 16, check, ia.add)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := gb.Join("/test/chan", 16, check, ib.add)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	eventually(t, 10*time.Second, "peers on the channel", nil, func() bool { return ca.Peers() == 1 && cb.Peers() == 1 })

	ctx := context.Background()
	for _, m := range []string{"bad", "this one is far too long", "hello"} {
		if err := ca.Publish(ctx, []byte(m)); err == nil && m != "hello" {
			t.Errorf("publishing %q: no error", m)
		}
	}
	want := ha.ID().String() + ":hello"
	eventually(t, 10*time.Second, "the message to arrive", nil, func() bool { return ib.has(want) })
	if ib.has(ha.ID().String()+":bad") || ia.has(want) {
		t.Fatalf("refused or own message delivered: a %v, b %v", ia.msgs, ib.msgs)
	}
	if _, err := ga.Join(Topic, 16, check, ia.add); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("joining the advert topic: %v", err)
	}
	if err := ca.Close(); err != nil {
		t.Fatal(err)
	}
	// The name is free again.
	c2, err := ga.Join("/test/chan", 16, check, ia.add)
	if err != nil {
		t.Fatal(err)
	}
	c2.Close()
}
