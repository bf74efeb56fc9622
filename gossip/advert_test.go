package gossip

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

func newPeerID(t testing.TB) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func testModel(t testing.TB, name string) string {
	t.Helper()
	h, err := mh.Sum([]byte(name), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return cid.NewCidV1(cid.Raw, h).String()
}

func validAdvert(t testing.TB) Advert {
	return Advert{
		Peer:        newPeerID(t),
		Addrs:       []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/127.0.0.1/udp/4001/quic-v1"},
		Cores:       8,
		MemFree:     16 << 30,
		GFLOPS:      42.5,
		BlockMillis: 1.25,
		Model:       testModel(t, "m"),
		Lo:          0,
		Hi:          5,
		Load:        0.5,
		FreeKV:      4096,
		Version:     "strata 0.1.0",
		Seq:         7,
		Time:        1_700_000_000_000,
	}
}

func TestAdvertRoundTrip(t *testing.T) {
	a := validAdvert(t)
	b, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAdvert(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Encode()
	if string(b) != string(b2) {
		t.Fatalf("round trip changed advert:\n got %s\nwant %s", b2, b)
	}
	if got.Peer != a.Peer || got.GFLOPS != a.GFLOPS || got.Seq != a.Seq {
		t.Fatalf("got %+v, want %+v", got, a)
	}
}

func TestAdvertValidate(t *testing.T) {
	tests := map[string]func(*Advert){
		"no peer":         func(a *Advert) { a.Peer = "" },
		"junk peer":       func(a *Advert) { a.Peer = peer.ID("\x00\x24\x08\x01\x12\x20garbage") },
		"too many addrs":  func(a *Advert) { a.Addrs = make([]string, MaxAddrs+1) },
		"bad addr":        func(a *Advert) { a.Addrs = []string{"/ip4/999.0.0.1/tcp/1"} },
		"long addr":       func(a *Advert) { a.Addrs = []string{"/dns/" + strings.Repeat("a", MaxAddrLen) + "/tcp/1"} },
		"zero cores":      func(a *Advert) { a.Cores = 0 },
		"many cores":      func(a *Advert) { a.Cores = MaxCores + 1 },
		"nan gflops":      func(a *Advert) { a.GFLOPS = math.NaN() },
		"inf gflops":      func(a *Advert) { a.GFLOPS = math.Inf(1) },
		"negative gflops": func(a *Advert) { a.GFLOPS = -1 },
		"huge block ms":   func(a *Advert) { a.BlockMillis = 1e300 },
		"negative load":   func(a *Advert) { a.Load = -0.1 },
		"bad model":       func(a *Advert) { a.Model = "not-a-cid" },
		"lo == hi":        func(a *Advert) { a.Lo, a.Hi = 3, 3 },
		"lo > hi":         func(a *Advert) { a.Lo, a.Hi = 4, 3 },
		"negative lo":     func(a *Advert) { a.Lo = -1 },
		"hi too big":      func(a *Advert) { a.Hi = MaxBlocks + 1 },
		"span without model": func(a *Advert) {
			a.Model = ""
		},
		"negative kv":     func(a *Advert) { a.FreeKV = -1 },
		"long version":    func(a *Advert) { a.Version = strings.Repeat("v", MaxVersionLen+1) },
		"control version": func(a *Advert) { a.Version = "v\x1b[31m" },
		"zero seq":        func(a *Advert) { a.Seq = 0 },
		"zero time":       func(a *Advert) { a.Time = 0 },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			a := validAdvert(t)
			mutate(&a)
			if err := a.Validate(); !errors.Is(err, ErrInvalidAdvert) {
				t.Fatalf("err = %v, want ErrInvalidAdvert", err)
			}
		})
	}
	ok := validAdvert(t)
	ok.Model, ok.Lo, ok.Hi, ok.Addrs, ok.BlockMillis = "", 0, 0, nil, 0
	if err := ok.Validate(); err != nil {
		t.Fatalf("advert without model rejected: %v", err)
	}
}

func TestDecodeAdvertErrors(t *testing.T) {
	a := validAdvert(t)
	good, err := a.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(good, &fields); err != nil {
		t.Fatal(err)
	}
	fields["future_field"] = "ignored"
	extra, _ := json.Marshal(fields)
	if _, err := DecodeAdvert(extra); err != nil {
		t.Fatalf("unknown field rejected: %v", err)
	}
	tests := map[string]struct {
		in   []byte
		want error
	}{
		"empty":    {nil, ErrInvalidAdvert},
		"null":     {[]byte("null"), ErrInvalidAdvert},
		"array":    {[]byte("[]"), ErrInvalidAdvert},
		"trailing": {append(append([]byte{}, good...), []byte(" {}")...), ErrInvalidAdvert},
		"oversize": {append(append([]byte{}, good...), make([]byte, MaxAdvertSize)...), ErrTooLarge},
		"bad type": {[]byte(strings.Replace(string(good), `"cores":8`, `"cores":"8"`, 1)), ErrInvalidAdvert},
		"overflow": {[]byte(strings.Replace(string(good), `"cores":8`, `"cores":1e99`, 1)), ErrInvalidAdvert},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeAdvert(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeTooLarge(t *testing.T) {
	a := validAdvert(t)
	a.Addrs = nil
	for range MaxAddrs {
		a.Addrs = append(a.Addrs, "/dns/"+strings.Repeat("a", 240)+"/tcp/1")
	}
	if _, err := a.Encode(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func FuzzDecodeAdvert(f *testing.F) {
	a := validAdvert(f)
	good, _ := a.Encode()
	f.Add(good)
	a.Model, a.Lo, a.Hi, a.Addrs = "", 0, 0, nil
	noModel, _ := a.Encode()
	f.Add(noModel)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"peer":"12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA","cores":1,"seq":1,"time":1}`))
	f.Add([]byte(`{"peer":"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N","cores":1,"seq":1,"time":1,"addrs":["/ip4/1.2.3.4/tcp/1"]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ad, err := DecodeAdvert(data)
		if err != nil {
			return
		}
		if err := ad.Validate(); err != nil {
			t.Fatalf("decoded advert fails Validate: %v", err)
		}
		enc, err := ad.Encode()
		if err != nil {
			t.Fatalf("decoded advert does not re-encode: %v", err)
		}
		again, err := DecodeAdvert(enc)
		if err != nil {
			t.Fatalf("re-encoded advert does not decode: %v\n%s", err, enc)
		}
		enc2, _ := again.Encode()
		if string(enc) != string(enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

func BenchmarkDecodeAdvert(b *testing.B) {
	a := validAdvert(b)
	data, _ := a.Encode()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeAdvert(data); err != nil {
			b.Fatal(err)
		}
	}
}
