package gossip

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestTableKeepsNewestSeq(t *testing.T) {
	var tab Table
	a := validAdvert(t)
	if !tab.Update(a, t0) {
		t.Fatal("first advert not stored")
	}
	old := a
	old.Seq, old.Load = a.Seq-1, 9
	if tab.Update(old, t0) {
		t.Fatal("older seq replaced newer")
	}
	if tab.Update(a, t0) {
		t.Fatal("same seq reported as change")
	}
	newer := a
	newer.Seq, newer.Load = a.Seq+1, 3
	if !tab.Update(newer, t0) {
		t.Fatal("newer seq not stored")
	}
	got, ok := tab.Get(a.Peer)
	if !ok || got.Load != 3 {
		t.Fatalf("Get = %+v, %v; want load 3", got, ok)
	}
	bad := newer
	bad.Seq, bad.Cores = newer.Seq+1, 0
	if tab.Update(bad, t0) {
		t.Fatal("invalid advert stored")
	}
}

func TestTableGetReturnsCopy(t *testing.T) {
	var tab Table
	a := validAdvert(t)
	tab.Update(a, t0)
	a.Addrs[0] = "/ip4/6.6.6.6/tcp/1"
	got, _ := tab.Get(a.Peer)
	got.Addrs[1] = "/ip4/7.7.7.7/tcp/1"
	again, _ := tab.Get(a.Peer)
	if again.Addrs[0] != "/ip4/127.0.0.1/tcp/4001" || again.Addrs[1] != "/ip4/127.0.0.1/udp/4001/quic-v1" {
		t.Fatalf("table aliased caller slices: %v", again.Addrs)
	}
}

func TestTableExpire(t *testing.T) {
	tab := NewTable(10*time.Second, 0)
	a, b := validAdvert(t), validAdvert(t)
	tab.Update(a, t0)
	tab.Update(b, t0.Add(5*time.Second))
	if gone := tab.Expire(t0.Add(10 * time.Second)); len(gone) != 0 {
		t.Fatalf("expired %v at exactly TTL, want none", gone)
	}
	gone := tab.Expire(t0.Add(10*time.Second + time.Millisecond))
	if !slices.Equal(gone, []peer.ID{a.Peer}) {
		t.Fatalf("expired %v, want [%s]", gone, a.Peer)
	}
	if _, ok := tab.Get(a.Peer); ok {
		t.Fatal("expired peer still present")
	}
	// A fresh advert refreshes b's receipt time.
	b.Seq++
	tab.Update(b, t0.Add(14*time.Second))
	if gone := tab.Expire(t0.Add(20 * time.Second)); len(gone) != 0 {
		t.Fatalf("expired %v although b spoke at 14s", gone)
	}
	if tab.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tab.Len())
	}
}

func TestTableMaxPeers(t *testing.T) {
	tab := NewTable(time.Second, 2)
	a, b, c := validAdvert(t), validAdvert(t), validAdvert(t)
	tab.Update(a, t0)
	tab.Update(b, t0)
	if tab.Update(c, t0) {
		t.Fatal("third peer accepted by a 2-peer table")
	}
	a.Seq++
	if !tab.Update(a, t0) {
		t.Fatal("known peer refused while table full")
	}
	tab.Expire(t0.Add(2 * time.Second))
	if !tab.Update(c, t0.Add(2*time.Second)) {
		t.Fatal("new peer refused after expiry made room")
	}
}

func TestTableAllAndServers(t *testing.T) {
	var tab Table
	m1, m2 := testModel(t, "one"), testModel(t, "two")
	spans := []struct {
		model  string
		lo, hi int
	}{{m1, 3, 5}, {m1, 0, 3}, {m2, 0, 5}, {"", 0, 0}, {m1, 0, 2}}
	for _, s := range spans {
		a := validAdvert(t)
		a.Model, a.Lo, a.Hi = s.model, s.lo, s.hi
		if !tab.Update(a, t0) {
			t.Fatalf("advert %+v refused", s)
		}
	}
	all := tab.All()
	if len(all) != len(spans) {
		t.Fatalf("All returned %d adverts, want %d", len(all), len(spans))
	}
	if !slices.IsSortedFunc(all, byPeer) {
		t.Fatal("All not sorted by peer id")
	}
	srv := tab.Servers(m1)
	var got [][2]int
	for _, a := range srv {
		got = append(got, [2]int{a.Lo, a.Hi})
	}
	if want := [][2]int{{0, 2}, {0, 3}, {3, 5}}; !slices.Equal(got, want) {
		t.Fatalf("Servers(m1) spans = %v, want %v", got, want)
	}
	if len(tab.Servers("")) != 0 {
		t.Fatal(`Servers("") returned adverts`)
	}
}

func TestTableConcurrent(t *testing.T) {
	var tab Table
	ads := make([]Advert, 8)
	for i := range ads {
		ads[i] = validAdvert(t)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				for k := range ads {
					a := ads[(k+w)%len(ads)]
					a.Seq = uint64(i + 1)
					tab.Update(a, t0.Add(time.Duration(i)*time.Millisecond))
				}
				tab.All()
				tab.Servers(ads[0].Model)
				tab.Expire(t0)
			}
		})
	}
	wg.Wait()
	for _, a := range tab.All() {
		if a.Seq != 200 {
			t.Fatalf("peer %s kept seq %d, want 200", a.Peer, a.Seq)
		}
	}
}

func TestTableMarkGone(t *testing.T) {
	var tab Table
	a := validAdvert(t)
	if tab.MarkGone(a.Peer) {
		t.Error("MarkGone of an unknown peer reported a change")
	}
	tab.Update(a, t0)
	if !tab.MarkGone(a.Peer) || tab.MarkGone(a.Peer) {
		t.Fatal("MarkGone: want true once, then false")
	}
	if _, ok := tab.Get(a.Peer); ok || tab.Len() != 0 || len(tab.All()) != 0 || len(tab.Servers(a.Model)) != 0 {
		t.Fatal("a gone peer is still visible")
	}
	// Its own adverts in flight do not bring it back; a newer one does.
	if tab.Update(a, t0) {
		t.Error("the same advert again revived a gone peer")
	}
	newer := a
	newer.Seq++
	if !tab.Update(newer, t0) {
		t.Fatal("a newer advert did not revive a gone peer")
	}
	if got := tab.Servers(a.Model); len(got) != 1 || got[0].Seq != newer.Seq {
		t.Fatalf("Servers after revival = %+v", got)
	}
	// Gone peers still expire.
	tab.MarkGone(a.Peer)
	if gone := tab.Expire(t0.Add(time.Hour)); len(gone) != 1 {
		t.Errorf("Expire removed %v, want the gone peer", gone)
	}
}
