// A Worker (run by workerd through Miniflare) that drains a channel since its stored replay marker,
// with the package's WorkersKvReplayStorage over the KV binding MARKERS, or, through the Durable
// Object Consumer, with DurableObjectReplayStorage over the object's own storage. run.mjs runs it,
// restarts workerd (persisted KV / DO storage) and runs it again: the second run resumes.
//   GET /kv?ch=/topic/X&take=N[&quiet=MS]   GET /do?ch=...   (take N events, optionally check that
//   nothing more arrives within MS, then close)
//   GET /kv-bench?ch=..&take=N&ns=X   (the same under namespace X, counting the writes to the binding)
//   GET /none-bench?ch=..&take=N      (no storage: ALL_EVENTS, the baseline of the measurement)
import { SalesforceStreamingClient, ReplayOption, WorkersKvReplayStorage, DurableObjectReplayStorage } from "sfstream";

const CREDS = {
  consumerKey: "sfemu-consumer-key",
  consumerSecret: "sfemu-consumer-secret",
  username: "user@example.com",
  password: "password",
};

async function drain(base, storage, ch, n, quietMs, paced = false) {
  const statuses = [];
  const client = new SalesforceStreamingClient({
    ...CREDS,
    loginUrl: base,
    replay: storage,
    replayFallback: ReplayOption.ALL_EVENTS,
    maxPendingCount: 0,
    onStatus: (s) => statuses.push(s.type === "storageError" ? `storageError(${s.message})` : s.type),
  });
  await client.open();
  const started = performance.now();
  await client.subscribe(ch);
  const ids = [];
  const signal = AbortSignal.timeout(60000);
  try {
    for (let i = 0; i < n; i++) {
      ids.push((await client.receive({ signal })).data.event.replayId);
      if (paced && i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
  } catch (e) {
    await client.close().catch(() => {});
    throw new Error(`got ${JSON.stringify(ids)} of ${n} events (${e?.name}); statuses ${statuses.join(",")}`);
  }
  const tookMs = performance.now() - started;
  // Anything beyond `n` within quietMs is reported (the caller knows what to expect). Taking it
  // counts as consuming it: only for the last run of a scenario.
  let extra = null;
  if (quietMs > 0) {
    try {
      extra = (await client.receive({ signal: AbortSignal.timeout(quietMs) })).data.event.replayId;
    } catch (e) {
      if (e?.name !== "TimeoutError") throw e;
    }
  }
  await client.close();
  return { ids, extra, statuses: statuses.filter((s) => s.startsWith("storageError") || s === "replayFallback"), tookMs };
}

/** A counting wrapper over the binding: the application's object, so the test can count writes. */
function counting(kv) {
  const counter = { puts: 0, putMs: 0 };
  const put = async (k, v) => {
    counter.puts++;
    const t = performance.now();
    try {
      return await kv.put(k, v);
    } finally {
      counter.putMs += performance.now() - t;
    }
  };
  return { counter, kv: { get: (k) => kv.get(k), put } };
}

async function dumpKv(kv) {
  const out = {};
  for (const { name } of (await kv.list({ prefix: "sfstream/" })).keys) out[name] = await kv.get(name);
  return out;
}

const json = (v, status = 200) => new Response(JSON.stringify(v), { status, headers: { "content-type": "application/json" } });

export class Consumer {
  constructor(state, env) {
    this.state = state;
    this.env = env;
  }
  async fetch(request) {
    const url = new URL(request.url);
    const ch = url.searchParams.get("ch");
    const n = Number(url.searchParams.get("take"));
    const quietMs = Number(url.searchParams.get("quiet") ?? 0);
    try {
      const r = await drain(this.env.SFEMU_URL, new DurableObjectReplayStorage(this.state.storage, { defaultReplay: ReplayOption.ALL_EVENTS }), ch, n, quietMs);
      const stored = Object.fromEntries(await this.state.storage.list({ prefix: "sfstream/" }));
      return json({ ...r, stored });
    } catch (e) {
      return json({ error: String(e?.stack ?? e) }, 500);
    }
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const ch = url.searchParams.get("ch");
    const n = Number(url.searchParams.get("take"));
    const quietMs = Number(url.searchParams.get("quiet") ?? 0);
    try {
      if (url.pathname === "/kv" || url.pathname === "/kv-bench") {
        const bench = url.pathname === "/kv-bench";
        const { counter, kv } = counting(env.MARKERS);
        const ns = url.searchParams.get("ns") ?? undefined;
        const r = await drain(env.SFEMU_URL, new WorkersKvReplayStorage(kv, { defaultReplay: ReplayOption.ALL_EVENTS, namespace: ns }), ch, n, quietMs, url.searchParams.has("paced"));
        if (bench) return json({ tookMs: r.tookMs, puts: counter.puts, putMs: counter.putMs });
        return json({ ...r, puts: counter.puts, stored: await dumpKv(env.MARKERS) });
      }
      if (url.pathname === "/none-bench") {
        const r = await drain(env.SFEMU_URL, ReplayOption.ALL_EVENTS, ch, n, 0, url.searchParams.has("paced"));
        return json({ tookMs: r.tookMs });
      }
      if (url.pathname === "/do") {
        const stub = env.CONSUMER.get(env.CONSUMER.idFromName("consumer"));
        return stub.fetch(request);
      }
      return json({ error: "unknown route" }, 404);
    } catch (e) {
      return json({ error: String(e?.stack ?? e) }, 500);
    }
  },
};
