// ESLint for emu's JavaScript (.ci/js runs it): the recommended rules, with the globals of where
// each file runs, and emu/protocol: the runtime messages as protocol.json defines them.
import js from "@eslint/js";
import globals from "globals";
import protocol from "./tests/js/protocol_rule.mjs";

export default [
  { ignores: [".venv/", "node_modules/", "build/", "dist/", "site/"] },
  js.configs.recommended,
  {
    // workerd: ES modules with the Workers globals (fetch, Response, crypto, atob, ...).
    files: ["emulator/worker/js/*.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.serviceworker } },
  },
  {
    files: ["emulator/worker/js/*.mjs", "*.mjs", "tests/**/*.mjs"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
  {
    files: ["emulator/cockpit/dashboard/*.js"],
    languageOptions: { sourceType: "script", globals: { ...globals.browser } },
  },
  // The messages with emu, against emulator/worker/js/protocol.json.
  {
    files: ["emulator/worker/js/shim.js"],
    plugins: { emu: protocol },
    rules: { "emu/protocol": ["error", { role: "shim" }] },
  },
  {
    files: ["emulator/worker/js/runner.mjs"],
    plugins: { emu: protocol },
    rules: { "emu/protocol": ["error", { role: "runner" }] },
  },
];
