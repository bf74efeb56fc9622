package gossip

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// BenchmarkAdvertPropagation measures the latency from Publish on one end
// of a three-node line to the advert landing in the other end's table.
func BenchmarkAdvertPropagation(b *testing.B) {
	var hs []host.Host
	for range 3 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.Transport(tcp.NewTCPTransport), libp2p.DisableRelay())
		if err != nil {
			b.Fatal(err)
		}
		defer h.Close()
		hs = append(hs, h)
	}
	ctx := context.Background()
	for i := range 2 {
		if err := hs[i].Connect(ctx, peer.AddrInfo{ID: hs[i+1].ID(), Addrs: hs[i+1].Addrs()}); err != nil {
			b.Fatal(err)
		}
	}
	var gs []*Gossip
	for _, h := range hs {
		g, err := New(ctx, h, Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Close()
		gs = append(gs, g)
	}
	src, dst := gs[0], gs[2]
	arrived := make(chan uint64, 1024)
	dst.OnUpdate(func(a Advert) {
		if a.Peer == hs[0].ID() {
			arrived <- a.Seq
		}
	})
	ad := advertFor(hs[0], "bench")
	// Warm up until the GossipSub mesh carries adverts end to end.
	deadline := time.Now().Add(20 * time.Second)
	for warm := false; !warm; {
		if time.Now().After(deadline) {
			b.Fatal("adverts never crossed the line")
		}
		if err := src.Publish(ctx, ad); err != nil {
			b.Fatal(err)
		}
		select {
		case <-arrived:
			warm = true
		case <-time.After(200 * time.Millisecond):
		}
	}
	for len(arrived) > 0 {
		<-arrived
	}
	b.ResetTimer()
	for b.Loop() {
		if err := src.Publish(ctx, ad); err != nil {
			b.Fatal(err)
		}
		want, _ := src.Table().Get(hs[0].ID())
		for seq := uint64(0); seq < want.Seq; {
			select {
			case seq = <-arrived:
			case <-time.After(10 * time.Second):
				b.Fatal("advert lost")
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/2, "µs/hop")
}
