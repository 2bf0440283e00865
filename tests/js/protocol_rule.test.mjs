// The emu/protocol ESLint rule fails on what it should (node --test, run by .ci/js).
import { describe, it } from "node:test";
import { RuleTester } from "eslint";
import { rule } from "./protocol_rule.mjs";

RuleTester.describe = describe;
RuleTester.it = it;
const tester = new RuleTester({ languageOptions: { ecmaVersion: "latest", sourceType: "module" } });

// Every op called once, as shim.js does, so that only the case's own error remains.
const who = "class C { #who; constructor() { this.#who = { class: 'C', name: 'n', id: 'i' }; } ";
const allOps =
  who +
  "a(r, c, s, p, x, e, t) {" +
  " r.call('start', { ...this.#who, egress: e, env: null, entrypoint: null, enableInternet: null, labels: null });" +
  " r.call('monitor', { ...this.#who, container: c }); r.call('signal', { ...this.#who, container: c, signo: s });" +
  " r.call('destroy', { ...this.#who, container: c, reason: null });" +
  " const counts = { requests: 1, inflight: 0, probes: 0, cold_waits_ms: [], records: [] };" +
  " r.call('report', { ...this.#who, ...counts }); r.call('requests', { records: [] });" +
  " r.call('egress', { ...this.#who, ip: p, egress: e }); r.call('exec', { ...this.#who, container: c, cmd: x });" +
  " r.call('inspect', { ...this.#who, container: c }); r.call('stack', { stack: t }); } }";
const shim = [{ role: "shim" }];

tester.run("emu/protocol (shim)", rule, {
  valid: [{ name: "every op, as shim.js calls them", code: allOps, options: shim }],
  invalid: [
    {
      name: "a misspelled op",
      code: allOps + "; r.call('monitr', {});",
      options: shim,
      errors: [{ message: "runtime op 'monitr' is not in protocol.json" }],
    },
    {
      name: "a misspelled field",
      code: allOps.replace("signo: s", "sigNo: s"),
      options: shim,
      errors: [
        { message: "runtime op 'signal': field 'sigNo' is not in protocol.json" },
        { message: "runtime op 'signal': field 'signo' is missing (protocol.json)" },
      ],
    },
    {
      name: "an op never called",
      code: allOps.replace("r.call('inspect', { ...this.#who, container: c });", ""),
      options: shim,
      errors: [{ message: "runtime op 'inspect' (protocol.json) is never called" }],
    },
    {
      name: "a spread it cannot follow",
      code: allOps.replace("...counts", "...elsewhere"),
      options: shim,
      errors: [{ message: "a spread emu/protocol cannot follow: spread an object literal" }],
    },
  ],
});

const runner = [{ role: "runner" }];
const allMessages =
  "send({ t: 'bundled', remote: [], exports: [], modules: [] }); send({ t: 'bundle_error', errors: [], fatal: true });" +
  "send({ t: 'config_error', message: 'm' }); send({ t: 'ready', url: 'u', inspector: null });" +
  "send({ t: 'start_error', message: 'm', code: null }); send({ t: 'log', stream: 'info', line: 'l' });" +
  "send({ t: 'notice', line: 'l' }); send({ t: 'reloaded' }); send({ t: 'reload_error', message: 'm' });" +
  "send({ t: 'described', vars: [], bindings: [], remote: [] }); send({ t: 'runtime_exit', code: 1, signal: null });" +
  "send({ t: 'runtime_back' });" +
  "if (command.op === 'serve') a(); else if (command.op === 'reload') b();" +
  "else if (command.op === 'map') send({ t: 'mapped', id: command.id, text: command.text });";

tester.run("emu/protocol (runner)", rule, {
  valid: [{ name: "every message and command, as runner.mjs has them", code: allMessages, options: runner }],
  invalid: [
    {
      name: "a misspelled message kind",
      code: allMessages.replace("t: 'reloaded'", "t: 'reloadd'"),
      options: runner,
      errors: [
        { message: "message 'reloaded' (protocol.json) is never sent" },
        { message: "message 'reloadd' is not in protocol.json" },
      ],
    },
    {
      name: "emu's own message",
      code: allMessages + "send({ t: 'exit', code: 1 });",
      options: runner,
      errors: [{ message: "message 'exit' is not in protocol.json" }],
    },
    {
      name: "a misspelled command",
      code: allMessages.replace("command.op === 'map'", "command.op === 'mapp'"),
      options: runner,
      errors: [
        { message: "command 'map' (protocol.json) is never handled" },
        { message: "command 'mapp' is not in protocol.json" },
      ],
    },
    {
      name: "a misspelled command field",
      code: allMessages.replace("command.text", "command.txt"),
      options: runner,
      errors: [{ message: "command field 'txt' is not in protocol.json" }],
    },
  ],
});
