package mesh

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// FuzzPeerInputs feeds the parsers of advert-borne input (CIDs and peer
// addresses) hostile strings: they must return errors, never panic, and
// keep only addresses of the named peer.
func FuzzPeerInputs(f *testing.F) {
	for _, s := range []string{
		"bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
		"/ip4/127.0.0.1/tcp/4001",
		"/ip4/127.0.0.1/udp/4001/quic-v1/p2p/" + testID,
		"/ip6/::1/tcp/1/p2p/12D3KooWGzh5SDeCMLXWhSXyTTcMDuB47sn9Ke2aZcp5mY3yFq3D",
		"/dns4/example.com/tcp/1",
		"", "/", "Qm", "z", "/p2p/" + testID,
	} {
		f.Add(s)
	}
	id, err := peer.Decode(testID)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, err := parseCID(s); err == nil && !c.Defined() {
			t.Fatalf("parseCID(%q) returned an undefined CID without error", s)
		}
		_, _ = ParseAddr(s)
		addrs := addrsFor(id, []string{s, s})
		if len(addrs) > maxOpenAddrs {
			t.Fatalf("addrsFor kept %d addresses, limit %d", len(addrs), maxOpenAddrs)
		}
		for _, a := range addrs {
			if _, owner := peer.SplitAddr(a); owner != "" {
				t.Fatalf("addrsFor kept %s with a /p2p/ part", a)
			}
		}
	})
}
