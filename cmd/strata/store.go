package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/ipfs/go-cid"

	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/node"
	"github.com/strata-mesh/strata/shards"
)

type lsCmd struct {
	Repo string `help:"Repo dir." required:"" type:"path"`
}

func (c *lsCmd) Run(e *env) error {
	st, err := shards.Open(c.Repo)
	if err != nil {
		return err
	}
	all, err := st.List()
	if err != nil {
		return err
	}
	pins, err := st.Pins()
	if err != nil {
		return err
	}
	pinned := map[cid.Cid]bool{}
	for _, p := range pins {
		pinned[p] = true
	}
	// Name every object by its role in the manifests the repo holds.
	role := map[cid.Cid]string{}
	for _, o := range all {
		man, err := shards.LoadManifest(st, o)
		if err != nil {
			continue
		}
		role[o] = fmt.Sprintf("manifest %q (%d blocks)", man.Name, man.Config.NLayers)
		role[man.Head.CID] = fmt.Sprintf("head of %q", man.Name)
		for i, b := range man.Blocks {
			role[b.CID] = fmt.Sprintf("block %d of %q", i, man.Name)
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CID\tSIZE\tPINNED\tWHAT")
	var total int64
	for _, o := range all {
		size, err := st.Size(o)
		if err != nil {
			return err
		}
		total += size
		what := role[o]
		if what == "" {
			what = "object"
		}
		pin := ""
		if pinned[o] {
			pin = "pinned"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", o, size, pin, what)
	}
	w.Flush()
	fmt.Fprintf(os.Stderr, "%d objects, %d bytes\n", len(all), total)
	return nil
}

type pinCmd struct {
	Repo string   `help:"Repo dir." required:"" type:"path"`
	CIDs []string `arg:"" name:"cid" help:"Objects to pin; pinning a manifest keeps its head and blocks from garbage collection."`
}

func (c *pinCmd) Run(e *env) error {
	return eachCID(c.Repo, c.CIDs, (*shards.Store).Pin)
}

type unpinCmd struct {
	Repo string   `help:"Repo dir." required:"" type:"path"`
	CIDs []string `arg:"" name:"cid" help:"Objects to unpin."`
}

func (c *unpinCmd) Run(e *env) error {
	return eachCID(c.Repo, c.CIDs, (*shards.Store).Unpin)
}

func eachCID(repo string, ids []string, f func(*shards.Store, cid.Cid) error) error {
	st, err := shards.Open(repo)
	if err != nil {
		return err
	}
	for _, s := range ids {
		c, err := shards.ParseCID(s)
		if err != nil {
			return err
		}
		if err := f(st, c); err != nil {
			return err
		}
	}
	return nil
}

type gcCmd struct {
	Repo string `help:"Repo dir." required:"" type:"path"`
}

func (c *gcCmd) Run(e *env) error {
	st, err := shards.Open(c.Repo)
	if err != nil {
		return err
	}
	removed, freed, err := st.GC()
	for _, r := range removed {
		fmt.Println("removed", r)
	}
	fmt.Fprintf(os.Stderr, "%d objects removed, %d bytes freed\n", len(removed), freed)
	return err
}

type fetchCmd struct {
	Repo      string   `help:"Repo dir." required:"" type:"path"`
	Bootstrap []string `help:"Full multiaddrs of peers to join through." required:""`
	Listen    []string `help:"Multiaddrs to listen on while fetching." default:"/ip4/0.0.0.0/tcp/0"`
	Blocks    string   `help:"Blocks to fetch, LO:HI (default: all)."`
	Model     string   `arg:"" name:"cid" help:"Model CID (its manifest)."`

	swarmKeyFlag `embed:""`
}

func (c *fetchCmd) Run(e *env) error {
	cfg := node.Config{
		Repo: c.Repo, Listen: c.Listen, Bootstrap: c.Bootstrap, Model: c.Model, Blocks: c.Blocks,
		Logger: quiet(), Progress: progressFunc(),
	}
	client, err := c.client(quiet())
	if err != nil {
		return err
	}
	if cfg.PSK = client.SwarmKey; cfg.PSK != nil {
		if cfg.Listen = tcpOnly(c.Listen); len(cfg.Listen) == 0 {
			return fmt.Errorf("strata: --swarm-key needs a TCP --listen address; QUIC cannot carry a private swarm")
		}
	}
	// The fetch itself dials its bootstrap peers in the background and
	// would wait for providers behind a swarm key it does not hold: first
	// make sure the handshake works with one of them, so a missing or
	// wrong key fails at once, saying so. Other dial errors are left to
	// the fetch, which retries.
	if err := reachAny(e.ctx, client, c.Bootstrap); errors.Is(err, mesh.ErrHandshake) {
		return c.hint(err)
	}
	res, err := node.Fetch(e.ctx, cfg)
	if err != nil {
		return err
	}
	man := res.Manifest
	fmt.Fprintf(os.Stderr, "fetched model %q (%d blocks) into %s: %d bytes from peers\n", man.Name, man.Config.NLayers, c.Repo, res.Bytes)
	fmt.Println(c.Model)
	return nil
}
