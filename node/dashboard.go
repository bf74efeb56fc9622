package node

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/strata-mesh/strata/consensus"
)

// The dashboard is a page of plain HTML, CSS and JavaScript embedded in
// the binary: no build step, nothing loaded from elsewhere. It polls
// GET /api/status and GET /api/rounds every second and draws the peer
// table, the coverage of the served model's blocks, the route, the
// training run's rounds with a loss chart, the latest certificate and
// fetches in progress.
//
//go:embed dashboard/index.html dashboard/app.js dashboard/style.css dashboard/favicon.svg
var dashboardFiles embed.FS

// dashboardCSP keeps the page to its own origin: scripts, styles and
// requests go nowhere else.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// dashboardHandler serves the page at / and /dashboard and its assets
// under /dashboard/.
func dashboardHandler() http.Handler {
	sub, _ := fs.Sub(dashboardFiles, "dashboard")
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		switch p := r.URL.Path; {
		case p == "/" || p == "/dashboard" || p == "/dashboard/":
			http.ServeFileFS(w, r, sub, "index.html")
		default:
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimPrefix(p, "/dashboard")
			files.ServeHTTP(w, r2)
		}
	})
}

// RoundsView is the answer of GET /api/rounds: the node's training run
// (RunInfo) with its latest certificate decoded.
type RoundsView struct {
	RunInfo
	Certificate *CertView `json:"certificate,omitempty"`
}

// CertView describes a commit certificate.
type CertView struct {
	Round   uint64   `json:"round"`
	Skipped bool     `json:"skipped,omitempty"`
	Base    string   `json:"base"`
	Result  string   `json:"result,omitempty"`
	Voters  []string `json:"voters"` // peers whose signatures it holds, sorted
	Roster  int      `json:"roster"`
	Quorum  int      `json:"quorum"` // votes a certificate needs
}

// Rounds returns the node's run for GET /api/rounds, or false if the node
// is in no run.
func (n *Node) Rounds() (RoundsView, bool) {
	info, ok := n.RunInfo()
	if !ok {
		return RoundsView{}, false
	}
	v := RoundsView{RunInfo: info}
	if c, err := consensus.UnmarshalCertificate(info.Cert); len(info.Cert) > 0 && err == nil {
		cv := &CertView{Round: uint64(c.Round), Skipped: c.Skipped(), Base: c.Base, Result: c.Result,
			Roster: len(info.Spec.Roster), Quorum: info.Spec.quorumSize()}
		for _, vt := range c.Votes {
			cv.Voters = append(cv.Voters, vt.From)
		}
		slices.Sort(cv.Voters)
		v.Certificate = cv
	}
	if v.History == nil {
		v.History = []RoundRecord{}
	}
	return v, true
}

// handleRounds answers GET /api/rounds[?last=N]: the run, with only the
// last N rounds of history and traffic if N is given.
func (n *Node) handleRounds(w http.ResponseWriter, r *http.Request) {
	last := -1
	if q := r.URL.Query().Get("last"); q != "" {
		k, err := strconv.Atoi(q)
		if err != nil || k < 0 {
			writeError(w, &apiError{Status: http.StatusBadRequest, Type: typeInvalid, Param: "last",
				Message: fmt.Sprintf("last=%.40q is not a number of rounds", q)})
			return
		}
		last = k
	}
	v, ok := n.Rounds()
	if !ok {
		writeError(w, &apiError{Status: http.StatusNotFound, Type: typeNotFound, Code: "no_run",
			Message: "this node takes part in no training run"})
		return
	}
	if last >= 0 {
		v.History = v.History[len(v.History)-min(last, len(v.History)):]
		v.Traffic = v.Traffic[len(v.Traffic)-min(last, len(v.Traffic)):]
	}
	writeJSON(w, http.StatusOK, v)
}

// FetchProgress is one object a node is fetching from peers.
type FetchProgress struct {
	What  string `json:"what"` // "head", "block 3", ...
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
}

// fetchBoard keeps the fetches in progress for the status. A fetch that
// completes, or reports nothing for fetchStale, leaves the board.
type fetchBoard struct {
	mu sync.Mutex
	m  map[string]fetchEntry
}

type fetchEntry struct {
	p  FetchProgress
	at time.Time
}

const fetchStale = 30 * time.Second

func (b *fetchBoard) note(what string, done, total int64, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if done >= total {
		delete(b.m, what)
		return
	}
	if b.m == nil {
		b.m = map[string]fetchEntry{}
	}
	b.m[what] = fetchEntry{FetchProgress{What: what, Done: done, Total: total}, now}
}

// list returns the fetches in progress, sorted by name.
func (b *fetchBoard) list(now time.Time) []FetchProgress {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []FetchProgress
	for k, e := range b.m {
		if now.Sub(e.at) > fetchStale {
			delete(b.m, k)
			continue
		}
		out = append(out, e.p)
	}
	slices.SortFunc(out, func(a, b FetchProgress) int { return strings.Compare(a.What, b.What) })
	return out
}
