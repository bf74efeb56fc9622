package node

import (
	"time"

	"github.com/strata-mesh/strata/infer"
)

// Status is a snapshot of a node for operators and the status API.
type Status struct {
	Peer      string          `json:"peer"`
	Addrs     []string        `json:"addrs"`
	Version   string          `json:"version"`
	Uptime    float64         `json:"uptime_seconds"`
	Model     string          `json:"model,omitempty"`
	ModelName string          `json:"model_name,omitempty"`
	Layers    int             `json:"layers,omitempty"`
	Context   int             `json:"context_length,omitempty"`
	Blocks    [2]int          `json:"blocks"`
	Loading   []int           `json:"loading,omitempty"` // [lo, hi] while the first span loads
	Sessions  int             `json:"sessions"`          // sessions this node serves as a hop
	Requests  int             `json:"requests"`          // requests this node fronts as the entry
	Peers     []PeerStatus    `json:"peers"`
	Covered   bool            `json:"covered"`
	Missing   string          `json:"missing,omitempty"` // blocks no peer serves, "LO:HI, ..."
	Route     []infer.Hop     `json:"route,omitempty"`   // the chain a request entering here would take now
	Banned    []string        `json:"banned,omitempty"`
	Guard     *GuardStatus    `json:"guard,omitempty"`   // refused streams, peer scores, bans
	Run       *RunStatus      `json:"run,omitempty"`     // the training run this node takes part in
	Fetches   []FetchProgress `json:"fetches,omitempty"` // objects being fetched from peers now
}

// RunStatus summarises a node's training run.
type RunStatus struct {
	ID     string       `json:"id"`
	Name   string       `json:"name"`
	Round  uint64       `json:"round"` // in progress
	Rounds int          `json:"rounds,omitempty"`
	Last   *RoundRecord `json:"last,omitempty"` // the latest certified round
}

// PeerStatus is one row of the peer table.
type PeerStatus struct {
	Peer        string   `json:"peer"`
	Addrs       []string `json:"addrs"`
	Model       string   `json:"model,omitempty"`
	Blocks      [2]int   `json:"blocks"`
	Loading     bool     `json:"loading,omitempty"`
	Cores       int      `json:"cores"`
	MemFree     uint64   `json:"mem_free"`
	GFLOPS      float64  `json:"gflops"`
	BlockMillis float64  `json:"block_ms"`
	Load        float64  `json:"load"`
	Version     string   `json:"version"`
	// Score is the peer's GossipSub score at this node (absent for the
	// node itself and for peers the router does not score).
	Score *float64 `json:"score,omitempty"`
}

// Status returns a snapshot of the node.
func (n *Node) Status() Status {
	st := Status{
		Peer: n.ID(), Addrs: n.Addrs(), Version: Version, Uptime: time.Since(n.started).Seconds(),
		Model: n.ver().id, Fetches: n.fetches.list(time.Now()), Guard: n.guard(),
	}
	if info, ok := n.RunInfo(); ok {
		st.Run = &RunStatus{ID: info.ID, Name: info.Spec.Name, Round: info.Round, Rounds: info.Spec.Rounds}
		if k := len(info.History); k > 0 {
			st.Run.Last = &info.History[k-1]
		}
	}
	if n.ver().man != nil {
		st.ModelName, st.Layers, st.Context = n.ver().man.Name, n.ver().man.Config.NLayers, n.ver().man.Config.SeqLen
	}
	n.mu.Lock()
	st.Blocks = [2]int{n.span.Lo, n.span.Hi}
	if n.loading.Hi > n.loading.Lo {
		st.Loading = []int{n.loading.Lo, n.loading.Hi}
	}
	svc := n.infer
	n.mu.Unlock()
	for _, a := range n.gossip.Table().All() {
		ps := PeerStatus{
			Peer: a.Peer.String(), Addrs: a.Addrs, Model: a.Model, Blocks: [2]int{a.Lo, a.Hi}, Loading: a.Loading,
			Cores: a.Cores, MemFree: a.MemFree, GFLOPS: a.GFLOPS, BlockMillis: a.BlockMillis, Load: a.Load, Version: a.Version,
		}
		if v, ok := n.gossip.Score(a.Peer); ok {
			ps.Score = &v
		}
		st.Peers = append(st.Peers, ps)
	}
	if svc != nil {
		st.Sessions, st.Requests, st.Banned = svc.Sessions(), svc.Requests(), svc.Banned()
		servers := n.servers(n.ver().id)
		lo, hi := svc.Serving()
		if hi > lo {
			servers = append(servers, infer.Server{Peer: n.ID(), Lo: lo, Hi: hi})
		}
		if missing := infer.Missing(servers, n.ver().man.Config.NLayers); len(missing) > 0 {
			st.Missing = infer.FormatSpans(missing)
		} else {
			st.Covered = true
			st.Route, _ = infer.Plan(servers, n.ver().man.Config.NLayers, n.ID())
		}
	}
	return st
}
