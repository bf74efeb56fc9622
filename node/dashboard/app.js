// The Strata node dashboard: polls /api/status and /api/rounds every
// second and redraws. Everything shown comes from the network, so text is
// only ever set with textContent, never parsed as HTML.
"use strict";

const POLL_MS = 1000;
const ROUNDS = "/api/rounds?last=200"; // the chart and table show the newest rounds
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function short(id) {
  id = String(id || "");
  return id.length <= 12 ? id : "…" + id.slice(-8);
}

function shortCID(c) {
  c = String(c || "");
  return c.length <= 20 ? c : c.slice(0, 10) + "…" + c.slice(-6);
}

// peerColor gives every peer a colour of its own for as long as the page
// is open: distinct palette colours in the order peers are first seen,
// then hues from a hash of the id.
const PALETTE = ["#2f6fed", "#e8710a", "#1e9e6a", "#c5379b", "#8a5cf6", "#d93f3f", "#0aa2b8", "#a07a00", "#5b6b82", "#7cb518"];
const colors = new Map();
function peerColor(id) {
  let c = colors.get(id);
  if (c) return c;
  if (colors.size < PALETTE.length) {
    c = PALETTE[colors.size];
  } else {
    let h = 2166136261;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 16777619) >>> 0;
    c = `hsl(${h % 360}, 60%, 46%)`;
  }
  colors.set(id, c);
  return c;
}

function bytes(n) {
  if (!(n > 0)) return "0 B";
  const u = ["B", "KB", "MB", "GB", "TB"];
  const i = Math.min(u.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return (n / Math.pow(1024, i)).toFixed(i ? 1 : 0) + " " + u[i];
}

function duration(s) {
  s = Math.floor(s || 0);
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

function spanText(b) {
  return b && b[1] > b[0] ? `${b[0]}:${b[1]}` : "–";
}

function setText(id, text, cls) {
  const e = $(id);
  e.textContent = text;
  if (cls !== undefined) e.className = "value " + cls;
}

function peerLabel(id, self, plain) {
  const s = el("span");
  const sw = el("span", "swatch");
  sw.style.background = peerColor(id);
  s.append(sw, el("span", "mono", short(id)));
  s.title = id;
  if (id === self && !plain) s.append(el("span", "badge", "this node"));
  if (id === self) s.classList.add("me");
  return s;
}

// --- status ---------------------------------------------------------------

function renderStatus(st) {
  $("node-id").textContent = short(st.peer);
  $("node-id").title = st.peer;
  $("node-model").textContent = st.model
    ? `${st.model_name || "model"} · ${st.model}`
    : "serves no model";
  $("addrs").textContent = (st.addrs || []).join("   ");

  const peers = (st.peers || []).slice().sort((a, b) =>
    (a.model === st.model ? 0 : 1) - (b.model === st.model ? 0 : 1) ||
    a.blocks[0] - b.blocks[0] || a.blocks[1] - b.blocks[1] || (a.peer < b.peer ? -1 : 1));
  const serving = peers.filter((p) => p.model === st.model && p.blocks[1] > p.blocks[0]);
  [st.peer, ...peers.map((p) => p.peer).sort()].forEach(peerColor);

  setText("c-peers", peers.length);
  $("c-peers-sub").textContent = st.model ? `${serving.length} serve this model` : "";
  setText("c-blocks", spanText(st.blocks));
  $("c-blocks-sub").textContent = st.loading ? `loading ${st.loading[0]}:${st.loading[1]}` :
    st.layers ? `of ${st.layers} blocks` : "";
  if (!st.model) {
    setText("c-coverage", "–", "");
    $("c-coverage-sub").textContent = "no model";
  } else if (st.covered) {
    setText("c-coverage", "complete", "good");
    $("c-coverage-sub").textContent = "every block is served";
  } else {
    setText("c-coverage", "gaps", "bad");
    $("c-coverage-sub").textContent = `blocks ${st.missing} unserved`;
  }
  setText("c-sessions", `${st.sessions} · ${st.requests}`);
  setText("c-uptime", duration(st.uptime_seconds));
  $("c-version").textContent = "version " + st.version;

  renderPeers(peers, st);
  renderCoverage(serving, st);
  renderRoute(st);
  renderFetches(st.fetches || []);
  renderGuard(st.guard, st);
  const banned = $("banned");
  banned.replaceChildren();
  if (st.banned && st.banned.length) {
    banned.className = "";
    for (const p of st.banned) banned.append(peerLabel(p, st.peer), " ");
  } else {
    banned.className = "empty";
    banned.textContent = "None.";
  }
}

function renderPeers(peers, st) {
  const tbody = $("peers").tBodies[0];
  const rows = [];
  for (const p of peers) {
    const tr = el("tr", p.peer === st.peer ? "self" : "");
    tr.dataset.peer = p.peer;
    const c1 = el("td");
    c1.append(peerLabel(p.peer, st.peer));
    const c2 = el("td");
    if (st.layers && p.model === st.model) {
      const bar = el("div", "spanbar");
      const fill = el("div");
      fill.style.left = (100 * p.blocks[0] / st.layers) + "%";
      fill.style.width = (100 * (p.blocks[1] - p.blocks[0]) / st.layers) + "%";
      fill.style.background = peerColor(p.peer);
      if (p.loading) fill.style.opacity = ".4";
      bar.append(fill);
      c2.append(bar);
    } else {
      c2.append(el("span", "muted", p.model ? "other model" : "no model"));
    }
    const c3 = el("td", "", spanText(p.blocks));
    if (p.loading) c3.append(el("span", "badge warn", "loading"));
    const load = el("td");
    const lb = el("span", "loadbar");
    const lf = el("div");
    lf.style.width = Math.min(100, Math.max(0, 100 * (p.load || 0))) + "%";
    lb.append(lf);
    load.append(lb, el("span", "muted", (p.load || 0).toFixed(2)));
    tr.append(c1, c2, c3,
      el("td", "num", (p.gflops || 0).toFixed(2)),
      el("td", "num", (p.block_ms || 0).toFixed(3)),
      load,
      el("td", "num", p.cores),
      el("td", "num", bytes(p.mem_free)),
      scoreCell(p.score),
      el("td", "mono", p.version));
    rows.push(tr);
  }
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "empty", "No peers known yet.");
    td.colSpan = 10;
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

function renderCoverage(serving, st) {
  const box = $("coverage");
  const L = st.layers || 0;
  $("coverage-none").hidden = !!st.model;
  $("coverage-model").textContent = st.model ? `${st.model_name || ""} · ${L} blocks` : "";
  if (!L) {
    box.replaceChildren();
    return;
  }
  const onRoute = new Set();
  for (const h of st.route || []) for (let b = h.lo; b < h.hi; b++) onRoute.add(h.peer + "/" + b);
  box.style.gridTemplateColumns = `minmax(90px, 150px) repeat(${L}, minmax(14px, 1fr))`;
  const cells = [el("div")];
  for (let b = 0; b < L; b++) cells.push(el("div", "colhead", b));
  const count = new Array(L).fill(0);
  for (const p of serving) {
    const label = el("div", "rowlabel");
    label.append(peerLabel(p.peer, st.peer, true));
    cells.push(label);
    for (let b = 0; b < L; b++) {
      const c = el("div", "cell");
      if (b >= p.blocks[0] && b < p.blocks[1]) {
        if (p.loading) {
          c.classList.add("loading");
        } else {
          c.classList.add("on");
          c.style.setProperty("--peer", peerColor(p.peer));
          count[b]++;
          if (onRoute.has(p.peer + "/" + b)) c.classList.add("route");
        }
        c.title = `${short(p.peer)} serves block ${b}`;
      }
      cells.push(c);
    }
  }
  cells.push(el("div", "rowlabel muted", "replicas"));
  for (let b = 0; b < L; b++) {
    const c = el("div", "count" + (count[b] === 0 ? " zero" : count[b] === 1 ? " one" : ""), count[b]);
    c.title = `block ${b}: ${count[b]} peer(s)`;
    cells.push(c);
  }
  box.replaceChildren(...cells);
}

function renderRoute(st) {
  const box = $("route");
  const route = st.route || [];
  if (!route.length) {
    box.replaceChildren(el("div", "empty", st.model ? "No complete route: some blocks are served by no peer." : "No model served."));
    return;
  }
  const parts = [el("span", "hop", "entry")];
  for (const h of route) {
    parts.push(el("span", "arrow", "→"));
    const hop = el("span", "hop");
    hop.append(peerLabel(h.peer, st.peer), el("span", "muted", `${h.lo}:${h.hi}`));
    parts.push(hop);
  }
  box.replaceChildren(...parts);
}

function renderFetches(fetches) {
  const box = $("fetches");
  if (!fetches.length) {
    box.replaceChildren(el("div", "empty", "Nothing being fetched."));
    return;
  }
  box.replaceChildren(...fetches.map((f) => {
    const d = el("div", "progress");
    const line = el("div", "line");
    line.append(el("span", "", f.what), el("span", "muted", `${bytes(f.done)} / ${bytes(f.total)}`));
    const bar = el("div", "bar");
    const fill = el("div");
    fill.style.width = (f.total > 0 ? 100 * f.done / f.total : 0) + "%";
    bar.append(fill);
    d.append(line, bar);
    return d;
  }));
}

// --- refusals and peer scores ---------------------------------------------

// GossipSub thresholds (gossip/score.go): below the graylist threshold a
// peer's messages are dropped unread.
const GOSSIP_THRESHOLD = -10, GRAYLIST_THRESHOLD = -100;

function scoreCell(score) {
  if (typeof score !== "number") return el("td", "num muted", "–");
  const cls = score < GRAYLIST_THRESHOLD ? "bad" : score < GOSSIP_THRESHOLD ? "warn" : "";
  const td = el("td", "num");
  td.append(el("span", cls ? "badge " + cls : "", score.toFixed(1)));
  return td;
}

function sumValues(m) {
  let n = 0;
  for (const k in m || {}) n += Number(m[k]) || 0;
  return n;
}

function renderGuard(g, st) {
  const box = $("guard");
  const limited = sumValues(g && g.rate_limited), blocked = sumValues(g && g.blocked) +
    (g ? (g.blocked_streams || 0) + (g.blocked_conns || 0) : 0);
  if (!g || (!limited && !blocked && !g.below_gossip && !g.graylistings && !g.fetch_bans)) {
    box.className = "empty";
    box.textContent = "Nothing refused.";
    return;
  }
  box.className = "guard";
  const lines = [];
  const line = (label, text, cls) => {
    const d = el("div", "line");
    d.append(el("span", "", label), el("span", cls || "muted", text));
    lines.push(d);
  };
  const top = (m) => Object.keys(m || {}).sort((a, b) => m[b] - m[a]).slice(0, 3)
    .map((k) => `${m[k]} on ${k}`).join(", ");
  line("rate-limited streams", limited ? `${limited} (${top(g.rate_limited)})` : "0");
  line("resource-limited", String(blocked));
  line("graylisted now", `${g.graylisted} of ${g.scored_peers} scored · ${g.graylistings} since start`,
    g.graylisted ? "badge bad" : "muted");
  if (g.fetch_bans) line("fetch bans", String(g.fetch_bans), "badge bad");
  for (const w of g.worst || []) {
    const d = el("div", "line");
    d.append(peerLabel(w.peer, st.peer, true), el("span", "mono", w.score.toFixed(0)));
    lines.push(d);
  }
  box.replaceChildren(...lines);
}

// --- training run ---------------------------------------------------------

function renderRun(run, st) {
  $("run-none").hidden = !!run;
  $("run-body").hidden = !run;
  if (!run) {
    $("run-name").textContent = "";
    setText("c-round", "–");
    $("c-round-sub").textContent = "no training run";
    $("cert-none").hidden = false;
    $("cert-body").hidden = true;
    $("rounds").tBodies[0].replaceChildren();
    $("rounds-panel").hidden = true;
    return;
  }
  $("rounds-panel").hidden = false;
  const spec = run.spec || {};
  const hist = run.history || [];
  const committed = hist.filter((r) => !r.skipped);
  const skipped = hist.length - committed.length;
  const done = spec.rounds > 0 && hist.length && hist[hist.length - 1].round >= spec.rounds;
  $("run-name").textContent = `${spec.name || ""} · ${shortCID(run.id)}`;
  $("run-name").title = run.id;
  setText("c-round", done ? "finished" : String(run.round), done ? "good" : "");
  $("c-round-sub").textContent = (spec.rounds ? `of ${spec.rounds}, ` : "") + `${committed.length} committed` +
    (skipped ? `, ${skipped} skipped` : "");

  const meta = $("run-meta");
  const item = (k, v) => {
    const s = el("span", "", k + " ");
    s.append(el("b", "", v));
    return s;
  };
  const last = committed[committed.length - 1];
  meta.replaceChildren(
    item("round", done ? `${spec.rounds} (finished)` : `${run.round}${spec.rounds ? " of " + spec.rounds : ""}`),
    item("roster", (spec.roster || []).length),
    item("rule", spec.rule || "–"),
    item("outer", spec.outer || "–"),
    item("codec", spec.codec || "–"),
    item("local steps", spec.steps || "–"),
    item("latest loss", last ? last.loss.toFixed(4) : "–"));

  drawLoss(hist);
  renderCert(run.certificate, st);
  renderRounds(hist, run.traffic || []);
}

function drawLoss(hist) {
  const chart = $("loss-chart");
  const W = 640, H = 230, L = 48, R = 14, T = 12, B = 30;
  const pts = hist.filter((r) => !r.skipped && r.loss > 0);
  const parts = [];
  if (!hist.length) {
    parts.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "note" }, "Waiting for the first round to commit…"));
    chart.replaceChildren(...parts);
    return;
  }
  const r0 = hist[0].round, r1 = Math.max(hist[hist.length - 1].round, r0 + 1);
  let lo = Math.min(...pts.map((p) => p.loss)), hi = Math.max(...pts.map((p) => p.loss));
  if (!pts.length) { lo = 0; hi = 1; }
  if (hi - lo < 1e-6) { lo -= 0.5; hi += 0.5; }
  const pad = (hi - lo) * 0.08;
  lo = Math.max(0, lo - pad); hi += pad;
  const x = (r) => L + (W - L - R) * (r - r0) / (r1 - r0);
  const y = (v) => T + (H - T - B) * (1 - (v - lo) / (hi - lo));
  for (let i = 0; i <= 4; i++) {
    const v = lo + (hi - lo) * i / 4;
    parts.push(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    parts.push(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toFixed(2)));
  }
  const step = Math.max(1, Math.ceil((r1 - r0) / 10));
  for (let r = r0; r <= r1; r += step) {
    parts.push(svg("text", { x: x(r), y: H - 10, "text-anchor": "middle", class: "axis" }, r));
  }
  if (pts.length) {
    const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.round).toFixed(1)},${y(p.loss).toFixed(1)}`).join(" ");
    const base = y(lo).toFixed(1);
    parts.push(svg("path", { d: `${d} L${x(pts[pts.length - 1].round).toFixed(1)},${base} L${x(pts[0].round).toFixed(1)},${base} Z`, class: "area" }));
    parts.push(svg("path", { d, class: "line" }));
  }
  for (const r of hist) {
    if (r.skipped || !(r.loss > 0)) {
      parts.push(svg("line", { x1: x(r.round), x2: x(r.round), y1: H - B - 6, y2: H - B + 2, class: "skip" }));
      continue;
    }
    const c = svg("circle", { cx: x(r.round), cy: y(r.loss), r: 4, class: "pt", "data-round": r.round });
    c.append(svg("title", {}, `round ${r.round}: loss ${r.loss.toFixed(4)}, ${(r.peers || []).length} peers`));
    parts.push(c);
  }
  chart.replaceChildren(...parts);
}

function renderCert(c, st) {
  $("cert-none").hidden = !!c;
  $("cert-body").hidden = !c;
  if (!c) return;
  $("cert-round").textContent = `round ${c.round}`;
  const out = $("cert-outcome");
  out.textContent = c.skipped ? "skipped" : "committed";
  out.className = "badge " + (c.skipped ? "warn" : "good");
  const votes = (c.voters || []).length;
  $("cert-votes").textContent = `${votes} of ${c.roster} votes (quorum ${c.quorum})`;
  $("cert-bar").style.width = (c.roster ? 100 * votes / c.roster : 0) + "%";
  $("cert-quorum").style.left = (c.roster ? 100 * c.quorum / c.roster : 0) + "%";
  $("cert-result").textContent = c.skipped ? "— (round skipped)" : c.result;
  $("cert-result").title = c.result || "";
  $("cert-base").textContent = c.base;
  $("cert-base").title = c.base;
  $("cert-voters").replaceChildren(...(c.voters || []).map((v) => {
    const s = el("span", "hop");
    s.append(peerLabel(v, st.peer));
    return s;
  }));
}

function renderRounds(hist, traffic) {
  const byRound = new Map(traffic.map((t) => [t.round, t]));
  const rows = hist.slice(-12).reverse().map((r) => {
    const tr = el("tr");
    const t = byRound.get(r.round);
    const outcome = el("td");
    outcome.append(el("span", "badge " + (r.skipped ? "warn" : "good"), r.skipped ? "skipped" : "committed"));
    const m = el("td", "mono", r.skipped ? "" : shortCID(r.model));
    m.title = r.model || "";
    tr.append(
      el("td", "num", r.round), outcome, m,
      el("td", "num", r.skipped ? "" : (r.peers || []).length),
      el("td", "num", r.samples ? r.samples.toLocaleString() : ""),
      el("td", "num", r.skipped || !r.loss ? "" : r.loss.toFixed(4)),
      el("td", "num", r.votes || ""),
      el("td", "num", t ? bytes(t.sent) : ""),
      el("td", "num", t ? bytes(t.received) : ""));
    return tr;
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "empty", "No round certified yet.");
    td.colSpan = 10;
    tr.append(td);
    rows.push(tr);
  }
  $("rounds").tBodies[0].replaceChildren(...rows);
}

// --- polling --------------------------------------------------------------

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (r.status === 404 && path === ROUNDS) return null;
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

let lastOK = 0;

async function poll() {
  const live = $("live");
  try {
    const [st, run] = await Promise.all([getJSON("/api/status"), getJSON(ROUNDS)]);
    renderStatus(st);
    renderRun(run, st);
    lastOK = Date.now();
    live.dataset.state = "ok";
    $("live-text").textContent = "live · " + new Date(lastOK).toLocaleTimeString();
    document.body.dataset.ready = "1";
  } catch (e) {
    live.dataset.state = "err";
    $("live-text").textContent = lastOK
      ? `unreachable since ${new Date(lastOK).toLocaleTimeString()}; retrying`
      : "unreachable; retrying";
    console.error(e);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
