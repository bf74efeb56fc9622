// Opens a node's dashboard in headless Chromium, checks what it shows and
// saves a screenshot. Used by node's TestDashboard:
//
//   node dashboard.mjs URL SCREENSHOT.png PEERS
//
// It prints one JSON line with what it found and exits non-zero, naming
// the check, when the page does not show PEERS peers, a coverage map and a
// loss chart with points, or logs an error (a blocked resource included).
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shot, wantPeers = "3"] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node dashboard.mjs URL SCREENSHOT.png [PEERS]");
  process.exit(2);
}
const peers = Number(wantPeers);
const profile = mkdtempSync(join(tmpdir(), "strata-dashboard-"));
const ctx = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
  timeout: 60000,
});
const errors = [];
let result = {};
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on("console", (m) => { if (m.type() === "error") errors.push("console: " + m.text()); });
  page.on("pageerror", (e) => errors.push("page: " + e.message));
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
  await page.goto(url, { waitUntil: "load" });

  const check = async (name, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: 30000, polling: 250 });
    } catch (e) {
      throw new Error(`${name}: not shown within 30s`);
    }
  };
  await check("live status", () => document.body.dataset.ready === "1");
  await check(`${peers} peers in the table`, (n) => document.querySelectorAll("#peers tbody tr[data-peer]").length === n, peers);
  await check("coverage map with every block served",
    () => document.querySelectorAll("#coverage .cell.on").length > 0 &&
      document.querySelectorAll("#coverage .count").length > 0 &&
      document.querySelectorAll("#coverage .count.zero").length === 0);
  await check("loss chart with two points", () => document.querySelectorAll("#loss-chart circle.pt").length >= 2);
  await check("latest certificate", () => !document.getElementById("cert-body").hidden);
  await check("a GossipSub score for every other peer",
    () => {
      const rows = document.querySelectorAll("#peers tbody tr[data-peer]:not(.self)");
      return rows.length > 0 && [...rows].every((r) => /^-?\d+\.\d$/.test(r.children[8].textContent));
    });
  await check("the refusals section", () => document.getElementById("guard").textContent.length > 0);
  // One more poll so the screenshot shows settled values.
  await page.waitForTimeout(1200);

  result = await page.evaluate(() => ({
    peers: document.querySelectorAll("#peers tbody tr[data-peer]").length,
    peersCard: document.getElementById("c-peers").textContent,
    coverageCells: document.querySelectorAll("#coverage .cell.on").length,
    blocks: document.querySelectorAll("#coverage .count").length,
    lossPoints: document.querySelectorAll("#loss-chart circle.pt").length,
    rounds: document.querySelectorAll("#rounds tbody tr").length,
    cert: document.getElementById("cert-round").textContent + " " + document.getElementById("cert-votes").textContent,
    route: document.querySelectorAll("#route .hop").length,
    scores: [...document.querySelectorAll("#peers tbody tr[data-peer]")].map((r) => r.children[8].textContent),
    guard: document.getElementById("guard").textContent,
  }));
  if (String(result.peersCard) !== String(peers)) throw new Error(`peers card shows ${result.peersCard}, want ${peers}`);
  await page.screenshot({ path: shot, fullPage: true });
  result.screenshot = shot;
  if (errors.length) throw new Error("the page logged errors:\n" + errors.join("\n"));
  console.log(JSON.stringify(result));
} catch (e) {
  console.log(JSON.stringify(result));
  console.error(e.message);
  if (errors.length) console.error(errors.join("\n"));
  process.exitCode = 1;
} finally {
  await ctx.close();
  rmSync(profile, { recursive: true, force: true });
}
