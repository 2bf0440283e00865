// ESLint for emu's JavaScript (.ci/js runs it): the recommended rules, with the globals of where
// each file runs.
import js from "@eslint/js";
import globals from "globals";

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
];
