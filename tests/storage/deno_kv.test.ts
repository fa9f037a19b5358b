// Deno KV durable replay: the package's DenoKvReplayStorage over a real Deno.openKv() file. A
// first consumer takes part of a stream and closes; the KV file is closed and opened again (as a
// restarted process would); a second consumer resumes right after the first one's last taken event.
// run.mjs starts sfemu (SFEMU_URL) and gives a scratch KV path (KV_PATH).
import { DenoKvReplayStorage, ReplayMarker, ReplayOption, SalesforceStreamingClient, type StatusEvent } from "sfstream";

const BASE = Deno.env.get("SFEMU_URL");
const KV_PATH = Deno.env.get("KV_PATH");
if (!BASE || !KV_PATH) throw new Error("SFEMU_URL and KV_PATH must be set: run tests/storage/run.mjs");
const CREDS = { consumerKey: "sfemu-consumer-key", consumerSecret: "sfemu-consumer-secret", username: "user@example.com", password: "password", loginUrl: BASE };

function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}
const same = (a: unknown, b: unknown, what: string) => assert(JSON.stringify(a) === JSON.stringify(b), `${what}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`);

async function control<T>(path: string, body: unknown = {}): Promise<T> {
  const res = await fetch(`${BASE}/_sfemu/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`control ${path}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

async function take(client: SalesforceStreamingClient, n: number, what: string): Promise<number[]> {
  const signal = AbortSignal.timeout(15000);
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) out.push(((await client.receive({ signal })).data as { event: { replayId: number } }).event.replayId);
  } catch (e) {
    throw new Error(`${what}: got ${JSON.stringify(out)} of ${n} events (${(e as Error).name})`, { cause: e });
  }
  return out;
}

/** The ids of everything on `ch`, read by a reference consumer replaying ALL_EVENTS. */
async function allIds(ch: string, last: number): Promise<number[]> {
  const ref = new SalesforceStreamingClient({ ...CREDS, replay: ReplayOption.ALL_EVENTS, maxPendingCount: 0 });
  await ref.open();
  try {
    await ref.subscribe(ch);
    const ids: number[] = [];
    const signal = AbortSignal.timeout(30000);
    while (ids.at(-1) !== last) ids.push(((await ref.receive({ signal })).data as { event: { replayId: number } }).event.replayId);
    return ids;
  } finally {
    await ref.close();
  }
}

async function kvEntries(kv: Deno.Kv): Promise<[Deno.KvKey, unknown][]> {
  const out: [Deno.KvKey, unknown][] = [];
  for await (const e of kv.list({ prefix: ["sfstream"] })) out.push([e.key, e.value]);
  return out;
}

Deno.test("Deno KV: resume after a restart from the marker in the KV file, keys namespaced by org and user", async () => {
  const ch = "/event/DenoKv__e";
  const p1 = await control<{ lastReplayId: number }>("publish", { channel: ch, count: 6 });
  const ids1 = await allIds(ch, p1.lastReplayId);

  let kv = await Deno.openKv(KV_PATH);
  const first = new SalesforceStreamingClient({ ...CREDS, replay: new DenoKvReplayStorage(kv, { defaultReplay: ReplayOption.ALL_EVENTS }) });
  await first.open();
  await first.subscribe(ch);
  same(await take(first, 4, "first consumer"), ids1.slice(0, 4), "first consumer");
  await first.close();
  kv.close();

  const p2 = await control<{ lastReplayId: number }>("publish", { channel: ch, count: 2 });
  const ids2 = (await allIds(ch, p2.lastReplayId)).slice(6);

  kv = await Deno.openKv(KV_PATH);
  const entries = await kvEntries(kv);
  assert(entries.length === 1, `one entry: ${JSON.stringify(entries)}`);
  const [key, value] = entries[0];
  assert(key.length === 4 && /^00D/.test(String(key[1])) && /^005/.test(String(key[2])) && key[3] === ch, `key ["sfstream", org, user, channel]: ${JSON.stringify(key)}`);
  same(ReplayMarker.from(value)?.replayId, ids1[3], "stored marker = the 4th event");

  const statuses: StatusEvent[] = [];
  const second = new SalesforceStreamingClient({ ...CREDS, replay: new DenoKvReplayStorage(kv, { defaultReplay: ReplayOption.ALL_EVENTS }), onStatus: (s) => statuses.push(s) });
  await second.open();
  await second.subscribe(ch);
  same(await take(second, 4, "second consumer"), [...ids1.slice(4), ...ids2], "second consumer resumes");
  try {
    const extra = await second.receive({ signal: AbortSignal.timeout(400) });
    throw new Error(`unexpected event ${JSON.stringify(extra.data)}`);
  } catch (e) {
    assert((e as Error).name === "TimeoutError", `nothing more: ${e}`);
  }
  await second.close();
  same(ReplayMarker.from((await kv.get(key)).value)?.replayId, ids2.at(-1), "marker after the second run");
  assert(!statuses.some((s) => s.type === "storageError"), "no storage error");

  // Foreign data under the key: reported (storageError), ignored, and overwritten by the next marker.
  await kv.set(key, { hello: "not a marker" });
  const third = new SalesforceStreamingClient({ ...CREDS, replay: new DenoKvReplayStorage(kv), onStatus: (s) => statuses.push(s) });
  await third.open();
  await third.subscribe(ch);
  const p3 = await control<{ lastReplayId: number }>("publish", { channel: ch, count: 1 });
  same(await take(third, 1, "third consumer"), [p3.lastReplayId], "foreign data: subscribed without a marker, new events flow");
  await third.close();
  assert(statuses.filter((s) => s.type === "storageError").length === 1, `storageError reported: ${statuses.map((s) => s.type)}`);
  same(ReplayMarker.from((await kv.get(key)).value)?.replayId, p3.lastReplayId, "the foreign value was replaced by a marker");
  kv.close();
});
