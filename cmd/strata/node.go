package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/node"
)

type nodeCmd struct {
	Repo      string   `help:"Repo dir (identity key and objects)." required:"" type:"path"`
	Listen    []string `help:"Multiaddrs to listen on." default:"/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1"`
	Bootstrap []string `help:"Full multiaddrs (ending in /p2p/ID) of peers to join through."`
	NoMDNS    bool     `name:"no-mdns" help:"Disable mDNS discovery on the LAN."`
	Model     string   `help:"CID of the model to serve (default: the repo's only model)."`
	Blocks    string   `help:"Block span to serve: LO:HI (half-open), or auto to serve where the mesh needs it (default: all blocks)."`
	MaxBlocks int      `name:"max-blocks" help:"With --blocks auto, the most blocks to hold (default: what half the free memory fits)."`
	HTTP      string   `name:"http" help:"Serve the HTTP API (OpenAI-compatible /v1, /api/status) on HOST:PORT."`
	Follow    string   `help:"Serve the newest committed version of this training run (its id, as strata rounds prints), switching as rounds commit."`
	SwarmKey  string   `name:"swarm-key" help:"Private swarm key file (go-ipfs swarm.key format): only nodes with the same key can connect. QUIC listen addresses are dropped (private swarms run over TCP)." type:"path"`

	runFlags `embed:"" prefix:""`
}

func (c *nodeCmd) Run(e *env) error {
	cfg := node.Config{
		Repo: c.Repo, Listen: c.Listen, Bootstrap: c.Bootstrap, MDNS: !c.NoMDNS,
		Model: c.Model, Blocks: c.Blocks, MaxBlocks: c.MaxBlocks, HTTP: c.HTTP, Follow: c.Follow, Logger: e.log,
		Progress: progressFunc(),
	}
	if c.SwarmKey != "" {
		psk, err := mesh.LoadSwarmKey(c.SwarmKey)
		if err != nil {
			return err
		}
		cfg.PSK, cfg.Listen = psk, tcpOnly(c.Listen)
		if len(cfg.Listen) == 0 {
			return fmt.Errorf("strata: --swarm-key needs a TCP --listen address; QUIC cannot carry a private swarm")
		}
	}
	if c.Train != "" {
		run, err := c.runFlags.config(c.Repo, c.Model)
		if err != nil {
			return err
		}
		cfg.Run, cfg.Model = run, run.Spec.Genesis
		run.OnCommit = printRound
	}
	n, err := node.Start(e.ctx, cfg)
	if err != nil {
		return err
	}
	lo, hi := n.Blocks()
	fmt.Fprintf(os.Stderr, "strata node %s\n  model  %s\n  blocks %d:%d\n  listen %s\n", n.ID(), orNone(n.Model()), lo, hi,
		strings.Join(n.Addrs(), "\n         "))
	if id := n.RunID(); id != "" {
		fmt.Fprintf(os.Stderr, "  run    %s\n", id)
	}
	<-e.ctx.Done()
	e.log.Info("shutting down")
	return n.Close()
}

// tcpOnly drops QUIC addresses, which a private swarm cannot use.
func tcpOnly(listen []string) []string {
	var out []string
	for _, a := range listen {
		if !strings.Contains(a, "/quic") {
			out = append(out, a)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

type generateCmd struct {
	Peer        string  `help:"Full multiaddr of any peer of the mesh." required:""`
	Model       string  `help:"Model CID (default: the peer's model)."`
	Steps       int     `short:"n" help:"Positions to run, prompt included; 0 means the model's context length." default:"256"`
	Temperature float32 `short:"t" help:"Sampling temperature; 0 is greedy." default:"1.0"`
	TopP        float32 `short:"p" name:"top-p" help:"Nucleus sampling cutoff in [0,1]." default:"0.9"`
	Seed        uint64  `short:"s" help:"Random seed (default: from the clock)."`
	Prompt      string  `arg:"" optional:"" help:"Prompt text."`

	swarmKeyFlag `embed:""`
}

func (c *generateCmd) Run(e *env) error {
	seed := c.Seed
	if seed == 0 {
		seed = uint64(timeNow().UnixNano())
	}
	req := infer.Request{Model: c.Model, Prompt: c.Prompt, Steps: c.Steps, Temperature: c.Temperature, TopP: c.TopP, Seed: seed}
	client, err := c.client(quiet())
	if err != nil {
		return err
	}
	st, err := client.Query(e.ctx, c.Peer, req, func(t infer.Token) error {
		_, err := os.Stdout.Write(t.Piece)
		return err
	})
	fmt.Println() // run.c ends its output with a newline
	if err != nil {
		return c.hint(err)
	}
	fmt.Fprintf(os.Stderr, "achieved tok/s: %f (%d forward passes through %s)\n", st.TokensPerSec, st.Forward, chain(st.Chain))
	return nil
}

func chain(hops []infer.Hop) string {
	var parts []string
	for _, h := range hops {
		id := h.Peer
		if len(id) > 10 {
			id = "…" + id[len(id)-6:]
		}
		parts = append(parts, fmt.Sprintf("%s[%d:%d]", id, h.Lo, h.Hi))
	}
	return strings.Join(parts, " → ")
}
