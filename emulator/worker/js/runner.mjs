// Runs the user's Worker for emu. wrangler's own translation turns the config into Miniflare
// options (unstable_readConfig, unstable_getMiniflareWorkerOptions: bindings, vars with
// .dev.vars/.env, module rules, define, Durable Objects, Workflows, Queues, services, assets, ...);
// bundle.mjs bundles the generated entry as wrangler would; Miniflare (workerd) serves it on the
// public port. Talks to emu with JSON lines: commands on stdin, messages on stdout. When stdin
// closes (emu exited, even by kill -9) it stops workerd and exits.
//
// argv[2]: the path of a JSON file with the settings (see emulator/worker/runtime.py).
import childProcess from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { bundle } from "./bundle.mjs";

const settings = JSON.parse(readFileSync(process.argv[2], "utf8"));
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const notice = (line) => send({ t: "notice", line });

// Everything comes from the pinned wrangler's own dependency tree.
const requireCache = createRequire(join(settings.modulesDir, "package.json"));
const wranglerMain = requireCache.resolve("wrangler");
const requireTools = createRequire(wranglerMain);
const wrangler = await import(pathToFileURL(wranglerMain).href);
const esbuild = requireTools("esbuild");
const miniflarePath = requireTools.resolve("miniflare");
const { Miniflare, convertV4MiniflareOptions } = await import(pathToFileURL(miniflarePath).href);
const workerd = await import(pathToFileURL(createRequire(miniflarePath).resolve("workerd")).href);
const newestDate = workerd.compatibilityDate;
const workerdPath = workerd.default?.default ?? workerd.default; // a CommonJS module's export
const { TraceMap, originalPositionFor } = createRequire(miniflarePath)("@jridgewell/trace-mapping");

// Bindings that only Cloudflare's network has (wrangler's own list of remote-only kinds): named
// at start, never left silently undefined.
const REMOTE_ONLY = {
  ai: "Workers AI",
  aiSearchNamespaces: "AI Search",
  aiSearchInstances: "AI Search",
  vectorize: "Vectorize",
  mtlsCertificates: "mTLS certificate",
  dispatchNamespaces: "dispatch namespace",
  media: "Media Transformations",
  vpcServices: "VPC service",
  vpcNetworks: "VPC network",
  browserRendering: "Browser Rendering",
};

// workerd dying (an OOM kill, a crash): Miniflare starts it again by itself, on the same ports,
// in well under a second, but says nothing. Its process is watched here so that emu hears of it
// at once, with how it ended. A workerd that Miniflare stops itself (a reload, the end) is not
// a crash: Miniflare kills it through `kill`, which is marked.
const RESTART_DEADLINE_MS = 10000; // Miniflare's own restart: else this runner exits, emu starts another
let restartTimer = null;
const spawn = childProcess.spawn;
childProcess.spawn = function (command, ...rest) {
  const child = spawn.call(this, command, ...rest);
  if (command === (process.env.MINIFLARE_WORKERD_PATH ?? workerdPath)) watchWorkerd(child);
  return child;
};

function watchWorkerd(child) {
  let meant = false;
  const kill = child.kill;
  child.kill = function (...args) {
    meant = true;
    return kill.apply(this, args);
  };
  child.once("exit", (code, signal) => {
    if (meant || stopping || !serving) return;
    send({ t: "runtime_exit", code, signal });
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      notice(`workerd did not come back within ${RESTART_DEADLINE_MS / 1000} s`);
      stop(1);
    }, RESTART_DEADLINE_MS);
  });
}

function restarted() {
  clearTimeout(restartTimer);
  restartTimer = null;
  send({ t: "runtime_back" });
}

let traceMap = null;
let miniflare = null;
let serving = false; // ready once: a workerd that dies later is a crash
let stopping = false;
let translated = null;

function location(loc) {
  if (!loc) return {};
  return { file: loc.file, line: loc.line, column: loc.column + 1, lineText: loc.lineText };
}

function bindingNames(value) {
  if (value === undefined || value === null) return [];
  if (Array.isArray(value)) return value.map((v) => v?.binding ?? v?.name ?? "?");
  if (typeof value === "object" && "binding" in value) return [value.binding];
  return Object.keys(value);
}

/** wrangler's translation of the config, with emu's changes: --var, the date fallback, the
 * remote-only bindings taken out, Durable Objects kept in memory while their container runs. */
function translate(configPath, announce, primary = true) {
  const config = wrangler.unstable_readConfig({ config: configPath, env: settings.env ?? undefined });
  const { workerOptions, define, externalWorkers, main } = wrangler.unstable_getMiniflareWorkerOptions(
    config,
    settings.env ?? undefined,
    { overrides: { enableContainers: false } },
  );
  const options = { ...workerOptions };
  const rules = options.modulesRules ?? [];
  delete options.modulesRules;
  delete options.rootPath;
  if (primary) options.bindings = { ...(options.bindings ?? {}), ...settings.vars };
  let date = options.compatibilityDate ?? newestDate;
  if (date > newestDate) {
    if (announce) {
      notice(
        `${config.name ?? "the Worker"}: compatibility_date ${date} is newer than this runtime ` +
          `supports (${newestDate}); using ${newestDate}, as wrangler dev does`,
      );
    }
    date = newestDate;
  }
  options.compatibilityDate = date;
  // AsyncLocalStorage, which the shim follows each request with: nodejs_als unless
  // nodejs_compat gives it already.
  const flags = options.compatibilityFlags ?? [];
  if (!flags.some((f) => ["nodejs_compat", "nodejs_compat_v2", "nodejs_als"].includes(f))) {
    options.compatibilityFlags = [...flags, "nodejs_als"];
  }
  if (options.assets?.assetConfig) options.assets.assetConfig.compatibility_date = date;
  const remote = [];
  for (const [key, kind] of Object.entries(REMOTE_ONLY)) {
    for (const name of bindingNames(options[key])) remote.push(`env.${name} (${kind})`);
    delete options[key];
  }
  if (announce) for (const what of remote) notice(`${what}: not available locally`);
  const durableObjects = {};
  for (const [binding, spec] of Object.entries(options.durableObjects ?? {})) {
    const object = typeof spec === "string" ? { className: spec } : { ...spec };
    // Never evicted: a container's state lives in its object, as a running container keeps its
    // Durable Object alive on the platform.
    if (object.scriptName === undefined) object.unsafePreventEviction = true;
    durableObjects[binding] = object;
  }
  options.durableObjects = durableObjects;
  const alias = { ...(config.alias ?? {}), ...settings.alias };
  return { config, options, rules, define: { ...define }, alias, externalWorkers, remote, main };
}

/** The primary Worker (emu's, with ctx.container) and the others run beside it (--extra-worker,
 * as `wrangler dev -c A -c B`), each translated and bundled on its own. */
function translateAll(announce) {
  const primary = translate(settings.configPath, announce);
  primary.entry = settings.entry;
  primary.outfile = settings.outfile;
  primary.projectDir = settings.projectDir;
  const extra = settings.extraWorkers.map((configPath, i) => {
    const worker = translate(configPath, announce, false);
    return {
      ...worker,
      entry: worker.main,
      outfile: join(settings.outdir, `extra-${i}`, "index.mjs"),
      projectDir: dirname(configPath),
    };
  });
  return [primary, ...extra];
}

async function build() {
  const all = [];
  let exports = [];
  for (const worker of translated) {
    const built = await buildOne(worker);
    if (built.errors) return built;
    all.push(built.modules);
    if (all.length === 1) exports = built.exports;
  }
  return { modules: all, exports };
}

async function buildOne(worker) {
  const { options, rules, define, alias } = worker;
  try {
    const { modules, result } = await bundle({
      esbuild,
      requireTools,
      entry: worker.entry,
      outfile: worker.outfile,
      projectDir: worker.projectDir,
      nodePaths: settings.nodePaths,
      rules,
      define,
      alias,
      compatibilityDate: options.compatibilityDate,
      compatibilityFlags: options.compatibilityFlags ?? [],
    });
    let exports = [];
    if (worker.outfile === settings.outfile) {
      traceMap = new TraceMap(readFileSync(settings.outfile + ".map", "utf8"), settings.outfile);
      const output = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint);
      exports = output?.[1].exports ?? [];
    }
    return { modules, exports };
  } catch (error) {
    const errors = (error.errors ?? [{ text: String(error?.message ?? error) }]).map((e) => ({
      text: e.text,
      ...location(e.location),
    }));
    return { errors };
  }
}

// Stack lines name the bundle; point them at the user's sources instead.
const bundleName = settings.moduleName.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const frame = new RegExp(`(?:file://)?[^\\s()]*${bundleName}:(\\d+):(\\d+)`, "g");
function mapLine(line) {
  if (traceMap === null || !line.includes(settings.moduleName)) return line;
  return line.replace(frame, (whole, l, c) => {
    const pos = originalPositionFor(traceMap, { line: +l, column: +c - 1 });
    return pos.source ? `${pos.source}:${pos.line}:${pos.column + 1}` : whole;
  });
}

function relayLog(log) {
  const text = String(log.message ?? "");
  for (const line of text.split("\n")) send({ t: "log", stream: log.level ?? "info", line: mapLine(line) });
}

function miniflareOptions(modules) {
  const [primary, ...extra] = translated;
  const { config, options, externalWorkers } = primary;
  const persist = settings.persistTo; // wrangler's layout: <dir>/v3/{kv,r2,d1,...}
  return convertV4MiniflareOptions({
    rootPath: settings.projectDir,
    // The public port is a socket straight to the Worker. Miniflare's own entry (a Worker in
    // front of the user's that logs each request through Node and prettifies errors) stays on
    // a loopback port nobody uses: it cost about 180 us of workerd's CPU per request.
    host: "127.0.0.1",
    port: 0,
    inspectorPort: settings.inspectorPort ?? undefined,
    logRequests: false,
    handleStructuredLogs: relayLog,
    resourcePersistencePath: persist ? join(persist, "v3") : undefined,
    resourceTmpPath: join(settings.outdir, "tmp"),
    unsafeTriggerHandlers: true,
    unsafeHandleRuntimeRestart: restarted,
    workers: [
      {
        ...options,
        name: config.name ?? "worker",
        modules: modules[0],
        modulesRoot: settings.outdir,
        unsafeDirectSockets: [{ host: settings.host, port: settings.port }],
        // Container requests straight to the network (shim.js NET_BINDING), not through
        // Miniflare's outbound Worker: containers are on this machine's bridges or loopback.
        serviceBindings: {
          ...(options.serviceBindings ?? {}),
          __EMU_CONTAINER_NET: { network: { allow: ["private", "local", "public"], deny: [] } },
        },
        // Otherwise every outbound fetch (to a container) goes through one more Worker, which
        // only strips a header that emu's requests never carry.
        stripCfConnectingIp: false,
      },
      ...extra.map((w, i) => ({
        ...w.options,
        name: w.config.name ?? `worker-${i + 1}`,
        modules: modules[i + 1],
        modulesRoot: dirname(w.outfile),
      })),
      ...(externalWorkers ?? []),
    ],
  });
}

async function serve(modules) {
  try {
    miniflare = new Miniflare(miniflareOptions(modules));
    await miniflare.ready;
    const url = await miniflare.unsafeGetDirectURL();
    settings.port = Number(url.port); // a reload keeps it, also when it was 0
    const inspector = settings.inspectorPort ? (await miniflare.getInspectorURL()).href : null;
    send({ t: "ready", url: url.href, inspector });
    serving = true;
  } catch (error) {
    send({ t: "start_error", message: String(error?.message ?? error), code: error?.code ?? null });
    await stop(1);
  }
}

async function reload() {
  try {
    translated = translateAll(false);
  } catch (error) {
    send({ t: "reload_error", message: String(error?.message ?? error) });
    return;
  }
  const built = await build();
  if (built.errors) {
    send({ t: "bundle_error", errors: built.errors, fatal: false });
    return;
  }
  try {
    await miniflare.setOptions(miniflareOptions(built.modules));
    send({ t: "reloaded" });
  } catch (error) {
    send({ t: "reload_error", message: error.message });
  }
}

async function stop(code) {
  if (stopping) return;
  stopping = true;
  try {
    await miniflare?.dispose();
  } finally {
    process.exit(code);
  }
}

let pending = null;
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = JSON.parse(line);
  if (command.op === "serve") serve(pending);
  else if (command.op === "reload") reload();
  // A Worker exception's stack, for its 500 body (emulator/worker/runtime.py map_stack).
  else if (command.op === "map") send({ t: "mapped", id: command.id, text: command.text.split("\n").map(mapLine).join("\n") });
});
commands.on("close", () => stop(0));
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop(0));

// What each binding is, and where each var came from, for `emu config` (values of secrets are
// not sent: emu masks them).
const KINDS = {
  kvNamespaces: "KV namespace",
  r2Buckets: "R2 bucket",
  d1Databases: "D1 database",
  queueProducers: "Queue producer",
  workflows: "Workflow",
  serviceBindings: "service",
  durableObjects: "Durable Object",
  hyperdrives: "Hyperdrive",
  ratelimits: "rate limit",
  analyticsEngineDatasets: "Analytics Engine",
  secretsStoreSecrets: "Secrets Store secret",
  sendEmail: "send email",
};

function describe() {
  const { config, options, remote } = translate(settings.configPath, false);
  // (--var is applied by translate, over vars and secrets alike)
  const fromConfig = new Set(Object.keys(config.vars ?? {}));
  const vars = Object.entries(options.bindings ?? {}).map(([name, value]) => {
    const source = name in settings.vars ? "--var" : fromConfig.has(name) ? "vars" : "secret";
    return { name, source, value: source === "secret" ? null : value };
  });
  const bindings = [];
  for (const [key, kind] of Object.entries(KINDS)) {
    for (const [name, spec] of Object.entries(options[key] ?? {})) {
      const target = typeof spec === "string" ? spec : (spec?.className ?? spec?.name ?? spec?.id ?? spec?.queueName ?? "");
      bindings.push({ name, kind, target: String(target) });
    }
  }
  if (options.assets?.binding) bindings.push({ name: options.assets.binding, kind: "static assets", target: options.assets.directory });
  for (const queue of Object.keys(options.queueConsumers ?? {})) bindings.push({ name: "(consumer)", kind: "Queue consumer", target: queue });
  for (const cron of options.cronTriggers ?? []) bindings.push({ name: "(cron)", kind: "cron trigger", target: cron });
  send({ t: "described", vars, bindings, remote });
}

mkdirSync(join(settings.outdir, "tmp"), { recursive: true });
if (settings.describeOnly) {
  try {
    describe();
  } catch (error) {
    send({ t: "config_error", message: String(error?.message ?? error) });
  }
  process.exit(0);
}
try {
  translated = translateAll(true);
} catch (error) {
  // wrangler's own validation of the config (UserError): its message names the field.
  send({ t: "config_error", message: String(error?.message ?? error) });
  process.exit(2);
}
const built = await build();
if (built.errors) send({ t: "bundle_error", errors: built.errors, fatal: true });
else {
  pending = built.modules;
  send({ t: "bundled", remote: translated[0].remote, exports: built.exports, modules: built.modules[0] });
}
