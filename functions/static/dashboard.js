// The consortium dashboard: polls the status model and the autoscaler's decisions, renders them for a
// person, and keeps a client-side history of capacity and load for the chart. No framework, no
// dependencies, nothing loaded from outside the app; every value from the model is set as text.
"use strict";
(function () {
  const POLL_MS = 5000;
  const TIMEOUT_MS = 4500;
  const STALE_MS = 3 * POLL_MS; // no good poll for this long: stale, even if no request has failed yet
  const WINDOW_MAX_MS = 60 * 60 * 1000;
  let memberShown = ""; // the member this deployment serves, once a poll has said
  const WINDOW_MIN_MS = 90 * 1000;
  const MAX_POINTS = 2000;
  const KNOWN = [
    "member_id", "status", "legal_name", "request_id", "status_reason", "coordinator", "identities", "chain", "members", "proposals",
    "agreement", "peers", "scale_set", "keys", "nodes", "poison", "autoscale", "rotation", "health",
  ];
  const STATUS_CLASS = {
    active: "ok", pending: "warn", outside: "off", failed: "bad", rejected: "off", left: "off", removed: "off",
  };
  const PROPOSAL_CLASS = { open: "warn", done: "ok", rejected: "off", expired: "off", closed: "off" };
  const REASON_CLASS = {
    scale_out: "info", saturated: "warn", scale_in: "info", below_min: "info", above_max: "info",
    within_tolerance: "ok", warming: "ok", stabilizing: "ok", cooldown: "ok",
    missing_data: "bad", partial_data: "warn", at_max: "warn", at_min: "ok", protected: "ok", rate_limited: "warn",
    predicted: "info", predicted_hold: "ok",
  };
  const SVG = "http://www.w3.org/2000/svg";

  // A function key the page was opened with (?code=) goes with every poll: FUNCTION-level routes in Azure.
  const code = new URLSearchParams(location.search).get("code");
  const requestHeaders = code ? { "x-functions-key": code } : {};
  const base = location.pathname.replace(/\/dashboard\/?$/i, "/");

  let skew = 0; // the server's clock minus ours (from the Date header), so ages are the server's
  let lastOk = null;
  let lastModel = null;
  let lastScaling = null;
  let failure = null;
  let scalingFailure = null;
  const history = new Map(); // scale set name -> Map(point id -> point)

  const now = () => Date.now() + skew;
  const $ = (id) => document.getElementById(id);

  // ---- small helpers ---------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) node.setAttribute(k, String(v));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: columns, text: emptyText }))]));
  }

  const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}/;
  function parseTime(value) {
    if (typeof value !== "string" || !ISO.test(value)) return null;
    const t = Date.parse(value);
    return Number.isNaN(t) ? null : t;
  }

  const pad = (n) => String(n).padStart(2, "0");
  function clock(t) {
    const d = new Date(t);
    const hms = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
    const today = new Date(now());
    const sameDay = d.getUTCFullYear() === today.getUTCFullYear() && d.getUTCMonth() === today.getUTCMonth() && d.getUTCDate() === today.getUTCDate();
    return sameDay ? hms : `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${hms}`;
  }

  function duration(ms) {
    const s = Math.round(Math.abs(ms) / 1000);
    if (s < 90) return `${s} s`;
    const m = Math.round(s / 60);
    if (m < 90) return `${m} min`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  const relative = (t) => (t <= now() ? `${duration(now() - t)} ago` : `in ${duration(t - now())}`);
  // An age that stays true while the page waits: every second, freshness() rewrites each one.
  const rel = (t) => el("span", { class: "rel", "data-rel": t, text: relative(t) });
  const num = (v, digits = 0) => (typeof v === "number" && Number.isFinite(v) ? v.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "—");
  const short = (text, n) => (typeof text === "string" && text.length > n ? `${text.slice(0, n)}…` : text);

  function timeCell(value) {
    const t = parseTime(value);
    if (t === null) return el("span", { class: "muted", text: value ?? "—" });
    return el("time", { datetime: value, title: value }, clock(t), el("span", { class: "muted" }, " · ", rel(t)));
  }

  function badge(text, cls) {
    return el("span", { class: `badge ${cls || ""}`.trim(), text: text ?? "unknown" });
  }

  // Any value of a model field a person might need, rendered generically: times get their age,
  // objects become a definition list. New fields in the model show up without a page change.
  function value(v, depth = 0) {
    if (v === null || v === undefined) return el("span", { class: "muted", text: "—" });
    if (typeof v === "boolean") return el("span", { text: v ? "yes" : "no" });
    if (typeof v === "number") return el("span", { class: "mono", text: num(v, Number.isInteger(v) ? 0 : 2) });
    if (typeof v === "string") return parseTime(v) !== null ? timeCell(v) : el("span", { class: v.length > 24 ? "mono" : "", title: v, text: short(v, 48) });
    if (Array.isArray(v)) {
      if (!v.length) return el("span", { class: "muted", text: "none" });
      if (v.some((item) => item && typeof item === "object")) {
        return el("ul", { class: "list" }, ...v.slice(0, 10).map((item) => el("li", {}, value(item, depth + 1))));
      }
      return el("span", {}, ...v.slice(0, 12).flatMap((item, i) => (i ? [", ", value(item, depth + 1)] : [value(item, depth + 1)])));
    }
    if (depth > 2) return el("span", { class: "mono", text: short(JSON.stringify(v), 80) });
    return el("dl", { class: "obj" }, ...Object.entries(v).flatMap(([k, item]) => [el("dt", { text: k }), el("dd", {}, value(item, depth + 1))]));
  }

  // ---- polling ---------------------------------------------------------------------------------
  async function getJson(path) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(new URL(base + path, location.origin), { headers: requestHeaders, cache: "no-store", signal: controller.signal });
      const date = Date.parse(response.headers.get("Date") || "");
      if (!Number.isNaN(date)) skew = date + 500 - Date.now();
      const text = await response.text();
      if (!response.ok) {
        let reason = text.trim().slice(0, 200) || response.statusText;
        try { reason = JSON.parse(text).error || reason; } catch (_) { /* not JSON: keep the text */ }
        throw new Error(`HTTP ${response.status} from /${path}: ${reason}`);
      }
      return JSON.parse(text);
    } catch (e) {
      if (e.name === "AbortError") throw new Error(`no answer from /${path} within ${TIMEOUT_MS / 1000} s`);
      if (e instanceof TypeError) throw new Error(`cannot reach /${path} (${e.message})`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async function poll() {
    const scaling = getJson("status/autoscale").then((v) => ({ ok: v }), (e) => ({ error: e }));
    try {
      const model = await getJson("status");
      const more = await scaling;
      scalingFailure = more.error ? more.error.message : null;
      lastModel = model;
      lastScaling = more.ok || lastScaling;
      lastOk = now();
      failure = null;
      render(model, lastScaling);
      document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
    } catch (e) {
      failure = { at: now(), message: e.message };
    } finally {
      freshness();
      setTimeout(poll, POLL_MS);
    }
  }

  function freshness() {
    const banner = $("banner");
    const pulse = $("pulse");
    let message = null;
    if (failure && !lastOk) {
      message = `No data: ${failure.message}. Retrying every ${POLL_MS / 1000} s.`;
    } else if (failure) {
      message = `STALE: the last poll failed at ${clock(failure.at)} (${failure.message}). Showing data from ${clock(lastOk)}, ${duration(now() - lastOk)} old. Retrying every ${POLL_MS / 1000} s.`;
    } else if (lastOk && now() - lastOk > STALE_MS) {
      message = `STALE: no update for ${duration(now() - lastOk)}; the data below is from ${clock(lastOk)}.`;
    } else if (scalingFailure) {
      message = `Autoscale history unavailable (${scalingFailure}); the chart, CPU and load may be behind.`;
    }
    const stale = Boolean(message) && !(!failure && scalingFailure && lastOk && now() - lastOk <= STALE_MS);
    if ((banner.textContent || null) !== message) banner.textContent = message || "";
    banner.hidden = !message;
    banner.dataset.state = message ? (stale ? "stale" : "warning") : "ok";
    pulse.className = `pulse ${stale ? "stale" : lastOk ? "live" : ""}`;
    document.body.classList.toggle("is-stale", stale);
    document.title = `${stale ? "STALE · " : ""}${memberShown ? `${memberShown} · ` : ""}Consortium status`;
    if (lastOk) {
      $("updated").textContent = clock(lastOk);
      $("updated").setAttribute("data-at", String(lastOk));
      $("updated-age").textContent = `(${duration(now() - lastOk)} ago)`;
    }
    for (const node of document.querySelectorAll("[data-rel]")) node.textContent = relative(Number(node.dataset.rel));
    const tick = Number($("glance-tick").dataset.tick);
    if (tick) $("glance-tick").textContent = `${duration(now() - tick)} ago`;
    if (lastModel) coordinatorExpiry(lastModel.coordinator || {});
  }

  // ---- rendering -------------------------------------------------------------------------------
  // The status model is one member's own view: its own record (status, scale set, keys, nodes) and the
  // consortium as it verified it (chain, members, proposals, the others' heads).
  function render(model, scaling) {
    const self = {
      member_id: model.member_id, status: model.status, legal_name: model.legal_name,
      scale_set: model.scale_set, keys: model.keys, nodes: model.nodes,
    };
    const own = [self];
    const sets = setsByMember(model, scaling);
    glance(model, self, scaling);
    coordinator(model.coordinator || {});
    poison(model.poison || {});
    memberRows(own, sets, model);
    identities(model.identities);
    consortium(model);
    ingest(model, own, scaling);
    charts(own, sets);
    decisions(model, scaling);
    keys(own, null, model.rotation);
    other(model);
  }

  function consortium(model) {
    const chain = model.chain || {};
    $("chain-version").replaceChildren(el("span", { class: "mono", text: chain.version ?? "— (no verified version yet)" }));
    $("chain-head").replaceChildren(el("span", { class: "mono", title: chain.head || "", text: short(chain.head || "—", 16) }));
    $("chain-genesis").replaceChildren(el("span", { class: "mono", title: chain.genesis || "", text: short(chain.genesis || "—", 16) }));
    const fork = chain.fork;
    $("chain-fork").replaceChildren(fork
      ? el("span", { class: "bad-text", text: `version ${fork.version}: signed both by ${(fork.signed_both || []).join(", ") || "unknown"} (seen at ${fork.seen_at || "?"}); no further change is applied` })
      : el("span", { class: "muted", text: "none" }));
    const peers = model.peers || {};
    const members = Array.isArray(model.members) ? model.members : [];
    fill($("chain-members-table").tBodies[0], members.map((m) => {
      const head = m.member_id === model.member_id ? chain.version : (peers[m.member_id] || {}).version;
      return el("tr", { "data-member": m.member_id },
        el("th", { scope: "row" }, el("strong", { text: m.member_id }), el("span", { class: "legal", text: m.legal_name || "" })),
        el("td", {}, badge(m.status || "unknown", STATUS_CLASS[m.status] || "")),
        el("td", { class: "num", text: head ?? "—" }),
        el("td", { class: "mono", text: m.endpoint || "" }));
    }), 4, "No verified version yet: the members appear once this member holds the genesis.");
    const proposals = Array.isArray(model.proposals) ? model.proposals : [];
    fill($("proposals-table").tBodies[0], proposals.map((p) => el("tr", { "data-proposal": p.proposal_id, "data-status": p.status },
      el("th", { scope: "row", class: "mono", text: p.proposal_id }),
      el("td", { text: `${(p.change || {}).kind || "?"} ${(p.change || {}).member_id || ""}` }),
      el("td", { class: "num", text: p.base_version ?? "—" }),
      el("td", { text: (p.signed_by || []).join(", ") || "nobody yet" }),
      el("td", {}, badge(p.status || "unknown", PROPOSAL_CLASS[p.status] || "")),
      el("td", { text: p.decision || "—" }))), 6, "No proposals.");
  }

  function scaleSetName(member) {
    const id = member.scale_set && member.scale_set.id;
    if (typeof id === "string" && id.includes("/")) return id.split("/").pop();
    return `vmss-${member.member_id}`;
  }

  function setsByMember(model, scaling) {
    const byMember = {};
    const fromModel = (model.autoscale && model.autoscale.last) || {};
    for (const [name, d] of Object.entries(fromModel)) byMember[name] = { scale_set: name, ...d };
    for (const [name, d] of Object.entries((scaling && scaling.sets) || {})) byMember[name] = { ...byMember[name], ...d };
    return byMember;
  }

  function tile(id, text, state, title) {
    const dd = $(`glance-${id}`);
    dd.textContent = text;
    if (title) dd.title = title;
    $(`tile-${id}`).className = `tile ${state || ""}`.trim();
  }

  function glance(model, self, scaling) {
    const c = model.coordinator || {};
    const expires = parseTime(c.expires_at);
    tile("coordinator", c.holder ? c.holder.split("/")[0] : "NONE", c.holder && expires && expires > now() ? "ok" : "bad", c.holder || "no coordinator holds the lease");
    memberShown = self.member_id || memberShown;
    tile("member", `${self.member_id || "?"} · ${self.status || "?"}`, STATUS_CLASS[self.status] || "", self.legal_name || "");
    const members = Array.isArray(model.members) ? model.members : [];
    tile("members", String(members.length), "", members.map((m) => m.member_id).join(", "));
    tile("nodes", String((self.scale_set && self.scale_set.capacity) || 0), "");
    const poisoned = Object.values(model.poison || {}).reduce((sum, n) => sum + (Number(n) || 0), 0);
    tile("poison", String(poisoned), poisoned ? "bad" : "ok");
    const chain = model.chain || {};
    tile("chain", chain.fork ? `v${chain.version ?? "?"} · FORK` : `v${chain.version ?? "—"}`, chain.fork ? "bad" : "", chain.head || "");
    const open = (Array.isArray(model.proposals) ? model.proposals : []).filter((p) => p.status === "open").length;
    tile("proposals", String(open), open ? "warn" : "");
    const updated = parseTime((scaling && scaling.updated_at) || (model.autoscale && model.autoscale.updated_at));
    tile("tick", updated ? `${duration(now() - updated)} ago` : "never", updated && now() - updated > 5 * 60 * 1000 ? "warn" : "", updated ? clock(updated) : "");
    $("glance-tick").dataset.tick = updated ? String(updated) : "";
  }

  function coordinator(c) {
    $("coordinator-holder").replaceChildren(c.holder ? el("span", { class: "mono", text: c.holder }) : el("span", { class: "bad-text", text: "none: no instance holds the coordinator lease" }));
    $("coordinator-token").replaceChildren(el("span", { class: "mono", text: c.fencing_token ?? "—" }));
    coordinatorExpiry(c);
  }

  function coordinatorExpiry(c) {
    const t = parseTime(c.expires_at);
    const node = $("coordinator-expiry");
    if (t === null) {
      node.replaceChildren(el("span", { class: "muted", text: "—" }));
    } else if (t <= now()) {
      node.replaceChildren(el("span", { class: "bad-text", text: `${clock(t)} · expired ${duration(now() - t)} ago` }));
    } else {
      node.replaceChildren(el("time", { datetime: c.expires_at, title: c.expires_at }, `${clock(t)} · in ${duration(t - now())}`));
    }
  }

  function poison(counts) {
    const entries = Object.entries(counts).sort(([a, x], [b, y]) => (Number(y) || 0) - (Number(x) || 0) || a.localeCompare(b));
    const rows = entries.map(([queue, n]) => {
      const bad = Number(n) > 0;
      return el("tr", { class: bad ? "bad" : "", "data-queue": queue, "data-count": n },
        el("th", { scope: "row", class: "mono", text: queue }),
        el("td", { class: "num" }, bad ? `⚠ ${n}` : String(n)));
    });
    fill($("poison").tBodies[0], rows, 2, "no poison queues watched");
    $("poison-hint").hidden = !entries.some(([, n]) => Number(n) > 0);
  }

  // Each Corda identity runs on the instance that holds its lease (docs/stateful-nodes.md): that instance,
  // the tenure's fencing token, until when the lease was last renewed, and whether scale-in spares it.
  function identities(view) {
    const v = view || {};
    const rows = (Array.isArray(v.running) ? v.running : []).map((r) => el("tr", { class: r.holder ? "" : "warn", "data-identity": r.identity },
      el("th", { scope: "row", class: "mono", text: r.identity }),
      el("td", { class: "mono", text: r.holder || "nowhere (no instance holds its lease)" }),
      el("td", { class: "num", text: String(r.fencing_token) }),
      el("td", {}, leaseUntil(r.expires_at)),
      el("td", { text: r.holder ? (r.protected ? "protected" : "not protected by the control plane (yet)") : "—" })));
    fill($("identities-table").tBodies[0], rows, 5, "no identity has been leased: no identity keeper runs for this member yet");
    $("identities-hint").textContent = v.error || "";
    $("identities-hint").hidden = !v.error;
  }

  function leaseUntil(expires) {
    const t = parseTime(expires);
    if (t === null) return el("span", { class: "muted", text: "—" });
    return el("time", { datetime: expires, title: expires }, clock(t));
  }

  function nodesCell(s) {
    const capacity = Number(s.capacity) || 0;
    const min = Number(s.min_nodes) || 0;
    const max = Number(s.max_nodes) || 0;
    const boxes = Math.max(max, capacity);
    const meter = boxes > 0 && boxes <= 24
      ? el("span", { class: "meter", "aria-hidden": "true" }, ...Array.from({ length: boxes }, (_, i) => el("i", { class: `${i < capacity ? "on" : ""} ${i < min ? "floor" : ""}`.trim() })))
      : null;
    const extra = Object.entries(s).filter(([k]) => !["id", "capacity", "min_nodes", "max_nodes", "health"].includes(k));
    return el("div", {},
      el("div", { class: "nodes" }, el("strong", { text: capacity }), el("span", { class: "muted", text: `(${min}–${max})` }), meter),
      s.id ? el("span", { class: "extra mono", title: s.id, text: s.id.split("/").pop() }) : null,
      ...extra.map(([k, v]) => el("span", { class: "extra" }, `${k}: `, value(v, 2))));
  }

  function healthCell(member) {
    const s = member.scale_set || {};
    const health = member.health ?? s.health ?? member.nodes ?? null;
    if (health === null) return el("span", { class: "muted", title: "the status model reports no node health", text: "not reported" });
    if (typeof health === "string") return badge(health, /^(ok|healthy|running)$/i.test(health) ? "ok" : "warn");
    if (typeof health === "object" && !Array.isArray(health)) {
      // node counts per state: show the states that have nodes, healthy in green, the rest as warnings
      const counts = Object.entries(health).filter(([, n]) => typeof n === "number");
      if (counts.length) {
        const counted = counts.filter(([, n]) => n > 0);
        const checked = health.checked_at ? el("div", { class: "muted", text: `checked ${clock(health.checked_at)}` }) : "";
        if (!counted.length) return el("span", { class: "muted", text: health.checked_at ? "no nodes" : "not checked yet" });
        return el("span", { class: "health" }, ...counted.map(([state, n]) => badge(`${n} ${state}`, state === "healthy" ? "ok" : "warn")), checked);
      }
    }
    return value(health, 1);
  }

  function decisionCell(d) {
    if (!d || !d.reason) return el("span", { class: "muted", text: "no decision yet" });
    const at = parseTime(d.at);
    const fe = d.forecast_error;
    const forecast = fe && typeof fe.nodes === "number"
      ? el("span", { class: "extra", title: `forecast ${fe.mode || ""}: ${String(fe.standing || "").replace(/_/g, " ")}` },
        `forecast error ${fe.nodes.toFixed(1)} nodes${typeof fe.relative === "number" ? ` (${Math.round(fe.relative * 100)}% of load)` : ""}`)
      : null;
    return el("div", {}, badge(d.reason.replace(/_/g, " "), REASON_CLASS[d.reason] || ""), " ",
      el("span", { text: d.message || "" }),
      at ? el("span", { class: "extra", title: d.at }, `${clock(at)} · `, rel(at)) : null, forecast);
  }

  function memberRows(members, sets) {
    const rows = members.map((m) => {
      const d = sets[scaleSetName(m)] || null;
      const active = m.status === "active";
      const inputs = (d && d.inputs) || {};
      const cpu = active && d ? fig(d.cpu_percent ?? inputs.cpu_percent) : null;
      const load = active && d ? fig(d.tpm ?? inputs.tpm) : null;
      return el("tr", { "data-member": m.member_id, "data-status": m.status },
        el("th", { scope: "row" }, el("strong", { text: m.member_id }), el("span", { class: "legal", text: m.legal_name || "" })),
        el("td", {}, badge((m.status || "unknown").replace(/_/g, " "), STATUS_CLASS[m.status] || "")),
        el("td", {}, nodesCell(m.scale_set || {})),
        el("td", {}, healthCell(m)),
        el("td", { class: "num", text: cpu === null ? "—" : `${num(cpu)} %` }),
        el("td", { class: "num", text: num(load) }),
        el("td", {}, active ? decisionCell(d) : el("span", { class: "muted", text: "not scaled (not active)" })));
    });
    fill($("members-table").tBodies[0], rows, 7, "No member record yet.");
  }

  // ---- history and chart -----------------------------------------------------------------------
  function remember(name, id, point) {
    if (point.t === null || point.cap === null || point.cap === undefined) return;
    let points = history.get(name);
    if (!points) history.set(name, (points = new Map()));
    if (!points.has(id)) points.set(id, point);
    if (points.size > MAX_POINTS) {
      const oldest = [...points.entries()].sort((a, b) => a[1].t - b[1].t).slice(0, points.size - MAX_POINTS);
      for (const [key] of oldest) points.delete(key);
    }
  }

  const fig = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);

  function change(record) {
    const inputs = record.inputs || {};
    return {
      name: record.scale_set || `vmss-${record.member_id}`,
      at: record.at, t: parseTime(record.at), before: fig(record.before ?? inputs.capacity), after: fig(record.capacity),
      tpm: fig(record.tpm ?? inputs.tpm), cpu: fig(record.cpu_percent ?? inputs.cpu_percent), reason: record.reason, message: record.message,
      member: record.member_id,
    };
  }

  function ingest(model, members, scaling) {
    const changes = [...((scaling && scaling.recent) || []), ...((model.autoscale && model.autoscale.recent) || [])];
    for (const c of changes.map(change)) {
      remember(c.name, `${c.at}|before`, { t: c.t, o: 0, cap: c.before ?? c.after, tpm: c.tpm, cpu: c.cpu });
      remember(c.name, `${c.at}|after`, { t: c.t, o: 1, cap: c.after, tpm: c.tpm, cpu: c.cpu, change: c });
    }
    for (const [name, d] of Object.entries((scaling && scaling.sets) || {})) {
      const c = change({ ...d, scale_set: name });
      remember(name, `${c.at}|tick`, { t: c.t, o: 2, cap: c.after, tpm: c.tpm, cpu: c.cpu });
    }
    const t = now();
    for (const m of members.filter((x) => x.status === "active" && x.scale_set)) {
      remember(scaleSetName(m), `poll|${t}`, { t, o: 3, cap: fig(m.scale_set.capacity), tpm: null, cpu: null });
    }
  }

  function niceStep(raw) {
    const power = 10 ** Math.floor(Math.log10(raw));
    return [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw) || 10 * power;
  }

  function charts(members, sets) {
    const names = new Map();
    // Only active members are scaled: an offboarded member's last figures are history, not "now".
    for (const m of members) if (m.status === "active") names.set(scaleSetName(m), m);
    const figures = [...names.entries()].map(([name, m]) => chart(name, m, sets[name]));
    $("charts").replaceChildren(...(figures.length ? figures : [el("p", { class: "muted", text: "No active members: nothing to chart yet." })]));
  }

  function chart(name, member, last) {
    const W = 640, H = 210, ML = 36, MR = 52, MT = 12, MB = 26;
    const end = now();
    // The autoscaler's points carry the time of each decision; a poll only learns of it later. Poll
    // samples would draw a change late (a dip back to the old size), so they fill in only for a set
    // the autoscaler has not recorded anything for.
    const recorded = [...(history.get(name) || new Map()).values()];
    const decided = recorded.filter((p) => p.o !== 3);
    const all = (decided.length ? decided : recorded).sort((a, b) => a.t - b.t || a.o - b.o);
    const first = all.length ? all[0].t : end;
    const span = Math.min(WINDOW_MAX_MS, Math.max(WINDOW_MIN_MS, end - first));
    const start = end - span;
    const before = all.filter((p) => p.t < start).pop();
    const points = all.filter((p) => p.t >= start && p.t <= end + 60000);
    if (before) points.unshift({ ...before, t: start, change: null });
    const s = member.scale_set || {};
    const minNodes = Number(s.min_nodes) || 0, maxNodes = Number(s.max_nodes) || 0;
    const peakCap = Math.max(maxNodes, ...points.map((p) => p.cap), 1);
    const capStep = niceStep(Math.max(1, Math.ceil((peakCap + 1) / 5)));
    const ticks = Math.max(2, Math.ceil((peakCap + capStep * 0.25) / capStep));
    const capTop = ticks * capStep;
    const tpms = points.map((p) => p.tpm).filter((v) => v !== null);
    const tpmTop = ticks * niceStep(Math.max(1000, ...tpms) * 1.1 / ticks);
    const x = (t) => ML + ((Math.min(t, end) - start) / span) * (W - ML - MR);
    const yCap = (v) => MT + (1 - v / capTop) * (H - MT - MB);
    const yTpm = (v) => MT + (1 - v / tpmTop) * (H - MT - MB);
    const fmtTpm = (v) => (v >= 1000 ? `${num(v / 1000, v % 1000 ? 1 : 0)}k` : num(v));

    const grid = [];
    for (let i = 0; i <= ticks; i++) {
      const y = yCap(i * capStep);
      grid.push(svg("line", { class: "gridline", x1: ML, x2: W - MR, y1: y, y2: y }));
      grid.push(svg("text", { class: "axis-cap", x: ML - 6, y: y + 4, "text-anchor": "end" }, num(i * capStep)));
      grid.push(svg("text", { class: "axis-tpm", x: W - MR + 6, y: y + 4 }, fmtTpm((i * tpmTop) / ticks)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = start + (span * i) / 4;
      const label = span < 10 * 60 * 1000 ? clock(t).slice(-8) : clock(t).slice(-8, -3);
      grid.push(svg("text", { x: x(t), y: H - 8, "text-anchor": i === 0 ? "start" : i === 4 ? "end" : "middle" }, label));
    }
    const bounds = [];
    for (const [label, v] of [["max", maxNodes], ["min", minNodes]]) {
      if (v > 0) {
        bounds.push(svg("line", { class: "bound", x1: ML, x2: W - MR, y1: yCap(v), y2: yCap(v) }));
        bounds.push(svg("text", { x: ML + 4, y: yCap(v) - 3 }, `${label} ${v}`));
      }
    }
    let capPath = "";
    points.forEach((p, i) => {
      capPath += i === 0 ? `M${x(p.t).toFixed(1)},${yCap(p.cap).toFixed(1)}` : `H${x(p.t).toFixed(1)}V${yCap(p.cap).toFixed(1)}`;
    });
    if (points.length) capPath += `H${x(end).toFixed(1)}`;
    const tpmPoints = points.filter((p) => p.tpm !== null).map((p) => `${x(p.t).toFixed(1)},${yTpm(p.tpm).toFixed(1)}`).join(" ");
    const markers = points.filter((p) => p.change).map((p) => svg("circle", { class: "change", cx: x(p.t), cy: yCap(p.cap), r: 4.5 },
      svg("title", {}, `${clock(p.t)}: ${p.change.before} → ${p.change.after} nodes (${p.change.reason}) ${p.change.message || ""}`)));

    const latest = [...points].reverse();
    const cap = Number(s.capacity);
    const tpm = (latest.find((p) => p.tpm !== null) || {}).tpm ?? null;
    const cpu = last ? fig(last.cpu_percent ?? (last.inputs && last.inputs.cpu_percent)) : null;
    const summary = `${member.member_id}: ${num(cap)} node${cap === 1 ? "" : "s"} (min ${minNodes}, max ${maxNodes}), load ${tpm === null ? "unknown" : `${num(tpm)} tpm`}${cpu === null ? "" : `, CPU ${num(cpu)} %`}; ${points.filter((p) => p.change).length} scale change(s) in the last ${duration(span)}.`;
    const id = `chart-${name.replace(/[^a-z0-9-]/gi, "")}`;
    const plot = svg("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`,
      "data-scale-set": name, "data-points": points.length, "data-changes": markers.length, "data-load-points": tpms.length },
      svg("title", { id: `${id}-t` }, `Capacity and load of ${name}`),
      svg("desc", { id: `${id}-d` }, summary),
      grid, bounds,
      tpmPoints ? svg("polyline", { class: "tpm", points: tpmPoints }) : null,
      capPath ? svg("path", { class: "cap", d: capPath }) : null,
      markers,
      points.length ? null : svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "no data yet: the autoscaler records capacity and load each tick"));
    return el("figure", { class: "chart", id, "data-member": member.member_id },
      el("figcaption", {}, el("span", { text: member.member_id }),
        el("span", { class: "now", text: `now ${num(cap)} nodes · ${tpm === null ? "load unknown" : `${num(tpm)} tpm`}${cpu === null ? "" : ` · CPU ${num(cpu)} %`}` })),
      plot);
  }

  // ---- decisions, keys, the rest ---------------------------------------------------------------
  function decisions(model, scaling) {
    const seen = new Set();
    const all = [...((scaling && scaling.recent) || []), ...((model.autoscale && model.autoscale.recent) || [])].map(change)
      .filter((c) => { const k = `${c.name}|${c.at}`; if (seen.has(k)) return false; seen.add(k); return true; })
      .sort((a, b) => (b.t || 0) - (a.t || 0)).slice(0, 15);
    const rows = all.map((c) => {
      const up = c.after > c.before;
      return el("tr", { "data-member": c.member },
        el("td", {}, timeCell(c.at)),
        el("td", { text: c.member }),
        el("td", { class: "mono" }, `${c.before ?? "?"} → ${c.after ?? "?"} `, el("span", { "aria-label": up ? "scale out" : "scale in", text: up ? "▲" : "▼" })),
        el("td", {}, badge((c.reason || "").replace(/_/g, " "), REASON_CLASS[c.reason] || "")),
        el("td", { class: "num", text: c.cpu === null ? "—" : `${num(c.cpu)} %` }),
        el("td", { class: "num", text: num(c.tpm) }),
        el("td", { text: c.message || "" }));
    });
    fill($("decisions-table").tBodies[0], rows, 7, "No scale changes recorded yet.");
  }

  // Key fields beyond version and rotation time are shown as they come (stage, previous version, ...):
  // a rotation under way or a date already passed stands out, whatever the field is called.
  function keyExtras(k) {
    const extra = Object.entries(k || {}).filter(([name]) => !["version", "rotated_at"].includes(name));
    if (!extra.length) return el("span", { class: "muted", text: "—" });
    return el("span", { class: "kvs" }, ...extra.map(([name, v]) => {
      const t = parseTime(v);
      const attention = (/due|expire|next|retire/.test(name) && t !== null && t < now()) || (/due/.test(name) && v === true)
        || (name === "stage" && typeof v === "string" && v !== "current");
      return el("span", { class: `kv ${attention ? "warn-text" : ""}`.trim(), "data-field": name }, el("span", { class: "muted", text: `${name.replace(/_/g, " ")} ` }), value(v, 2));
    }));
  }

  function keyAge(k) {
    const t = parseTime(k && (k.rotated_at || k.created_at));
    if (t !== null) return duration(now() - t);
    return k && typeof k.age_days === "number" ? `${num(k.age_days, 1)} d` : "—";
  }

  function keys(members, signer, rotation) {
    const rows = [];
    const keyRow = (owner, name, k, first, span) => el("tr", { "data-member": owner, "data-key": name },
      first ? el("th", { scope: "rowgroup", rowspan: span, text: owner }) : null,
      el("td", { class: "mono", text: name }),
      el("td", { class: "mono", title: (k && k.version) || "", text: short((k && k.version) || "—", 12) }),
      el("td", {}, timeCell(k && k.rotated_at)),
      el("td", { class: "num", text: keyAge(k) }),
      el("td", {}, keyExtras(k)));
    if (signer && typeof signer === "object") rows.push(keyRow("network map", "signer", signer, true, 1));
    for (const m of members) {
      const entries = Object.entries(m.keys || {});
      entries.forEach(([name, k], i) => rows.push(keyRow(m.member_id, name, k, i === 0, entries.length)));
    }
    fill($("keys-table").tBodies[0], rows, 6, "No keys yet: they are created when this member asks to join.");
    const box = $("signer");
    const parts = [];
    if (signer !== undefined && signer !== null && typeof signer !== "object") parts.push(el("h3", { text: "Network map signer" }), value(signer));
    if (rotation && typeof rotation === "object") {
      const { network_map_signer: _, ...rest } = rotation;
      parts.push(el("h3", { text: "Key rotation" }), value(rest));
    }
    box.replaceChildren(...(parts.length ? [el("div", { class: "signer", id: "rotation" }, ...parts)] : []));
  }

  function other(model) {
    const extra = Object.entries(model).filter(([k]) => !KNOWN.includes(k));
    $("other").hidden = !extra.length;
    $("other-body").replaceChildren(...extra.map(([k, v]) => el("div", {}, el("h3", { class: "mono", text: k }), value(v))));
  }

  setInterval(freshness, 1000);
  poll();
})();
