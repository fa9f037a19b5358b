#!/usr/bin/env node
// Replay-storage measurements for BENCHMARKS.md ("Replay storage"): a consumer takes 10,000
// retained events (ALL_EVENTS replay of a backlog in sfemu, as after a restart) through each
// storage, from subscribe() to close() (which writes the last marker), in two modes:
//  * burst: as fast as it can; cost per event = (time with the storage - time with no storage,
//    same runtime) / events, median of REPS runs alternating with the baseline;
//  * paced: the application pauses 5 ms every 20 events (>= 2.5 s in all), so the 200 ms
//    coalescing tick fires many times: storage writes per 10,000 events for a steady consumer.
// Writes are counted (and timed) by wrapping the application's side: the Map, the KV binding,
// Deno.Kv.set, the browser's Storage.setItem; IndexedDB's write time is one readwrite transaction.
//   node tests/storage/bench.mjs [--events N] [--reps R]    (not part of npm test)
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Miniflare } from "miniflare";
import { SalesforceStreamingClient, ReplayOption, ReplayMarkerStorage, DefaultMappingStorage, MemoryReplayStorage } from "sfstream";
import { startSfemu, CREDENTIALS, ROOT } from "../helpers/sfemu.mjs";
import { packageModules } from "../workerd/miniflare.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(ROOT, "tests", "node_modules", "sfstream");
const arg = (name, d) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const N = arg("--events", 10000);
const REPS = arg("--reps", 3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const www = mkdtempSync(join(tmpdir(), "sfstream-storage-bench-"));
cpSync(join(here, "page"), www, { recursive: true });
cpSync(pkg, join(www, "sfstream"), { recursive: true });
const emu = await startSfemu(["--hold-timeout", "3000", "--www", www]);
const CH = "/event/StorageBench__e";
await emu.control("publish", { channel: CH, count: N, payloadSize: 300 });
const results = new Map(); // "runtime|backend" → { runtime, backend, burst: {writes, ms, baseMs}, paced: {writes}, writeMs: [] }
let MODE = "burst";
const record = (runtime, backend, runs, baseRuns, writeCost = null) => {
  const key = `${runtime}|${backend}`;
  const r = results.get(key) ?? { runtime, backend, writeMs: [], writes: 0 };
  r[MODE] = { writes: runs[0].writes, ms: median(runs.map((x) => x.ms)), baseMs: median(baseRuns.map((x) => x.ms)) };
  for (const x of runs) if (x.writeMs != null && x.writes) r.writeMs.push(x.writeMs / x.writes);
  if (writeCost !== null) r.writeMs.push(writeCost);
  results.set(key, r);
};
const pause = async (i) => {
  if (MODE === "paced" && i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
};

try {
for (MODE of ["burst", "paced"]) {
  const reps = MODE === "burst" ? REPS : 1;
  console.error(`mode ${MODE}...`);
  // ---- Node --------------------------------------------------------------------------------
  class Counting extends ReplayMarkerStorage {
    writes = 0;
    writeMs = 0;
    map = new Map();
    async getReplayMarker() {
      return null;
    }
    async getReplayStart() {
      return { replayId: ReplayOption.ALL_EVENTS, date: null };
    }
    async setReplayMarker(s, m) {
      this.writes++;
      const t = performance.now();
      this.map.set(s, m);
      this.writeMs += performance.now() - t;
    }
  }
  class CountingMap extends Map {
    writes = 0;
    writeMs = 0;
    set(k, v) {
      this.writes++;
      const t = performance.now();
      try {
        return super.set(k, v);
      } finally {
        this.writeMs += performance.now() - t;
      }
    }
  }
  const nodeRun = async (make) => {
    const { replay, writes, writeMs = () => null } = make();
    const client = new SalesforceStreamingClient({ ...CREDENTIALS, loginUrl: emu.url, replay });
    await client.open();
    const t0 = performance.now();
    await client.subscribe(CH);
    const signal = AbortSignal.timeout(120000);
    for (let i = 0; i < N; i++) {
      await client.receive({ signal });
      await pause(i);
    }
    await client.close();
    return { ms: performance.now() - t0, writes: writes(), writeMs: writeMs() };
  };
  const node = { none: [], memory: [], map: [], custom: [] };
  for (let r = 0; r < reps; r++) {
    node.none.push(await nodeRun(() => ({ replay: ReplayOption.ALL_EVENTS, writes: () => 0 })));
    node.memory.push(await nodeRun(() => ({ replay: new MemoryReplayStorage({ defaultReplay: ReplayOption.ALL_EVENTS }), writes: () => null })));
    node.map.push(await nodeRun(() => {
      const m = new CountingMap();
      return { replay: new DefaultMappingStorage(m, ReplayOption.ALL_EVENTS), writes: () => m.writes, writeMs: () => m.writeMs };
    }));
    node.custom.push(await nodeRun(() => {
      const c = new Counting();
      return { replay: c, writes: () => c.writes, writeMs: () => c.writeMs };
    }));
  }
  record("Node 20", "memory (MemoryReplayStorage)", node.memory, node.none);
  record("Node 20", "Map (DefaultMappingStorage)", node.map, node.none);
  record("Node 20", "custom ReplayMarkerStorage", node.custom, node.none);

  // ---- Chromium ------------------------------------------------------------------------------
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  try {
    const page = await browser.newPage();
    await page.goto(`${emu.url}/index.html`);
    await page.waitForFunction(() => window.sfstreamStorage !== undefined, null, { timeout: 20000 });
    const br = { none: [], localStorage: [], indexedDB: [] };
    for (let r = 0; r < reps; r++) {
      for (const kind of Object.keys(br)) {
        br[kind].push(await page.evaluate(([c, k, ch, n, run, paced]) => window.sfstreamStorage.storage.bench(c, k, ch, n, run, paced), [CREDENTIALS, kind, CH, N, `${MODE}${r}`, MODE === "paced"]));
      }
    }
    const idbCost = MODE === "burst" ? await page.evaluate(() => window.sfstreamStorage.storage.idbWriteCost(200)) : null;
    record("Chromium", "localStorage (LocalStorageReplayStorage)", br.localStorage, br.none);
    record("Chromium", "IndexedDB (IndexedDbReplayStorage)", br.indexedDB, br.none, idbCost);
  } finally {
    await browser.close();
  }

  // ---- Deno KV -------------------------------------------------------------------------------
  {
    const dir = mkdtempSync(join(tmpdir(), "sfstream-storage-bench-deno-"));
    mkdirSync(join(dir, "node_modules"));
    cpSync(pkg, join(dir, "node_modules", "sfstream"), { recursive: true });
    cpSync(join(here, "deno_bench.ts"), join(dir, "deno_bench.ts"));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "b", private: true, type: "module", dependencies: { sfstream: "*" } }));
    writeFileSync(join(dir, "deno.json"), JSON.stringify({ nodeModulesDir: "manual" }));
    try {
      const out = await new Promise((resolve, reject) => {
        const child = spawn(join(ROOT, "node_modules", ".bin", "deno"), ["run", "-A", "--unstable-kv", "--no-check", "deno_bench.ts"], {
          cwd: dir, stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, SFEMU_URL: emu.url, KV_PATH: join(dir, "bench.kv"), CHANNEL: CH, EVENTS: String(N), REPS: String(reps), PACED: MODE === "paced" ? "1" : "0", DENO_DIR: join(dir, ".deno"), DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1" },
        });
        let text = "";
        child.stdout.on("data", (c) => (text += c));
        child.stderr.on("data", (c) => (text += c));
        child.once("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`deno exited ${code}: ${text}`))));
      });
      const res = JSON.parse(/RESULT (.*)/.exec(out)[1]);
      record("Deno 2.9", "Deno KV (DenoKvReplayStorage, SQLite file)", res.denoKv, res.none);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // ---- workerd (Miniflare) -------------------------------------------------------------------
  {
    const root = mkdtempSync(join(tmpdir(), "sfstream-storage-bench-workerd-"));
    mkdirSync(join(root, "node_modules"));
    cpSync(pkg, join(root, "node_modules", "sfstream"), { recursive: true });
    cpSync(join(here, "worker.js"), join(root, "worker.js"));
    const mf = new Miniflare({
      modules: [{ type: "ESModule", path: join(root, "worker.js") }, ...packageModules(root)],
      modulesRoot: root, compatibilityDate: "2025-01-01", bindings: { SFEMU_URL: emu.url },
      kvNamespaces: ["MARKERS"], durableObjects: { CONSUMER: "Consumer" },
    });
    try {
      const call = async (route) => {
        const res = await mf.dispatchFetch(`http://worker/${route}`, { signal: AbortSignal.timeout(180000) });
        const body = await res.json();
        if (res.status !== 200 || body.error) throw new Error(`${route}: ${body.error ?? res.status}`);
        return body;
      };
      const wk = { none: [], kv: [] };
      const paced = MODE === "paced" ? "&paced" : "";
      for (let r = 0; r < reps; r++) {
        const base = await call(`none-bench?ch=${encodeURIComponent(CH)}&take=${N}${paced}`);
        wk.none.push({ ms: base.tookMs, writes: 0 });
        const kv = await call(`kv-bench?ch=${encodeURIComponent(CH)}&take=${N}&ns=bench${MODE}${r}${paced}`);
        wk.kv.push({ ms: kv.tookMs, writes: kv.puts, writeMs: kv.putMs });
      }
      record("workerd (Miniflare 4)", "Workers KV (WorkersKvReplayStorage, local simulator)", wk.kv, wk.none);
    } finally {
      await mf.dispose();
      rmSync(root, { recursive: true, force: true });
    }
  }
}
} finally {
  await emu.stop();
  rmSync(www, { recursive: true, force: true });
}

console.log(`\n${N} retained events per run; burst: median of ${REPS} runs, cost = (with storage - no storage) / events; paced: 5 ms pause every 20 events`);
console.log("| runtime | backend | writes per 10,000 events (burst) | writes per 10,000 events (paced, ~2.5-4 s) | burst ms with / without storage | cost per event (burst) | mean time of one write |");
console.log("|---|---|---|---|---|---|---|");
const per10k = (w) => (w === null || w === undefined ? "n/a (inside the shell)" : String(Math.round((w * 10000) / N)));
for (const r of results.values()) {
  const cost = ((r.burst.ms - r.burst.baseMs) * 1000) / N;
  const w = r.writeMs.length ? `${(median(r.writeMs) * 1000).toFixed(0)} µs` : "n/a";
  console.log(`| ${r.runtime} | ${r.backend} | ${per10k(r.burst.writes)} | ${per10k(r.paced?.writes)} | ${r.burst.ms.toFixed(0)} / ${r.burst.baseMs.toFixed(0)} | ${cost.toFixed(2)} µs | ${w} |`);
}
