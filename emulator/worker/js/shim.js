// emu's stand-in for the container runtime API that a container-enabled Durable Object sees as
// `ctx.container`. Every call goes to emu's front (`/_emu/runtime/*`), which starts, signals and
// watches Docker containers with the same machinery as `emu up --no-worker`. Requests to a
// container go straight from workerd to its bridge address, not through emu.
//
// The generated entry module imports this file and wraps each class named in `containers[]`
// (see emulator/worker/project.py); the user's files are not changed.
import { connect } from "cloudflare:sockets";
// Needs the nodejs_als (or nodejs_compat) flag, which emu adds (emulator/worker/runtime.py).
import { AsyncLocalStorage } from "node:async_hooks";

// The library recognises these texts (lower-cased, as substrings): @cloudflare/containers
// src/lib/container.ts. The platform's runtime words its errors the same way.
const NO_INSTANCE = "There is no container instance that can be provided to this Durable Object";
const NOT_RUNNING = "The container is not running, consider calling start()";
const NOT_LISTENING = "The container is not listening";
const SIGNALLED = "Runtime signalled the container to exit:";
const UNEXPECTED_EXIT = "Container exited with unexpected exit code:";

// A container started less than this long ago gets its refused connections retried every
// FAST_RETRY_MS, so that the library's first readiness probe (it polls every 300 ms) already
// succeeds. Longer would make a port that never listens (the library's port-33 probe of a class
// without ports) slow to report.
const FAST_WINDOW_MS = 2000;
const FAST_RETRY_MS = 5;
const MAX_TRIES_PER_S = 1000; // all waiting starts together
let listenWaiters = 0;
const REPORT_MS = 1000;
// A request from emu's egress listener (emulator/egress/listener.py): the container's outbound
// HTTP, for the fetcher its Durable Object registered. The token is the runtime API's.
const EGRESS = "x-emu-egress-";
const EGRESS_PATH = "/_emu/egress";
const NOT_LOCAL = "is not supported locally by emu (no snapshots of containers on a local engine)";
// What emu's front answers to any client; the rest of /_emu/ is for loopback clients only.
const PUBLIC_EMU = /^\/_emu\/(status|events|metrics)(\?|$)/;
// The library's readiness probes fetch these hosts (besides the class's pingEndpoint host).
const HEALTHCHECK_HOST = "containerstarthealthcheck";
const INSTANCE_HEADER = "x-emu-instance";
const MAX_PENDING = 10000; // request records waiting for their report; more are dropped

// The cockpit's settings, from the generated entry (wrapWorker): a request feed, debug headers.
const cockpit = { feed: false, debugHeaders: false, runtime: null, timeoutMs: null };
// --request-timeout: a Worker's request, and a container request of a Durable Object's, that has
// no answer by then gets an error (the platform bounds CPU time, not wall time: an emu extra).
const TIMED_OUT = "emu: no answer within --request-timeout";
const timedOut = new WeakSet(); // the 504s answered for that: the feed marks their requests

/** `promise`, or after cockpit.timeoutMs `onTimeout()`'s value (or its exception). */
function bounded(promise, onTimeout) {
  if (cockpit.timeoutMs === null) return promise;
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(resolve, cockpit.timeoutMs);
  }).then(onTimeout);
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function timeoutResponse() {
  const seconds = cockpit.timeoutMs / 1000;
  const response = new Response(`${TIMED_OUT} (${seconds} s)\n`, {
    status: 504,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
  timedOut.add(response);
  return response;
}
// The Worker's request being served (`{req}`: its record), in the Worker's own code. The Worker
// and its Durable Objects share this module (one isolate), so a Durable Object adds the container
// requests it makes to that record. Only the Worker runs in a context of it: one kept through
// the library's many awaits in a Durable Object cost workerd a few percent of its time, and
// there the request object itself says what a container request serves (see `serve`).
const als = new AsyncLocalStorage();
// How a record crosses a stub's fetch, which no context passes: the stub queues it under the
// Durable Object's id with the request's URL, and the Durable Object's fetch takes the first one
// with its URL. Nothing is added to the request, so neither the user's code nor the container
// can see it. (Two requests with one URL in flight to one Durable Object at once may swap
// records; both name the same instance.)
const handoff = new Map();
const objectIds = new WeakMap(); // a Container class object's ctx -> its id, as a string
let stubsPatched = false;

class Runtime {
  constructor(url, token) {
    this.url = url;
    this.token = token;
  }

  async call(op, body) {
    const response = await fetch(`${this.url}/_emu/runtime/${op}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-emu-runtime-token": this.token },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      const error = new Error(data.kind === "no_instance" ? NO_INSTANCE : (data.reason ?? data.error));
      error.emu = data;
      throw error;
    }
    return data;
  }
}

// The runtime API's token, which emu's egress listener also carries (set by wrapContainerClass).
let egressToken = null;
// A service binding straight to the network, which emu adds to the Worker (js/runner.mjs), for
// WebSocket upgrades to a container (other requests take a socket of their own, see `exchange`):
// workerd's global fetch goes through Miniflare 5's outbound Worker, a JavaScript hop per
// request. Taken off env before the class's constructor sees it.
const NET_BINDING = "__EMU_CONTAINER_NET";
let containerNet = null;

/** The network binding, off `env` before the Worker's or a class's own code sees it. */
function takeNet(env) {
  if (env?.[NET_BINDING] === undefined) return;
  containerNet ??= env[NET_BINDING];
  delete env[NET_BINDING];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function canConnect(address) {
  try {
    const socket = connect(address);
    await socket.opened;
    // FIN first: servers read an empty request and close quietly, where a reset makes some
    // (Python's http.server) log a traceback.
    await socket.writable.close().catch(() => {});
    socket.close().catch(() => {});
    return true;
  } catch {
    return false;
  }
}

/** Where the runtime reaches a container's port: its bridge address, or (a remote engine, Swarm
 * on the host) the host port the engine published it on. */
function addressOf(info, port) {
  return `${info.ip}:${info.ports?.[port] ?? port}`;
}

/** "/a?b" of "http://host:1/a?b". */
function pathAndQuery(url) {
  const slash = url.indexOf("/", url.indexOf("//") + 2);
  return slash < 0 ? "/" : url.slice(slash);
}

/** The library's host glob: `*` stands for any run of characters. */
function globMatch(pattern, host) {
  const parts = pattern.toLowerCase().split("*").map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`).test(host);
}

/** What the container's outbound traffic goes to the Worker: the fetchers the library gave
 * interceptOutboundHttp(s) and interceptAllOutboundHttp. */
class Egress {
  http = new Map();
  https = new Map();
  all = null;
  httpsAll = null;

  get plan() {
    const https = [...this.https.keys(), ...(this.httpsAll !== null ? ["*"] : [])];
    return { hosts: [...this.http.keys()], https, all: this.all !== null };
  }

  fetcherFor(url) {
    const secure = url.protocol === "https:";
    const host = url.hostname.toLowerCase().replace(/\.+$/, "");
    const port = url.port || (secure ? "443" : "80");
    const table = secure ? this.https : this.http;
    const exact = table.get(`${host}:${port}`) ?? table.get(host);
    if (exact !== undefined) return exact;
    for (const [pattern, fetcher] of table) {
      if (pattern.includes("*") && globMatch(pattern.replace(/:\d+$/, ""), host)) return fetcher;
    }
    return secure ? this.httpsAll : this.all;
  }
}

/** Requests through getTcpPort().fetch, for emu's status: counted here and sent at most once
 * per REPORT_MS, not once per request. In flight: until the response's headers are in. The
 * library's readiness probes are counted apart; `records` are container requests that no request
 * of the Worker's own record took (made outside one, or after it was answered). */
class Stats {
  #send;
  #requests = 0;
  #inflight = 0;
  #probes = 0;
  #coldWaits = [];
  #records = [];
  #timer = null;

  constructor(send) {
    this.#send = send;
  }

  begin() {
    this.#requests++;
    this.#inflight++;
    this.#schedule();
  }

  probe() {
    this.#probes++;
    this.#schedule();
  }

  coldWait(ms) {
    this.#coldWaits.push(ms);
    this.#schedule();
  }

  record(record) {
    if (this.#records.length < MAX_PENDING) this.#records.push(record);
    this.#schedule();
  }

  end() {
    this.#inflight--;
    this.#schedule();
  }

  #schedule() {
    if (this.#timer === null) this.#timer = setTimeout(() => this.#flush(), REPORT_MS);
  }

  #flush() {
    this.#timer = null;
    const counts = {
      requests: this.#requests,
      inflight: this.#inflight,
      probes: this.#probes,
      cold_waits_ms: this.#coldWaits,
      records: this.#records,
    };
    this.#requests = this.#probes = 0;
    this.#coldWaits = [];
    this.#records = [];
    this.#send(counts).catch(() => {});
  }
}

// -- a container request on a connection of its own -------------------------------------------
// The platform's getTcpPort().fetch opens a new connection for each request and drops it after
// the response, so a server's idle or late close never meets a request. workerd's fetch pools
// connections per address: a request written into a kept-alive connection just as the server
// closes it is lost ("Network connection lost", which the library answers with its 500), and
// workerd 1.20260426 also reused the connection after an HTTP/1.0 answer (issue 17). So the shim
// speaks HTTP/1.1 over a socket of its own, one per request; WebSocket upgrades still go
// through fetch (a connection each anyway).
const LOST = "Network connection lost.";
const MAX_HEAD = 64 * 1024; // a response head longer than this is refused
// Headers of one connection (RFC 9110 7.6.1), not passed on; the shim frames bodies itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
  "host",
]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const canonicalNames = new Map(); // "user-agent" -> "User-Agent", as workerd's fetch writes them

function canonical(name) {
  let out = canonicalNames.get(name);
  if (out === undefined) {
    out = name.replace(/(^|-)([a-z])/g, (_, dash, c) => dash + c.toUpperCase());
    if (canonicalNames.size < 1000) canonicalNames.set(name, out);
  }
  return out;
}

function concat(a, b) {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Where the blank line after the head starts, or -1. */
function headEnd(buffer) {
  for (let at = buffer.indexOf(13); at >= 0 && at + 3 < buffer.length; at = buffer.indexOf(13, at + 1)) {
    if (buffer[at + 1] === 10 && buffer[at + 2] === 13 && buffer[at + 3] === 10) return at;
  }
  return -1;
}

/** The response's status line and headers, if `buffer` holds all of them, else `buffer` (more
 * bytes are needed); 1xx answers (100 Continue) are skipped. */
function parseHead(buffer) {
  for (;;) {
    const end = headEnd(buffer);
    if (end < 0) {
      if (buffer.length > MAX_HEAD) throw new Error(`the container's response head exceeds ${MAX_HEAD} bytes`);
      return buffer;
    }
    const lines = decoder.decode(buffer.subarray(0, end)).split("\r\n");
    const rest = buffer.subarray(end + 4);
    const status = Number(lines[0].slice(9, 12));
    if (!lines[0].startsWith("HTTP/1.") || !(status >= 100 && status <= 599)) {
      throw new Error(`the container answered no HTTP/1.x response: ${lines[0].slice(0, 60)}`);
    }
    if (status < 200) {
      buffer = rest;
      continue;
    }
    const headers = new Headers();
    let length = null;
    let chunked = false;
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(":");
      if (colon <= 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === "transfer-encoding") chunked = value.toLowerCase().includes("chunked");
      else if (name === "content-length") {
        length = Number(value);
        if (!Number.isSafeInteger(length) || length < 0) length = null; // read until the close
      }
      if (!HOP_BY_HOP.has(name)) headers.append(name, value);
    }
    return { status, statusText: lines[0].slice(13), headers, length: chunked ? null : length, chunked, rest };
  }
}

/** The response's head: read until it is all in (the first read, in exchange, mostly has it). */
async function readHead(reader, buffer) {
  let parsed = parseHead(buffer);
  while (parsed instanceof Uint8Array) {
    const { value, done } = await reader.read();
    if (done) throw new Error(LOST);
    parsed = parseHead(concat(parsed, value));
  }
  return parsed;
}

/** The response body as it comes: `length` bytes, or chunked, or until the server closes. */
function bodyStream(reader, first, length, chunked, done) {
  let left = length; // bytes still due, with a length
  let pending = first; // bytes read and not yet given out
  let chunk = 0; // chunked: bytes still due of the current chunk; -1 after the last one
  let line = ""; // chunked: the size line or trailer being read
  const fail = (controller) => {
    controller.error(new Error(LOST));
    done();
  };
  const dechunk = (controller, bytes) => {
    let at = 0;
    while (at < bytes.length) {
      if (chunk > 0) {
        const take = Math.min(chunk, bytes.length - at);
        controller.enqueue(bytes.slice(at, at + take));
        chunk -= take;
        at += take;
        if (chunk === 0) chunk = -2; // its CRLF is next
        continue;
      }
      const newline = bytes.indexOf(10, at);
      if (newline < 0) {
        line += decoder.decode(bytes.subarray(at));
        return false;
      }
      line += decoder.decode(bytes.subarray(at, newline));
      at = newline + 1;
      const text = line.trim();
      line = "";
      if (chunk === -2) {
        chunk = 0; // the CRLF after a chunk's data
      } else if (chunk === -1) {
        if (text === "") return true; // the end of the trailers
      } else {
        const size = parseInt(text, 16);
        if (!(size >= 0)) throw new Error(`the container sent a bad chunk size: ${text.slice(0, 20)}`);
        chunk = size === 0 ? -1 : size;
      }
    }
    return false;
  };
  return new ReadableStream({
    async pull(controller) {
      for (;;) {
        let bytes = pending;
        pending = null;
        if (bytes === null || bytes.length === 0) {
          const read = await reader.read();
          if (read.done) {
            if (left === null && !chunked) {
              controller.close(); // close-delimited: this is its end
              done();
            } else fail(controller);
            return;
          }
          bytes = read.value;
        }
        if (chunked) {
          if (dechunk(controller, bytes)) {
            controller.close();
            done();
            return;
          }
        } else if (left !== null) {
          const take = Math.min(left, bytes.length);
          if (take > 0) controller.enqueue(take === bytes.length ? bytes : bytes.slice(0, take));
          left -= take;
          if (left === 0) {
            controller.close();
            done();
            return;
          }
        } else {
          controller.enqueue(bytes);
        }
        if (controller.desiredSize <= 0) return;
      }
    },
    cancel() {
      done();
    },
  });
}

/** Sends the request's body: as it is with a length, else chunked from a client's chunked
 * upload, else (a body made in JavaScript, whose length the headers do not carry) whole. */
async function sendBody(socket, body, mode) {
  if (mode === "length") {
    await body.pipeTo(socket.writable, { preventClose: true });
    return;
  }
  const writer = socket.writable.getWriter();
  try {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (value.length === 0) continue;
      await writer.write(encoder.encode(`${value.length.toString(16)}\r\n`));
      await writer.write(value);
      await writer.write(encoder.encode("\r\n"));
    }
    await writer.write(encoder.encode("0\r\n\r\n"));
  } finally {
    writer.releaseLock();
  }
}

/** One request to `address` on a new connection, closed after the response. `Connection: close`
 * tells the server so: it closes first, so the connection's TIME_WAIT is the container's, not a
 * local port held for 60 s (at ~500 requests/s to one container they would run out, and connect
 * slows long before). */
async function exchange(address, url, request) {
  const method = request?.method ?? "GET";
  let head = `${method} ${pathAndQuery(url)} HTTP/1.1\r\nHost: ${address}\r\nConnection: close\r\n`;
  let body = request?.body ?? null;
  let mode = null;
  if (request !== undefined) {
    for (const [name, value] of request.headers) {
      if (HOP_BY_HOP.has(name)) {
        if (name === "transfer-encoding" && body !== null) mode = "chunked";
        continue;
      }
      if (name === "content-length") mode = "length";
      head += `${canonical(name)}: ${value}\r\n`;
    }
  }
  if (body !== null && mode === null) {
    const whole = new Uint8Array(await request.arrayBuffer());
    head += `Content-Length: ${whole.length}\r\n`;
    body = whole;
  } else if (mode === "chunked") {
    head += "Transfer-Encoding: chunked\r\n";
  }
  const socket = connect(address);
  try {
    await socket.opened;
  } catch (error) {
    error.refused = true;
    throw error;
  }
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    socket.close().catch(() => {});
  };
  const signal = request?.signal;
  signal?.addEventListener("abort", close, { once: true });
  try {
    const writer = socket.writable.getWriter();
    const bytes = encoder.encode(`${head}\r\n`);
    if (body === null || body instanceof Uint8Array) {
      // One write, not awaited: if it fails, so does the read below.
      writer.write(body === null ? bytes : concat(bytes, body)).catch(() => {});
    } else {
      await writer.write(bytes);
      writer.releaseLock();
      // The server may answer before it has read all of it (and close): the answer counts.
      sendBody(socket, body, mode).catch(() => {});
    }
    const reader = socket.readable.getReader();
    const first = await reader.read();
    if (first.done) throw new Error(LOST);
    let answer = parseHead(first.value);
    if (answer instanceof Uint8Array) answer = await readHead(reader, answer);
    const { status, statusText, headers, length, chunked, rest } = answer;
    let out = null;
    if (method === "HEAD" || status === 204 || status === 304) close();
    else if (length !== null && rest.length >= length) {
      out = rest.subarray(0, length); // all of it is in: no stream
      close();
    } else out = bodyStream(reader, rest, length, chunked, close);
    return new Response(out, { status, statusText, headers });
  } catch (error) {
    close();
    if (signal?.aborted) throw signal.reason ?? error;
    if (error instanceof TypeError || String(error?.message).startsWith("the container")) throw error;
    throw new Error(LOST, { cause: error });
  }
}

class EmuContainer {
  #runtime;
  #who;
  #run = null;
  #stats;
  #firstNeed = null; // when the first request that waits for the next start came in
  #serving = new Map(); // the Durable Object's requests in flight -> their traces
  pingHost = "ping"; // the class's pingEndpoint host, set once the class is constructed
  #egress = new Egress();

  constructor(runtime, className, ctx) {
    this.#runtime = runtime;
    const id = ctx.id.toString();
    // Named after the Durable Object's name (idFromName); an id without a name is its hex.
    this.#who = { class: className, name: ctx.id.name ?? id, id };
    this.#stats = new Stats((counts) =>
      this.#runtime.call("report", { ...this.#who, ...counts }),
    );
  }

  get running() {
    return this.#run !== null && !this.#run.ended;
  }

  start(options = {}) {
    if (this.running) {
      throw new Error("start() cannot be called on a container that is already running.");
    }
    for (const key of ["image", "instance"]) {
      if (options[key] !== undefined) {
        throw new Error(
          `start({ ${key} }) is not supported by emu: each class runs the image and instance ` +
            "type of its containers[] entry in the wrangler config",
        );
      }
    }
    const run = { ended: false, info: null, ready: new Set(), startedAt: 0, served: false };
    run.started = this.#runtime
      .call("start", {
        ...this.#who,
        egress: this.#egress.plan,
        env: options.env ?? null,
        entrypoint: options.entrypoint ?? null,
        enableInternet: options.enableInternet ?? null,
        labels: options.labels ?? null,
      })
      .then((info) => {
        run.info = info;
        run.startedAt = Date.now();
        return info;
      });
    run.exit = this.#watch(run);
    run.started.catch(() => {});
    run.exit.catch(() => {}); // observed by monitor() callers; never an unhandled rejection
    this.#run = run;
  }

  async #watch(run) {
    let info;
    try {
      info = await run.started;
    } catch (error) {
      run.ended = true;
      throw error;
    }
    for (;;) {
      // A long poll: emu answers when the container exits, or after a while that it still runs.
      let state;
      try {
        state = await this.#runtime.call("monitor", { ...this.#who, container: info.container });
      } catch (error) {
        run.ended = true;
        throw error;
      }
      if (state.running) continue;
      run.ended = true;
      if (state.exit_code === 0) return;
      const code = state.exit_code ?? 255;
      throw new Error(`${state.signalled ? SIGNALLED : UNEXPECTED_EXIT} ${code}`);
    }
  }

  monitor() {
    if (this.#run === null) return Promise.reject(new Error(NOT_RUNNING));
    return this.#run.exit;
  }

  async destroy(reason) {
    const run = this.#run;
    if (run === null || run.ended) return;
    const info = await run.started.catch(() => null);
    if (info === null) return;
    await this.#runtime.call("destroy", {
      ...this.#who,
      container: info.container,
      reason: reason === undefined ? null : String(reason),
    });
    await run.exit.catch(() => {});
  }

  signal(signo) {
    const run = this.#run;
    if (run === null || run.ended) return;
    run.started
      .then((info) =>
        this.#runtime.call("signal", { ...this.#who, container: info.container, signo }),
      )
      .catch((error) => console.error(`signal ${signo} to the container failed:`, error));
  }

  async setInactivityTimeout(ms) {
    // Accepted for compatibility: locally a container lives as long as emu runs it.
    void ms;
  }

  // -- outbound interception (emulator/egress/): the library decides, emu only routes ---------

  async interceptOutboundHttp(target, fetcher) {
    this.#egress.http.set(String(target).toLowerCase(), fetcher);
    await this.#planChanged();
  }

  async interceptAllOutboundHttp(fetcher) {
    this.#egress.all = fetcher;
    await this.#planChanged();
  }

  async interceptOutboundHttps(target, fetcher) {
    if (target === "*") this.#egress.httpsAll = fetcher;
    else this.#egress.https.set(String(target).toLowerCase(), fetcher);
    await this.#planChanged();
  }

  async #planChanged() {
    // Before start() the plan goes with the start; a fetcher replaced under the same plan
    // (the library's runtime allowHost, denyHost, …) needs no word to emu.
    const run = this.#run;
    if (run === null || run.ended) return;
    const info = await run.started.catch(() => null);
    if (info === null || run.ended) return;
    const plan = this.#egress.plan;
    const said = JSON.stringify(plan);
    if (run.plan === said) return;
    run.plan = said;
    const { applied } = await this.#runtime.call("egress", { ...this.#who, ip: info.ip, egress: plan });
    if (!applied) {
      console.warn(
        "emu: outbound interception registered while the container runs without it; it " +
          "applies from the container's next start",
      );
    }
  }

  /** The container's outbound request, from emu's listener, to the fetcher registered for it. */
  async egress(request) {
    const url = request.headers.get(`${EGRESS}url`);
    const fetcher = url === null ? null : this.#egress.fetcherFor(new URL(url));
    if (fetcher === null || fetcher === undefined) {
      return new Response(`emu: no fetcher intercepts ${url}\n`, { status: 502 });
    }
    const headers = new Headers();
    for (const [key, value] of request.headers) {
      if (!key.startsWith(EGRESS)) headers.append(key, value);
    }
    const body = request.method === "GET" || request.method === "HEAD" ? undefined : request.body;
    return fetcher.fetch(new Request(url, { method: request.method, headers, body, redirect: "manual" }));
  }

  // -- the rest of the Container interface ----------------------------------------------------

  async exec(cmd, options = {}) {
    if (!Array.isArray(cmd) || cmd.length === 0) {
      throw new TypeError("exec() requires a non-empty command array.");
    }
    void options;
    const info = this.running ? await this.#run.started : null;
    if (info === null) throw new Error("exec() requires a running container.");
    const result = this.#runtime.call("exec", {
      ...this.#who,
      container: info.container,
      cmd: cmd.map(String),
    });
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const output = result.then((r) => ({
      stdout: bytes(r.stdout).buffer,
      stderr: bytes(r.stderr).buffer,
      exitCode: r.exitCode,
    }));
    const stream = (key) =>
      new ReadableStream({
        async start(controller) {
          controller.enqueue(new Uint8Array((await output)[key]));
          controller.close();
        },
      });
    await output; // emu runs the command to its end: its output comes whole
    return {
      stdin: null,
      stdout: stream("stdout"),
      stderr: stream("stderr"),
      pid: 0,
      exitCode: output.then((o) => o.exitCode),
      output: () => output,
      kill() {
        throw new Error("exec(): kill() is not supported by emu (the command has ended)");
      },
    };
  }

  async inspect() {
    const info = this.running ? await this.#run.started : null;
    if (info === null) throw new Error(NOT_RUNNING);
    return this.#runtime.call("inspect", { ...this.#who, container: info.container });
  }

  async snapshotDirectory() {
    throw new Error(`snapshotDirectory() ${NOT_LOCAL}`);
  }

  async snapshotContainer() {
    throw new Error(`snapshotContainer() ${NOT_LOCAL}`);
  }

  getTcpPort(port) {
    return {
      fetch: (input, init) => this.#fetch(port, input, init),
      connect: (options) => {
        const info = this.#run?.info;
        if (!this.running || info === null || info === undefined) throw new Error(NOT_RUNNING);
        return connect(addressOf(info, port), options);
      },
    };
  }

  /** The Durable Object serves `request` (`call`): what its container requests are made for. */
  async serve(trace, request, call) {
    this.#arrived(trace);
    this.#serving.set(request, trace);
    try {
      return await call();
    } finally {
      this.#serving.delete(request);
    }
  }

  /** Which of the requests in flight a container request serves: the library passes the very
   * request it got; else the only one; else the one of this URL. */
  #traceFor(input, init, url) {
    const serving = this.#serving;
    const direct = serving.get(init) ?? serving.get(input);
    if (direct !== undefined || serving.size === 0) return direct;
    if (serving.size === 1) return serving.values().next().value;
    for (const [request, trace] of serving) {
      if (request.url.replace("https:", "http:") === url) return trace;
    }
    return undefined;
  }

  /** A request reached the Durable Object: does it wait for a start (cold)? */
  #arrived(trace) {
    const run = this.#run;
    trace.cold = run === null || run.ended || !run.served;
    if (trace.cold && this.#firstNeed === null) this.#firstNeed = trace.req?.t0 ?? trace.t0;
  }

  async #fetch(port, input, init) {
    const url = typeof input === "string" || input instanceof URL ? String(input) : input.url;
    const host = url.slice(url.indexOf("//") + 2).split(/[/:?]/, 1)[0];
    if (host === HEALTHCHECK_HOST || host === this.pingHost) {
      this.#stats.probe();
      return this.#send(port, input, init);
    }
    const began = Date.now();
    const first = this.#run !== null && !this.#run.served; // the first answer after a start
    const trace = this.#traceFor(input, init, url);
    this.#stats.begin();
    let status = null;
    let late = false;
    try {
      const response = await bounded(this.#send(port, input, init), () => {
        late = true;
        throw new Error(`${TIMED_OUT} (${cockpit.timeoutMs / 1000} s) from the container`);
      });
      status = response.status;
      this.#served();
      return response;
    } finally {
      this.#stats.end();
      // A container request given up on: 504, as the Worker's own answer for it.
      this.#record(trace, port, url, init ?? input, late ? 504 : status, began, first, late);
    }
  }

  /** The first answer after a start: how long its first request waited, as its client did. */
  #served() {
    const run = this.#run;
    if (run !== null && !run.served) {
      run.served = true;
      if (this.#firstNeed !== null) this.#stats.coldWait(Date.now() - this.#firstNeed);
      this.#firstNeed = null;
    }
  }

  #record(trace, port, url, request, status, began, first, late) {
    const record = {
      class: this.#who.class,
      instance: this.#who.name,
      port,
      method: request?.method ?? "GET",
      path: pathAndQuery(url),
      status,
      time: began / 1000,
      ms: Date.now() - began,
      cold: trace?.cold ?? first, // outside a request's trace: did it meet a fresh start?
      ...(late ? { timedOut: true } : {}),
    };
    const req = trace?.req;
    if (req !== undefined && !req.done) req.containers.push(record);
    else if (cockpit.feed) this.#stats.record(record);
  }

  async #send(port, input, init) {
    const run = this.#run;
    if (run === null || run.ended) throw new Error(NOT_RUNNING);
    let info;
    try {
      info = run.info ?? (await run.started);
    } catch (error) {
      throw new Error(`${NOT_RUNNING}: ${error.message}`, { cause: error });
    }
    // The hot path: no Request or URL object of our own (each copy costs workerd tens of
    // microseconds). `init` may be a Request itself, as the library passes it.
    const byUrl = typeof input === "string" || input instanceof URL;
    let request = byUrl ? init : init === undefined ? input : new Request(input, init);
    // A plain init (the library's readiness probe passes `{ signal }`): made a Request.
    if (request !== undefined && !(request instanceof Request)) request = new Request(String(input), request);
    const address = addressOf(info, port);
    if (!run.ready.has(port)) await this.#waitListening(run, address, port, request?.signal);
    const url = byUrl ? String(input) : input.url;
    if (request?.headers.has("upgrade")) return this.#upgrade(address, port, url, request);
    try {
      return await exchange(address, url, request);
    } catch (error) {
      // The library treats "not listening" as "started, port not up yet".
      if (error?.refused) throw new Error(`${NOT_LISTENING} on port ${port}`, { cause: error });
      throw error;
    }
  }

  /** A WebSocket upgrade, through workerd's fetch (its connection is the WebSocket's own). */
  async #upgrade(address, port, url, request) {
    try {
      return await (containerNet ?? globalThis).fetch(`http://${address}${pathAndQuery(url)}`, request);
    } catch (error) {
      // workerd words a refused connection like a dropped one: tell them apart, as above.
      if (String(error?.message).includes("Network connection lost") && !(await canConnect(address))) {
        throw new Error(`${NOT_LISTENING} on port ${port}`, { cause: error });
      }
      throw error;
    }
  }

  async #waitListening(run, address, port, signal) {
    listenWaiters++;
    try {
      while (Date.now() - run.startedAt < FAST_WINDOW_MS && !run.ended && !signal?.aborted) {
        if (await canConnect(address)) break;
        // Each try costs workerd's one thread a connect: a burst of starts shares a budget of
        // tries (MAX_TRIES_PER_S), which leaves the thread and the CPUs to the starts.
        await sleep(Math.max(FAST_RETRY_MS, (listenWaiters * 1000) / MAX_TRIES_PER_S));
      }
    } finally {
      listenWaiters--;
    }
    run.ready.add(port); // checked once per start: later failures are the fetch's own
  }
}

/** A subclass of a Container class whose instances find emu's `ctx.container`. */
export function wrapContainerClass(Base, className, runtimeUrl, token, source) {
  if (typeof Base !== "function") {
    throw new Error(
      `emu: ${source} does not export a class ${className}, which containers[] names`,
    );
  }
  const runtime = new Runtime(runtimeUrl, token);
  egressToken = token;
  const Wrapped = class extends Base {
    constructor(ctx, env, ...rest) {
      objectIds.set(ctx, ctx.id.toString());
      takeNet(env);
      // Set on the real ctx before the base constructor reads it; a Proxy around ctx is
      // refused by workerd's DurableObject constructor.
      const container = ctx.container === undefined ? new EmuContainer(runtime, className, ctx) : null;
      if (container !== null) {
        Object.defineProperty(ctx, "container", { value: container, configurable: true });
      }
      super(ctx, env, ...rest);
      if (container !== null && typeof this.pingEndpoint === "string") {
        container.pingHost = this.pingEndpoint.split("/", 1)[0];
      }
    }

    fetch(request, ...rest) {
      const container = this.ctx?.container;
      if (!(container instanceof EmuContainer)) return super.fetch(request, ...rest);
      // One header lookup per request: emu's listener with the container's outbound request.
      if (request.headers.get(`${EGRESS}token`) === token) return container.egress(request);
      const trace = traceOf(this.ctx, request);
      return container.serve(trace, request, () => super.fetch(request, ...rest));
    }
  };
  Object.defineProperty(Wrapped, "name", { value: Base.name });
  return Wrapped;
}

/** What a Durable Object's fetch serves: the Worker's record the stub queued for it, if any. */
function traceOf(ctx, request) {
  const trace = { req: undefined, t0: Date.now(), cold: false };
  const key = ctx === undefined ? undefined : objectIds.get(ctx);
  const queue = key === undefined ? undefined : handoff.get(key);
  if (queue !== undefined) {
    const url = request.url;
    const at = queue[0].url === url ? 0 : queue.findIndex((entry) => entry.url === url);
    if (at >= 0) {
      const [entry] = queue.splice(at, 1);
      if (queue.length === 0) handoff.delete(key);
      if (!entry.req.done) trace.req = entry.req;
    }
  }
  return trace;
}

/** emu's egress listener asks for the Durable Object whose container sent the request: found by
 * its class (ctx.exports, which the library's ContainerProxy needs as well) and its id. */
function toContainerObject(request, ctx) {
  const className = request.headers.get(`${EGRESS}class`);
  const id = request.headers.get(`${EGRESS}id`);
  if (egressToken === null || request.headers.get(`${EGRESS}token`) !== egressToken) {
    return Promise.resolve(new Response("not emu's egress listener\n", { status: 403 }));
  }
  const namespace = ctx?.exports?.[className];
  if (namespace === undefined || typeof namespace.idFromString !== "function") {
    const text = `emu: ctx.exports.${className} is not a Durable Object namespace here\n`;
    return Promise.resolve(new Response(text, { status: 500 }));
  }
  return namespace.get(namespace.idFromString(id)).fetch(request);
}

async function errorResponse(error) {
  let stack = error instanceof Error ? (error.stack ?? String(error)) : String(error);
  console.error(`Uncaught exception in the Worker's fetch: ${stack}`); // the log maps its lines
  try {
    // The body too names the user's files and lines, not the bundle's: emu has its source map.
    stack = (await cockpit.runtime.call("stack", { stack })).stack ?? stack;
  } catch {
    // the bundle's lines, then
  }
  return new Response(`Worker threw exception\n\n${stack}\n`, {
    status: 500,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

// Cron triggers fired on demand, as `wrangler dev` does: `/cdn-cgi/handler/scheduled` always,
// `/__scheduled` with --test-scheduled. `?cron=` and `?time=` as wrangler takes them.
const SCHEDULED = /^\/cdn-cgi\/handler\/scheduled(\?|$)/;
const TEST_SCHEDULED = /^\/__scheduled(\?|$)/;

async function runScheduled(path, run) {
  const query = new URLSearchParams(path.includes("?") ? path.slice(path.indexOf("?") + 1) : "");
  const time = Number(query.get("time") ?? Date.now());
  const controller = { cron: query.get("cron") ?? "", scheduledTime: time, noRetry() {} };
  await run(controller);
  return new Response("Ran scheduled event");
}

/** Durable Object stubs' fetch, made to hand the request's record over (see `handoff`). Every
 * stub shares one prototype: patched once, on the first request. */
function handRecordsOver(env) {
  stubsPatched = true;
  takeNet(env); // a service binding answers any property as an RPC method, idFromName too
  const namespace = Object.values(env ?? {}).find((v) => typeof v?.idFromName === "function");
  if (namespace === undefined) return;
  const proto = Object.getPrototypeOf(namespace.get(namespace.idFromName("emu")));
  const original = proto.fetch;
  if (typeof original !== "function" || original.emu) return;
  const fetch = function (input, init) {
    const req = als.getStore()?.req;
    if (req !== undefined && !req.done) {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      const key = this.id.toString();
      const entry = { url, req };
      const queue = handoff.get(key);
      if (queue === undefined) handoff.set(key, [entry]);
      else queue.push(entry);
      req.handed.push(key, entry);
    }
    return original.call(this, input, init);
  };
  fetch.emu = true;
  Object.defineProperty(proto, "fetch", { value: fetch, configurable: true, writable: true });
}

/** The response, naming the instances that served it (an emu extra: --no-debug-headers). */
function withInstances(response, containers) {
  let names = containers[0].instance;
  for (let i = 1; i < containers.length; i++) {
    const name = containers[i].instance;
    if (!containers.slice(0, i).some((c) => c.instance === name)) names += `, ${name}`;
  }
  const { status, statusText, webSocket } = response;
  if (webSocket) {
    const headers = new Headers(response.headers);
    headers.set(INSTANCE_HEADER, names);
    return new Response(null, { status, statusText, headers, webSocket });
  }
  // A copy: a stub's (or fetch's) response has immutable headers.
  const copy = new Response(response.body, response);
  copy.headers.set(INSTANCE_HEADER, names);
  return copy;
}

// The Worker's request records, sent to emu in one report per REPORT_MS.
const pending = [];
let reporting = false;

function recordRequest(request, trace, response, ctx) {
  if (pending.length < MAX_PENDING) {
    pending.push({
      ...(timedOut.has(response) ? { timedOut: true } : {}),
      time: trace.t0 / 1000,
      method: request.method,
      path: pathAndQuery(request.url),
      status: response.status,
      ms: Date.now() - trace.t0,
      containers: trace.containers,
    });
  }
  if (reporting || typeof ctx?.waitUntil !== "function") return;
  reporting = true;
  // The report is sent from this request's context, kept alive for it: a timer of its own would
  // not outlive the request in a stateless Worker.
  ctx.waitUntil(
    sleep(REPORT_MS).then(() => {
      reporting = false;
      const records = pending.splice(0);
      return cockpit.runtime.call("requests", { records }).catch(() => {});
    }),
  );
}

/** What no Durable Object took (its fetch failed before it ran) leaves the queues. */
function unhand(handed) {
  for (let i = 0; i < handed.length; i += 2) {
    const queue = handoff.get(handed[i]);
    const at = queue === undefined ? -1 : queue.indexOf(handed[i + 1]);
    if (at < 0) continue;
    queue.splice(at, 1);
    if (queue.length === 0) handoff.delete(handed[i]);
  }
}

/** The user's fetch, traced: its record for the request feed and the debug header. */
async function traced(request, ctx, env, call) {
  if (containerNet === null) takeNet(env);
  if (!cockpit.feed && !cockpit.debugHeaders) return call();
  if (!stubsPatched) handRecordsOver(env);
  const trace = { t0: Date.now(), containers: [], done: false, handed: [] };
  let response;
  try {
    response = await als.run({ req: trace }, call);
  } finally {
    trace.done = true;
    unhand(trace.handed);
  }
  if (cockpit.feed) recordRequest(request, trace, response, ctx);
  if (cockpit.debugHeaders && trace.containers.length > 0) {
    response = withInstances(response, trace.containers);
  }
  return response;
}

/** The Worker's default export, with `/_emu/*` sent to emu's front and exceptions turned into
 * a 500 that carries the stack (which also goes to emu's output). With `options.feed`, each
 * request is recorded, with the container requests made for it; with `options.debugHeaders`,
 * its response names them in x-emu-instance. */
export function wrapWorker(worker, frontUrl, publicOnly, token, options = {}) {
  const testScheduled = Boolean(options.testScheduled);
  const scheduledPath = (request) => {
    const path = pathAndQuery(request.url);
    return SCHEDULED.test(path) || (testScheduled && TEST_SCHEDULED.test(path)) ? path : null;
  };
  cockpit.feed = Boolean(options.feed);
  cockpit.debugHeaders = Boolean(options.debugHeaders);
  cockpit.runtime = new Runtime(frontUrl, token ?? "");
  cockpit.timeoutMs = options.requestTimeoutMs ?? null;
  const toEmu = (request, ctx) => {
    // Every request passes here: a string test, not a URL parse.
    const path = pathAndQuery(request.url);
    if (!path.startsWith("/_emu") || /^\/_emu[^/?]/.test(path)) return null;
    if (path.startsWith("/_emu/runtime/")) return null;
    if (path === EGRESS_PATH) return toContainerObject(request, ctx);
    // Listening beyond loopback: the front sees every forwarded request come from loopback, so
    // its loopback-only routes (the dashboard, the control API) are refused here instead.
    if (publicOnly && !PUBLIC_EMU.test(path)) {
      const error = "emu's control endpoints answer on loopback only";
      return Promise.resolve(Response.json({ error, status: 403 }, { status: 403 }));
    }
    return fetch(`${frontUrl}${path}`, request);
  };
  const guarded = async (call) => {
    try {
      return await bounded(call(), timeoutResponse);
    } catch (error) {
      return errorResponse(error);
    }
  };
  if (typeof worker === "function") {
    // A class-based Worker (WorkerEntrypoint).
    const Wrapped = class extends worker {
      async fetch(request) {
        const emu = toEmu(request, this.ctx);
        if (emu !== null) return emu;
        const scheduled = scheduledPath(request);
        if (scheduled !== null && typeof this.scheduled === "function") {
          return runScheduled(scheduled, (controller) => this.scheduled(controller));
        }
        return traced(request, this.ctx, this.env, () => guarded(() => super.fetch(request)));
      }
    };
    Object.defineProperty(Wrapped, "name", { value: worker.name });
    return Wrapped;
  }
  const handlers = worker ?? {};
  return {
    ...handlers,
    async fetch(request, env, ctx) {
      const emu = toEmu(request, ctx);
      if (emu !== null) return emu;
      const scheduled = scheduledPath(request);
      if (scheduled !== null && typeof handlers.scheduled === "function") {
        return runScheduled(scheduled, (c) => handlers.scheduled.call(handlers, c, env, ctx));
      }
      if (typeof handlers.fetch !== "function") {
        return new Response("The Worker has no fetch handler\n", { status: 500 });
      }
      const call = () => guarded(() => handlers.fetch.call(handlers, request, env, ctx));
      return traced(request, ctx, env, call);
    },
  };
}
