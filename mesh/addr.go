package mesh

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxAddrLen bounds the length of a multiaddr string accepted from users.
const maxAddrLen = 1024

// ParseAddr parses a full peer address such as
// /ip4/192.0.2.1/tcp/4001/p2p/12D3KooW... into a peer.AddrInfo. The address
// must end in /p2p/<peer id>; errors wrap ErrBadAddr.
func ParseAddr(s string) (peer.AddrInfo, error) {
	m, err := parseMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	return addrInfo(m)
}

func parseMultiaddr(s string) (ma.Multiaddr, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty address", ErrBadAddr)
	}
	if len(s) > maxAddrLen {
		return nil, fmt.Errorf("%w: address is %d bytes, limit %d", ErrBadAddr, len(s), maxAddrLen)
	}
	m, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrBadAddr, s, err)
	}
	return m, nil
}

func addrInfo(m ma.Multiaddr) (peer.AddrInfo, error) {
	transport, id := peer.SplitAddr(m)
	if id == "" {
		return peer.AddrInfo{}, fmt.Errorf("%w: %q has no /p2p/<peer id> suffix; append the peer's id (see `strata id`)", ErrBadAddr, m.String())
	}
	info := peer.AddrInfo{ID: id}
	if len(transport) > 0 {
		info.Addrs = []ma.Multiaddr{transport}
	}
	return info, nil
}
