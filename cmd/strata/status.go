package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/strata-mesh/strata/node"
)

type statusCmd struct {
	HTTP    string        `name:"http" help:"HOST:PORT of a node's HTTP API (its --http)." xor:"addr"`
	Peer    string        `name:"peer" help:"Full multiaddr of a node (ending in /p2p/ID): ask it over libp2p, no --http needed." xor:"addr"`
	Timeout time.Duration `help:"Give up after this long." default:"10s"`
	JSON    bool          `name:"json" help:"Print the node's status JSON as it came."`

	swarmKeyFlag `embed:""`
}

// maxStatus bounds the status document read from a node.
const maxStatus = node.MaxStatusReply

func (c *statusCmd) Run(e *env) error { return c.run(e.ctx, e.log, os.Stdout) }

func (c *statusCmd) run(ctx context.Context, log *slog.Logger, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	var st node.Status
	var raw []byte
	var err error
	switch {
	case c.Peer != "":
		var client node.Client
		if client, err = c.client(log); err != nil {
			return err
		}
		st, raw, err = client.Status(ctx, c.Peer)
		if err != nil {
			err = c.hint(fmt.Errorf("status: %w", err))
		}
	case c.HTTP != "":
		st, raw, err = fetchStatus(ctx, c.HTTP)
	default:
		err = errors.New("status: give --http HOST:PORT (a node's HTTP API) or --peer MULTIADDR (any node)")
	}
	if err != nil {
		return err
	}
	if c.JSON {
		_, err = w.Write(raw)
		return err
	}
	return printStatus(w, st)
}

// fetchStatus gets GET /api/status from the node at addr (HOST:PORT or
// an http:// URL) and decodes it.
func fetchStatus(ctx context.Context, addr string) (node.Status, []byte, error) {
	var st node.Status
	base := strings.TrimSuffix(addr, "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		base = "http://" + base
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/status", nil)
	if err != nil {
		return st, nil, fmt.Errorf("status: address %q: %w", addr, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, nil, fmt.Errorf("status: cannot reach %s (is a node running with --http %s?): %w", base, addr, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxStatus+1))
	switch {
	case err != nil:
		return st, nil, fmt.Errorf("status: reading the reply of %s: %w", base, err)
	case len(raw) > maxStatus:
		return st, nil, fmt.Errorf("status: the reply of %s exceeds %d bytes", base, maxStatus)
	case resp.StatusCode != http.StatusOK:
		return st, nil, fmt.Errorf("status: %s/api/status answered %s: %s", base, resp.Status, strings.TrimSpace(string(raw)))
	}
	if st, err = node.DecodeStatus(raw); err != nil {
		return st, nil, fmt.Errorf("status: %s/api/status: %w", base, err)
	}
	return st, raw, nil
}

// printStatus writes st as readable tables: the node, its peer table,
// coverage and route, and the peers it bans. Text that came from the
// network is stripped of control characters.
func printStatus(w io.Writer, st node.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(cells ...string) {
		for i := range cells {
			cells[i] = clean(cells[i])
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	model := orNone(st.Model)
	if st.ModelName != "" {
		model = fmt.Sprintf("%s (%s, %d blocks, context %d)", st.Model, st.ModelName, st.Layers, st.Context)
	}
	blocks := spanText(st.Blocks)
	if len(st.Loading) == 2 {
		blocks += fmt.Sprintf(" (loading %d:%d)", st.Loading[0], st.Loading[1])
	}
	row("peer", st.Peer)
	row("version", st.Version)
	row("uptime", (time.Duration(st.Uptime) * time.Second).String())
	row("model", model)
	row("blocks", blocks)
	row("sessions", fmt.Sprint(st.Sessions))
	row("requests", fmt.Sprint(st.Requests))
	for i, a := range st.Addrs {
		if i == 0 {
			row("addrs", a)
		} else {
			row("", a)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\npeers (%d)\n", len(st.Peers))
	row("PEER", "BLOCKS", "LOADING", "GFLOPS", "BLOCK MS", "LOAD", "CORES", "SCORE", "VERSION")
	for _, p := range st.Peers {
		loading := ""
		if p.Loading {
			loading = "yes"
		}
		score := "-"
		if p.Score != nil {
			score = fmt.Sprintf("%.1f", *p.Score)
		}
		row(shortPeer(p.Peer), spanText(p.Blocks), loading, fmt.Sprintf("%.2f", p.GFLOPS), fmt.Sprintf("%.3f", p.BlockMillis),
			fmt.Sprintf("%.2f", p.Load), fmt.Sprint(p.Cores), score, p.Version)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	switch {
	case st.Model == "":
		row("coverage", "serves no model")
	case st.Covered:
		row("coverage", "every block is served")
	default:
		row("coverage", "blocks "+st.Missing+" are served by no peer")
	}
	if len(st.Route) > 0 {
		hops := make([]string, len(st.Route))
		for i, h := range st.Route {
			hops[i] = fmt.Sprintf("%s %d:%d", shortPeer(h.Peer), h.Lo, h.Hi)
		}
		row("route", strings.Join(hops, " -> "))
	}
	if r := st.Run; r != nil {
		line := fmt.Sprintf("%s (%s), round %d in progress", r.Name, r.ID, r.Round)
		if l := r.Last; l != nil && !l.Skipped {
			line += fmt.Sprintf("; round %d committed with loss %.4f from %d peers", l.Round, l.Loss, len(l.Peers))
		}
		row("training run", line)
	}
	for _, f := range st.Fetches {
		pct := 0.0
		if f.Total > 0 {
			pct = 100 * float64(f.Done) / float64(f.Total)
		}
		row("fetching", fmt.Sprintf("%s: %d of %d bytes (%.0f%%)", f.What, f.Done, f.Total, pct))
	}
	banned := "none"
	if len(st.Banned) > 0 {
		short := make([]string, len(st.Banned))
		for i, p := range st.Banned {
			short[i] = shortPeer(p)
		}
		banned = strings.Join(short, ", ")
	}
	row("banned", banned)
	if g := st.Guard; g != nil {
		guardRows(row, g)
	}
	return tw.Flush()
}

// guardRows writes what the node refused to peers and how it scores them.
func guardRows(row func(...string), g *node.GuardStatus) {
	row("refused", fmt.Sprintf("rate limit: %s; resource limits: %s; %d streams and %d connections at the resource manager's other limits",
		perProtocol(g.RateLimited), perProtocol(g.Blocked), g.BlockedStreams, g.BlockedConns))
	row("gossip scores", fmt.Sprintf("%d peers scored: %d below the gossip threshold, %d below publish, %d graylisted now; %d graylisted since start",
		g.ScoredPeers, g.BelowGossip, g.BelowPublish, g.Graylisted, g.Graylistings))
	if len(g.Worst) > 0 {
		worst := make([]string, len(g.Worst))
		for i, w := range g.Worst {
			worst[i] = fmt.Sprintf("%s %.0f", shortPeer(w.Peer), w.Score)
		}
		row("lowest scores", strings.Join(worst, ", "))
	}
	row("fetch bans", fmt.Sprint(g.FetchBans))
}

// perProtocol prints refusal counts by protocol, largest first.
func perProtocol(m map[string]uint64) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d on %s", m[k], k)
	}
	return strings.Join(parts, ", ")
}

func spanText(b [2]int) string {
	if b[1] <= b[0] {
		return "-"
	}
	return fmt.Sprintf("%d:%d", b[0], b[1])
}

// shortPeer abbreviates a peer id to its last 8 characters, as logs of
// libp2p tools do.
func shortPeer(id string) string {
	if len(id) <= 12 {
		return id
	}
	return "…" + id[len(id)-8:]
}

// clean drops control characters (tabs and newlines included), so text
// from a node cannot break the table or drive the terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, s)
}
