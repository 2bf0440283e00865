// What a JavaScript test runner does with `wrangler dev`: spawn it, wait for its "Ready on"
// line, fetch through it, stop it. argv: the command and its arguments (here: emu dev ...).
import { spawn } from "node:child_process";

const [command, ...args] = process.argv.slice(2);
const child = spawn(command, args, { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((resolve, reject) => {
  let seen = "";
  child.stdout.on("data", (chunk) => {
    seen += chunk;
    const match = /Ready on (http:\/\/\S+)/.exec(seen);
    if (match) resolve(match[1]);
  });
  child.on("exit", (code) => reject(new Error(`exited ${code} before Ready on:\n${seen}`)));
  setTimeout(() => reject(new Error(`no Ready on within 120 s:\n${seen}`)), 120_000).unref();
});
const response = await fetch(url + "/");
console.log(JSON.stringify({ url, status: response.status, body: await response.text() }));
child.kill("SIGINT");
await new Promise((resolve) => child.on("exit", resolve));
