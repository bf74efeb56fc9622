package node

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/strata-mesh/strata/consensus"
	"github.com/strata-mesh/strata/infer"
)

// metrics holds a node's Prometheus registry. Events from infer update
// counters and a histogram as they happen; values the node and its
// services already keep (sessions, cache use, fetch bytes, gossip
// verdicts, the peer table) are read at scrape time by a collector, so
// they are never stale and never counted twice. No metric has a per-peer
// label: series stay bounded however large the mesh grows.
type metrics struct {
	reg       *prometheus.Registry
	tokens    prometheus.Counter
	hops      prometheus.Counter
	positions prometheus.Counter
	failovers prometheus.Counter
	step      prometheus.Histogram

	// A training run's events.
	updatesFetched  prometheus.Counter
	updatesRejected prometheus.Counter
	runMessages     *prometheus.CounterVec // by direction and kind
}

// stepBuckets span a step's latency from a local tiny model (~100µs) to
// a long chain over slow links (~10s).
var stepBuckets = prometheus.ExponentialBuckets(100e-6, 2.5, 14)

func newMetrics(n *Node) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		tokens: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_tokens_generated_total",
			Help: "Tokens sampled by this node as the entry of requests.",
		}),
		hops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_hop_forward_passes_total",
			Help: "Forward passes this node ran as a hop of chains (a prompt batch counts once).",
		}),
		positions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_hop_positions_total",
			Help: "Token positions this node ran through its blocks as a hop of chains.",
		}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_failovers_total",
			Help: "Times a request fronted by this node was routed around a failed hop.",
		}),
		step: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_step_seconds",
			Help:    "Latency of one step through the whole chain, per token generated at this entry.",
			Buckets: stepBuckets,
		}),
		updatesFetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_run_updates_fetched_total",
			Help: "Training updates of other participants fetched from peers (each verified against its CID).",
		}),
		updatesRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "strata_run_updates_rejected_total",
			Help: "Training updates rejected by validation (wrong shape or round, NaN, Inf, norm outlier).",
		}),
		runMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_run_messages_total",
			Help: "Gossip messages of the training run, by direction (sent, received) and kind (announce, propose, vote, commit).",
		}, []string{"direction", "kind"}),
	}
	m.reg.MustRegister(m.tokens, m.hops, m.positions, m.failovers, m.step,
		m.updatesFetched, m.updatesRejected, m.runMessages,
		nodeCollector{n},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// observe is the node's infer.Config.Observe.
func (m *metrics) observe(ev infer.Event) {
	switch ev.Kind {
	case infer.EventToken:
		m.tokens.Inc()
		m.step.Observe(ev.Seconds)
	case infer.EventHop:
		m.hops.Inc()
		m.positions.Add(float64(ev.Positions))
	case infer.EventFailover:
		m.failovers.Inc()
	}
}

// runMessage counts a message of a run's topic (a kind byte, then the
// body) sent or received.
func (m *metrics) runMessage(direction string, data []byte) {
	m.runMessages.WithLabelValues(direction, runMessageKind(data)).Inc()
}

// runMessageKind names the kind of a run message for the metrics: a
// bounded set of labels whatever a peer sends.
func runMessageKind(data []byte) string {
	switch {
	case len(data) >= 1 && data[0] == msgAnnounce:
		return "announce"
	case len(data) >= 3 && data[0] == msgConsensus:
		// The consensus wire format starts with its version, then the
		// kind; the kinds that travel between peers come first, up to
		// the certificate.
		if k := consensus.Kind(data[2]); k >= consensus.KindPropose && k <= consensus.KindCommit {
			return k.String()
		}
	}
	return "other"
}

// MetricsHandler serves the node's metrics in the Prometheus text format,
// as GET /metrics of the HTTP API does.
func (n *Node) MetricsHandler() http.Handler {
	if n.metrics == nil { // a node that never started
		return http.NotFoundHandler()
	}
	return promhttp.HandlerFor(n.metrics.reg, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{n},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// slogPrinter adapts the node's logger to promhttp's error log.
type slogPrinter struct{ n *Node }

func (p slogPrinter) Println(v ...any) { p.n.log.Warn("node: metrics", "err", v) }

// Descriptions of the values read at scrape time.
var (
	descBuild    = prometheus.NewDesc("strata_build_info", "Always 1; the version label is this node's version.", []string{"version"}, nil)
	descSessions = prometheus.NewDesc("strata_sessions", "Sessions this node serves as a hop now.", nil, nil)
	descRequests = prometheus.NewDesc("strata_requests", "Requests this node fronts as the entry now.", nil, nil)
	descKV       = prometheus.NewDesc("strata_kv_cache_bytes", "Memory held by KV caches now, as hop and as entry.", nil, nil)
	descBanned   = prometheus.NewDesc("strata_banned_peers", "Peers banned now for failing requests.", nil, nil)
	descFetched  = prometheus.NewDesc("strata_fetch_bytes_total", "Object bytes fetched from peers over the network.", nil, nil)
	descPeers    = prometheus.NewDesc("strata_peers", "Peers in the peer table, this node included.", nil, nil)
	descGossip   = prometheus.NewDesc("strata_gossip_messages_total", "Gossip adverts by validator verdict.", []string{"type", "verdict"}, nil)
	descBlockLo  = prometheus.NewDesc("strata_blocks_lo", "First block served (inclusive).", nil, nil)
	descBlockHi  = prometheus.NewDesc("strata_blocks_hi", "End of the blocks served (exclusive); equal to strata_blocks_lo when none.", nil, nil)
	descLayers   = prometheus.NewDesc("strata_model_layers", "Blocks of the model this node serves or fronts.", nil, nil)
	descRounds   = prometheus.NewDesc("strata_run_rounds_total", "Certified rounds of the node's training run, by outcome (committed or skipped).", []string{"outcome"}, nil)
	descRound    = prometheus.NewDesc("strata_run_round", "The round of the node's training run in progress.", nil, nil)
	descLoss     = prometheus.NewDesc("strata_run_loss", "Sample-weighted mean training loss of the latest committed round.", nil, nil)
	descRunFetch = prometheus.NewDesc("strata_fetches_in_progress", "Objects being fetched from peers now.", nil, nil)

	// What the node refuses to peers (see GuardStatus).
	descRefused = prometheus.NewDesc("strata_streams_refused_total",
		"Streams refused, by protocol and by what refused them: the per-peer rate limit on inbound streams (rate_limit) or a resource-manager limit of the protocol, either direction (resource_limit).",
		[]string{"protocol", "by"}, nil)
	descBlocked = prometheus.NewDesc("strata_resource_blocked_total",
		"Refusals by the resource manager outside any protocol's limit: streams before a protocol was negotiated (stream), connections (conn).",
		[]string{"scope"}, nil)
	descScored     = prometheus.NewDesc("strata_gossip_scored_peers", "Peers GossipSub scores now.", nil, nil)
	descBelow      = prometheus.NewDesc("strata_gossip_peers_below_threshold", "Peers scored below a GossipSub threshold now (gossip, publish, graylist; the bands nest).", []string{"threshold"}, nil)
	descGraylisted = prometheus.NewDesc("strata_gossip_graylistings_total", "Times a peer's GossipSub score fell below the graylist threshold, after which its messages are dropped unread.", nil, nil)
	descLowest     = prometheus.NewDesc("strata_gossip_lowest_score", "The lowest GossipSub peer score now, or 0 when no peer scores below zero.", nil, nil)
	descFetchBans  = prometheus.NewDesc("strata_fetch_bans_total", "Providers banned for sending bytes that fail verification (the record keeps at most 1024).", nil, nil)
)

// nodeCollector reads a node's state at scrape time.
type nodeCollector struct{ n *Node }

var _ prometheus.Collector = nodeCollector{}

func (nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descSessions, descRequests, descKV, descBanned,
		descFetched, descPeers, descGossip, descBlockLo, descBlockHi, descLayers, descRounds, descRound, descLoss, descRunFetch,
		descRefused, descBlocked, descScored, descBelow, descGraylisted, descLowest, descFetchBans} {
		ch <- d
	}
}

func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descBuild, 1, Version)

	n.mu.Lock()
	svc, span := n.infer, n.span
	n.mu.Unlock()
	var sessions, requests, banned int
	var kv int64
	if svc != nil {
		sessions, requests, kv, banned = svc.Sessions(), svc.Requests(), svc.KVBytes(), len(svc.Banned())
	}
	gauge(descSessions, float64(sessions))
	gauge(descRequests, float64(requests))
	gauge(descKV, float64(kv))
	gauge(descBanned, float64(banned))
	gauge(descBlockLo, float64(span.Lo))
	gauge(descBlockHi, float64(span.Hi))
	if n.ver().man != nil {
		gauge(descLayers, float64(n.ver().man.Config.NLayers))
	}
	if n.fetcher != nil {
		counter(descFetched, float64(n.fetcher.BytesFetched()))
	}
	if n.gossip != nil {
		gauge(descPeers, float64(n.gossip.Table().Len()))
		s := n.gossip.Stats()
		counter(descGossip, float64(s.Accepted), "advert", "accepted")
		counter(descGossip, float64(s.Rejected), "advert", "rejected")
		counter(descGossip, float64(s.Ignored), "advert", "ignored")
	}
	gauge(descRunFetch, float64(len(n.fetches.list(time.Now()))))
	if g := n.guard(); g != nil {
		for p, v := range g.RateLimited {
			counter(descRefused, float64(v), p, "rate_limit")
		}
		for p, v := range g.Blocked {
			counter(descRefused, float64(v), p, "resource_limit")
		}
		counter(descBlocked, float64(g.BlockedStreams), "stream")
		counter(descBlocked, float64(g.BlockedConns), "conn")
		gauge(descScored, float64(g.ScoredPeers))
		gauge(descBelow, float64(g.BelowGossip), "gossip")
		gauge(descBelow, float64(g.BelowPublish), "publish")
		gauge(descBelow, float64(g.Graylisted), "graylist")
		counter(descGraylisted, float64(g.Graylistings))
		lowest := 0.0
		if len(g.Worst) > 0 {
			lowest = g.Worst[0].Score
		}
		gauge(descLowest, lowest)
		counter(descFetchBans, float64(g.FetchBans))
	}
	if n.run != nil {
		h := n.run.History()
		var committed, skipped int
		var loss float64
		var haveLoss bool
		for _, r := range h {
			if r.Skipped {
				skipped++
				continue
			}
			committed++
			loss, haveLoss = float64(r.Loss), true
		}
		counter(descRounds, float64(committed), "committed")
		counter(descRounds, float64(skipped), "skipped")
		round := uint64(1)
		if k := len(h); k > 0 {
			round = h[k-1].Round + 1
		}
		gauge(descRound, float64(round))
		if haveLoss {
			gauge(descLoss, loss)
		}
	}
}
