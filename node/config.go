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
	// PSK, if set, is a private swarm key (32 bytes, see
	// mesh.LoadSwarmKey): only nodes holding the same key can connect.
	// Listen must then hold TCP addresses only.
	PSK []byte
	// Model is the CID of the model to serve; empty means the only model
	// in the repo, or none if the repo holds no model.
	Model string
	// Blocks is the block span to serve, "LO:HI"; "auto" lets the node
	// place itself where the mesh needs it and move later; empty means
	// all blocks.
	Blocks string
	// MaxBlocks caps how many blocks an auto-placed node holds (default:
	// as many as half the free memory fits).
	MaxBlocks int
	// FindTimeout bounds the search for providers of one object (default
	// 15s); the fetch itself may take as long as the object needs.
	FindTimeout time.Duration
	// RecheckEvery is the period of placement re-checks (default 5s).
	RecheckEvery time.Duration
	// AdvertEvery is the period of capacity adverts (default 2s).
	AdvertEvery time.Duration
	// PeerTTL expires peers silent for this long (default five advert
	// periods).
	PeerTTL time.Duration
	// StepTimeout bounds the wait for one hop (default 30s).
	StepTimeout time.Duration
	// NoBatch turns off continuous batching of concurrent sessions;
	// ForceBatch turns it on even for models small enough to stay in cache.
	NoBatch, ForceBatch bool
	// MaxRequests bounds the requests this node fronts at once (default 64).
	MaxRequests int
	// HTTP, if set, is the HOST:PORT of the HTTP API: OpenAI-compatible
	// completions, the status API.
	HTTP string
	// Progress, if set, receives fetch progress (a terminal's progress
	// bar); otherwise progress goes to the log.
	Progress func(what string, done, total int64)
	// Run, if set, makes the node a participant of a federated training
	// run; Model must then be the run's genesis (or empty).
	Run *RunConfig
	// Follow, if set, is the id of a training run whose newest certified
	// version the node serves, switching as rounds commit (instead of
	// Model).
	Follow string
	Logger *slog.Logger
}

// Validate reports whether c is usable.
func (c *Config) Validate() error {
	if c.Repo == "" {
		return errors.New("node: no repo dir given")
	}
	if len(c.Listen) == 0 {
		return errors.New("node: no listen address given")
	}
	if c.Blocks != "" && c.Model == "" && c.Follow == "" {
		return errors.New("node: --blocks needs --model or --follow")
	}
	if c.Blocks != "" && c.Blocks != "auto" {
		if _, _, err := ParseBlocks(c.Blocks, 1<<20); err != nil {
			return err
		}
	}
	if c.Run != nil {
		if err := c.Run.Spec.Validate(); err != nil {
			return err
		}
		if c.Model != "" && c.Model != c.Run.Spec.Genesis {
			return fmt.Errorf("node: --model %s is not the run's genesis %s", c.Model, c.Run.Spec.Genesis)
		}
	}
	if c.Follow != "" && (c.Run != nil || c.Model != "") {
		return errors.New("node: --follow picks the model itself; it goes with neither --model nor --train")
	}
	if c.MaxBlocks < 0 {
		return fmt.Errorf("node: negative --max-blocks %d", c.MaxBlocks)
	}
	return nil
}

func (c *Config) defaults() {
	if c.AdvertEvery <= 0 {
		c.AdvertEvery = 2 * time.Second
	}
	if c.PeerTTL <= 0 {
		c.PeerTTL = 5 * c.AdvertEvery
	}
	if c.FindTimeout <= 0 {
		c.FindTimeout = 15 * time.Second
	}
	if c.RecheckEvery <= 0 {
		c.RecheckEvery = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
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
