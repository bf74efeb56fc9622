package node

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config configures a node.
type Config struct {
	// Repo is the node's repo dir: identity key and objects by CID.
	Repo string
	// Listen lists multiaddrs to listen on.
	Listen []string
	// Bootstrap lists full peer addresses to join through.
	Bootstrap []string
	// MDNS enables LAN discovery.
	MDNS bool
	// Model is the CID of the model to serve; empty means the only model
	// in the repo, or none if the repo holds no model.
	Model string
	// Blocks is the block span to serve, "LO:HI"; empty means all blocks.
	Blocks string
	// AdvertEvery is the period of capacity adverts (default 2s).
	AdvertEvery time.Duration
	// PeerTTL expires peers silent for this long (default 15s, at least
	// three advert periods).
	PeerTTL time.Duration
	// StepTimeout bounds the wait for one hop (default 30s).
	StepTimeout time.Duration
	Logger      *slog.Logger
}

// Validate reports whether c is usable.
func (c *Config) Validate() error {
	if c.Repo == "" {
		return errors.New("node: no repo dir given")
	}
	if len(c.Listen) == 0 {
		return errors.New("node: no listen address given")
	}
	if c.Blocks != "" && c.Model == "" {
		return errors.New("node: --blocks needs --model")
	}
	if c.Blocks != "" {
		if _, _, err := ParseBlocks(c.Blocks, 1<<20); err != nil {
			return err
		}
	}
	return nil
}

// ParseBlocks parses a span "LO:HI" (half-open) for a model of n blocks.
func ParseBlocks(s string, n int) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, ":")
	if ok {
		lo, err = strconv.Atoi(a)
		if err == nil {
			hi, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil {
		return 0, 0, fmt.Errorf("node: block span %q is not LO:HI, e.g. 0:2", s)
	}
	if lo < 0 || hi <= lo || hi > n {
		return 0, 0, fmt.Errorf("node: block span %d:%d is outside the model's %d blocks (0:%d)", lo, hi, n, n)
	}
	return lo, hi, nil
}
