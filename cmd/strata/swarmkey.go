package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/strata-mesh/strata/mesh"
	"github.com/strata-mesh/strata/node"
)

// swarmKeyFlag is the --swarm-key flag of the commands that dial a node.
type swarmKeyFlag struct {
	SwarmKey string `name:"swarm-key" help:"Private swarm key file (go-ipfs swarm.key format) of the mesh to dial; give the node's /tcp/ address." type:"path"`
}

// client returns the node client the flag asks for.
func (f swarmKeyFlag) client(log *slog.Logger) (node.Client, error) {
	c := node.Client{Logger: log}
	if f.SwarmKey != "" {
		psk, err := mesh.LoadSwarmKey(f.SwarmKey)
		if err != nil {
			return c, err
		}
		c.SwarmKey = psk
	}
	return c, nil
}

// hint adds to a failed handshake what the user can do about it.
func (f swarmKeyFlag) hint(err error) error {
	if !errors.Is(err, mesh.ErrHandshake) {
		return err
	}
	if f.SwarmKey == "" {
		return fmt.Errorf("%w\nstrata: every handshake with the node failed; if it runs a private mesh, give its key with --swarm-key FILE", err)
	}
	return fmt.Errorf("%w\nstrata: the node refused the handshake; check that %s is the key of its mesh", err, f.SwarmKey)
}

// reachAny returns nil as soon as one of addrs can be reached, else the
// error of the first.
func reachAny(ctx context.Context, c node.Client, addrs []string) error {
	var first error
	for _, a := range addrs {
		actx, cancel := context.WithTimeout(ctx, reachTimeout)
		err := c.Reach(actx, a)
		cancel()
		if err == nil {
			return nil
		}
		first = cmp.Or(first, err)
	}
	return first
}

// reachTimeout bounds one reachability check; a handshake between two
// different swarm keys fails only at libp2p's own timeout, a few seconds.
const reachTimeout = 20 * time.Second
