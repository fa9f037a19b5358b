#!/usr/bin/env node
// `npm run bench` = `node bench/run.mjs [--quick] [--runs N] [--clients a,b] [--scenarios a,b]
//   [--no-browser] [--no-write]`
//
// sfstream next to the JS clients people use today (official CometD, Faye, jsforce) and the
// "ceiling" (bench/clients/ceiling.mjs: bare fetch + JSON.parse; "ceiling-http": the same on node:http), all against one sfemu process on
// loopback. Every measurement runs in its own child process (bench/worker.mjs) for clean CPU and
// RSS figures, clients interleaved (A B C D E, A B C D E, ...), several runs, medians reported.
// The Chromium part drives bench/browser/page.mjs, served same-origin by sfemu --www.
// Results: bench/results/full.json (quick: a file in the temp dir); the full run rewrites the generated section of
// BENCHMARKS.md (between the bench:results markers; everything else in the file is kept).
import { spawn, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { startSfemu } from "../tests/helpers/sfemu.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, "..");
const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};

const QUICK = flag("--quick");
const CFG = QUICK
  ? { runs: 1, catchup: [5000, 20000], live: [5000, 20000], latency: 50, slowBacklog: 20000, slowMs: 2000, browserRuns: 1, browserCatchup: 5000, browserLatency: 30 }
  : { runs: 5, catchup: [20000, 100000], live: [20000, 100000], latency: 200, slowBacklog: 100000, slowMs: 4000, browserRuns: 3, browserCatchup: 20000, browserLatency: 200 };
CFG.runs = Number(opt("--runs", CFG.runs));
const ALL_CLIENTS = ["sfstream", "sfstream-batches", "ceiling", "ceiling-http", "cometd", "faye", "jsforce"];
/** Clients that run in Node only (jsforce's browser build needs a login flow; ceiling-http is node:http). */
const NODE_ONLY = ["jsforce", "ceiling-http", "sfstream-batches"];
const PEERS = ["cometd", "faye", "jsforce"];
let clients = opt("--clients", ALL_CLIENTS.join(",")).split(",");
const scenarios = opt("--scenarios", "catchup,live,latency,slow,size,browser").split(",").filter((s) => !(s === "browser" && flag("--no-browser")));
const WRITE = !QUICK && !flag("--no-write");

const log = (...a) => console.error(...a);
const median = (xs) => {
  const v = xs.filter((x) => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
const pkgVersion = (dir) => JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version;

// ---- the package under test: a snapshot, so a concurrent rebuild/repack cannot change it mid-run
const work = mkdtempSync(join(tmpdir(), "sfstream-bench-"));
const packed = join(ROOT, "tests", "node_modules", "sfstream");
const pkgSrc = existsSync(join(packed, "dist", "node.js")) ? packed : ROOT;
const pkgDir = join(work, "www", "sfstream");
mkdirSync(pkgDir, { recursive: true });
cpSync(join(pkgSrc, "dist"), join(pkgDir, "dist"), { recursive: true });
cpSync(join(pkgSrc, "package.json"), join(pkgDir, "package.json"));
const pkgEntry = pathToFileURL(join(pkgDir, "dist", "node.js")).href;
log(`package under test: ${pkgSrc === packed ? "tests/node_modules/sfstream (packed)" : "dist/"} -> ${pkgDir}`);

// ---- jsforce: 3.10+ needs Node 22; use BENCH_JSFORCE_DIR (a prefix holding a Node-20-compatible one) if given
const env = { ...process.env };
let jsforceNote = "";
function jsforceLoads(dir) {
  try {
    const code = `require(require('node:module').createRequire(${JSON.stringify(join(dir, "x.js"))}).resolve('jsforce'))`;
    execFileSync(process.execPath, ["-e", code], { stdio: "pipe", timeout: 30000 });
    return true;
  } catch (e) {
    return String(e.stderr ?? e).split("\n").find((l) => /Error/.test(l)) ?? "load failed";
  }
}
let jsforceVersion = null;
if (clients.includes("jsforce")) {
  const own = jsforceLoads(join(ROOT, "bench"));
  const ownVersion = pkgVersion(join(ROOT, "node_modules", "jsforce"));
  if (own === true) {
    jsforceVersion = ownVersion;
  } else if (process.env.BENCH_JSFORCE_DIR && jsforceLoads(process.env.BENCH_JSFORCE_DIR) === true) {
    jsforceVersion = pkgVersion(join(process.env.BENCH_JSFORCE_DIR, "node_modules", "jsforce"));
    jsforceNote = `jsforce ${ownVersion} (the devDependency) does not load on Node ${process.versions.node} (${own.trim()}; it needs Node 22), so jsforce ${jsforceVersion} from BENCH_JSFORCE_DIR was measured.`;
  } else {
    jsforceNote = `jsforce ${ownVersion} does not load on Node ${process.versions.node} (${String(own).trim()}); jsforce skipped. Set BENCH_JSFORCE_DIR to a prefix with a Node-20-compatible jsforce (e.g. 3.9.5).`;
    clients = clients.filter((c) => c !== "jsforce");
  }
  if (jsforceNote) log(jsforceNote);
}

// ---- sfemu, serving the browser page same-origin
const www = join(work, "www");
cpSync(join(BENCH, "browser"), join(www, "bench"), { recursive: true });
cpSync(join(BENCH, "clients", "ceiling.mjs"), join(www, "bench", "ceiling.mjs"));
cpSync(join(BENCH, "clients", "replay-ext.mjs"), join(www, "bench", "replay-ext.mjs"));
cpSync(join(BENCH, "clients", "shared.mjs"), join(www, "bench", "shared.mjs"));
cpSync(join(ROOT, "node_modules", "faye", "client", "faye-browser-min.js"), join(www, "bench", "faye-browser-min.js"));
const esbuild = await import("esbuild");
await esbuild.build({
  stdin: {
    contents: `export { CometD } from "cometd"; export { CometdReplayExtension } from ${JSON.stringify(join(BENCH, "clients", "replay-ext.mjs"))};`,
    resolveDir: ROOT,
  },
  bundle: true,
  format: "esm",
  minify: true,
  outfile: join(www, "bench", "cometd.bundle.mjs"),
  logLevel: "error",
});
// sfstream is bundled the same way, as an application would: one script instead of the package's
// module graph. It sits in dist/, so the wasm URL it computes (./wasm/sfstream_bg.wasm) holds.
await esbuild.build({
  entryPoints: [join(pkgDir, "dist", "browser.js")],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  outfile: join(pkgDir, "dist", "browser.bundle.mjs"),
  logLevel: "error",
});

const emu = await startSfemu(["--www", www]);
log(`sfemu at ${emu.url}`);
const results = []; // every raw measurement

async function token() {
  return (await emu.control("token", { username: "user@example.com" })).access_token;
}

function runWorker(cfg) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...(cfg.scenario === "slow" ? ["--expose-gc"] : []), join(BENCH, "worker.mjs"), JSON.stringify(cfg)], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    const killer = setTimeout(() => child.kill("SIGKILL"), (cfg.timeoutMs ?? 120000) + 10000);
    child.on("exit", (code) => {
      clearTimeout(killer);
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      const r = line ? JSON.parse(line.slice(7)) : { ok: false, error: `exit ${code}: ${err.slice(-500)}` };
      if (r.ok && (r.received !== undefined && r.n !== undefined && r.scenario !== "latency" ? r.received !== r.n : false)) {
        r.ok = false;
        r.error = `received ${r.received} of ${r.n}`;
      }
      if (r.ok && r.outOfOrder) {
        r.ok = false;
        r.error = `${r.outOfOrder} events out of order or duplicated`;
      }
      resolve(r);
    });
  });
}

/** One measurement on a freshly reset sfemu. */
async function measure(client, scenario, n, extra = {}) {
  await emu.control("reset", {});
  let channel = `/topic/Bench${scenario[0].toUpperCase()}${scenario.slice(1)}`;
  if (scenario === "catchup" || scenario === "slow") {
    const pub = await emu.control("publish", { channel, count: n, payloadSize: 200 });
    if (pub.published !== n) throw new Error(`backlog: published ${pub.published}`);
  }
  const cfg = { client, scenario, n, channel, url: emu.url, token: await token(), pkgEntry, timeoutMs: 120000, ...extra };
  const r = await runWorker(cfg);
  r.client = client;
  r.scenario = scenario;
  r.n = n;
  r.where = "node";
  results.push(r);
  const brief = Object.entries(r)
    .filter(([k, v]) => typeof v === "number" && !["n"].includes(k))
    .map(([k, v]) => `${k}=${+v.toFixed(2)}`)
    .join(" ");
  log(`  ${scenario} n=${n} ${client.padEnd(8)} ${r.ok ? brief : `FAILED: ${r.error}`}`);
  return r;
}

/** A B C ... A B C ...: each round starts one client later so no client always goes first. */
async function interleaved(scenario, n, extra) {
  for (let run = 0; run < CFG.runs; run++) {
    for (let k = 0; k < clients.length; k++) {
      await measure(clients[(k + run) % clients.length], scenario, n, extra);
    }
  }
}

const started = Date.now();
try {
  if (scenarios.includes("catchup")) for (const n of CFG.catchup) await interleaved("catchup", n);
  if (scenarios.includes("live")) for (const n of CFG.live) await interleaved("live", n);
  if (scenarios.includes("latency")) await interleaved("latency", CFG.latency, { gapMs: 10 });
  if (scenarios.includes("slow")) await interleaved("slow", CFG.slowBacklog, { durationMs: CFG.slowMs });
  if (scenarios.includes("size")) results.push(...(await sizes()));
  if (scenarios.includes("browser")) await browserRuns();
} finally {
  await emu.stop();
}
log(`done in ${((Date.now() - started) / 1000).toFixed(0)} s`);

// ---- sizes: minified + gzipped, what a browser app ships
async function sizes() {
  const gz = (buf) => gzipSync(buf, { level: 9 }).length;
  const bundle = async (opts) => {
    const r = await esbuild.build({ bundle: true, minify: true, format: "esm", platform: "browser", write: false, logLevel: "error", ...opts });
    return Buffer.from(r.outputFiles[0].contents);
  };
  const out = [];
  const add = (client, what, parts) => {
    const raw = parts.reduce((s, p) => s + p.length, 0);
    const gzip = parts.reduce((s, p) => s + gz(p), 0);
    out.push({ ok: true, scenario: "size", where: "browser", client, what, raw, gzip, partsGzip: parts.map(gz) });
  };
  const ours = await bundle({ entryPoints: [join(pkgDir, "dist", "browser.js")], format: "esm", target: "es2022" });
  const wasm = readFileSync(join(pkgDir, "dist", "wasm", "sfstream_bg.wasm"));
  add("sfstream", "esbuild bundle of dist/browser.js (glue + wrapper) + sfstream_bg.wasm", [ours, wasm]);
  // What an app that only streams ships: tree-shaken to Client + an authenticator.
  const minimal = await bundle({
    stdin: { contents: `export { Client, AccessTokenAuthenticator, ReplayOption } from ${JSON.stringify(join(pkgDir, "dist", "browser.js"))};`, resolveDir: pkgDir },
    target: "es2022",
  });
  add("sfstream (Client only)", "esbuild bundle of { Client, AccessTokenAuthenticator, ReplayOption } + sfstream_bg.wasm", [minimal, wasm]);
  const cometd = await bundle({ stdin: { contents: 'export { CometD } from "cometd";', resolveDir: ROOT } });
  add("cometd", "esbuild bundle of the cometd package (CometD class)", [cometd]);
  add("faye", "faye/client/faye-browser-min.js", [readFileSync(join(ROOT, "node_modules", "faye", "client", "faye-browser-min.js"))]);
  const jsf = join(ROOT, "node_modules", "jsforce", "dist", "jsforce.js");
  if (existsSync(jsf)) {
    const min = await esbuild.transform(readFileSync(jsf, "utf8"), { minify: true });
    add("jsforce", `jsforce/dist/jsforce.js ${pkgVersion(join(ROOT, "node_modules", "jsforce"))} (browser build, with streaming), minified`, [Buffer.from(min.code)]);
  }
  add("ceiling", "bench/clients/ceiling.mjs, minified", [await bundle({ entryPoints: [join(BENCH, "clients", "ceiling.mjs")] })]);
  for (const r of out) log(`  size ${r.client.padEnd(8)} raw=${r.raw} gzip=${r.gzip}`);
  return out;
}

// ---- Chromium: catch-up and latency, page same-origin with /cometd
async function browserRuns() {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  results.push({ ok: true, scenario: "browserVersion", where: "browser", version: browser.version() });
  const bclients = clients.filter((c) => !NODE_ONLY.includes(c));
  try {
    const one = async (client, scenario, n) => {
      await emu.control("reset", {});
      const channel = `/topic/BenchBrowser${scenario}`;
      if (scenario === "catchup") await emu.control("publish", { channel, count: n, payloadSize: 200 });
      const context = await browser.newContext();
      const page = await context.newPage();
      let r;
      try {
        await page.goto(`${emu.url}/bench/index.html`);
        await page.waitForFunction(() => window.benchReady === true, null, { timeout: 20000 });
        r = await page.evaluate((cfg) => window.runBench(cfg), { client, scenario, n, channel, token: await token(), gapMs: 10 });
        if (scenario === "catchup" && r.received !== n) Object.assign(r, { ok: false, error: `received ${r.received} of ${n}` });
        if (r.outOfOrder) Object.assign(r, { ok: false, error: `${r.outOfOrder} out of order` });
      } catch (e) {
        r = { ok: false, error: String(e.message ?? e).slice(0, 300) };
      } finally {
        await context.close();
      }
      Object.assign(r, { client, scenario, n, where: "browser" });
      results.push(r);
      log(`  chromium ${scenario} n=${n} ${client.padEnd(8)} ${r.ok ? `total=${r.totalMs?.toFixed(1)} drain=${r.drainMs?.toFixed(1)} p50=${r.p50Ms?.toFixed(2)} p99=${r.p99Ms?.toFixed(2)} startup=${r.startupMs?.toFixed(1)}` : `FAILED: ${r.error}`}`);
    };
    for (const [scenario, n] of [["catchup", CFG.browserCatchup], ["latency", CFG.browserLatency]]) {
      for (let run = 0; run < CFG.browserRuns; run++) {
        for (let k = 0; k < bclients.length; k++) await one(bclients[(k + run) % bclients.length], scenario, n);
      }
    }
  } finally {
    await browser.close();
  }
}

// ---- summary
const pick = (where, scenario, client, n, field) =>
  median(results.filter((r) => r.ok && r.where === where && r.scenario === scenario && r.client === client && (n === null || r.n === n)).map((r) => r[field]));
const failures = results.filter((r) => !r.ok);
const summary = { node: {}, browser: {}, size: {} };
for (const c of clients) {
  const s = (summary.node[c] = {});
  for (const n of CFG.catchup) {
    s[`catchup${n}`] = { totalMs: pick("node", "catchup", c, n, "totalMs"), drainMs: pick("node", "catchup", c, n, "drainMs"), cpuMs: pick("node", "catchup", c, n, "cpuMs"), rssGrowthMB: pick("node", "catchup", c, n, "rssGrowthMB") };
  }
  for (const n of CFG.live) {
    s[`live${n}`] = { eventsPerSec: pick("node", "live", c, n, "eventsPerSec"), cpuMs: pick("node", "live", c, n, "cpuMs"), rssGrowthMB: pick("node", "live", c, n, "rssGrowthMB") };
  }
  const [a, b] = CFG.live;
  s.marginalCpuUsPerEvent = ((s[`live${b}`].cpuMs - s[`live${a}`].cpuMs) * 1000) / (b - a);
  s.latency = {};
  for (const f of ["p50Ms", "p99Ms", "importMs", "subscribeMs", "startupMs", "rssGrowthMB"]) s.latency[f] = pick("node", "latency", c, null, f);
  s.slow = {};
  for (const f of ["rssAt1sMB", "rssEndMB", "lateGrowthMB", "rssPeakMB", "retainedAt1sMB", "retainedEndMB", "retainedLateGrowthMB", "consumed", "fetched"]) s.slow[f] = pick("node", "slow", c, null, f);
  const bs = (summary.browser[c] = {});
  for (const f of ["totalMs", "drainMs"]) bs[f] = pick("browser", "catchup", c, null, f);
  for (const f of ["p50Ms", "p99Ms", "importMs", "subscribeMs", "startupMs"]) bs[f] = pick("browser", "latency", c, null, f);
}
for (const r of results.filter((r) => r.scenario === "size")) summary.size[r.client] = r;

const versions = {
  sfstream: `${pkgVersion(pkgDir)} (commit ${git("rev-parse --short HEAD")})`,
  cometd: pkgVersion(join(ROOT, "node_modules", "cometd")),
  "cometd-nodejs-client": pkgVersion(join(ROOT, "node_modules", "cometd-nodejs-client")),
  faye: pkgVersion(join(ROOT, "node_modules", "faye")),
  jsforce: jsforceVersion ?? "not run",
  esbuild: pkgVersion(join(ROOT, "node_modules", "esbuild")),
  "playwright-core": pkgVersion(join(ROOT, "node_modules", "playwright-core")),
  node: process.versions.node,
  chromium: results.find((r) => r.scenario === "browserVersion")?.version ?? "not run",
};
function git(args) {
  try {
    return execFileSync("git", args.split(" "), { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}
const machine = {
  nproc: cpus().length,
  cpu: (readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/) ?? [])[1] ?? "unknown",
  memoryGB: +(totalmem() / 2 ** 30).toFixed(1),
  os: existsSync("/etc/debian_version") ? `Debian ${readFileSync("/etc/debian_version", "utf8").trim()}` : process.platform,
  load: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
};
const report = { date: new Date().toISOString(), quick: QUICK, config: CFG, clients, machine, versions, jsforceNote, summary, failures, results };
mkdirSync(join(BENCH, "results"), { recursive: true });
// The quick smoke run's figures are throw-away: keep them out of the work tree.
const outFile = QUICK ? join(tmpdir(), `sfstream-bench-quick-${process.pid}.json`) : join(BENCH, "results", "full.json");
writeFileSync(outFile, JSON.stringify(report, null, 1));
log(`raw results: ${outFile}`);
const md = renderMarkdown(report);
process.stdout.write(md);
if (WRITE) writeBenchmarksMd(md);
rmSync(work, { recursive: true, force: true });
if (failures.length > 0) {
  log(`${failures.length} measurement(s) failed`);
  process.exitCode = 1;
}

// ---- markdown
function renderMarkdown(rep) {
  const { summary: S, config: C } = rep;
  const f = (x, d = 1) => (typeof x === "number" && Number.isFinite(x) ? x.toFixed(d) : "—");
  const int = (x) => (typeof x === "number" && Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—");
  const [c1, c2] = C.catchup;
  const [l1, l2] = C.live;
  const cl = rep.clients;
  const L = [];
  L.push(`Run: ${rep.date.slice(0, 16).replace("T", " ")} UTC${rep.quick ? " (quick mode)" : ""}; ${C.runs} runs per client and scenario, clients interleaved, medians.`);
  L.push(`Machine: ${rep.machine.nproc} × ${rep.machine.cpu}, ${rep.machine.memoryGB} GB, ${rep.machine.os}; load average at the end ${rep.machine.load} (the machine is shared).`);
  L.push(`Versions: ${Object.entries(rep.versions).map(([k, v]) => `${k} ${v}`).join(", ")}.`);
  if (rep.jsforceNote) L.push(`Note: ${rep.jsforceNote}`);
  L.push("");
  L.push(`### 1. Catch-up (replay -2 of a retained backlog, 200-byte payloads), Node`);
  L.push("");
  L.push(`| client | ${int(c1)}: open → last (ms) | ${int(c1)}: drain first → last (ms) | ${int(c2)}: open → last (ms) | ${int(c2)}: drain (ms) | ${int(c2)}: CPU (ms) | ${int(c2)}: RSS growth (MB) |`);
  L.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const c of cl) {
    const a = S.node[c][`catchup${c1}`];
    const b = S.node[c][`catchup${c2}`];
    L.push(`| ${c} | ${f(a.totalMs)} | ${f(a.drainMs)} | ${f(b.totalMs)} | ${f(b.drainMs)} | ${f(b.cpuMs, 0)} | ${f(b.rssGrowthMB)} |`);
  }
  L.push("");
  L.push(`### 2. Live throughput (bulk publish while subscribed), Node`);
  L.push("");
  L.push(`| client | ${int(l1)}: events/s | ${int(l2)}: events/s | CPU ${int(l1)} (ms) | CPU ${int(l2)} (ms) | marginal CPU (µs/event) | ${int(l2)}: RSS growth (MB) |`);
  L.push("|---|---:|---:|---:|---:|---:|---:|");
  for (const c of cl) {
    const s = S.node[c];
    L.push(`| ${c} | ${int(s[`live${l1}`].eventsPerSec)} | ${int(s[`live${l2}`].eventsPerSec)} | ${f(s[`live${l1}`].cpuMs, 0)} | ${f(s[`live${l2}`].cpuMs, 0)} | ${f(s.marginalCpuUsPerEvent, 2)} | ${f(s[`live${l2}`].rssGrowthMB)} |`);
  }
  L.push("");
  L.push(`Every run checks that every event arrived exactly once and in replay-id order (a failed check fails the run). Marginal CPU = (CPU(${int(l2)}) − CPU(${int(l1)})) / ${int(l2 - l1)}, so start-up cost cancels out.`);
  L.push("");
  L.push(`### 3–4. Latency (publish → delivered, ${C.latency} spaced events) and start-up (import → subscribed), Node`);
  L.push("");
  L.push("| client | p50 (ms) | p99 (ms) | import (ms) | open + subscribe (ms) | start-up total (ms) |");
  L.push("|---|---:|---:|---:|---:|---:|");
  for (const c of cl) {
    const s = S.node[c].latency;
    L.push(`| ${c} | ${f(s.p50Ms, 2)} | ${f(s.p99Ms, 2)} | ${f(s.importMs)} | ${f(s.subscribeMs)} | ${f(s.startupMs)} |`);
  }
  L.push("");
  L.push(`Latency is measured inside the client process: the time of the control-API publish request to the moment the consumer sees the event (for sfstream: inside \`for await\`, over the client or over \`batches()\`; for peers: in their callback). sfstream's import includes compiling and instantiating the wasm module.`);
  L.push("");
  L.push(`### 5. Memory with a slow consumer (${int(C.slowBacklog)}-event backlog, ~1 event/ms consumed for ${C.slowMs / 1000} s), Node`);
  L.push("");
  L.push("| client | retained at 1 s (MB) | retained at end (MB) | retained 1 s → end (MB) | RSS growth at 1 s (MB) | RSS at end (MB) | RSS 1 s → end (MB) | RSS peak (MB) | consumed | fetched from server |");
  L.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const c of cl) {
    const s = S.node[c].slow;
    L.push(`| ${c} | ${f(s.retainedAt1sMB)} | ${f(s.retainedEndMB)} | ${f(s.retainedLateGrowthMB)} | ${f(s.rssAt1sMB)} | ${f(s.rssEndMB)} | ${f(s.lateGrowthMB)} | ${f(s.rssPeakMB)} | ${int(s.consumed)} | ${int(s.fetched)} |`);
  }
  L.push("");
  L.push("sfstream is consumed with `for await` (sfstream-batches: over `batches()`, each message of a batch awaited in turn; backpressure: the long-poll pauses while `maxPendingCount` messages wait); the callback clients queue in the application, which is all their API allows. *Retained*: heap used + external memory after a forced full collection (`--expose-gc`, all clients alike), growth from before `start`; this is what the application holds. RSS columns: growth of the resident set, which also shows when the collector ran and memory the process has not returned. RSS growth during the other scenarios is in their tables.");
  L.push("");
  L.push("### 6. Size (minified, gzip -9)");
  L.push("");
  L.push("| client | what | raw (bytes) | gzipped (bytes) |");
  L.push("|---|---|---:|---:|");
  for (const c of Object.keys(S.size)) {
    const s = S.size[c];
    L.push(`| ${c} | ${s.what}${s.partsGzip.length > 1 ? ` (gzipped: ${s.partsGzip.join(" + ")})` : ""} | ${int(s.raw)} | ${int(s.gzip)} |`);
  }
  L.push("");
  L.push(`### 7. Headless Chromium (page same-origin with /cometd, served by sfemu --www)`);
  L.push("");
  L.push(`| client | catch-up ${int(C.browserCatchup)}: open → last (ms) | drain (ms) | latency p50 (ms) | p99 (ms) | start-up: import → subscribed (ms) |`);
  L.push("|---|---:|---:|---:|---:|---:|");
  for (const c of cl.filter((c) => !NODE_ONLY.includes(c))) {
    const s = S.browser[c];
    L.push(`| ${c} | ${f(s.totalMs)} | ${f(s.drainMs)} | ${f(s.p50Ms, 2)} | ${f(s.p99Ms, 2)} | ${f(s.startupMs)} |`);
  }
  L.push("");
  L.push(`${C.browserRuns} runs each, a fresh browser context per run. jsforce is not run in the browser (its browser build needs a Salesforce login flow), nor ceiling-http (node:http).`);
  L.push("");
  L.push("### Targets (ratios within this run)");
  L.push("");
  L.push(...targets(rep));
  if (rep.failures.length) {
    L.push("");
    L.push(`Failed measurements (${rep.failures.length}): ${rep.failures.map((r) => `${r.where}/${r.scenario}/${r.client}: ${r.error}`).join("; ")}`);
  }
  return L.join("\n") + "\n";
}

function targets(rep) {
  const S = rep.summary;
  const C = rep.config;
  const peers = PEERS.filter((p) => rep.clients.includes(p));
  const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "—");
  const best = (get, lower = true) => {
    const v = peers.map((p) => [p, get(p)]).filter(([, x]) => Number.isFinite(x));
    v.sort((a, b) => (lower ? a[1] - b[1] : b[1] - a[1]));
    return v[0] ?? [null, NaN];
  };
  const rows = [];
  const row = (what, ours, [peer, theirs], ratio, pass, detail) =>
    rows.push(`| ${what} | ${ours} | ${peer ?? "—"}: ${theirs} | ${detail ?? f(ratio)} | ${Number.isFinite(ratio) ? (pass ? "met" : "**missed**") : "—"} |`);
  // sfstream consumed with `for await` over the client, and (where run) with `batches()`.
  const variants = [
    ["sfstream", ""],
    ["sfstream-batches", " (`batches()`)"],
  ].filter(([c]) => S.node[c]);
  for (const n of C.catchup) {
    const k = `catchup${n}`;
    for (const [c, how] of variants) {
      const us = S.node[c][k];
      const bd = best((p) => S.node[p][k].drainMs);
      row(`catch-up ${n}: drain ≤ 0.5× best peer${how}`, `${f(us.drainMs, 1)} ms`, [bd[0], `${f(bd[1], 1)} ms`], us.drainMs / bd[1], us.drainMs / bd[1] <= 0.5);
      const ceil = S.node.ceiling?.[k].drainMs;
      row(`catch-up ${n}: drain ≤ 2× ceiling${how}`, `${f(us.drainMs, 1)} ms`, ["ceiling", `${f(ceil, 1)} ms`], us.drainMs / ceil, us.drainMs / ceil <= 2);
      const bt = best((p) => S.node[p][k].totalMs);
      row(`catch-up ${n}: total ≥ 1.3× faster than best peer${how}`, `${f(us.totalMs, 1)} ms`, [bt[0], `${f(bt[1], 1)} ms`], bt[1] / us.totalMs, bt[1] / us.totalMs >= 1.3, `${f(bt[1] / us.totalMs)}× faster`);
    }
  }
  for (const [c, how] of variants) {
    const us = S.node[c];
    const bm = best((p) => S.node[p].marginalCpuUsPerEvent);
    row(`marginal CPU/event ≤ best peer${how}`, `${f(us.marginalCpuUsPerEvent)} µs`, [bm[0], `${f(bm[1])} µs`], us.marginalCpuUsPerEvent / bm[1], us.marginalCpuUsPerEvent <= bm[1]);
  }
  if (S.node.sfstream) {
    const us = S.node.sfstream;
    const bs = best((p) => S.node[p].latency.startupMs);
    row("start-up ≤ 1.5× best peer (Node)", `${f(us.latency.startupMs, 1)} ms`, [bs[0], `${f(bs[1], 1)} ms`], us.latency.startupMs / bs[1], us.latency.startupMs / bs[1] <= 1.5);
    const bl = best((p) => S.node[p].latency.p50Ms);
    row("p50 latency ≤ best peer (Node)", `${f(us.latency.p50Ms)} ms`, [bl[0], `${f(bl[1])} ms`], us.latency.p50Ms / bl[1], us.latency.p50Ms <= bl[1]);
    const late = us.slow.retainedLateGrowthMB;
    const bslow = best((p) => S.node[p].slow.retainedLateGrowthMB);
    row("flat memory under a slow consumer (retained memory 1 s → end grows ≤ 5 MB)", `${f(late, 1)} MB`, [bslow[0], `${f(bslow[1], 1)} MB`], late, late <= 5, `${f(late, 1)} MB`);
  }
  if (S.size.sfstream && S.size.cometd) {
    const r = S.size.sfstream.gzip / S.size.cometd.gzip;
    row("gzipped size ≤ 2× CometD", `${S.size.sfstream.gzip} B`, ["cometd", `${S.size.cometd.gzip} B`], r, r <= 2);
  }
  const bb = rep.summary.browser;
  if (bb.sfstream && Number.isFinite(bb.sfstream.drainMs)) {
    const bd = best((p) => bb[p]?.drainMs);
    row("Chromium catch-up drain ≤ 0.5× best peer", `${f(bb.sfstream.drainMs, 1)} ms`, [bd[0], `${f(bd[1], 1)} ms`], bb.sfstream.drainMs / bd[1], bb.sfstream.drainMs / bd[1] <= 0.5);
    const bl = best((p) => bb[p]?.p50Ms);
    row("Chromium p50 latency ≤ best peer", `${f(bb.sfstream.p50Ms)} ms`, [bl[0], `${f(bl[1])} ms`], bb.sfstream.p50Ms / bl[1], bb.sfstream.p50Ms <= bl[1]);
  }
  return ["| target | sfstream | best peer (or ceiling) | ratio | result |", "|---|---:|---:|---:|---|", ...rows];
}

function writeBenchmarksMd(md) {
  const file = join(ROOT, "BENCHMARKS.md");
  const BEGIN = "<!-- bench:results:begin (generated by `npm run bench`; edit outside these markers) -->";
  const END = "<!-- bench:results:end -->";
  let text = existsSync(file) ? readFileSync(file, "utf8") : `# Benchmarks\n\n## Clients side by side (\`npm run bench\`)\n\n${BEGIN}\n${END}\n`;
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) text += `\n## Clients side by side (\`npm run bench\`)\n\n${BEGIN}\n${END}\n`;
  const i = text.indexOf(BEGIN);
  const j = text.indexOf(END);
  text = text.slice(0, i + BEGIN.length) + "\n" + md + text.slice(j);
  writeFileSync(file, text);
  log(`updated ${file}`);
}
