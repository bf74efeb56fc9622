package node

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"

	"github.com/strata-mesh/strata/infer"
	"github.com/strata-mesh/strata/model"
	"github.com/strata-mesh/strata/shards"
)

// tinyRepo writes a small synthetic model into a new repo; the same seed
// gives the same model CID in every repo.
func tinyRepo(t *testing.T) (dir, id string) {
	t.Helper()
	dir = t.TempDir()
	st, err := shards.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Dim: 32, HiddenDim: 48, NLayers: 3, NHeads: 4, NKVHeads: 2, VocabSize: 300, SeqLen: 32,
		SharedClassifier: true, NormEps: 1e-5, RopeTheta: 10000}
	c, _, err := shards.ImportModel(st, model.Synth(cfg, 1), model.ByteTokenizer(300), "tiny")
	if err != nil {
		t.Fatal(err)
	}
	return dir, c.String()
}

// scrape fetches base/metrics and parses the text format.
func scrape(t *testing.T, ctx context.Context, base string) map[string]*dto.MetricFamily {
	t.Helper()
	r := do(t, ctx, "GET", base+"/metrics", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("GET /metrics: the text format does not parse: %v\n%s", err, r.body)
	}
	return fams
}

// value returns the value of the series of family name whose labels
// include want (name=value pairs), and whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == want[i] && l.GetValue() == want[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestMetrics runs a request through two nodes (the entry serves block
// 0:1, the hop 1:3) and scrapes both: the entry counts the tokens it
// generated and their step latencies, the hop its forward passes, and
// the gauges read at scrape time are back to zero once the request ends.
func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	hopDir, id := tinyRepo(t)
	hop, err := Start(ctx, Config{Repo: hopDir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, Blocks: "1:3",
		HTTP: "127.0.0.1:0", AdvertEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hop.Close() })
	entryDir, _ := tinyRepo(t)
	entry, err := Start(ctx, Config{Repo: entryDir, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Model: id, Blocks: "0:1",
		HTTP: "127.0.0.1:0", AdvertEvery: 200 * time.Millisecond, Bootstrap: hop.Addrs()[:1]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { entry.Close() })
	for deadline := time.Now().Add(30 * time.Second); !entry.Covered(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the entry's peer table does not cover the model after 30s")
		}
	}

	st, err := entry.Generate(ctx, infer.Request{Prompt: "abc", Steps: 20}, func(infer.Token) error { return nil })
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if st.Generated == 0 {
		t.Fatal("Generate produced no tokens")
	}

	fams := scrape(t, ctx, "http://"+entry.HTTPAddr())
	for _, tc := range []struct {
		name   string
		labels []string
		min    float64
		max    float64
	}{
		{"strata_tokens_generated_total", nil, float64(st.Generated), float64(st.Generated)},
		{"strata_step_seconds", nil, float64(st.Generated), float64(st.Generated)}, // sample count
		{"strata_hop_forward_passes_total", nil, 0, 0},                             // its own blocks are not a hop
		{"strata_failovers_total", nil, 0, 0},
		{"strata_requests", nil, 0, 0},
		{"strata_banned_peers", nil, 0, 0},
		{"strata_blocks_lo", nil, 0, 0},
		{"strata_blocks_hi", nil, 1, 1},
		{"strata_model_layers", nil, 3, 3},
		{"strata_peers", nil, 2, 2},
		{"strata_fetch_bytes_total", nil, 0, 0}, // the repo held everything
		{"strata_gossip_messages_total", []string{"type", "advert", "verdict", "accepted"}, 1, 1e9},
		{"strata_gossip_messages_total", []string{"verdict", "rejected"}, 0, 0},
		{"strata_build_info", []string{"version", Version}, 1, 1},
	} {
		got, ok := value(fams, tc.name, tc.labels...)
		switch {
		case !ok:
			t.Errorf("entry: no series %s%v", tc.name, tc.labels)
		case got < tc.min || got > tc.max:
			t.Errorf("entry: %s%v = %v, want in [%v, %v]", tc.name, tc.labels, got, tc.min, tc.max)
		}
	}
	if _, ok := value(fams, "go_goroutines"); !ok {
		t.Error("entry: no Go runtime metrics")
	}

	// The hop ran the prompt as one batch, then one pass per further
	// token; its session ends shortly after the request.
	base := "http://" + hop.HTTPAddr()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		fams = scrape(t, ctx, base)
		if v, _ := value(fams, "strata_sessions"); v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hop: strata_sessions still not 0 10s after the request ended")
		}
	}
	wantPasses := float64(st.Forward - st.PromptTokens + 1)
	if got, _ := value(fams, "strata_hop_forward_passes_total"); got != wantPasses {
		t.Errorf("hop: strata_hop_forward_passes_total = %v, want %v (%d forward positions, prompt of %d)",
			got, wantPasses, st.Forward, st.PromptTokens)
	}
	if got, _ := value(fams, "strata_hop_positions_total"); got != float64(st.Forward) {
		t.Errorf("hop: strata_hop_positions_total = %v, want %d", got, st.Forward)
	}
	if got, _ := value(fams, "strata_kv_cache_bytes"); got != 0 {
		t.Errorf("hop: strata_kv_cache_bytes = %v after the session ended, want 0", got)
	}
	if got, _ := value(fams, "strata_tokens_generated_total"); got != 0 {
		t.Errorf("hop: strata_tokens_generated_total = %v, want 0 (it fronted nothing)", got)
	}

	// Only GET (and HEAD) are served.
	if r := do(t, ctx, "POST", base+"/metrics", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want 405", r.status)
	}
	if r := do(t, ctx, "GET", base+"/metrics", ""); !strings.Contains(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics: Content-Type %q, want the text format", r.header.Get("Content-Type"))
	}
}
