package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
)

// Errors returned by this package.
var (
	ErrConfig      = errors.New("consensus: invalid config")
	ErrCertificate = errors.New("consensus: invalid certificate")
	ErrDecode      = errors.New("consensus: malformed message")
)

// Bounds on anything a peer can make us hold.
const (
	MaxDeltas = 4096 // contributions per round
	MaxID     = 256  // bytes in a peer id or CID
	MaxSig    = 512  // bytes in a signature
	MaxRoster = 1024 // roster members and votes per certificate
	MaxViews  = 64   // views per round
)

// Config configures a Node. Signatures are inputs: Sign signs with the
// local key and Verify checks any roster member's signature.
type Config struct {
	ID     string   // this node's peer id
	Roster []string // members; fixed for now (see package doc)
	Rule   string   // aggregation rule the proposer asks for
	// Quorum is the number of votes that decides; 0 means Quorum(len(Roster)),
	// which tolerates Byzantine members. A majority (len(Roster)/2+1)
	// tolerates more crashed or cut-off members but no Byzantine voter.
	Quorum int

	Sign   func(msg []byte) []byte
	Verify func(peer string, msg, sig []byte) bool

	CollectTicks int // ticks into a view before its proposer asks for the aggregate
	ViewTicks    int // ticks per view; then the next proposer takes over
	RoundTicks   int // ticks before a member that has not voted votes to skip

	Logger *slog.Logger // nil discards
}

// Validate reports whether c is usable.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return fmt.Errorf("%w: empty ID", ErrConfig)
	case !validID(c.Rule):
		return fmt.Errorf("%w: aggregation rule %q", ErrConfig, c.Rule)
	case len(c.Roster) == 0 || len(c.Roster) > MaxRoster:
		return fmt.Errorf("%w: roster size %d, want 1..%d", ErrConfig, len(c.Roster), MaxRoster)
	case c.Sign == nil || c.Verify == nil:
		return fmt.Errorf("%w: Sign and Verify are required", ErrConfig)
	case c.CollectTicks < 1 || c.ViewTicks <= c.CollectTicks || c.RoundTicks < c.ViewTicks:
		return fmt.Errorf("%w: need 1 <= CollectTicks < ViewTicks <= RoundTicks, got %d, %d, %d",
			ErrConfig, c.CollectTicks, c.ViewTicks, c.RoundTicks)
	case c.Quorum != 0 && (c.Quorum <= len(c.Roster)/2 || c.Quorum > len(c.Roster)):
		return fmt.Errorf("%w: quorum %d of %d members, want a majority", ErrConfig, c.Quorum, len(c.Roster))
	case c.RoundTicks/c.ViewTicks >= MaxViews:
		return fmt.Errorf("%w: RoundTicks/ViewTicks must be below %d", ErrConfig, MaxViews)
	}
	s := slices.Clone(c.Roster)
	slices.Sort(s)
	for i, p := range s {
		if p == "" || len(p) > MaxID {
			return fmt.Errorf("%w: roster id %q", ErrConfig, p)
		}
		if i > 0 && s[i-1] == p {
			return fmt.Errorf("%w: duplicate roster id %q", ErrConfig, p)
		}
	}
	return nil
}
