package gossip

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode"
	"unicode/utf8"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Bounds on adverts. Everything in an advert comes from a peer and is
// checked against these before use.
const (
	MaxAdvertSize = 8 << 10 // encoded JSON bytes
	MaxAddrs      = 32
	MaxAddrLen    = 256
	MaxCores      = 4096
	MaxBlocks     = 1024 // upper bound on Hi
	MaxModelLen   = 128
	MaxVersionLen = 64
	MaxGFLOPS     = 1e9 // a billion GFLOP/s; anything above is a lie
	MaxBlockMilli = 1e7 // per-block latency above ~3 hours is a lie
	MaxLoad       = 1e6
	MaxFreeKV     = 1 << 30
)

// Advert is one peer's capacity announcement.
type Advert struct {
	// Peer is the author; it must equal the signing peer of the message.
	Peer peer.ID `json:"peer"`
	// Addrs are multiaddrs the peer can be dialled at (without /p2p/).
	Addrs []string `json:"addrs,omitempty"`
	// Cores is the number of CPU cores, 1..MaxCores.
	Cores int `json:"cores"`
	// MemFree is free memory in bytes.
	MemFree uint64 `json:"mem_free"`
	// GFLOPS is measured compute on the real kernels.
	GFLOPS float64 `json:"gflops"`
	// BlockMillis is the measured latency of one transformer block for one
	// token, in milliseconds; 0 if not measured yet.
	BlockMillis float64 `json:"block_ms,omitempty"`
	// Model is the CID of the served model manifest, or "" if none.
	Model string `json:"model,omitempty"`
	// Lo and Hi are the served block span [Lo,Hi); both 0 if Model is "".
	Lo int `json:"lo"`
	Hi int `json:"hi"`
	// Loading is true while the peer fetches and loads the span: others
	// count it when they place themselves, but do not route through it.
	Loading bool `json:"loading,omitempty"`
	// Load is the current load (active sessions per core, or similar).
	Load float64 `json:"load"`
	// FreeKV is the number of free KV-cache tokens.
	FreeKV int `json:"free_kv"`
	// Version is the software version.
	Version string `json:"version,omitempty"`
	// Seq increases with every advert from the same peer.
	Seq uint64 `json:"seq"`
	// Time is the author's clock at publication, unix milliseconds.
	Time int64 `json:"time"`
	// Started is when the author's process started, on its clock, unix
	// milliseconds; 0 if not given. A new value tells peers it restarted.
	Started int64 `json:"started,omitempty"`
}

// Validate checks every field against the bounds above; errors wrap
// ErrInvalidAdvert.
func (a *Advert) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidAdvert, fmt.Sprintf(format, args...))
	}
	if err := a.Peer.Validate(); err != nil {
		return bad("peer: %v", err)
	}
	if _, err := a.Peer.ExtractPublicKey(); err != nil && !errors.Is(err, peer.ErrNoPublicKey) {
		return bad("peer %s: %v", a.Peer, err)
	}
	if len(a.Addrs) > MaxAddrs {
		return bad("%d addrs, limit %d", len(a.Addrs), MaxAddrs)
	}
	for i, s := range a.Addrs {
		if len(s) > MaxAddrLen {
			return bad("addr %d is %d bytes, limit %d", i, len(s), MaxAddrLen)
		}
		if _, err := ma.NewMultiaddr(s); err != nil {
			return bad("addr %d %q: %v", i, s, err)
		}
	}
	if a.Cores < 1 || a.Cores > MaxCores {
		return bad("cores %d outside 1..%d", a.Cores, MaxCores)
	}
	if err := finite("gflops", a.GFLOPS, MaxGFLOPS); err != nil {
		return bad("%v", err)
	}
	if err := finite("block_ms", a.BlockMillis, MaxBlockMilli); err != nil {
		return bad("%v", err)
	}
	if err := finite("load", a.Load, MaxLoad); err != nil {
		return bad("%v", err)
	}
	if a.Model == "" {
		if a.Lo != 0 || a.Hi != 0 {
			return bad("block span [%d,%d) without a model", a.Lo, a.Hi)
		}
	} else {
		if len(a.Model) > MaxModelLen {
			return bad("model is %d bytes, limit %d", len(a.Model), MaxModelLen)
		}
		if _, err := cid.Decode(a.Model); err != nil {
			return bad("model %q is not a CID: %v", a.Model, err)
		}
		if a.Lo < 0 || a.Lo >= a.Hi || a.Hi > MaxBlocks {
			return bad("block span [%d,%d) not within 0 <= lo < hi <= %d", a.Lo, a.Hi, MaxBlocks)
		}
	}
	if a.FreeKV < 0 || a.FreeKV > MaxFreeKV {
		return bad("free_kv %d outside 0..%d", a.FreeKV, MaxFreeKV)
	}
	if len(a.Version) > MaxVersionLen {
		return bad("version is %d bytes, limit %d", len(a.Version), MaxVersionLen)
	}
	if !printable(a.Version) {
		return bad("version %q has non-printable characters", a.Version)
	}
	if a.Seq == 0 {
		return bad("seq is 0")
	}
	if a.Time <= 0 {
		return bad("time %d is not a positive unix millisecond", a.Time)
	}
	if a.Started < 0 {
		return bad("started %d is negative", a.Started)
	}
	return nil
}

func finite(name string, v, limit float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > limit {
		return fmt.Errorf("%s %v outside 0..%g", name, v, limit)
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// Encode validates a and returns its JSON encoding.
func (a *Advert) Encode() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return nil, fmt.Errorf("gossip: encode advert: %w", err)
	}
	if len(b) > MaxAdvertSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxAdvertSize)
	}
	return b, nil
}

// DecodeAdvert parses and validates one JSON advert. Input over
// MaxAdvertSize, trailing data and invalid fields are errors.
func DecodeAdvert(b []byte) (Advert, error) {
	if len(b) > MaxAdvertSize {
		return Advert{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxAdvertSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var a Advert
	if err := dec.Decode(&a); err != nil {
		return Advert{}, fmt.Errorf("%w: %v", ErrInvalidAdvert, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Advert{}, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidAdvert)
	}
	if err := a.Validate(); err != nil {
		return Advert{}, err
	}
	return a, nil
}
