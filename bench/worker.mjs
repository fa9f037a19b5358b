// One measurement in one fresh process: `node bench/worker.mjs '<json>'` with
// {client, scenario, url, token, channel, n, pkgEntry, ...}. Prints `RESULT {json}` on stdout.
// The orchestrator (run.mjs) has already put the backlog in place for catch-up runs.
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { latencyProbe } from "./clients/shared.mjs";

const cfg = JSON.parse(process.argv[2]);
const TIMEOUT_MS = cfg.timeoutMs ?? 120_000;

function fail(msg) {
  console.log(`RESULT ${JSON.stringify({ ok: false, error: msg })}`);
  process.exit(1);
}
const guard = setTimeout(() => fail(`timed out after ${TIMEOUT_MS} ms`), TIMEOUT_MS);
guard.unref();

const rssMB = () => process.memoryUsage.rss() / 1048576;
const peakMB = () => process.resourceUsage().maxRSS / 1024;
const cpuMs = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

async function control(path, body) {
  const res = await fetch(`${cfg.url}/_sfemu/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Counts events, checks exactly-once in-order delivery by replay id, and timestamps first/last. */
function makeCounter(n, dataOnly) {
  let resolveDone;
  const c = {
    count: 0,
    last: -Infinity,
    outOfOrder: 0,
    tFirst: 0,
    tLast: 0,
    done: new Promise((r) => (resolveDone = r)),
    onMessage(m) {
      const id = dataOnly ? m.event.replayId : m.data.event.replayId;
      if (!(id > c.last)) c.outOfOrder++;
      c.last = id;
      // Clock reads only on the first and the last event: performance.now() costs ~1-2 µs in
      // Node 20, which would be charged to every client's per-event figure.
      if (c.count === 0) {
        c.tFirst = performance.now();
        c.hrFirst = process.hrtime.bigint();
      }
      c.count++;
      if (c.count === n) {
        c.tLast = performance.now();
        c.hrLast = process.hrtime.bigint();
        resolveDone();
      }
    },
  };
  return c;
}

async function main() {
  const { adapters } = await import("./clients/node.mjs");
  const adapter = adapters[cfg.client];
  if (!adapter) fail(`unknown client ${cfg.client}`);
  const t0 = performance.now();
  const lib = await adapter.load(cfg);
  const tImported = performance.now();
  const base = { url: cfg.url, token: cfg.token, channel: cfg.channel, clientOptions: cfg.clientOptions };
  const out = { ok: true, client: cfg.client, scenario: cfg.scenario, n: cfg.n };

  if (cfg.scenario === "catchup") {
    const counter = makeCounter(cfg.n, adapter.dataOnly);
    const rss0 = rssMB();
    const cpu0 = process.cpuUsage();
    const tOpen = performance.now();
    const sub = await lib.start({ ...base, replayId: -2, onMessage: counter.onMessage });
    await counter.done;
    out.cpuMs = cpuMs(cpu0);
    out.totalMs = counter.tLast - tOpen;
    out.drainMs = counter.tLast - counter.tFirst;
    out.drainWindowUs = [Number(counter.hrFirst / 1000n), Number(counter.hrLast / 1000n)];
    await sleep(150);
    out.received = counter.count;
    out.outOfOrder = counter.outOfOrder;
    out.rssGrowthMB = peakMB() - rss0;
    await sub.close();
  } else if (cfg.scenario === "live") {
    const counter = makeCounter(cfg.n, adapter.dataOnly);
    const sub = await lib.start({ ...base, replayId: -1, onMessage: counter.onMessage });
    await control("clock", {}); // warm up this process's fetch (undici) outside the measurement
    await sleep(100); // let the long-poll be held
    const rss0 = rssMB();
    const cpu0 = process.cpuUsage();
    const tPub = performance.now();
    const pub = await control("publish", { channel: cfg.channel, count: cfg.n, payloadSize: 200 });
    if (pub.published !== cfg.n) fail(`published ${pub.published}`);
    await counter.done;
    out.cpuMs = cpuMs(cpu0);
    out.elapsedMs = counter.tLast - tPub;
    out.eventsPerSec = (cfg.n / out.elapsedMs) * 1000;
    await sleep(150);
    out.received = counter.count;
    out.outOfOrder = counter.outOfOrder;
    out.rssGrowthMB = peakMB() - rss0;
    await sub.close();
  } else if (cfg.scenario === "latency") {
    // Start-up (import -> subscribed) is measured here: no backlog, nothing else running.
    const probe = latencyProbe(adapter.dataOnly ? (m) => m.event.replayId : (m) => m.data.event.replayId);
    const sub = await lib.start({ ...base, replayId: -1, onMessage: probe.onMessage });
    const tSubscribed = performance.now();
    out.importMs = tImported - t0;
    out.subscribeMs = tSubscribed - tImported;
    out.startupMs = tSubscribed - t0;
    await control("clock", {}); // warm up this process's fetch (undici) outside the measurement
    await sleep(100);
    const rss0 = rssMB();
    Object.assign(out, await probe.run(cfg.n, cfg.gapMs ?? 10, () => control("publish", { channel: cfg.channel, count: 1, payloadSize: 200 })));
    out.received = probe.received;
    out.outOfOrder = probe.outOfOrder;
    out.rssGrowthMB = peakMB() - rss0;
    await sub.close();
  } else if (cfg.scenario === "slow") {
    // A slow consumer on a big backlog: ~1 event per ms for durationMs. Pull clients (sfstream)
    // get backpressure through `for await`; push clients (callbacks) queue in the application,
    // which is what their users have to do.
    const durationMs = cfg.durationMs ?? 4000;
    let consumed = 0;
    const queue = [];
    let onMessage;
    if (adapter.pull) {
      onMessage = async () => {
        consumed++;
        await sleep(1);
      };
    } else {
      onMessage = (m) => queue.push(m);
    }
    // Retained memory: what is still reachable after a full collection (heap + external, i.e. the
    // buffered events, the wasm memory and array buffers), at 1 s and at the end. RSS alone
    // mostly shows when the collector ran; the worker runs with --expose-gc for this scenario.
    const retainedMB = () => {
      globalThis.gc?.();
      const m = process.memoryUsage();
      return (m.heapUsed + m.external) / 1048576;
    };
    const retained0 = retainedMB();
    const rss0 = rssMB();
    const samples = [];
    const tStart = performance.now();
    const sampler = setInterval(() => samples.push([performance.now() - tStart, rssMB()]), 250);
    const sub = await lib.start({ ...base, replayId: -2, onMessage });
    if (!adapter.pull) {
      (async () => {
        for (let head = 0; performance.now() - tStart < durationMs + 1000; ) {
          if (head < queue.length) {
            queue[head++] = undefined;
            consumed++;
          }
          await sleep(1);
        }
      })();
    }
    let retained1s = NaN;
    setTimeout(() => (retained1s = retainedMB()), Math.max(0, 1000 - (performance.now() - tStart)));
    await sleep(durationMs);
    clearInterval(sampler);
    out.retainedAt1sMB = retained1s - retained0;
    out.retainedEndMB = retainedMB() - retained0;
    out.retainedLateGrowthMB = out.retainedEndMB - out.retainedAt1sMB;
    const at = (ms) => samples.find(([t]) => t >= ms)?.[1] ?? NaN;
    out.rssAt1sMB = at(1000) - rss0;
    out.rssEndMB = samples[samples.length - 1][1] - rss0;
    out.rssPeakMB = peakMB() - rss0;
    out.lateGrowthMB = out.rssEndMB - out.rssAt1sMB;
    out.consumed = consumed;
    out.fetched = adapter.pull ? consumed + (sub.pending?.() ?? 0) : queue.length;
    out.samples = samples.map(([t, r]) => [Math.round(t), +(r - rss0).toFixed(1)]);
    await sub.close();
  } else {
    fail(`unknown scenario ${cfg.scenario}`);
  }
  console.log(`RESULT ${JSON.stringify(out)}`);
  process.exit(0);
}

main().catch((e) => fail(String(e?.stack ?? e)));
