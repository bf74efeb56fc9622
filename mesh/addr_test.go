package mesh

import (
	"errors"
	"strings"
	"testing"
)

const testID = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"

func TestParseAddr(t *testing.T) {
	info, err := ParseAddr("/ip4/127.0.0.1/tcp/4001/p2p/" + testID)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID.String() != testID || len(info.Addrs) != 1 || info.Addrs[0].String() != "/ip4/127.0.0.1/tcp/4001" {
		t.Fatalf("got %v, want id %s with /ip4/127.0.0.1/tcp/4001", info, testID)
	}
	for _, s := range []string{
		"",
		"/ip4/127.0.0.1/tcp/4001",
		"not an addr",
		"/ip4/127.0.0.1/tcp/4001/p2p/notapeerid",
		"/ip4/127.0.0.1/tcp/" + strings.Repeat("1", maxAddrLen),
	} {
		if _, err := ParseAddr(s); !errors.Is(err, ErrBadAddr) {
			t.Errorf("ParseAddr(%q) err = %v, want ErrBadAddr", s, err)
		}
	}
	_, err = ParseAddr("/ip4/127.0.0.1/tcp/4001")
	if !strings.Contains(err.Error(), "/p2p/") {
		t.Errorf("missing-id error %q does not mention /p2p/", err)
	}
}
