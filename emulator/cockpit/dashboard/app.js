// emu's dashboard: one EventSource for everything; the control API for the buttons; a streamed
// fetch for the log pane. No framework: the page is small and redraws from the last status.
"use strict";

const FEED_MAX = 200;
const state = { status: null, feed: [], events: [], filter: "", log: null, confirm: null };
const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function bar(fraction, text, cls = "") {
  const f = Math.max(0, Math.min(1, fraction || 0));
  return el("div", { class: "bar " + cls }, el("i", { style: `width:${(f * 100).toFixed(1)}%` }), el("b", {}, text));
}

function mib(bytes) { return (bytes / 1048576).toFixed(0) + " MiB"; }

// -- the classes and their instances ---------------------------------------------------------

function drawClasses() {
  const root = $("#classes");
  root.replaceChildren();
  if (!state.status) return;
  for (const cls of state.status.classes) root.append(classPanel(cls));
}

function classPanel(cls) {
  const it = cls.instance_type;
  const head = el("h2", {}, `${cls.class_name} (env.${cls.binding})`,
    el("span", { class: "muted" }, `${it.name}: ${it.vcpu} vCPU, ${it.memory_mib} MiB`),
    el("span", { class: "pill", "data-running": cls.running }, `${cls.running} / ${cls.max_instances} running`),
    cls.image_error ? el("span", { class: "pill bad" }, "image error: " + cls.image_error) : "");
  const rows = cls.instances.map((i) => instanceRow(cls, i));
  const table = el("table", { class: "instances" },
    el("thead", {}, el("tr", {}, ...["instance", "state", "requests", "probes", "in flight",
      "cold start (container)", "cold start (client)", "sleeps in", "memory", "throttled",
      "last error", ""].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows));
  // getRandom's spread only where something spreads (the Worker's getRandom, or emu without it).
  const spread = cls.instances_n == null ? "" : chart(cls);
  return el("div", { class: "panel", "data-class": cls.class_name }, head, table, spread);
}

function instanceRow(cls, i) {
  const sleep = i.sleeps_in_s == null ? el("span", { class: "muted" }, "-")
    : bar(i.sleeps_in_s / cls.sleep_after_s, `${Math.round(i.sleeps_in_s)} s`, "sleep");
  if (i.sleeps_in_s != null) sleep.dataset.deadline = String(performance.now() / 1000 + i.sleeps_in_s);
  const limit = cls.instance_type.memory_mib * 1048576;
  const mem = i.memory_bytes == null ? el("span", { class: "muted" }, "-")
    : bar(i.memory_bytes / limit, `${mib(i.memory_bytes)} (${(100 * i.memory_bytes / limit).toFixed(0)}%)`, "mem");
  const err = i.last_error ? `${i.last_error}` + (i.exit_code != null ? ` [exit ${i.exit_code}]` : "")
    + (i.oom_killed ? " [oom_killed]" : "") : "";
  const name = el("a", { class: "name", onclick: () => openLog(cls.class_name, i.name) }, i.name);
  return el("tr", { "data-instance": i.name, "data-class": cls.class_name },
    el("td", {}, name),
    el("td", { class: "state " + i.state }, i.state + (i.paused ? " (paused)" : "")),
    el("td", { class: "requests" }, i.requests), el("td", { class: "probes" }, i.probes ?? 0),
    el("td", {}, i.inflight),
    el("td", {}, i.cold_start_ms == null ? "-" : `${Math.round(i.cold_start_ms)} ms`),
    el("td", { class: "client-cold" },
      i.client_cold_start_ms == null ? "-" : `${Math.round(i.client_cold_start_ms)} ms`),
    el("td", {}, sleep), el("td", {}, mem),
    el("td", {}, i.cpu_throttled_s == null ? "-" : `${i.cpu_throttled_s.toFixed(1)} s`),
    el("td", { class: "err" }, err),
    el("td", {}, ...["stop", "kill", "restart"].map((a) => actionButton(cls.class_name, i.name, a))));
}

function actionButton(cls, name, action) {
  const key = `${cls}/${name}/${action}`;
  const armed = state.confirm === key;
  return el("button", {
    "data-action": action, class: armed ? "confirm" : "",
    onclick: () => {
      if (state.confirm !== key) { state.confirm = key; drawClasses(); return; }  // one confirm step
      state.confirm = null;
      act(cls, name, action);
    },
  }, armed ? `confirm ${action}` : action);
}

async function act(cls, name, action) {
  const resp = await fetch(`/_emu/instances/${encodeURIComponent(cls)}/${encodeURIComponent(name)}/${action}`,
    { method: "POST" });
  if (!resp.ok) addEvent({ time: Date.now() / 1000, event: "error", instance: name,
    error: (await resp.json()).error });
  drawClasses();
}

// -- the spread of requests over instances, against getRandom's uniform expectation ----------

function chart(cls) {
  const n = cls.instances_n;
  const counts = [];
  for (let k = 0; k < n; k++) {
    const inst = cls.instances.find((i) => i.name === `instance-${k}`);
    counts.push(inst ? inst.requests : 0);
  }
  const total = counts.reduce((a, b) => a + b, 0);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("viewBox", "0 0 600 120");
  const expect = total / n, sd = Math.sqrt(total * (1 / n) * (1 - 1 / n));
  const top = Math.max(1, ...counts, expect + 2 * sd);
  const y = (v) => 105 - (v / top) * 95;
  const w = 560 / n;
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svg.namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text != null) node.textContent = text;
    svg.append(node);
  };
  if (total > 0 && n > 1) add("rect", { x: 30, y: y(expect + 2 * sd), width: 560,
    height: Math.max(0, y(Math.max(0, expect - 2 * sd)) - y(expect + 2 * sd)), fill: "#dbeafe" });
  counts.forEach((c, k) => {
    add("rect", { x: 30 + k * w + 2, y: y(c), width: Math.max(1, w - 4), height: 105 - y(c), fill: "#2563eb" });
    if (n <= 32) add("text", { x: 30 + k * w + 2, y: 117 }, String(k));
  });
  if (total > 0) add("line", { x1: 30, x2: 590, y1: y(expect), y2: y(expect), stroke: "#dc2626", "stroke-dasharray": "4 3" });
  add("text", { x: 32, y: 10 }, `requests per instance-k, ${total} in all; dashed: getRandom(${n})'s uniform expectation, band: ±2σ`);
  return svg;
}

// -- the request feed ---------------------------------------------------------------------

function addRequests(records, skipped) {
  state.feed.push(...records);
  if (state.feed.length > FEED_MAX) state.feed.splice(0, state.feed.length - FEED_MAX);
  $("#feed-note").textContent = skipped ? `(${skipped} more not shown: the feed keeps up to ${FEED_MAX} per update)` : "";
  drawFeed();
}

// The instances a record reached: in worker mode every container request made for it.
const reached = (r) => r.instances ?? (r.instance ? [r.instance] : []);

// Worker mode: what the Worker's request did, one line per container request; and a container
// request no request of the Worker holds (an RPC method, an alarm) says so.
function via(r) {
  if (r.tied === false) return "container request, not tied to a request of the Worker";
  return (r.containers ?? []).map((c) =>
    `${c.method} ${c.path} -> ${c.instance}:${c.port} ${c.status} ${c.duration_ms} ms${c.cold ? " cold" : ""}`).join("\n");
}

function drawFeed() {
  const names = new Set(state.feed.flatMap(reached));
  const select = $("#feed-filter");
  for (const name of names) {
    if (![...select.options].some((o) => o.value === name)) select.append(el("option", { value: name }, name));
  }
  const rows = state.feed.filter((r) => !state.filter || reached(r).includes(state.filter)).slice().reverse();
  $("#feed tbody").replaceChildren(...rows.map((r) => el("tr", { "data-instance": reached(r).join(", "), title: via(r) },
    el("td", {}, new Date(r.time * 1000).toLocaleTimeString()), el("td", {}, r.method),
    el("td", { class: "path", title: r.path }, r.path),
    el("td", { class: "instance" }, (reached(r).join(", ") || "-") + (r.tied === false ? " (untied)" : "")),
    el("td", {}, r.status), el("td", {}, r.duration_ms.toFixed(1)), el("td", {}, r.outbound ? "outbound" : r.cold ? "cold" : ""))));
}

// -- lifecycle events ---------------------------------------------------------------------

function addEvent(e) {
  state.events.push(e);
  if (state.events.length > 200) state.events.shift();
  const rest = Object.entries(e).filter(([k]) => !["time", "event", "class", "instance"].includes(k))
    .map(([k, v]) => `${k}=${v}`).join(" ");
  $("#events").prepend(el("li", { "data-event": e.event, "data-instance": e.instance || "" },
    `${new Date(e.time * 1000).toLocaleTimeString()} ${e.instance || "emu"} ${e.event} ${rest}`));
  while ($("#events").children.length > 200) $("#events").lastChild.remove();
}

// -- the log pane: the instance's output, live ------------------------------------------------

async function openLog(cls, name) {
  if (state.log) state.log.abort();
  const ctl = state.log = new AbortController();
  const pane = $("#log-lines");
  pane.textContent = "";
  $("#log-title").textContent = `${cls} / ${name} (live)`;
  pane.dataset.instance = name;
  try {
    const resp = await fetch(`/_emu/instances/${encodeURIComponent(cls)}/${encodeURIComponent(name)}/logs?follow=1&tail=500`,
      { signal: ctl.signal });
    if (!resp.ok) { pane.textContent = (await resp.json()).error; return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const stick = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
      pane.append(decoder.decode(value, { stream: true }));
      if (stick) pane.scrollTop = pane.scrollHeight;
    }
  } catch (err) {
    if (err.name !== "AbortError") pane.append(`\n[log stream ended: ${err}]`);
  }
}

// -- the stream -----------------------------------------------------------------------------

function setStatus(status) {
  state.status = status;
  $("#where").textContent = `${status.url} ${status.config}`;
  const engine = $("#engine");
  engine.textContent = status.engine_up ? (status.serving ? "serving" : status.refusing) : "engine down";
  engine.className = "pill " + (status.engine_up && status.serving ? "ok" : "bad");
  drawClasses();
}

function connect() {
  const source = new EventSource("/_emu/events?stream=1");
  const link = $("#link");
  source.onopen = () => { link.textContent = "live"; link.className = "pill ok"; };
  source.onerror = () => { link.textContent = "reconnecting"; link.className = "pill bad"; };
  source.addEventListener("hello", (m) => {
    const hello = JSON.parse(m.data);
    state.feed = []; $("#events").replaceChildren();
    hello.events.forEach(addEvent);
    addRequests(hello.requests, 0);
    if (!hello.feed) $("#feed-note").textContent = "(emu runs with --no-request-feed)";
    setStatus(hello.status);
  });
  source.addEventListener("lifecycle", (m) => addEvent(JSON.parse(m.data)));
  source.addEventListener("requests", (m) => { const d = JSON.parse(m.data); addRequests(d.records, d.skipped); });
  source.addEventListener("status", (m) => setStatus(JSON.parse(m.data)));
}

// The sleep bars count down between status updates.
function tick() {
  const now = performance.now() / 1000;
  document.querySelectorAll(".bar.sleep").forEach((b) => {
    const left = Math.max(0, Number(b.dataset.deadline) - now);
    const cls = state.status && state.status.classes.find((c) => c.class_name === b.closest("tr").dataset.class);
    if (cls) b.firstChild.style.width = `${Math.min(100, 100 * left / cls.sleep_after_s).toFixed(1)}%`;
    b.lastChild.textContent = `${Math.round(left)} s`;
  });
  requestAnimationFrame(tick);
}

$("#feed-filter").addEventListener("change", (e) => { state.filter = e.target.value; drawFeed(); });
connect();
requestAnimationFrame(tick);
