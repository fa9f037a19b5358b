#!/usr/bin/env node
// Crash test (layer "crash"): a consumer process (consumer.mjs) with a file-backed replay-marker
// storage and an append-only processed log is killed with SIGKILL at seeded random points while
// sfemu publishes a stream of events; it is restarted each time, with the same files, until every
// event is processed. Asserts that every published event was processed at least once (no loss)
// and nothing else was; counts and prints the duplicates (events processed more than once).
// Two consumers, one after the other: `for await` over the client (automatic policy), and
// `batches()` with `ackPolicy: "manual"`, acknowledging each batch once processed.
//   node tests/crash/run.mjs            2,000 events per consumer (npm test, about a minute each)
//   node tests/crash/run.mjs --full     10,000 events
//   --seed N                            the kill schedule (default 4; printed for reproduction)
//   --mode for-await|batches-manual     one consumer only
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startSfemu } from "../helpers/sfemu.mjs";
import { prng } from "../helpers/layer.mjs";
import { allIds } from "../helpers/reference.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const FULL = args.includes("--full");
const seedArg = args.indexOf("--seed");
const SEED = seedArg >= 0 ? Number(args[seedArg + 1]) : 4;
const TOTAL = FULL ? 10000 : 2000;
const CHUNK = FULL ? 50 : 25;
const CHUNK_EVERY_MS = 100;
const DEADLINE_MS = FULL ? 600000 : 100000;

const modeArg = args.indexOf("--mode");
const MODES = modeArg >= 0 ? [args[modeArg + 1]] : ["for-await", "batches-manual"];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const readIds = (file) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number) : []);

let allOk = true;
for (const mode of MODES) allOk = (await crashRun(mode)) && allOk;
process.exit(allOk ? 0 : 1);

/** One crash run with the consumer in `mode`; true if every check passed. */
async function crashRun(mode) {
  const random = prng(SEED);
  const dir = mkdtempSync(join(tmpdir(), "sfstream-crash-"));
  const channel = mode === "for-await" ? "/event/CrashTest__e" : "/event/CrashBatch__e";
  let emu;
  let child = null;
  let ok = false;
  const started = Date.now();
  try {
    emu = await startSfemu(["--hold-timeout", "3000"]);

    // The publisher: chunks at a steady pace, concurrently with the consumer runs.
    let published = 0;
    let lastReplayId = null;
    const publisher = (async () => {
      while (published < TOTAL) {
        const p = await emu.control("publish", { channel, count: Math.min(CHUNK, TOTAL - published) });
        published += p.published;
        lastReplayId = p.lastReplayId;
        await sleep(CHUNK_EVERY_MS);
      }
    })();

    // The consumer runs: each is SIGKILLed after a random 150-1500 ms, unless everything was processed.
    let kills = 0;
    let runs = 0;
    let stderr = "";
    let done = false;
    let all = null; // the published ids, once publishing is over
    while (!done) {
      if (Date.now() - started > DEADLINE_MS) throw new Error(`deadline: ${new Set(readIds(join(dir, "processed.log"))).size} of ${TOTAL} processed after ${kills} kills`);
      runs++;
      child = spawn(process.execPath, [join(here, "consumer.mjs"), dir, emu.url, channel, mode], { stdio: ["ignore", "pipe", "pipe"] });
      child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c));
      const exited = new Promise((r) => child.once("exit", (code, sig) => r({ code, sig })));
      const killAfter = 150 + Math.floor(random() * 1350);
      const outcome = await Promise.race([exited, sleep(killAfter).then(() => null)]);
      if (outcome !== null) throw new Error(`consumer exited by itself (${JSON.stringify(outcome)}):\n${stderr}`);
      if (all === null && published >= TOTAL) {
        await publisher;
        all = await allIds(emu.url, channel, lastReplayId);
      }
      if (all !== null) {
        const seen = new Set(readIds(join(dir, "processed.log")));
        done = all.every((id) => seen.has(id));
      }
      child.kill("SIGKILL");
      await exited;
      child = null;
      if (!done) kills++;
    }
    await publisher;

    const processed = readIds(join(dir, "processed.log"));
    const writes = readIds(join(dir, "writes.log")).length;
    const counts = new Map();
    for (const id of processed) counts.set(id, (counts.get(id) ?? 0) + 1);
    const want = new Set(all);
    const lost = all.filter((id) => !counts.has(id));
    const foreign = [...counts.keys()].filter((id) => !want.has(id));
    const duplicates = processed.length - counts.size;
    const maxTimes = Math.max(...counts.values());
    const storageErrors = (stderr.match(/"storageError"/g) ?? []).length;
    console.log(`crash test, ${mode} (seed ${SEED}): ${TOTAL} events published while the consumer was SIGKILLed ${kills} times (${runs} runs)`);
    console.log(`  processed ${processed.length} times for ${counts.size} distinct events: ${lost.length} lost, ${duplicates} duplicates ` +
      `(${((100 * duplicates) / TOTAL).toFixed(1)} %, ${(duplicates / Math.max(kills, 1)).toFixed(1)} per kill, at most ${maxTimes}x one event); ` +
      `${writes} marker writes (${((writes / TOTAL) * 10000).toFixed(0)} per 10,000 events); ${storageErrors} storage errors; ${((Date.now() - started) / 1000).toFixed(1)} s`);
    let failures = 0;
    const expect = (cond, what) => {
      console.log(`${cond ? "ok" : "not ok"} - ${what}`);
      if (!cond) failures++;
    };
    expect(all.length === TOTAL, `sfemu holds the ${TOTAL} published events (${all.length})`);
    expect(lost.length === 0, `every event processed at least once (${lost.length} lost${lost.length ? `: ${lost.slice(0, 10)}` : ""})`);
    expect(foreign.length === 0, `nothing but published events processed (${foreign.length})`);
    expect(kills >= 3, `the consumer was killed mid-stream (${kills} kills)`);
    expect(storageErrors === 0, `no storage error (${storageErrors})`);
    console.log(`\n${5 - failures} passed, ${failures} failed`);
    ok = failures === 0;
  } catch (e) {
    console.log(`not ok - crash test, ${mode}\n  ${String(e?.stack ?? e).replace(/\n/g, "\n  ")}\n\n0 passed, 1 failed`);
  } finally {
    if (child) child.kill("SIGKILL");
    await emu?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return ok;
}

