#!/usr/bin/env node
// Where does a client's time go? `node bench/profile.mjs [--client sfstream] [--scenario catchup] [--n 20000]`
// Starts sfemu, puts the backlog in place, runs one bench/worker.mjs measurement under
// `node --cpu-prof`, and prints self time grouped by layer (wasm, wasm-bindgen glue, the TS
// wrapper, the projection snippet, undici/fetch, JSON, GC, ...) and the top functions.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startSfemu } from "../tests/helpers/sfemu.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const client = opt("--client", "sfstream");
const scenario = opt("--scenario", "catchup");
const n = Number(opt("--n", "20000"));
const packed = join(ROOT, "tests", "node_modules", "sfstream", "dist", "node.js");
const pkgEntry = pathToFileURL(opt("--pkg", existsSync(packed) ? packed : join(ROOT, "dist", "node.js"))).href;

const emu = await startSfemu([]);
const dir = mkdtempSync(join(tmpdir(), "sfstream-prof-"));
try {
  const channel = "/topic/BenchProfile";
  if (scenario === "catchup" || scenario === "slow") await emu.control("publish", { channel, count: n, payloadSize: 200 });
  const token = (await emu.control("token", {})).access_token;
  const cfg = { client, scenario, n, channel, url: emu.url, token, pkgEntry, timeoutMs: 120000 };
  const out = await new Promise((resolve) => {
    const child = spawn(process.execPath, ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-interval", "100", join(BENCH, "worker.mjs"), JSON.stringify(cfg)], { stdio: ["ignore", "pipe", "inherit"] });
    let s = "";
    child.stdout.on("data", (c) => (s += c));
    child.on("exit", () => resolve(s));
  });
  console.log(out.trim());
  const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
  const prof = JSON.parse(readFileSync(join(dir, file), "utf8"));
  const byId = new Map(prof.nodes.map((nd) => [nd.id, nd]));
  // --drain: only the samples between the first and the last event (catch-up), i.e. the
  // client-bound delivery loop, using the worker's monotonic timestamps (same clock as the profile).
  const result = JSON.parse(out.trim().slice(7));
  const window = argv.includes("--drain") && result.drainWindowUs ? result.drainWindowUs : null;
  const self = new Map();
  let ts = prof.startTime;
  for (let i = 0; i < prof.samples.length; i++) {
    const nd = byId.get(prof.samples[i]);
    const dt = prof.timeDeltas[i] ?? 0;
    ts += dt;
    if (window && (ts < window[0] || ts > window[1])) continue;
    self.set(nd, (self.get(nd) ?? 0) + dt);
  }
  if (window) console.log(`(drain window only: ${((window[1] - window[0]) / 1000).toFixed(1)} ms)`);
  const layer = (cf) => {
    const u = cf.url;
    if (cf.functionName === "(garbage collector)") return "GC";
    if (cf.functionName === "(idle)") return "idle";
    if (cf.functionName === "(program)") return "program (native, unattributed)";
    if (u.startsWith("wasm://")) return "wasm (Rust)";
    if (/snippets\/.*project\.js/.test(u) || /project\.js/.test(u)) return "projection snippet (JS)";
    if (/wasm\/sfstream\.js/.test(u)) return "wasm-bindgen glue";
    if (/sfstream\/dist\//.test(u)) return "TS wrapper (dist)";
    if (/undici|node:internal\/deps\/undici|internal\/webstreams|internal\/streams/.test(u)) return "fetch / streams (undici)";
    if (/bench\/worker\.mjs|bench\/clients/.test(u)) return "bench harness";
    if (/node_modules\/(cometd|faye|jsforce)/.test(u)) return "peer library";
    if (u === "" && /JSON|parse|stringify/.test(cf.functionName)) return "JSON (native)";
    if (u.startsWith("node:")) return "node internals";
    return u === "" ? `native: ${cf.functionName}` : "other JS";
  };
  const layers = new Map();
  const fns = new Map();
  let total = 0;
  for (const [nd, t] of self) {
    const cf = nd.callFrame;
    const l = layer(cf);
    if (l !== "idle") total += t;
    layers.set(l, (layers.get(l) ?? 0) + t);
    const key = `${cf.functionName || "(anonymous)"}  ${cf.url.split("/").slice(-2).join("/")}:${cf.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + t);
  }
  console.log(`\nprofile: ${join(dir, file)}`);
  console.log(`\n${client} ${scenario} n=${n}: ${(total / 1000).toFixed(1)} ms of busy samples (idle excluded)\n`);
  console.log("| layer | self ms | share |\n|---|---:|---:|");
  for (const [l, t] of [...layers].sort((a, b) => b[1] - a[1])) {
    if (l === "idle") continue;
    console.log(`| ${l} | ${(t / 1000).toFixed(1)} | ${((100 * t) / total).toFixed(1)}% |`);
  }
  console.log("\ntop functions (self ms):");
  for (const [k, t] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`  ${(t / 1000).toFixed(1).padStart(7)}  ${k}`);
} finally {
  await emu.stop();
}
