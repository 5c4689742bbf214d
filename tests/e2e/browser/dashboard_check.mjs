// Opens the dashboard in headless Debian Chromium through playwright-core and reports, as one JSON
// object on stdout, what a person would see: member rows, the coordinator, poison counts, the charts,
// the freshness line and banner, every request the page made, and console errors. It then makes
// /api/status fail (in the browser, by routing) to see the stale banner, and lets it recover.
// The pytest test (tests/e2e/test_dashboard.py) decides what is right; this script only looks.
//
//   node tests/e2e/browser/dashboard_check.mjs --url URL --screenshot PNG [--expect-members a,b]
//        [--expect-proposal ID] [--timeout 90]
//
// The page is one member's dashboard: its own row (status, nodes, chart) and the consortium as that
// member verified it (chain version, head, genesis, fork, the chain's members, proposals with who signed).
//
// Chromium flags: --headless and --user-data-dir are Playwright's to set (headless: true and a fresh
// profile folder given to launchPersistentContext); the rest are passed as they are.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    screenshot: { type: "string" },
    "stale-screenshot": { type: "string" },
    "expect-members": { type: "string", default: "" },
    "expect-proposal": { type: "string", default: "" },
    timeout: { type: "string", default: "90" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
if (!opts.url || !opts.screenshot) {
  console.error("usage: dashboard_check.mjs --url URL --screenshot PNG [--expect-members a,b]");
  process.exit(2);
}
const expected = opts["expect-members"].split(",").filter(Boolean);
const timeout = Number(opts.timeout) * 1000;
const ARGS = [
  "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

const profile = mkdtempSync(join(tmpdir(), "dashboard-chromium-"));
const report = { ok: false, requests: [], console_errors: [], page_errors: [] };
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: opts.chromium, headless: true, args: ARGS, viewport: { width: 1360, height: 900 },
    colorScheme: "light", timezoneId: "UTC", locale: "en-US",
  });
  const page = context.pages()[0] || (await context.newPage());
  const origin = new URL(opts.url).origin;
  page.on("request", (r) => report.requests.push({ url: r.url(), same_origin: r.url().startsWith(origin) || r.url().startsWith("data:") }));
  let phase = "normal";
  page.on("console", (m) => { if (m.type() === "error") report.console_errors.push({ phase, text: m.text(), url: m.location().url }); });
  page.on("pageerror", (e) => report.page_errors.push(String(e)));

  const response = await page.goto(opts.url, { waitUntil: "load" });
  report.http_status = response.status();
  report.content_type = response.headers()["content-type"];
  report.csp = response.headers()["content-security-policy"];

  // Ready when every expected member is active in the table and its chart has capacity and load points,
  // and the expected proposal is listed.
  const ready = await page.waitForFunction(([members, proposal]) => {
    if (!document.body.dataset.polls) return false;
    if (proposal && !document.querySelector(`#proposals-table tr[data-proposal="${proposal}"]`)) return false;
    return members.every((m) => {
      const row = document.querySelector(`#members-table tr[data-member="${m}"]`);
      const chart = document.querySelector(`figure.chart[data-member="${m}"] svg`);
      return row && row.dataset.status === "active" && chart && Number(chart.dataset.points) > 1 && Number(chart.dataset.loadPoints) > 0;
    });
  }, [expected, opts["expect-proposal"]], { timeout, polling: 500 }).then(() => true, () => false);
  report.ready = ready;

  const seen = () => page.evaluate(() => {
    const text = (el) => (el ? el.textContent.replace(/\s+/g, " ").trim() : null);
    const visible = (el) => Boolean(el && !el.hidden && el.getClientRects().length);
    return {
      title: document.title,
      updated: text(document.getElementById("updated")),
      updated_age: text(document.getElementById("updated-age")),
      banner: { visible: visible(document.getElementById("banner")), text: text(document.getElementById("banner")), state: document.getElementById("banner").dataset.state },
      polls: Number(document.body.dataset.polls || 0),
      coordinator: {
        holder: text(document.getElementById("coordinator-holder")),
        token: text(document.getElementById("coordinator-token")),
        expiry: text(document.getElementById("coordinator-expiry")),
        tile: text(document.getElementById("glance-coordinator")),
      },
      members: [...document.querySelectorAll("#members-table tbody tr[data-member]")].map((tr) => ({
        member_id: tr.dataset.member, status: tr.dataset.status, status_text: text(tr.cells[1]), nodes: text(tr.cells[2]),
        health: text(tr.cells[3]), cpu: text(tr.cells[4]), tpm: text(tr.cells[5]), decision: text(tr.cells[6]),
      })),
      poison: [...document.querySelectorAll("#poison tbody tr[data-queue]")].map((tr) => ({
        queue: tr.dataset.queue, count: Number(tr.dataset.count), shown: text(tr.cells[1]),
        highlighted: tr.classList.contains("bad"), background: getComputedStyle(tr.cells[1]).backgroundColor,
      })),
      poison_tile: { text: text(document.getElementById("glance-poison")), highlighted: document.getElementById("tile-poison").classList.contains("bad") },
      charts: [...document.querySelectorAll("figure.chart")].map((f) => {
        const svg = f.querySelector("svg");
        return {
          member_id: f.dataset.member, scale_set: svg.dataset.scaleSet, points: Number(svg.dataset.points),
          load_points: Number(svg.dataset.loadPoints), changes: Number(svg.dataset.changes),
          has_capacity_line: Boolean(svg.querySelector("path.cap")), has_load_line: Boolean(svg.querySelector("polyline.tpm")),
          label: text(svg.querySelector("desc")), caption: text(f.querySelector("figcaption")),
        };
      }),
      tiles: Object.fromEntries([...document.querySelectorAll(".tile")].map((t) => [t.id.replace(/^tile-/, ""), { text: text(t.querySelector("dd")), state: t.className }])),
      chain: {
        version: text(document.getElementById("chain-version")), head: text(document.getElementById("chain-head")),
        head_title: document.querySelector("#chain-head [title]")?.title ?? null,
        genesis: text(document.getElementById("chain-genesis")), genesis_title: document.querySelector("#chain-genesis [title]")?.title ?? null,
        fork: text(document.getElementById("chain-fork")),
      },
      chain_members: [...document.querySelectorAll("#chain-members-table tbody tr[data-member]")].map((tr) => ({
        member_id: tr.dataset.member, name: text(tr.cells[0]), status: text(tr.cells[1]), head: text(tr.cells[2]), endpoint: text(tr.cells[3]),
      })),
      proposals: [...document.querySelectorAll("#proposals-table tbody tr[data-proposal]")].map((tr) => ({
        proposal_id: tr.dataset.proposal, status: tr.dataset.status, change: text(tr.cells[1]), base: text(tr.cells[2]),
        signed_by: text(tr.cells[3]), status_text: text(tr.cells[4]), mine: text(tr.cells[5]),
      })),
      decisions: [...document.querySelectorAll("#decisions-table tbody tr[data-member]")].map((tr) => text(tr)),
      keys: [...document.querySelectorAll("#keys-table tbody tr[data-key]")].map((tr) => ({ member_id: tr.dataset.member, key: tr.dataset.key, text: text(tr) })),
    };
  });
  report.seen = await seen();
  mkdirSync(dirname(opts.screenshot), { recursive: true });
  await page.screenshot({ path: opts.screenshot, fullPage: true });

  // A failing poll: the page must say so at once, keep the last data, and recover by itself.
  phase = "outage";
  await page.route("**/api/status", (route) => route.fulfill({
    status: 503, contentType: "application/json", body: JSON.stringify({ error: "status unavailable: injected by the browser test" }),
  }));
  report.stale_shown = await page.waitForSelector("#banner:not([hidden])", { timeout: 20000 }).then(() => true, () => false);
  report.stale = await seen();
  if (opts["stale-screenshot"]) await page.screenshot({ path: opts["stale-screenshot"], fullPage: false });
  await page.unroute("**/api/status");
  phase = "recovery";
  report.recovered = await page.waitForSelector("#banner[hidden]", { state: "attached", timeout: 20000 }).then(() => true, () => false);
  report.after_recovery = await seen();
  report.ok = true;
} catch (e) {
  report.error = String(e && e.stack ? e.stack : e);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(report));
process.exit(report.ok ? 0 : 1);
