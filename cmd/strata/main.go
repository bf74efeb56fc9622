// Command strata is the single Strata binary: a node of the mesh, the tools
// to import models into a repo, a client, and a local testnet.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kong"
)

type cli struct {
	Log string `help:"Log level: debug, info, warn or error." default:"info" enum:"debug,info,warn,error"`

	ID       idCmd       `cmd:"" name:"id" help:"Print the node's peer id, creating its key if missing."`
	Import   importCmd   `cmd:"" help:"Import a llama2.c checkpoint or a GGUF file (F32/F16 llama) into a repo and print the model CID."`
	Synth    synthCmd    `cmd:"" help:"Write a seeded random-weight model into a repo and print its CID."`
	Node     nodeCmd     `cmd:"" help:"Run a node until SIGINT or SIGTERM."`
	Generate generateCmd `cmd:"" help:"Generate text through the mesh, printed as llama2.c run.c does."`
	Testnet  testnetCmd  `cmd:"" help:"Start a local mesh of N nodes on loopback."`
	Fetch    fetchCmd    `cmd:"" help:"Fetch a model (or some of its blocks) from peers into a repo, verified, and pin it."`
	Ls       lsCmd       `cmd:"" name:"ls" help:"List the objects in a repo."`
	Pin      pinCmd      `cmd:"" help:"Pin objects so garbage collection keeps them."`
	Unpin    unpinCmd    `cmd:"" help:"Unpin objects."`
	GC       gcCmd       `cmd:"" name:"gc" help:"Remove objects that are neither pinned nor part of a pinned model."`
	Train    trainCmd    `cmd:"" help:"Train a model on local text files and save the result as a new model version."`
	Rounds   roundsCmd   `cmd:"" help:"Print a federated training run's committed history, asked of any participant."`
	Bench    benchCmd    `cmd:"" help:"Measure tokens/s in one process and across local nodes, and the latency per hop."`
	Status   statusCmd   `cmd:"" help:"Show a running node's status: itself, its peer table, coverage, route and bans."`
	Fsck     fsckCmd     `cmd:"" help:"Re-hash every object of a repo against its CID and list the corrupt ones."`
	Chaos    chaosCmd    `cmd:"" help:"Soak a local mesh: kill -9 and restart random nodes while generations and a training run go on, then check outputs, histories and stores."`
}

// env is what every command gets: a context cancelled by SIGINT/SIGTERM
// and a logger.
type env struct {
	ctx context.Context
	log *slog.Logger
}

func main() {
	var c cli
	k := kong.Parse(&c,
		kong.Name("strata"),
		kong.Description("Strata: a peer-to-peer mesh that serves and trains transformer models together."),
		kong.UsageOnError(),
	)
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Log))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := k.Run(&env{ctx: ctx, log: log})
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: %v\n", err)
		os.Exit(1)
	}
}
