package node

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDashboard runs a three-node training run whose nodes serve the model
// with the HTTP API, waits for two committed rounds and checks what an
// operator sees: the page and its assets, /api/rounds with the latest
// certificate, the run's metrics, the status over StatusProtocol, and the
// page itself in headless Chromium (skipped, saying why, where Chromium or
// playwright-core is missing).
func TestDashboard(t *testing.T) {
	rm := newRunMesh(t, 3, nil)
	rm.http = "127.0.0.1:0"
	for i := range 3 {
		rm.start(i, nil)
	}
	rm.waitRounds(2, 3*time.Minute)
	n0 := rm.nodes[0]
	base := "http://" + n0.HTTPAddr()
	ctx := context.Background()

	t.Run("page", func(t *testing.T) {
		for _, tc := range []struct{ path, ctype, has string }{
			{"/", "text/html", `src="/dashboard/app.js"`},
			{"/dashboard", "text/html", `id="loss-chart"`},
			{"/dashboard/app.js", "javascript", "/api/rounds"},
			{"/dashboard/style.css", "text/css", ".coverage"},
			{"/dashboard/favicon.svg", "image/svg+xml", "<svg"},
		} {
			r := do(t, ctx, "GET", base+tc.path, "")
			if r.status != http.StatusOK || !strings.Contains(r.header.Get("Content-Type"), tc.ctype) ||
				!strings.Contains(string(r.body), tc.has) {
				t.Errorf("GET %s: %d %q, want 200 %s holding %q", tc.path, r.status, r.header.Get("Content-Type"), tc.ctype, tc.has)
			}
			if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("GET %s: Content-Security-Policy %q", tc.path, csp)
			}
		}
		if r := do(t, ctx, "GET", base+"/dashboard/nope.js", ""); r.status != http.StatusNotFound {
			t.Errorf("GET /dashboard/nope.js: %d, want 404", r.status)
		}
	})

	t.Run("rounds", func(t *testing.T) {
		r := do(t, ctx, "GET", base+"/api/rounds", "")
		var v RoundsView
		if err := json.Unmarshal(r.body, &v); r.status != http.StatusOK || err != nil {
			t.Fatalf("GET /api/rounds: %d %s (%v)", r.status, r.body, err)
		}
		if v.ID != n0.RunID() || len(v.History) < 2 || v.History[0].Loss <= 0 {
			t.Errorf("GET /api/rounds: run %s with %d rounds, want run %s with 2 or more, with a loss", v.ID, len(v.History), n0.RunID())
		}
		r = do(t, ctx, "GET", base+"/api/rounds?last=1", "")
		var one RoundsView
		if err := json.Unmarshal(r.body, &one); r.status != http.StatusOK || err != nil || len(one.History) != 1 ||
			one.History[0].Round < v.History[len(v.History)-1].Round {
			t.Errorf("GET /api/rounds?last=1: %d, %d rounds (%v), want the newest alone", r.status, len(one.History), err)
		}
		if r := do(t, ctx, "GET", base+"/api/rounds?last=x", ""); r.status != http.StatusBadRequest {
			t.Errorf("GET /api/rounds?last=x: %d, want 400", r.status)
		}
		c := v.Certificate
		if c == nil || c.Round < 2 || len(c.Voters) < c.Quorum || c.Quorum != 3 || c.Roster != 3 {
			t.Errorf("certificate %+v, want round 2 or later with at least a quorum (3 of 3) of voters", c)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		fams := scrape(t, ctx, base)
		for _, m := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"strata_run_rounds_total", []string{"outcome", "committed"}, 2},
			{"strata_run_rounds_total", []string{"outcome", "skipped"}, 0},
			{"strata_run_round", nil, 3},
			{"strata_run_loss", nil, 0.01},
			{"strata_run_updates_fetched_total", nil, 2},
			{"strata_run_updates_rejected_total", nil, 0},
			{"strata_run_messages_total", []string{"direction", "received", "kind", "announce"}, 1},
			{"strata_run_messages_total", []string{"direction", "received", "kind", "commit"}, 1},
			{"strata_run_messages_total", []string{"direction", "sent", "kind", "announce"}, 1},
		} {
			got, ok := value(fams, m.name, m.labels...)
			if !ok || got < m.min {
				t.Errorf("%s%v = %v (present %v), want at least %v", m.name, m.labels, got, ok, m.min)
			}
		}
	})

	t.Run("status protocol", func(t *testing.T) {
		st, raw, err := QueryStatus(ctx, n0.Addrs()[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Peer != n0.ID() || st.Run == nil || st.Run.ID != n0.RunID() || st.Run.Last == nil || len(raw) == 0 {
			t.Errorf("QueryStatus: peer %s, run %+v; want %s in run %s", st.Peer, st.Run, n0.ID(), n0.RunID())
		}
		if _, _, err := QueryStatus(ctx, "/ip4/127.0.0.1/tcp/1/p2p/"+n0.ID(), nil); err == nil {
			t.Error("QueryStatus of a closed port: no error")
		}
	})

	t.Run("browser", func(t *testing.T) {
		browserCheck(t, base+"/", 3)
	})
}

// browserCheck opens url in headless Chromium through
// testdata/dashboard/dashboard.mjs, which checks that the page shows peers
// peers, the coverage map and a loss chart, and saves a screenshot into
// $STRATA_ARTIFACTS (or the test's temp dir).
func browserCheck(t *testing.T, url string, peers int) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium, or set CHROMIUM): %v", chromium, err)
	}
	nodeJS, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node (Node.js) on PATH to drive Chromium")
	}
	script, _ := filepath.Abs(filepath.Join("testdata", "dashboard", "dashboard.mjs"))
	if _, err := os.Stat(filepath.Join(filepath.Dir(script), "node_modules", "playwright-core", "package.json")); err != nil {
		t.Skipf("playwright-core is not installed (npm ci in %s): %v", filepath.Dir(script), err)
	}
	dir := os.Getenv("STRATA_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	shot, _ := filepath.Abs(filepath.Join(dir, "dashboard.png"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeJS, script, url, shot, strconv.Itoa(peers))
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("dashboard: %s", strings.TrimSpace(string(out)))
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) || ctx.Err() != nil {
			t.Fatalf("the dashboard check failed: %v\n%s", err, stderr.String())
		}
		t.Fatal(err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s", shot)
}
