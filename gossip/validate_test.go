package gossip

import (
	"context"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// newValidator returns a Gossip with just enough state to run validate.
func newValidator(now time.Time) *Gossip {
	g := &Gossip{table: NewTable(0, 0), maxSkew: DefaultMaxSkew, clock: func() time.Time { return now }}
	g.log = discardLogger()
	return g
}

func message(author peer.ID, data []byte) *pubsub.Message {
	return &pubsub.Message{Message: &pb.Message{From: []byte(author), Data: data, Topic: ptr(Topic)}}
}

func ptr[T any](v T) *T { return &v }

func TestValidatorVerdicts(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	a := validAdvert(t)
	a.Time = now.UnixMilli()
	enc := func(a Advert) []byte {
		b, err := a.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	shifted := func(d time.Duration) []byte {
		b := a
		b.Time = now.Add(d).UnixMilli()
		return enc(b)
	}
	tests := []struct {
		name   string
		author peer.ID
		data   []byte
		want   pubsub.ValidationResult
	}{
		{"valid", a.Peer, enc(a), pubsub.ValidationAccept},
		{"slightly skewed", a.Peer, shifted(-20 * time.Second), pubsub.ValidationAccept},
		{"malformed", a.Peer, []byte("not json"), pubsub.ValidationReject},
		{"oversized", a.Peer, make([]byte, MaxAdvertSize+1), pubsub.ValidationReject},
		{"impersonation", newPeerID(t), enc(a), pubsub.ValidationReject},
		{"too old", a.Peer, shifted(-31 * time.Second), pubsub.ValidationIgnore},
		{"from the future", a.Peer, shifted(31 * time.Second), pubsub.ValidationIgnore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newValidator(now)
			msg := message(tt.author, tt.data)
			if got := g.validate(context.Background(), tt.author, msg); got != tt.want {
				t.Fatalf("verdict = %v, want %v", got, tt.want)
			}
			if tt.want == pubsub.ValidationAccept {
				if ad, ok := msg.ValidatorData.(Advert); !ok || ad.Peer != a.Peer {
					t.Fatalf("ValidatorData = %#v, want the decoded advert", msg.ValidatorData)
				}
			}
		})
	}
}

func TestValidatorIgnoresOldSeq(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	g := newValidator(now)
	a := validAdvert(t)
	a.Time = now.UnixMilli()
	g.table.Update(a, now)
	for _, seq := range []uint64{a.Seq - 1, a.Seq} {
		b := a
		b.Seq = seq
		data, _ := b.Encode()
		if got := g.validate(context.Background(), a.Peer, message(a.Peer, data)); got != pubsub.ValidationIgnore {
			t.Fatalf("seq %d after %d: verdict %v, want Ignore", seq, a.Seq, got)
		}
	}
	b := a
	b.Seq++
	data, _ := b.Encode()
	if got := g.validate(context.Background(), a.Peer, message(a.Peer, data)); got != pubsub.ValidationAccept {
		t.Fatalf("newer seq: verdict %v, want Accept", got)
	}
	if st := g.Stats(); st != (Stats{Accepted: 1, Ignored: 2}) {
		t.Fatalf("Stats = %+v, want 1 accepted, 2 ignored", st)
	}
}
