package gossip

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Table defaults.
const (
	DefaultTTL      = 15 * time.Second
	DefaultMaxPeers = 4096
)

// Table maps each peer to its newest advert. It does no I/O and starts no
// goroutines: the current time is an argument. Its methods are safe for
// concurrent use. The zero value is ready to use with DefaultTTL and
// DefaultMaxPeers.
type Table struct {
	mu       sync.Mutex
	ttl      time.Duration
	maxPeers int
	peers    map[peer.ID]entry
}

type entry struct {
	ad   Advert
	seen time.Time // local receipt time of ad
	// gone marks a peer found unreachable (MarkGone): the table hides it
	// but keeps its Seq, so only a newer advert brings it back.
	gone bool
}

// NewTable returns a table that forgets peers silent for longer than ttl
// and holds at most maxPeers peers. Zero arguments select the defaults.
func NewTable(ttl time.Duration, maxPeers int) *Table {
	return &Table{ttl: ttl, maxPeers: maxPeers}
}

func (t *Table) limits() (time.Duration, int) {
	ttl, n := t.ttl, t.maxPeers
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if n <= 0 {
		n = DefaultMaxPeers
	}
	return ttl, n
}

// Update records a, received at now, and reports whether the table changed.
// It keeps a only if a is valid and its Seq is higher than the peer's
// current advert; a new peer is refused while the table is full (call
// Expire to make room).
func (t *Table) Update(a Advert, now time.Time) bool {
	if a.Validate() != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, maxPeers := t.limits()
	old, ok := t.peers[a.Peer]
	if ok && a.Seq <= old.ad.Seq {
		return false
	}
	if !ok && len(t.peers) >= maxPeers {
		return false
	}
	if t.peers == nil {
		t.peers = make(map[peer.ID]entry)
	}
	a.Addrs = slices.Clone(a.Addrs)
	t.peers[a.Peer] = entry{ad: a, seen: now}
	return true
}

// Expire removes peers whose last advert arrived more than the TTL before
// now and returns their ids, sorted.
func (t *Table) Expire(now time.Time) []peer.ID {
	t.mu.Lock()
	defer t.mu.Unlock()
	ttl, _ := t.limits()
	var gone []peer.ID
	for id, e := range t.peers {
		if now.Sub(e.seen) > ttl {
			gone = append(gone, id)
			delete(t.peers, id)
		}
	}
	slices.Sort(gone)
	return gone
}

// MarkGone hides id until an advert newer than its current one arrives,
// and reports whether a visible peer was hidden. Callers mark a peer whose
// connection closed and that cannot be dialled again, so the mesh stops
// routing to it and others take over its blocks without waiting for the
// TTL.
func (t *Table) MarkGone(id peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok || e.gone {
		return false
	}
	e.gone = true
	t.peers[id] = e
	return true
}

// Get returns the newest advert of id, unless id is gone.
func (t *Table) Get(id peer.ID) (Advert, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok || e.gone {
		return Advert{}, false
	}
	return clone(e.ad), true
}

// seq returns the Seq of id's newest advert.
func (t *Table) seq(id peer.ID) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	return e.ad.Seq, ok
}

// Len returns the number of peers in the table, gone ones excepted.
func (t *Table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.peers {
		if !e.gone {
			n++
		}
	}
	return n
}

// All returns every advert but those of gone peers, sorted by peer id
// (byte order).
func (t *Table) All() []Advert {
	return t.filter(func(*Advert) bool { return true }, byPeer)
}

// Servers returns the adverts of peers serving model, sorted by block span
// (Lo, then Hi) and then peer id. An empty model matches nothing.
func (t *Table) Servers(model string) []Advert {
	if model == "" {
		return nil
	}
	return t.filter(func(a *Advert) bool { return a.Model == model && a.Hi > a.Lo }, func(x, y Advert) int {
		return cmp.Or(cmp.Compare(x.Lo, y.Lo), cmp.Compare(x.Hi, y.Hi), byPeer(x, y))
	})
}

func (t *Table) filter(keep func(*Advert) bool, order func(x, y Advert) int) []Advert {
	t.mu.Lock()
	out := make([]Advert, 0, len(t.peers))
	for _, e := range t.peers {
		if !e.gone && keep(&e.ad) {
			out = append(out, clone(e.ad))
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, order)
	return out
}

func byPeer(x, y Advert) int { return cmp.Compare(x.Peer, y.Peer) }

func clone(a Advert) Advert {
	a.Addrs = slices.Clone(a.Addrs)
	return a
}
