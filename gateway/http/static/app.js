// Outpost dashboard: one snapshot, then coalesced diffs from /api/v1/stream (server-sent
// events, read with fetch so a bearer token can go in a header). No framework, no CDN.
"use strict";

const API = "/api/v1";
const S = { devices: new Map(), readings: new Map(), alerts: [], rules: [], commands: [],
  health: {}, bucket: 10, points: 360, files: null };
const rows = new Map();            // reading key -> <tr>
let dirty = new Set();             // sections to redraw on the next frame

// --- helpers ------------------------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v; else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid != null) el.append(kid instanceof Node ? kid : String(kid));
  return el;
}
const $ = (id) => document.getElementById(id);
const key = (r) => r.device + "\u0000" + r.metric;
function ago(iso) {
  if (!iso) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 1.5) return "just now";
  if (s < 90) return Math.round(s) + " s ago";
  if (s < 5400) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
function fmt(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "on" : "off";
  if (typeof v === "number") return Math.abs(v) >= 1000 || Number.isInteger(v) ? String(Math.round(v * 100) / 100) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
  return String(v);
}
function token() { return localStorage.getItem("outpost-token") || ""; }
function headers() { const t = token(); return t ? { Authorization: "Bearer " + t } : {}; }
async function getJSON(path) {
  const r = await fetch(API + path, { headers: headers() });
  if (r.status === 401) { askToken(); throw new Error("token needed"); }
  return r.json();
}
function askToken() {
  const t = prompt("This gateway needs its API token to show data:");
  if (t) localStorage.setItem("outpost-token", t.trim());
}

// --- state updates -------------------------------------------------------------------------
function apply(msg, full) {
  if (full) { S.devices.clear(); S.readings.clear(); for (const tr of rows.values()) tr.remove(); rows.clear();
    S.bucket = msg.bucket_s || 10; S.points = msg.points || 360; }
  for (const d of msg.devices || []) S.devices.set(d.device, d);
  for (const r of msg.readings || []) {
    const k = key(r), old = S.readings.get(k);
    const spark = r.spark || (old ? old.spark : []);
    if (r.point) {
      const last = spark[spark.length - 1];
      if (last && last[0] === r.point[0]) last[1] = r.point[1]; else spark.push(r.point);
      const oldest = r.point[0] - S.bucket * S.points;
      while (spark.length && spark[0][0] <= oldest) spark.shift();
    }
    S.readings.set(k, { ...r, spark });
    dirty.add("reading:" + k);
  }
  for (const name of ["alerts", "rules", "commands", "health"]) if (msg[name]) S[name] = msg[name];
  if (full || msg.devices) dirty.add("devices");
  if (full || msg.alerts) dirty.add("alerts");
  if (full || msg.rules) dirty.add("rules");
  if (full || msg.commands) dirty.add("commands");
  if (full || msg.health) dirty.add("health");
  requestAnimationFrame(render);
}

// --- rendering ------------------------------------------------------------------------------
function render() {
  if (!dirty.size) return;
  const d = dirty; dirty = new Set();
  if (d.has("health")) renderHealth();
  if (d.has("devices")) renderDevices();
  if (d.has("alerts")) renderAlerts();
  if (d.has("rules")) renderRules();
  if (d.has("commands")) renderCommands();
  for (const item of d) if (item.startsWith("reading:")) renderReading(item.slice(8));
}

// The tooltip of a connection's pill: what it is, and why it last failed.
function lastError(what, c) {
  return c && c.last_error ? what + " — last error " + ago(c.last_error_at) + ": " + c.last_error : what;
}

// InfluxDB's pill: up, down, or not known yet (nothing written since the start).
const INFLUX = { up: ["ok", "InfluxDB up"], down: ["bad", "InfluxDB down"], unknown: ["", "InfluxDB: no write yet"] };

function renderHealth() {
  const x = S.health, el = $("health");
  const pill = (cls, text, title) => h("span", { class: "pill " + cls, title }, text);
  el.replaceChildren(...[
    pill(x.mqtt_connected ? "ok" : "bad", x.mqtt_connected ? "MQTT connected" : "MQTT down",
      lastError("broker connection", x.broker)),
    pill(...INFLUX[x.influx ? x.influx.state : "unknown"], lastError("writes to InfluxDB", x.influx)),
    pill(x.influx_buffered > 10000 ? "warn" : "", "buffered " + (x.influx_buffered ?? 0), "readings waiting for InfluxDB"),
    x.outbox ? pill(x.outbox.degraded ? "bad" : x.outbox.readings ? "warn" : "",
      x.outbox.degraded ? "outbox in memory only" : "outbox " + x.outbox.readings +
      (x.outbox.readings ? " · oldest " + Math.round(x.outbox.oldest_age_s) + " s" : ""),
      "readings kept on disk while InfluxDB is unreachable") : null,
    pill(x.alerts_firing ? "bad" : "ok", (x.alerts_firing || 0) + " firing", "alerts firing"),
    pill(x.deadletters ? "warn" : "", (x.deadletters || 0) + " dead letters", "messages sent to outpost/deadletter"),
  ].filter(Boolean));
  $("version").textContent = "Outpost " + (x.version || "") + " · up " + ago(x.started_at).replace(" ago", "");
}

function renderDevices() {
  const list = [...S.devices.values()].sort((a, b) => a.device.localeCompare(b.device));
  const online = list.filter((d) => d.online).length;
  $("devices-count").textContent = list.length ? `${online}/${list.length} online` : "";
  if (!list.length) return;
  $("devices").replaceChildren(...list.map((d) => h("div",
    { class: "device " + (d.online ? "online" : "offline"), "data-device": d.device,
      title: d.online_reason || "" },
    h("div", { class: "name" }, d.device),
    h("div", { class: "sub" }, (d.online ? "online" : "offline") + " · ",
      h("span", { class: "ago", "data-ts": d.last_seen || "" }, ago(d.last_seen))))));
}

function sparkSvg(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark"); svg.setAttribute("viewBox", "0 0 100 28");
  svg.setAttribute("preserveAspectRatio", "none");
  if (!points.length) return svg;
  if (points.length === 1) {  // one bucket so far: a short level mark at the right edge
    const tick = document.createElementNS(svg.namespaceURI, "path");
    tick.setAttribute("d", "M94 14L100 14");
    svg.append(tick);
    return svg;
  }
  // The last hour; while there is less history, the line fills the width it has.
  const end = Date.now() / 1000, start = Math.max(end - S.bucket * S.points, points[0][0]);
  let lo = Infinity, hi = -Infinity;
  for (const [, v] of points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const X = (t) => ((Math.max(t, start) - start) / (end - start) * 100).toFixed(2);
  const Y = (v) => (26 - (v - lo) / (hi - lo) * 24).toFixed(2);
  const line = points.map(([t, v], i) => (i ? "L" : "M") + X(t) + " " + Y(v)).join("");
  const area = document.createElementNS(svg.namespaceURI, "path");
  area.setAttribute("class", "area");
  area.setAttribute("d", line + `L${X(points[points.length - 1][0])} 28L${X(points[0][0])} 28Z`);
  const path = document.createElementNS(svg.namespaceURI, "path");
  path.setAttribute("d", line);
  const title = document.createElementNS(svg.namespaceURI, "title");
  title.textContent = `min ${fmt(lo)} · max ${fmt(hi)}`;
  svg.append(area, path, title);
  return svg;
}

function renderReading(k) {
  const r = S.readings.get(k);
  if (!r) return;
  let tr = rows.get(k);
  const tbody = $("readings").tBodies[0];
  if (!tr) {
    tbody.querySelector(".empty-row")?.remove();
    tr = h("tr", { "data-device": r.device, "data-metric": r.metric },
      h("td", { class: "series" }, h("span", { class: "dev" }, r.device), h("span", { class: "metric" }, r.metric)),
      h("td", { class: "num" }),
      h("td", { class: "sparkcell" }), h("td", { class: "age" }));
    const after = [...rows.keys()].filter((x) => x < k).sort().pop();
    if (after) rows.get(after).after(tr); else tbody.prepend(tr);
    rows.set(k, tr);
  }
  const c = tr.cells;
  c[1].replaceChildren(fmt(r.value), r.unit ? h("span", { class: "unit" }, r.unit) : "");
  c[2].replaceChildren(sparkSvg(r.spark || []));
  c[3].dataset.ts = r.ts; c[3].textContent = ago(r.ts);
}

function renderAlerts() {
  const order = { firing: 0, pending: 1, resolved: 2 };
  const list = [...S.alerts].sort((a, b) => (order[a.state] ?? 3) - (order[b.state] ?? 3)
    || (b.active_at || "").localeCompare(a.active_at || ""));
  const active = list.filter((a) => a.state !== "resolved").length;
  $("alerts-count").textContent = list.length ? `${active} active` : "";
  if (!list.length) { $("alerts").replaceChildren(h("p", { class: "empty" }, "No alerts.")); return; }
  $("alerts").replaceChildren(...list.map((a) => {
    const since = a.state === "resolved" ? a.resolved_at : a.fired_at || a.active_at;
    return h("div", { class: "row alert " + a.state, "data-rule": a.rule, "data-device": a.device,
      "data-state": a.state, title: "show the trace", onclick: () => showTrace(a), role: "button", tabindex: 0 },
      h("span", { class: "badge " + a.state }, a.state),
      h("span", { class: "badge " + (a.severity || "") }, a.severity || "—"),
      h("span", { class: "grow" }, h("b", {}, a.rule), " · ", a.device),
      h("span", {}, "value ", h("b", {}, fmt(a.value))),
      h("span", { class: "sub ago", "data-ts": since || "" }, ago(since)));
  }));
}

function renderRules() {
  const f = S.files;
  $("rules-status").textContent = f ? (f.valid ? `${S.rules.length} loaded · files valid` : "files invalid") : `${S.rules.length} loaded`;
  const errs = f && !f.valid ? h("pre", { class: "errors" }, f.errors.join("\n")) : null;
  if (!S.rules.length) { $("rules").replaceChildren(h("p", { class: "empty" }, "No rules loaded."), errs || ""); return; }
  $("rules").replaceChildren(...S.rules.map((r) => h("div", { class: "row rule", "data-rule": r.name },
    h("span", { class: "grow" }, h("b", {}, r.name), h("code", { class: "when" }, r.when)),
    h("span", { class: "badge " + r.severity }, r.severity),
    h("span", { class: "sub" }, (r.evaluations ?? 0) + " evals"),
    h("div", { class: "states" }, ...Object.entries(r.devices || {}).map(([dev, st]) =>
      h("span", { class: "badge " + st, title: st }, dev + ": " + st))))), errs || "");
}

function renderCommands() {
  if (!S.commands.length) return;
  $("commands").replaceChildren(...S.commands.slice(0, 8).map((c) => h("div", { class: "row cmd" },
    h("span", { class: "badge " + (c.outcome || "") }, c.outcome || "?"),
    h("span", { class: "grow" }, h("b", {}, c.device), " ",
      h("code", {}, Object.entries(c.set || {}).map(([k, v]) => `${k}=${v}`).join(" "))),
    h("div", { class: "sub full" }, (c.rule ? "rule " + c.rule : c.origin || "") +
      (c.attempts > 1 ? ` · ${c.attempts} attempts` : "") + " · ",
      h("span", { class: "ago", "data-ts": c.at }, ago(c.at))))));
}

// --- trace ------------------------------------------------------------------------------
const STEP = { alert: "alert", command: "command sent", command_acked: "acknowledged",
  command_retry: "retried", command_timed_out: "timed out", command_rejected: "rejected",
  command_superseded: "superseded", command_refused: "refused", command_deferred: "deferred",
  notification: "notification" };
async function showTrace(a) {
  $("trace-title").textContent = `${a.rule} · ${a.device}`;
  const steps = $("trace-steps");
  steps.replaceChildren(h("li", {}, "loading…"));
  $("trace").showModal();
  if (!a.trace_id) { steps.replaceChildren(h("li", {}, "No trace id for this alert.")); return; }
  const data = await getJSON("/events?trace=" + encodeURIComponent(a.trace_id));
  const items = [h("li", { class: "step" }, h("b", {}, "reading"), " ", a.device, " → value ", fmt(a.value),
    h("div", { class: "when" }, "trace " + a.trace_id))];
  for (const e of data.events || []) {
    const p = e.event || {};
    const what = e.kind === "alert" ? `${p.state} — ${p.message || ""}`
      : e.kind.startsWith("command") ? `${e.device} ${Object.entries(p.set || {}).map(([k, v]) => `${k}=${v}`).join(" ")}`
      : e.kind === "notification" ? `${p.notifier}: ${p.outcome}` : "";
    items.push(h("li", { class: "step", "data-kind": e.kind }, h("b", {}, STEP[e.kind] || e.kind), " ", what,
      h("div", { class: "when" }, new Date(e.at).toLocaleString())));
  }
  steps.replaceChildren(...items);
}

// --- live stream ------------------------------------------------------------------------
function setConn(on, text) { const c = $("conn"); c.className = "conn " + (on ? "on" : "off"); c.textContent = text; }
async function stream() {
  let wait = 500;
  for (;;) {
    try {
      const r = await fetch(API + "/stream", { headers: headers(), cache: "no-store" });
      if (r.status === 401) { askToken(); throw new Error("token"); }
      if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
      setConn(true, "live"); wait = 500;
      const reader = r.body.getReader(), dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          let ev = "message", data = "";
          for (const line of chunk.split("\n")) {
            if (line.startsWith("event: ")) ev = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (data) apply(JSON.parse(data), ev === "snapshot");
        }
      }
    } catch (e) { /* reconnect below */ }
    setConn(false, "reconnecting…");
    await new Promise((res) => setTimeout(res, wait));
    wait = Math.min(wait * 2, 10000);
  }
}

async function refreshRuleFiles() {
  try { S.files = await getJSON("/rules"); dirty.add("rules"); requestAnimationFrame(render); } catch (e) { /* next time */ }
}

setInterval(() => {  // ages tick without any message from the gateway
  for (const el of document.querySelectorAll("[data-ts]")) if (el.dataset.ts) el.textContent = ago(el.dataset.ts);
}, 1000);
setInterval(refreshRuleFiles, 30000);
refreshRuleFiles();
stream();
