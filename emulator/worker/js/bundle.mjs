// wrangler's bundling, rebuilt from the pieces wrangler itself uses (wrangler exports no bundle
// function): esbuild, unenv and @cloudflare/unenv-preset, all resolved from the pinned wrangler
// package so that their versions are the ones it was released with. What it reproduces:
// - the esbuild settings of wrangler's bundleWorker (target es2024, conditions workerd/worker/
//   browser, the jsx loader for .js, NODE_ENV defines, `define` and `alias` from the config);
// - module rules (the defaults plus the config's `rules`): a matching import becomes a module of
//   its own (Text, Data, CompiledWasm), named `<sha1>-<file name>` as wrangler names it;
// - nodejs_compat (v2): unenv's Cloudflare preset, as wrangler's hybrid plugin applies it.
// Not reproduced: `find_additional_modules`, service-worker format, wrangler's dev middleware.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const RULE_TYPES = { Text: "Text", Data: "Data", CompiledWasm: "CompiledWasm" };

/** A glob of wrangler's rules (`**\/*.html`) as a RegExp over an import path. */
export function globToRegExp(glob) {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        out += ".*";
        i++;
        if (glob[i + 1] === "/") i++;
      } else out += "[^/]*";
    } else if (c === "?") out += ".";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`(^|/)${out}$`);
}

function moduleRulesPlugin(rules, collected) {
  return {
    name: "emu-module-rules",
    setup(build) {
      for (const rule of rules) {
        const type = RULE_TYPES[rule.type];
        if (type === undefined) continue; // ESModule/CommonJS rules: bundled as code
        for (const glob of rule.include ?? rule.globs ?? []) {
          build.onResolve({ filter: globToRegExp(glob) }, async (args) => {
            if (args.pluginData?.emuSkip) return undefined;
            const cleaned = args.path.replace(/\?.*$/, "");
            let file = resolve(args.resolveDir, cleaned);
            const found = await build.resolve(cleaned, {
              kind: args.kind,
              importer: args.importer,
              resolveDir: args.resolveDir,
              pluginData: { emuSkip: true },
            });
            if (found.errors.length === 0 && found.path) file = found.path;
            const content = readFileSync(file);
            const name = `${createHash("sha1").update(content).digest("hex")}-${basename(cleaned)}`;
            collected.set(name, { name, type, file, content });
            return { path: name, external: true, watchFiles: [file] };
          });
        }
      }
    },
  };
}

function aliasPlugin(alias, projectDir) {
  const keys = Object.keys(alias ?? {});
  return {
    name: "emu-alias",
    setup(build) {
      if (keys.length === 0) return;
      const escaped = keys.map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
      build.onResolve({ filter: new RegExp(`^(${escaped.join("|")})$`) }, (args) => {
        const target = alias[args.path];
        if (!target) return undefined;
        const requireHere = createRequire(join(projectDir, "package.json"));
        return { path: requireHere.resolve(target, { paths: [projectDir] }) };
      });
    },
  };
}

/** An ESM-only package, imported as Node would from where `requireTools` stands. */
async function importPackage(requireTools, name) {
  const manifest = requireTools.resolve(`${name}/package.json`);
  const data = JSON.parse(readFileSync(manifest, "utf8"));
  const root = data.exports?.["."] ?? data.exports;
  const target = typeof root === "string" ? root : (root?.import ?? root?.default ?? data.module ?? data.main);
  return import(pathToFileURL(join(dirname(manifest), target)).href);
}

/** nodejs_compat v2 (the flag, with a date from 2024-09-23 or nodejs_compat_v2): unenv's
 * Cloudflare preset. Built-ins the runtime has stay imports; the rest are polyfilled. */
async function nodejsCompatPlugin(requireTools, compatibilityDate, compatibilityFlags) {
  const { defineEnv } = await importPackage(requireTools, "unenv");
  const { getCloudflarePreset, nonPrefixedNodeModules } = await importPackage(
    requireTools,
    "@cloudflare/unenv-preset",
  );
  const { alias, inject, external, polyfill } = defineEnv({
    presets: [getCloudflarePreset({ compatibilityDate, compatibilityFlags }), { alias: { debug: "debug" } }],
    npmShims: true,
  }).env;
  const builtin = new RegExp(`^(${nonPrefixedNodeModules.join("|")}|node:.+)$`);
  const resolveTool = (id) => {
    try {
      return requireTools.resolve(id);
    } catch {
      return null;
    }
  };
  const absolute = Object.fromEntries(
    Object.entries(alias)
      .map(([from, to]) => [from, resolveTool(to)])
      .filter(([, to]) => to !== null),
  );
  const aliased = new RegExp(
    `^(${Object.keys(absolute).map((k) => k.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})$`,
  );
  return {
    name: "emu-nodejs-compat",
    setup(build) {
      // require("fs") of a built-in: an ESM import behind a CommonJS face.
      build.onResolve({ filter: builtin }, (args) =>
        args.kind === "require-call" ? { path: args.path, namespace: "emu-node-builtin" } : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: "emu-node-builtin" }, ({ path }) => ({
        contents: `import m from ${JSON.stringify(path)}; module.exports = m;`,
        loader: "js",
      }));
      build.onResolve({ filter: aliased }, (args) => {
        const target = alias[args.path];
        const npmShim = target.startsWith("unenv/npm/") || target.startsWith("unenv/mock/");
        if (args.kind === "require-call" && npmShim) {
          return { path: args.path, namespace: "emu-unenv-require" };
        }
        return { path: absolute[args.path], external: external.includes(target) };
      });
      build.onLoad({ filter: /.*/, namespace: "emu-unenv-require" }, ({ path }) => ({
        contents:
          `import * as esm from ${JSON.stringify(absolute[path])};` +
          "module.exports = Object.entries(esm).filter(([k]) => k !== 'default').reduce(" +
          "(cjs, [k, v]) => Object.defineProperty(cjs, k, { value: v, enumerable: true })," +
          " 'default' in esm ? esm.default : {});",
        loader: "js",
      }));
      // Globals (process, Buffer, ...): one virtual module per source, injected.
      const byModule = new Map();
      for (const [name, spec] of Object.entries(inject)) {
        const [mod, exportName] = Array.isArray(spec) ? spec : [spec, "default"];
        if (!byModule.has(mod)) byModule.set(mod, []);
        byModule.get(mod).push({ name, exportName });
      }
      const virtual = [...byModule.keys()].map((mod, i) => ({ mod, path: `/emu-unenv-global-${i}.mjs` }));
      build.initialOptions.inject = [
        ...(build.initialOptions.inject ?? []),
        ...virtual.map((v) => v.path),
        ...polyfill.map((p) => requireTools.resolve(p)),
      ];
      build.onResolve({ filter: /^\/emu-unenv-global-\d+\.mjs$/ }, ({ path }) => ({
        path,
        namespace: "emu-unenv-global",
      }));
      build.onLoad({ filter: /.*/, namespace: "emu-unenv-global" }, ({ path }) => {
        const { mod } = virtual.find((v) => v.path === path);
        const names = byModule.get(mod);
        const imports = names.map((n, i) => `${n.exportName} as __emu_g${i}`).join(", ");
        const sets = names.map((n, i) => `globalThis.${n.name} = __emu_g${i};`).join("\n");
        return { contents: `import { ${imports} } from ${JSON.stringify(mod)};\n${sets}\n`, loader: "js", resolveDir: dirname(requireTools.resolve("unenv/package.json")) };
      });
    },
  };
}

function compatMode(date, flags) {
  if (flags.includes("no_nodejs_compat_v2")) return flags.includes("nodejs_compat") ? "v1" : null;
  if (flags.includes("nodejs_compat_v2")) return "v2";
  if (flags.includes("nodejs_compat")) return date >= "2024-09-23" ? "v2" : "v1";
  if (flags.includes("nodejs_als")) return "als";
  return null;
}

/** Bundle `entry` into `outfile`, writing each rule module beside it. Returns the modules for
 * Miniflare (the bundle first) and the esbuild result; throws esbuild's error on failure. */
export async function bundle({
  esbuild,
  requireTools,
  entry,
  outfile,
  projectDir,
  nodePaths,
  rules,
  define,
  alias,
  compatibilityDate,
  compatibilityFlags,
  write = true,
}) {
  const collected = new Map();
  const mode = compatMode(compatibilityDate, compatibilityFlags);
  const plugins = [aliasPlugin(alias, projectDir), moduleRulesPlugin(rules, collected)];
  const external = ["cloudflare:*", "__STATIC_CONTENT_MANIFEST"];
  if (mode === "v2") plugins.push(await nodejsCompatPlugin(requireTools, compatibilityDate, compatibilityFlags));
  else if (mode !== null) external.push("node:*");
  else external.push("node:async_hooks");
  const nodeEnv = JSON.stringify(process.env.NODE_ENV || "development");
  const result = await esbuild.build({
    entryPoints: [entry],
    outfile,
    absWorkingDir: projectDir,
    bundle: true,
    format: "esm",
    target: "es2024",
    supported: { "import-source": true, using: true },
    loader: { ".js": "jsx", ".mjs": "jsx", ".cjs": "jsx" },
    conditions: ["workerd", "worker", "browser"],
    external,
    nodePaths,
    define: {
      "process.env.NODE_ENV": nodeEnv,
      "global.process.env.NODE_ENV": nodeEnv,
      "globalThis.process.env.NODE_ENV": nodeEnv,
      ...define,
    },
    plugins,
    sourcemap: "external",
    metafile: true,
    logLevel: "silent",
    write,
  });
  const modules = [{ type: "ESModule", path: outfile }];
  for (const m of collected.values()) {
    const path = join(dirname(outfile), m.name);
    if (write) writeFileSync(path, m.content);
    modules.push({ type: m.type, path });
  }
  return { modules, result, mode };
}
