#!/usr/bin/env node
// Try changes to sfstream without touching js/ or src/: each variant is a patched copy of the
// built package (dist/*.js) and/or different client options, measured against the unchanged
// package, interleaved, on a reset sfemu. `node bench/experiments.mjs [--runs 5] [--variants a,b]`
// Prints a markdown table of medians; the findings are written up in BENCHMARKS.md.
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startSfemu } from "../tests/helpers/sfemu.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const RUNS = Number(opt("--runs", "5"));
const packed = join(ROOT, "tests", "node_modules", "sfstream");
const src = existsSync(join(packed, "dist", "node.js")) ? packed : ROOT;
const work = mkdtempSync(join(tmpdir(), "sfstream-exp-"));

function replaceOnce(text, from, to, what) {
  const i = text.indexOf(from);
  if (i < 0 || text.indexOf(from, i + 1) >= 0) throw new Error(`patch ${what}: anchor not found exactly once`);
  return text.slice(0, i) + to + text.slice(i + from.length);
}

/** Patches of dist/client.js: each is [anchor, replacement]. */
const PATCHES = {
  // Report consumption to the core once per drained buffer (or every 256 messages) instead of
  // one wasm call (handle_consumed + drive + performance.now) per message.
  batchConsumed: [
    ["this.#reportTaken();\n        const signal = options.signal;", "if (this.#taken >= 256 || this.#head >= this.#buffer.length) this.#reportTaken();\n        const signal = options.signal;"],
  ],
};

// The async generator behind `for await` costs several promise hops per message; a hand-written
// iterator over receive() costs one, and none extra when a message is already buffered.
PATCHES.plainIterator = [
  [
    "[Symbol.asyncIterator]() {\n        return this.messages();\n    }",
    `[Symbol.asyncIterator]() {
        let done = false;
        const end = () => { done = true; return { value: undefined, done: true }; };
        return {
            next: () => done ? Promise.resolve({ value: undefined, done: true }) : this.receive().then((value) => ({ value, done: false }), (e) => { if (e instanceof ClientInvalidOperation) return end(); done = true; throw e; }),
            return: () => Promise.resolve(end()),
            [Symbol.asyncIterator]() { return this; },
        };
    }`,
  ],
];
PATCHES.fastIterator = [
  [
    "[Symbol.asyncIterator]() {\n        return this.messages();\n    }",
    `[Symbol.asyncIterator]() {
        let done = false;
        const end = () => { done = true; return { value: undefined, done: true }; };
        return {
            next: () => {
                if (done) return Promise.resolve({ value: undefined, done: true });
                if (this.#head < this.#buffer.length) {
                    if (this.#taken >= 256) this.#reportTaken();
                    return Promise.resolve({ value: this.#take(), done: false });
                }
                return this.receive().then((value) => ({ value, done: false }), (e) => { if (e instanceof ClientInvalidOperation) return end(); done = true; throw e; });
            },
            return: () => Promise.resolve(end()),
            [Symbol.asyncIterator]() { return this; },
        };
    }`,
  ],
];

// Start every request (in particular the next /meta/connect after a batch) in a later macrotask,
// so the consumer's `for await` runs before undici's synchronous request set-up (Node only:
// setImmediate; a browser would use a MessageChannel).
PATCHES.deferFetch = [
  [
    "const ret = fetch(getStringFromWasm0(arg0, arg1), arg2);",
    "const url = getStringFromWasm0(arg0, arg1); const ret = new Promise((resolve) => setImmediate(() => resolve(fetch(url, arg2))));",
    "wasm/sfstream.js",
  ],
];

// Node only: a fetch for the shell built on node:http (keep-alive agent) instead of undici; it
// returns a real Response built from the whole body, because the shell checks instanceof Response.
PATCHES.nodeHttpFetch = [
  [
    "const ret = fetch(getStringFromWasm0(arg0, arg1), arg2);",
    "const ret = (globalThis.__sfNodeFetch ?? fetch)(getStringFromWasm0(arg0, arg1), arg2);",
    "wasm/sfstream.js",
  ],
  [
    'import { readFileSync } from "node:fs";',
    `import { readFileSync } from "node:fs";
import * as __http from "node:http";
const __agent = new __http.Agent({ keepAlive: true });
globalThis.__sfNodeFetch = (url, init) => new Promise((resolve, reject) => {
    const u = new URL(url);
    if (u.protocol !== "http:") return resolve(fetch(url, init));
    const headers = {};
    for (const [k, v] of init.headers) headers[k] = v;
    const req = __http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: init.method, headers, agent: __agent, signal: init.signal }, (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("error", reject);
        res.on("end", () => {
            const h = new Headers();
            for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
            resolve(new Response(Buffer.concat(chunks), { status: res.statusCode, headers: h }));
        });
    });
    req.on("error", reject);
    req.end(init.body);
});`,
    "node.js",
  ],
];

PATCHES.nodeHttpFetchDeferred = [
  [
    "const ret = fetch(getStringFromWasm0(arg0, arg1), arg2);",
    "const url = getStringFromWasm0(arg0, arg1); const ret = new Promise((resolve) => setImmediate(() => resolve((globalThis.__sfNodeFetch ?? fetch)(url, arg2))));",
    "wasm/sfstream.js",
  ],
  PATCHES.nodeHttpFetch[1],
];

const VARIANTS = {
  base: { patches: [], options: {} },
  batchConsumed: { patches: ["batchConsumed"], options: {} },
  unboundedPrefetch: { patches: [], options: { maxPendingCount: 0 } },
  prefetch50k: { patches: [], options: { maxPendingCount: 50000 } },
  batchConsumedUnbounded: { patches: ["batchConsumed"], options: { maxPendingCount: 0 } },
  plainIterator: { patches: ["plainIterator"], options: {} },
  batchConsumedPlainIterator: { patches: ["batchConsumed", "plainIterator"], options: {} },
  fastIterator: { patches: ["batchConsumed", "fastIterator"], options: {} },
  deferFetch: { patches: ["deferFetch"], options: {} },
  nodeHttpFetch: { patches: ["nodeHttpFetch"], options: {} },
  all: { patches: ["batchConsumed", "fastIterator", "nodeHttpFetchDeferred"], options: {} },
  allThree: { patches: ["batchConsumed", "fastIterator", "deferFetch"], options: {} },
  fastIteratorUnbounded: { patches: ["batchConsumed", "fastIterator"], options: { maxPendingCount: 0 } },
};
const names = opt("--variants", Object.keys(VARIANTS).join(",")).split(",");

const entries = {};
for (const name of names) {
  const dir = join(work, name);
  cpSync(join(src, "dist"), join(dir, "dist"), { recursive: true });
  cpSync(join(src, "package.json"), join(dir, "package.json"));
  for (const p of VARIANTS[name].patches) {
    for (const [a, b, rel = "client.js"] of PATCHES[p]) {
      const file = join(dir, "dist", rel);
      writeFileSync(file, replaceOnce(readFileSync(file, "utf8"), a, b, p));
    }
  }
  entries[name] = pathToFileURL(join(dir, "dist", "node.js")).href;
}

const emu = await startSfemu([]);
const rows = {};
const median = (xs) => {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? (v.length % 2 ? v[v.length >> 1] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2) : NaN;
};
function worker(cfg) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(BENCH, "worker.mjs"), JSON.stringify(cfg)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.on("exit", () => {
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      resolve(line ? JSON.parse(line.slice(7)) : { ok: false });
    });
  });
}
// --plan catchup:20000,live:100000,latency:200 (default: catch-up and live at 20k and 100k)
const plan = opt("--plan", "catchup:20000,catchup:100000,live:20000,live:100000")
  .split(",")
  .map((p) => p.split(":"))
  .map(([s, n]) => [s, Number(n)]);
try {
  for (const [scenario, n] of plan) {
    for (let run = 0; run < RUNS; run++) {
      for (let k = 0; k < names.length; k++) {
        const name = names[(k + run) % names.length];
        await emu.control("reset", {});
        const channel = `/topic/Exp${scenario}`;
        if (scenario === "catchup") await emu.control("publish", { channel, count: n, payloadSize: 200 });
        const token = (await emu.control("token", {})).access_token;
        const r = await worker({ client: "sfstream", scenario, n, channel, url: emu.url, token, pkgEntry: entries[name], clientOptions: VARIANTS[name].options, timeoutMs: 120000, gapMs: 10 });
        if (!r.ok || r.received !== n || r.outOfOrder) console.error(`  ${name} ${scenario} ${n}: FAILED ${JSON.stringify(r)}`);
        const key = `${scenario}${n}`;
        ((rows[name] ??= {})[key] ??= []).push(r);
        console.error(`  ${scenario} ${n} ${name}: p50=${r.p50Ms?.toFixed(2)} p99=${r.p99Ms?.toFixed(2)} total=${r.totalMs?.toFixed(0)} drain=${r.drainMs?.toFixed(0)} elapsed=${r.elapsedMs?.toFixed(0)} cpu=${r.cpuMs?.toFixed(0)} rss=${r.rssGrowthMB?.toFixed(0)}`);
      }
    }
  }
} finally {
  await emu.stop();
  rmSync(work, { recursive: true, force: true });
}
const m = (name, key, f) => median((rows[name]?.[key] ?? []).filter((r) => r.ok).map((r) => r[f]));
const f1 = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : "—");
console.log(`| variant | catch-up 20k total / drain (ms) | catch-up 100k total / drain (ms) | 100k catch-up CPU (ms) / RSS (MB) | live 20k / 100k events/s | marginal CPU (µs/event) |`);
console.log("|---|---:|---:|---:|---:|---:|");
for (const name of names) {
  const marg = ((m(name, "live100000", "cpuMs") - m(name, "live20000", "cpuMs")) * 1000) / 80000;
  console.log(
    `| ${name} | ${f1(m(name, "catchup20000", "totalMs"))} / ${f1(m(name, "catchup20000", "drainMs"))} | ${f1(m(name, "catchup100000", "totalMs"))} / ${f1(m(name, "catchup100000", "drainMs"))} | ${f1(m(name, "catchup100000", "cpuMs"))} / ${f1(m(name, "catchup100000", "rssGrowthMB"))} | ${f1(m(name, "live20000", "eventsPerSec"))} / ${f1(m(name, "live100000", "eventsPerSec"))} | ${f1(marg, 2)} |`,
  );
}
if (plan.some(([s]) => s === "latency")) {
  console.log("\n| variant | latency p50 (ms) | p99 (ms) | start-up (ms) |\n|---|---:|---:|---:|");
  for (const name of names) {
    const key = plan.find(([s]) => s === "latency").join("");
    console.log(`| ${name} | ${f1(m(name, key, "p50Ms"), 2)} | ${f1(m(name, key, "p99Ms"), 2)} | ${f1(m(name, key, "startupMs"), 1)} |`);
  }
  console.log("");
}
