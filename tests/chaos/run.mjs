#!/usr/bin/env node
// Chaos suite: a consumer with durable replay storage (a JSON file in a temp dir) runs while sfemu
// publishes events across /topic, /u, /event and /data channels and this runner injects faults at
// seeded random times through sfemu's control API. It reports events published and received,
// lost, duplicated, handshakes per fault and time to recover (p50/p99), and fails (exit 1) on any
// loss that retention covers, any unexplained duplicate, a handshake storm or a stalled run.
//
//   node tests/chaos/run.mjs                 short seeded run (npm test; < 3 min)
//   node tests/chaos/run.mjs --full          50,000 events, >= 100 faults (npm run chaos)
//   options: --seed N  --events N  --faults N  --json FILE (write the report)
//
// The "multiple clients on one browser cookie" condition needs two clients sharing a cookie jar;
// in Node each client has its own jar, so it is not reachable here (see RELIABILITY.md).
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { writeFile, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SalesforceStreamingClient, ReplayMarker, ReplayMarkerStorage, ReplayOption } from "sfstream";
import { startSfemu, CREDENTIALS } from "../helpers/sfemu.mjs";
import { prng } from "../helpers/layer.mjs";

// ---------------------------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);
const flag = (name) => argv.includes(name);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? Number(argv[i + 1]) : dflt;
};
const FULL = flag("--full");
const SEED = opt("--seed", FULL ? 20251127 : 9);
const EVENTS = opt("--events", FULL ? 50_000 : 3_000);
const FAULTS = opt("--faults", FULL ? 110 : 24);
/** Publishing lasts about this long; faults are spread over it. */
const PUBLISH_MS = opt("--publish-ms", FULL ? 330_000 : 60_000);
const JSON_OUT = (() => {
  const i = argv.indexOf("--json");
  return i >= 0 ? argv[i + 1] : null;
})();
const TRACE = flag("--trace");
const HOLD_MS = 2000;
const NETWORK_ALLOWANCE = 1000; // long-poll timeout = hold + allowance = 3 s
const DRAIN_MS = 45_000; // after publishing: wait this long without progress before calling events lost
const RUN_LIMIT_MS = FULL ? 20 * 60_000 : 170_000;

const CHANNELS = ["/topic/ChaosTopic", "/u/ChaosGeneric", "/event/Chaos_Event__e", "/data/AccountChangeEvent"];
/** Channels whose retention (24 h) the clock fault moves past; /event and /data keep 72 h. */
const SHORT_RETENTION = new Set(["/topic/ChaosTopic", "/u/ChaosGeneric"]);

const rand = prng(SEED);
const randInt = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// ---------------------------------------------------------------------------------------------
// durable storage: one JSON file, written atomically
// ---------------------------------------------------------------------------------------------

class JsonFileStorage extends ReplayMarkerStorage {
  #path;
  #data;
  #chain = Promise.resolve();
  writes = 0;
  constructor(path) {
    super();
    this.#path = path;
    this.#data = existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
  }
  async getReplayMarker(subscription) {
    return ReplayMarker.from(this.#data[subscription] ?? null);
  }
  async setReplayMarker(subscription, marker) {
    this.#data[subscription] = marker.toJSON();
    const text = JSON.stringify(this.#data);
    this.#chain = this.#chain.then(async () => {
      const tmp = `${this.#path}.tmp`;
      await writeFile(tmp, text);
      await rename(tmp, this.#path);
      this.writes++;
    });
    await this.#chain;
  }
  snapshot() {
    return JSON.parse(JSON.stringify(this.#data));
  }
}

// ---------------------------------------------------------------------------------------------
// bookkeeping of published and received events
// ---------------------------------------------------------------------------------------------

/** Per channel: publish batches {first, last, count, at} in replay-id order. */
const published = new Map(CHANNELS.map((c) => [c, []]));
/** Per channel: replay id -> times received. */
const received = new Map(CHANNELS.map((c) => [c, new Map()]));
let publishedCount = 0;
let receivedCount = 0;
let duplicates = 0;
let excusedDuplicates = 0;
let strays = 0;
const strayList = [];
let lastProgress = Date.now();
/** Replay fallbacks seen: [{channel, at}] (ALL_EVENTS replays the retention window by design). */
const fallbacks = [];
/** Clock moves: [{at, batches: Map(channel -> number of batches published before)}]. */
const clockMoves = [];

function batchOf(channel, replayId) {
  const list = published.get(channel);
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const b = list[mid];
    if (replayId < b.first) hi = mid - 1;
    else if (replayId > b.last) lo = mid + 1;
    else return b;
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// faults
// ---------------------------------------------------------------------------------------------

const FAULT_TYPES = [
  "drop-connections",
  "expire-sessions",
  "revoke-tokens",
  "restart",
  "fail-500",
  "fail-503",
  "delay-past-timeout",
  "delay",
  "disconnect",
  "cut-response",
  "consumer-restart",
  "clock-past-retention",
];

function faultPlan() {
  // Every type at least once (clock moves at most twice: /event and /data keep 72 h, and two moves
  // of 25 h stay inside it), the rest drawn at random, at seeded random times.
  const types = [...FAULT_TYPES];
  const maxClock = FULL ? 2 : 1;
  const others = FAULT_TYPES.filter((t) => t !== "clock-past-retention");
  while (types.length < FAULTS) {
    const clockSoFar = types.filter((t) => t === "clock-past-retention").length;
    const t = rand() < 0.02 && clockSoFar < maxClock ? "clock-past-retention" : others[Math.floor(rand() * others.length)];
    types.push(t);
  }
  for (let i = types.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [types[i], types[j]] = [types[j], types[i]];
  }
  // When: at seeded random points of the publishing (by events published, at least 30 apart),
  // so every fault happens while events flow and recovery can be measured on them.
  const step = (EVENTS * 0.94) / types.length;
  return types.map((type, i) => ({ type, threshold: Math.round(EVENTS * 0.03 + step * i + rand() * Math.max(0, step - 30)) }));
}

// ---------------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), "sfstream-chaos-"));
const storePath = join(dir, "markers.json");
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s]`, ...a);

const emu = await startSfemu(["--hold-timeout", String(HOLD_MS)]);
let storage = new JsonFileStorage(storePath);
let consumer = null;
let consumerLoop = null;
let consumerStop = null;
const statsTotals = { handshakes: 0, rehandshakes: 0, reconnects: 0, reauthentications: 0, replayFallbacks: 0 };
const failures = [];
const statusCounts = {};
let consumers = 0;

function makeConsumer() {
  consumers++;
  const c = new SalesforceStreamingClient({
    ...CREDENTIALS,
    loginUrl: emu.url,
    replay: storage,
    replayFallback: ReplayOption.ALL_EVENTS,
    // A durable consumer retries for ever: fault bursts counted in requests (sfemu's fail/delay)
    // stretch with the client's exponential back-off, so any finite timeout could end the run.
    connectionTimeout: null,
    networkAllowance: NETWORK_ALLOWANCE,
    maxPendingCount: 500,
    onStatus: (s) => {
      if (TRACE) log(`  status ${s.type}${s.reason ? ` ${s.reason}` : ""}${s.attempt !== undefined ? ` #${s.attempt} in ${s.delay} ms` : ""}${s.channel ? ` ${s.channel}` : ""}${s.error ? ` ${s.error.message}` : ""}`);
      statusCounts[s.type] = (statusCounts[s.type] ?? 0) + 1;
      if (s.type === "replayFallback") fallbacks.push({ channel: s.channel, at: Date.now() });
      if (s.type === "failed") failures.push({ at: Date.now() - t0, error: `${s.error?.name}: ${s.error?.message}` });
    },
  });
  return c;
}

async function startConsumer() {
  consumer = makeConsumer();
  await consumer.open();
  for (const ch of CHANNELS) await consumer.subscribe(ch);
  const c = consumer;
  const stop = new AbortController();
  consumerStop = stop;
  consumerLoop = (async () => {
    try {
      for await (const m of c.messages({ signal: stop.signal })) onMessage(m);
    } catch (e) {
      failures.push({ at: Date.now() - t0, error: `receive: ${e?.name}: ${e?.message}` });
    }
  })();
}

/** A graceful shutdown: stop taking messages, then close (which stores the markers of every
 * message taken). Messages taken after close() began would not be marked: see RELIABILITY.md. */
async function stopConsumer() {
  const c = consumer;
  consumer = null;
  if (!c) return;
  consumerStop?.abort();
  await consumerLoop;
  const s = c.stats;
  for (const k of Object.keys(statsTotals)) statsTotals[k] += s[k] ?? 0;
  await c.close().catch((e) => failures.push({ at: Date.now() - t0, error: `close: ${e?.message}` }));
}

function currentHandshakes() {
  return statsTotals.handshakes + (consumer?.stats.handshakes ?? 0);
}

/** Pending recovery measurements: faults waiting for the first event published after them. */
const awaitingRecovery = [];
const recoveries = [];
const baseline = [];

/** The publish call in flight: its events can arrive before its reply tells their replay ids. */
let inflightPublish = null;
const dupList = [];

function onMessage(m) {
  const ch = m.channel;
  const id = m.data?.event?.replayId;
  const seen = received.get(ch);
  if (!seen || typeof id !== "number") {
    strays++;
    if (strayList.length < 20) strayList.push({ channel: ch, replayId: id, at: Date.now() - t0 });
    return;
  }
  // Which publish batch: a recorded one, or the call still in flight on this channel.
  const b = batchOf(ch, id) ?? (inflightPublish?.channel === ch && id > (published.get(ch).at(-1)?.last ?? -Infinity) ? inflightPublish : null);
  const n = (seen.get(id) ?? 0) + 1;
  seen.set(id, n);
  if (!b) return; // matched (or called a stray) at the end
  if (n > 1) {
    const fb = fallbacks.some((f) => f.channel === ch && b.at <= f.at);
    if (fb) excusedDuplicates++;
    else {
      duplicates++;
      if (dupList.length < 20) dupList.push({ channel: ch, replayId: id, at: Date.now() - t0, publishedAt: b.at - t0 });
    }
    return;
  }
  receivedCount++;
  lastProgress = Date.now();
  const now = Date.now();
  if (awaitingRecovery.length === 0 && baseline.length < 5000) baseline.push(now - b.at);
  for (let i = awaitingRecovery.length - 1; i >= 0; i--) {
    const f = awaitingRecovery[i];
    if (b.at >= f.at) {
      f.recoveredMs = now - f.at;
      recoveries.push(f.recoveredMs);
      awaitingRecovery.splice(i, 1);
    }
  }
}

/** Events published, not received, and not excused by a clock move past their retention. */
function missingInsideRetention() {
  let missing = 0;
  for (const ch of CHANNELS) {
    const ids = [...received.get(ch).keys()].sort((a, b) => a - b);
    const upTo = (x) => {
      let lo = 0;
      let hi = ids.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (ids[mid] <= x) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    published.get(ch).forEach((b, idx) => {
      const got = upTo(b.last) - upTo(b.first - 1);
      const excused = SHORT_RETENTION.has(ch) && clockMoves.some((m) => idx < m.batches.get(ch));
      if (!excused) missing += Math.max(0, b.count - got);
    });
  }
  return missing;
}

async function inject(f) {
  const at = Date.now();
  const before = currentHandshakes();
  const rec = { type: f.type, at, handshakesBefore: before, recoveredMs: null };
  switch (f.type) {
    case "drop-connections":
      await emu.control("drop-connections", {});
      break;
    case "expire-sessions":
      await emu.control("expire-sessions", {});
      break;
    case "revoke-tokens":
      await emu.control("revoke-tokens", {});
      break;
    case "restart":
      await emu.control("restart", {});
      break;
    case "fail-500":
      await emu.control("fail", { status: 500, count: randInt(2, 4) });
      await emu.control("drop-connections", {});
      break;
    case "fail-503":
      await emu.control("fail", { status: 503, count: randInt(2, 4) });
      await emu.control("drop-connections", {});
      break;
    case "delay-past-timeout":
      await emu.control("delay", { ms: HOLD_MS + NETWORK_ALLOWANCE + 1500, count: 1 });
      await emu.control("drop-connections", {});
      break;
    case "delay":
      await emu.control("delay", { ms: randInt(100, 1500), count: randInt(1, 4) });
      break;
    case "disconnect":
      await emu.control("disconnect", {});
      break;
    case "cut-response":
      // The next reply with events is lost on its way; the session has lost those events.
      await emu.control("cut-responses", { count: 1 });
      break;
    case "consumer-restart":
      await stopConsumer();
      storage = new JsonFileStorage(storePath); // a new process would read the file afresh
      await startConsumer();
      break;
    case "clock-past-retention": {
      // The consumer is down for longer than /topic and /u keep events (24 h) but not as long as
      // /event and /data keep them (72 h): events published meanwhile on the first two are gone,
      // their stored markers are past retention (the server rejects them and the client falls
      // back to ALL_EVENTS); events on the last two must all arrive.
      await stopConsumer();
      for (const ch of CHANNELS) await publishBatch(ch, randInt(5, 20));
      const batches = new Map(CHANNELS.map((c) => [c, published.get(c).length]));
      await emu.control("clock", { advanceMs: 25 * 3600_000 });
      clockMoves.push({ at, batches });
      storage = new JsonFileStorage(storePath);
      await startConsumer();
      break;
    }
    default:
      throw new Error(`unknown fault ${f.type}`);
  }
  awaitingRecovery.push(rec);
  return rec;
}

/** The publisher pauses at the next fault's point until the fault is injected. */
let nextFaultAt = Infinity;

async function publishBatch(channel, count) {
  const at = Date.now();
  inflightPublish = { channel, at };
  const r = await emu.control("publish", { channel, count, payloadSize: 64 });
  published.get(channel).push({ first: r.firstReplayId, last: r.lastReplayId, count: r.published, at });
  inflightPublish = null;
  publishedCount += r.published;
}

async function publisher(signal) {
  let i = 0;
  while (publishedCount < EVENTS && !signal.aborted) {
    while (publishedCount >= nextFaultAt && !signal.aborted) await new Promise((res) => setTimeout(res, 10));
    const channel = CHANNELS[i++ % CHANNELS.length];
    const count = Math.min(EVENTS - publishedCount, Math.max(1, nextFaultAt - publishedCount), randInt(1, 20));
    if (count <= 0) break;
    await publishBatch(channel, count);
    const due = t0pub + (publishedCount / EVENTS) * PUBLISH_MS;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((res) => setTimeout(res, Math.min(wait, 500)));
  }
}

let t0pub = 0;
const faultsDone = [];
let exitCode = 0;
const timer = setTimeout(() => {
  console.error("chaos: run limit reached");
  process.exit(2);
}, RUN_LIMIT_MS);

try {
  log(`chaos ${FULL ? "full" : "short"} run: seed ${SEED}, ${EVENTS} events, ${FAULTS} faults over ~${Math.round(PUBLISH_MS / 1000)} s; sfemu ${emu.url}`);
  await startConsumer();
  const plan = faultPlan();
  t0pub = Date.now();
  const ac = new AbortController();
  let pubDone = false;
  const pub = publisher(ac.signal).finally(() => (pubDone = true));
  for (const f of plan) {
    nextFaultAt = f.threshold;
    while (publishedCount < f.threshold && !pubDone) await new Promise((r) => setTimeout(r, 10));
    // Let the previous fault finish recovering first (bounded), so each one is measured alone.
    const waitUntil = Date.now() + 30_000;
    while (awaitingRecovery.length > 0 && Date.now() < waitUntil) await new Promise((r) => setTimeout(r, 20));
    const prev = faultsDone.at(-1);
    if (prev) prev.handshakes = currentHandshakes() - prev.handshakesBefore;
    const rec = await inject(f);
    rec.publishedAt = publishedCount;
    faultsDone.push(rec);
    nextFaultAt = Infinity;
    if (faultsDone.length % 10 === 0 || !FULL || TRACE) log(`fault ${faultsDone.length}/${plan.length}: ${f.type}; published ${publishedCount}, received ${receivedCount}`);
  }
  await pub;
  log(`published ${publishedCount}; draining`);
  // Drain: until everything arrived, or no progress for DRAIN_MS.
  while (missingInsideRetention() > 0 && Date.now() - lastProgress < DRAIN_MS) {
    await new Promise((r) => setTimeout(r, 500));
  }
  const last = faultsDone.at(-1);
  if (last) last.handshakes = currentHandshakes() - last.handshakesBefore;
  await stopConsumer();
} catch (e) {
  failures.push({ at: Date.now() - t0, error: `runner: ${e?.stack ?? e}` });
} finally {
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// report
// ---------------------------------------------------------------------------------------------

let lost = 0;
let lostOutsideRetention = 0;
const lostList = [];
let distinctReceived = 0;
for (const ch of CHANNELS) {
  for (const [id] of received.get(ch)) {
    if (!batchOf(ch, id)) {
      strays++;
      if (strayList.length < 20) strayList.push({ channel: ch, replayId: id });
    }
  }
}
for (const ch of CHANNELS) {
  const seen = received.get(ch);
  const batches = published.get(ch);
  batches.forEach((b, idx) => {
    let got = 0;
    for (const [id] of seen) if (id >= b.first && id <= b.last) got++;
    distinctReceived += Math.min(got, b.count);
    const missing = b.count - got;
    if (missing <= 0) return;
    // Excused: a short-retention channel, published before a clock move past its retention.
    const excused = SHORT_RETENTION.has(ch) && clockMoves.some((m) => idx < m.batches.get(ch));
    if (excused) lostOutsideRetention += missing;
    else {
      lost += missing;
      if (lostList.length < 20) lostList.push({ channel: ch, first: b.first, last: b.last, count: b.count, received: got, publishedAt: b.at - t0 });
    }
  });
}
const pct = (arr, p) => {
  if (arr.length === 0) return null;
  const s = [...arr].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const unrecovered = faultsDone.filter((f) => f.recoveredMs === null).length;
const hsPerFault = faultsDone.map((f) => f.handshakes ?? 0);
const byType = {};
for (const f of faultsDone) {
  const t = (byType[f.type] ??= { count: 0, recoveries: [], handshakes: [] });
  t.count++;
  if (f.recoveredMs !== null) t.recoveries.push(f.recoveredMs);
  t.handshakes.push(f.handshakes ?? 0);
}
const report = {
  mode: FULL ? "full" : "short",
  seed: SEED,
  durationS: Math.round((Date.now() - t0) / 1000),
  published: publishedCount,
  received: distinctReceived,
  lost,
  lostOutsideRetention,
  duplicates,
  duplicatesAfterReplayFallback: excusedDuplicates,
  strays,
  strayList,
  lostList,
  dupList,
  faults: faultsDone.length,
  faultTypes: Object.fromEntries(
    Object.entries(byType).map(([k, v]) => [k, { count: v.count, recoverP50Ms: pct(v.recoveries, 50), recoverMaxMs: v.recoveries.length ? Math.max(...v.recoveries) : null, maxHandshakes: Math.max(...v.handshakes) }]),
  ),
  handshakesTotal: statsTotals.handshakes,
  handshakesPerFault: faultsDone.length ? +(statsTotals.handshakes / faultsDone.length).toFixed(2) : null,
  maxHandshakesAfterOneFault: hsPerFault.length ? Math.max(...hsPerFault) : null,
  recoverP50Ms: pct(recoveries, 50),
  recoverP99Ms: pct(recoveries, 99),
  recoverMaxMs: recoveries.length ? Math.max(...recoveries) : null,
  unrecoveredFaults: unrecovered,
  deliveryLatencyNoFaultP50Ms: pct(baseline, 50),
  consumers,
  statusCounts,
  clientStats: statsTotals,
  clockMoves: clockMoves.length,
  replayFallbacks: fallbacks.length,
  markerWrites: storage.writes,
  storedMarkers: storage.snapshot(),
  failures,
  faultLog: faultsDone.map((f) => ({ type: f.type, atS: +((f.at - t0) / 1000).toFixed(1), recoveredMs: f.recoveredMs, handshakes: f.handshakes ?? 0 })),
  multipleClients: "not reachable in Node (one cookie jar per client); see RELIABILITY.md",
};

const checks = [
  ["every event published", publishedCount === EVENTS],
  ["no event lost where retention covers the outage", lost === 0],
  ["no duplicate outside a replay fallback", duplicates === 0],
  ["no event from nowhere", strays === 0],
  [`at least ${FAULTS} faults injected`, faultsDone.length >= FAULTS],
  ["every fault type injected", FAULT_TYPES.every((t) => byType[t])],
  ["every fault recovered from", unrecovered === 0],
  ["no handshake storm (<= 6 handshakes after any one fault)", (report.maxHandshakesAfterOneFault ?? 0) <= 6],
  ["recovery p99 under 30 s", (report.recoverP99Ms ?? Infinity) < 30_000],
  ["the consumer never failed for good", failures.length === 0],
  ["markers stored durably for every channel", CHANNELS.every((c) => report.storedMarkers[c])],
];
console.log(JSON.stringify(report, null, 2));
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(report, null, 2) + "\n");
let passed = 0;
let failed = 0;
for (const [name, ok] of checks) {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}`);
  if (ok) passed++;
  else failed++;
}
if (failed > 0) exitCode = 1;
console.log(`${passed} passed, ${failed} failed`);
await emu.stop();
rmSync(dir, { recursive: true, force: true });
process.exit(exitCode);
