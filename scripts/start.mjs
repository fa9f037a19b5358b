#!/usr/bin/env node
// npm start (after scripts/setup.sh and scripts/build.mjs): the live dashboard against sfemu.
//   1. builds sfemu if needed (cargo is incremental: a no-op when it is fresh);
//   2. copies the built package (dist/) to www/vendor/sfstream/ (gitignored), so the page imports
//      the real client, served by the same origin as /cometd;
//   3. starts `sfemu --demo --www www --port $PORT` (default 8090) and prints the URL to open;
//   4. Ctrl-C (SIGINT) or SIGTERM stops sfemu and exits.
import { execFileSync, spawn } from "node:child_process";
import { cpSync, existsSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const log = (msg) => console.log(`[start] ${msg}`);
const port = process.env.PORT ?? "8090";
if (!/^\d+$/.test(port) || Number(port) > 65535) {
  console.error(`[start] PORT must be a port number, got ${JSON.stringify(port)}`);
  process.exit(2);
}

const dist = join(root, "dist");
if (!existsSync(join(dist, "browser.js")) || !existsSync(join(dist, "wasm", "sfstream_bg.wasm"))) {
  console.error("[start] dist/ is not built: run `npm start` (which builds first) or `node scripts/build.mjs`");
  process.exit(1);
}

log("building sfemu (cargo build --release -p sfemu)");
execFileSync("cargo", ["build", "--release", "-p", "sfemu"], { cwd: root, stdio: "inherit" });
const bin = join(root, "target", "release", "sfemu");

const www = join(root, "www");
const vendor = join(www, "vendor", "sfstream");
rmSync(vendor, { recursive: true, force: true });
cpSync(dist, vendor, { recursive: true, filter: (src) => !src.endsWith(".d.ts") && !src.endsWith("size.json") });

const args = ["--demo", "--www", www, "--port", port];
if (process.env.HOST) args.push("--host", process.env.HOST);
const emu = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
let announced = false;
emu.stdout.setEncoding("utf8").on("data", (chunk) => {
  process.stdout.write(chunk);
  const m = /sfemu listening on (http:\/\/\S+)/.exec(chunk);
  if (m && !announced) {
    announced = true;
    const url = m[1].replace("://0.0.0.0:", "://127.0.0.1:");
    console.log(`\n  sfstream dashboard: ${url}/\n  (sfemu --demo publishes PushTopic, platform and CDC events; Ctrl-C stops everything)\n`);
  }
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  log(`${signal}: stopping sfemu`);
  if (emu.exitCode === null && emu.signalCode === null) emu.kill("SIGTERM");
  const force = setTimeout(() => emu.kill("SIGKILL"), 5000);
  force.unref();
}
process.on("SIGINT", () => stop("SIGINT"));
process.on("SIGTERM", () => stop("SIGTERM"));
emu.on("exit", (code, signal) => {
  if (!stopping) {
    console.error(`[start] sfemu exited unexpectedly (${signal ?? `status ${code}`})`);
    process.exit(1);
  }
  log("stopped");
  process.exit(0);
});
