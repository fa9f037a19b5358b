#!/usr/bin/env node
// A/B of two builds of sfstream on one scenario: how BENCHMARKS.md's "tried and measured" figures
// are taken. Each run resets sfemu and spawns bench/worker.mjs once per build, the builds in
// alternating order (A B, B A, ...); medians of every figure the worker reports.
//
//   node bench/ab.mjs --b /tmp/dist-b [--a DIR] [--scenario catchup] [--n 20000] [--runs 6]
//                     [--client sfstream|sfstream-batches]
//
// A build is a package directory (with dist/node.js) or a dist directory (with node.js); A defaults
// to the packed package in tests/node_modules/sfstream. To build a variant of the working tree
// without touching dist/: `CARGO_TARGET_DIR=/tmp/tgt-b node scripts/build.mjs --out /tmp/dist-b`.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { startSfemu } from "../tests/helpers/sfemu.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH, "..");
const argv = process.argv.slice(2);
const opt = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const SCENARIOS = ["catchup", "live", "latency", "slow"];
const scenario = opt("--scenario", "catchup");
const n = Number(opt("--n", scenario === "latency" ? "200" : "20000"));
const runs = Number(opt("--runs", "6"));
/** How the builds are consumed: `for await` over the client, or over `client.batches()`. */
const client = opt("--client", "sfstream");
if (client !== "sfstream" && client !== "sfstream-batches") throw new Error("--client must be sfstream or sfstream-batches");

function entry(dir) {
  const d = resolve(dir);
  for (const f of [join(d, "dist", "node.js"), join(d, "node.js")]) if (existsSync(f)) return pathToFileURL(f).href;
  throw new Error(`${dir}: neither dist/node.js nor node.js is there`);
}

if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario must be one of ${SCENARIOS.join(", ")}`);
if (!Number.isInteger(n) || n <= 0 || !Number.isInteger(runs) || runs <= 0) throw new Error("--n and --runs must be positive integers");
const bDir = opt("--b", undefined);
if (bDir === undefined) throw new Error("--b DIR is required (the build to compare)");
const builds = { A: entry(opt("--a", join(ROOT, "tests", "node_modules", "sfstream"))), B: entry(bDir) };

function worker(cfg) {
  return new Promise((done) => {
    const args = [...(cfg.scenario === "slow" ? ["--expose-gc"] : []), join(BENCH, "worker.mjs"), JSON.stringify(cfg)];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c) => (out += c));
    child.on("exit", () => {
      const line = out.split("\n").find((l) => l.startsWith("RESULT "));
      done(line ? JSON.parse(line.slice(7)) : { ok: false, error: "no result" });
    });
  });
}

const emu = await startSfemu([]);
const results = { A: [], B: [] };
try {
  for (let r = 0; r < runs; r++) {
    for (const name of r % 2 === 0 ? ["A", "B"] : ["B", "A"]) {
      await emu.control("reset", {});
      const channel = "/topic/BenchAB";
      if (scenario === "catchup" || scenario === "slow") await emu.control("publish", { channel, count: n, payloadSize: 200 });
      const token = (await emu.control("token", {})).access_token;
      const res = await worker({ client, scenario, n, channel, url: emu.url, token, pkgEntry: builds[name], timeoutMs: 120000, gapMs: 10 });
      if (!res.ok) throw new Error(`${name} run ${r + 1} failed: ${res.error}`);
      results[name].push(res);
    }
  }
} finally {
  await emu.stop();
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fields = Object.keys(results.A[0]).filter((k) => typeof results.A[0][k] === "number" && k !== "n" && !Array.isArray(results.A[0][k]));
console.log(`${scenario} n=${n}, ${client}, ${runs} runs each, alternating; medians\n`);
console.log(`| figure | A | B | B / A |\n|---|---:|---:|---:|`);
for (const f of fields) {
  const a = median(results.A.map((r) => r[f]));
  const b = median(results.B.map((r) => r[f]));
  console.log(`| ${f} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${a === 0 ? "—" : (b / a).toFixed(2)} |`);
}
console.log(`\nA: ${builds.A}\nB: ${builds.B}`);
