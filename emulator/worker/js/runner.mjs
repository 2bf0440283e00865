// Runs the user's Worker for emu: bundles the generated entry with esbuild, then serves it with
// Miniflare (workerd) on the public port. Talks to emu with JSON lines: commands on stdin,
// messages on stdout. When stdin closes (emu exited, even by kill -9) it stops workerd and exits.
//
// argv[2]: the path of a JSON file with the settings (see emulator/worker/runtime.py).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

const settings = JSON.parse(readFileSync(process.argv[2], "utf8"));
const requireHere = createRequire(join(settings.modulesDir, "package.json"));
const esbuild = requireHere("esbuild");
const miniflarePath = requireHere.resolve("miniflare");
const { Miniflare } = await import(pathToFileURL(miniflarePath).href);
const { TraceMap, originalPositionFor } = createRequire(miniflarePath)("@jridgewell/trace-mapping");

const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");

let traceMap = null;
let miniflare = null;
let stopping = false;

function location(loc) {
  if (!loc) return {};
  return { file: loc.file, line: loc.line, column: loc.column + 1, lineText: loc.lineText };
}

async function bundle() {
  try {
    await esbuild.build({
      entryPoints: [settings.entry],
      outfile: settings.outfile,
      absWorkingDir: settings.projectDir,
      bundle: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      mainFields: ["module", "main"],
      conditions: ["workerd", "worker", "browser"],
      external: ["cloudflare:*", "node:*"],
      nodePaths: settings.nodePaths,
      sourcemap: "external",
      logLevel: "silent",
      write: true,
    });
  } catch (error) {
    const errors = (error.errors ?? [{ text: String(error) }]).map((e) => ({
      text: e.text,
      ...location(e.location),
    }));
    return errors;
  }
  traceMap = new TraceMap(readFileSync(settings.outfile + ".map", "utf8"), settings.outfile);
  return null;
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

function relay(stream, name) {
  createInterface({ input: stream }).on("line", (line) => {
    send({ t: "log", stream: name, line: mapLine(line) });
  });
}

function options() {
  const durableObjects = {};
  for (const [binding, className] of Object.entries(settings.durableObjects)) {
    // Never evicted: the container's state lives in the object, as a running container keeps
    // its Durable Object alive on the platform.
    durableObjects[binding] = { className, useSQLite: true, unsafePreventEviction: true };
  }
  return {
    modules: [{ type: "ESModule", path: settings.outfile }],
    modulesRoot: settings.outdir,
    compatibilityDate: settings.compatibilityDate,
    compatibilityFlags: settings.compatibilityFlags,
    bindings: settings.vars,
    durableObjects,
    // The public port is a socket straight to the Worker. Miniflare's own entry (a Worker in
    // front of the user's that logs each request through Node and prettifies errors) stays on
    // a loopback port nobody uses: it cost about 180 us of workerd's CPU per request.
    host: "127.0.0.1",
    port: 0,
    unsafeDirectSockets: [{ host: settings.host, port: settings.port }],
    logRequests: false,
    // Otherwise every outbound fetch (to a container) goes through one more Worker, which only
    // strips a header that emu's requests never carry.
    stripCfConnectingIp: false,
    handleRuntimeStdio(stdout, stderr) {
      relay(stdout, "stdout");
      relay(stderr, "stderr");
    },
  };
}

async function serve() {
  miniflare = new Miniflare(options());
  try {
    await miniflare.ready;
    const url = await miniflare.unsafeGetDirectURL();
    settings.port = Number(url.port); // a reload keeps it, also when it was 0
    send({ t: "ready", url: url.href });
  } catch (error) {
    send({ t: "start_error", message: error.message, code: error.code ?? null });
    await stop(1);
  }
}

async function reload() {
  const errors = await bundle();
  if (errors !== null) {
    send({ t: "bundle_error", errors, fatal: false });
    return;
  }
  try {
    await miniflare.setOptions(options());
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

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = JSON.parse(line);
  if (command.op === "serve") serve();
  else if (command.op === "reload") reload();
  else if (command.op === "stop") stop(0);
  // A Worker exception's stack, for its 500 body (emulator/worker/runtime.py map_stack).
  else if (command.op === "map") send({ t: "mapped", id: command.id, text: command.text.split("\n").map(mapLine).join("\n") });
});
commands.on("close", () => stop(0));
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => stop(0));

const errors = await bundle();
send(errors === null ? { t: "bundled" } : { t: "bundle_error", errors, fatal: true });
