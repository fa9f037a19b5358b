// Durable replay in Node (issue #4): replay-marker storages driven by the real client (the packed
// package) against sfemu running as its own process. Every storage here is the application's own
// object (a Map, a Map-backed KV binding, a counting/failing custom storage): the package's code
// (MappingStorage, WorkersKvReplayStorage, the shell's flush/coalescing/retention logic) is what
// is under test.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import {
  Client,
  SalesforceStreamingClient,
  AccessTokenAuthenticator,
  ReplayOption,
  ReplayMarker,
  ReplayMarkerStorage,
  MappingStorage,
  DefaultMappingStorage,
  MemoryReplayStorage,
  ConstantReplayId,
  WorkersKvReplayStorage,
} from "sfstream";
import { startSfemu, CREDENTIALS, until } from "../helpers/sfemu.mjs";
import { sfemuForFile } from "../helpers/fixture.mjs";

const emu = sfemuForFile(["--hold-timeout", "3000"]);

const login = () => ({ ...CREDENTIALS, loginUrl: emu.url });
const replayIdOf = (m) => m.data.event.replayId;
let seq = 0;
const channel = (kind, name) => `/${kind}/Storage${name}${++seq}${kind === "event" ? "__e" : ""}`;

async function take(client, n, { timeout = 15000 } = {}) {
  const out = [];
  const signal = AbortSignal.timeout(timeout);
  for (let i = 0; i < n; i++) out.push(await client.receive({ signal }));
  return out;
}

/**
 * Publish `count` events on `ch` through the control API and return their replay ids (sfemu's ids
 * grow in steps of 1-3 per channel, never contiguously): read back by a reference consumer
 * replaying ALL_EVENTS, so the tests compare with what Salesforce would actually send.
 */
async function publish(ch, count) {
  const p = await emu.control("publish", { channel: ch, count });
  const ref = new SalesforceStreamingClient({ ...login(), replay: ReplayOption.ALL_EVENTS, maxPendingCount: 0 });
  await ref.open();
  try {
    await ref.subscribe(ch);
    const ids = [];
    const signal = AbortSignal.timeout(30000);
    for (let i = 0; i < 100000; i++) {
      const id = replayIdOf(await ref.receive({ signal }));
      if (id >= p.firstReplayId) ids.push(id);
      if (id === p.lastReplayId) break;
    }
    assert.equal(ids.length, count, `reference read of ${ch}`);
    return ids;
  } finally {
    await ref.close();
  }
}

/** Nothing more arrives within `ms`. */
async function assertQuiet(client, ms = 600) {
  await assert.rejects(client.receive({ signal: AbortSignal.timeout(ms) }), (e) => e.name === "TimeoutError");
}

/**
 * An application's custom storage: counts writes, keeps every marker it was given.
 * `beforeWrite(attempt)` (attempt 1, 2, ...) runs first on every write: it may wait, or throw
 * to make the write fail.
 */
class CountingStorage extends ReplayMarkerStorage {
  markers = new Map();
  writes = 0;
  attempts = 0;
  history = [];
  constructor(beforeWrite = null) {
    super();
    this.beforeWrite = beforeWrite;
  }
  async getReplayMarker(subscription) {
    return this.markers.get(subscription) ?? null;
  }
  async setReplayMarker(subscription, marker) {
    this.attempts++;
    if (this.beforeWrite) await this.beforeWrite(this.attempts);
    this.writes++;
    this.history.push(marker.replayId);
    this.markers.set(subscription, marker);
  }
}

describe("Map-like and custom storages resume with no loss", () => {
  test("a Map: a second consumer resumes right after the last event the first one took", async () => {
    const ch = channel("topic", "Map");
    const store = new Map();
    const first = new SalesforceStreamingClient({ ...login(), replay: store });
    await first.open();
    await first.subscribe(ch);
    const p1 = await publish(ch, 10);
    const got1 = await take(first, 6);
    assert.deepEqual(got1.map(replayIdOf), p1.slice(0, 6));
    await first.close();
    // The 4 events still in the prefetch buffer were not taken: the marker is the 6th event.
    const stored = ReplayMarker.from(store.get(ch));
    assert.equal(stored?.replayId, p1[5], `stored ${JSON.stringify(store.get(ch))}`);
    assert.match(stored.date, /Z$/, "the marker carries the event's createdDate");

    const p2 = await publish(ch, 3);
    const second = new SalesforceStreamingClient({ ...login(), replay: store });
    await second.open();
    await second.subscribe(ch);
    const got2 = await take(second, 7);
    assert.deepEqual(got2.map(replayIdOf), [...p1.slice(6), ...p2], "the untaken events come again, then the new ones");
    await assertQuiet(second);
    await second.close();
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p2.at(-1));
  });

  // Markers are written at most every 200 ms: a subscribe again right after an unsubscribe must
  // not read the storage before what was consumed is in it.
  test("subscribing again at once resumes from what was consumed, not from the last marker written", async () => {
    const ch = channel("topic", "Resub");
    const map = new Map();
    const client = new SalesforceStreamingClient({ ...login(), replay: map });
    await client.open();
    await client.subscribe(ch);
    // Nothing stored yet: the subscribe would go out with no replay id (new events only).
    const p1 = await publish(ch, 3);
    assert.deepEqual((await take(client, 3)).map(replayIdOf), p1);
    await assertQuiet(client, 100); // asks for the next: the 3rd is consumed too
    await client.unsubscribe(ch);
    const p2 = await publish(ch, 2);
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), p2, "the events published while unsubscribed");
    await assertQuiet(client, 100);
    // An older marker stored: the subscribe would resume from it (events again).
    await until(() => ReplayMarker.from(map.get(ch))?.replayId === p2.at(-1), { what: "the marker written" });
    const p3 = await publish(ch, 2);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), p3);
    await assertQuiet(client, 100);
    await client.unsubscribe(ch);
    const p4 = await publish(ch, 2);
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), p4, "no event of before the unsubscribe again");
    await assertQuiet(client);
    // Messages taken by `for await` are reported to the core in batches: the subscribe counts
    // them first. The one in hand when the loop was left by `break` is not consumed: it comes again.
    const p5 = await publish(ch, 3);
    await until(() => client.pendingCount === 3, { what: "3 events buffered" });
    const looped = [];
    for await (const m of client) {
      looped.push(replayIdOf(m));
      if (looped.length === 3) break;
    }
    assert.deepEqual(looped, p5);
    await client.unsubscribe(ch);
    const p6 = await publish(ch, 1);
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), [p5[2], ...p6], "the message in hand at `break`, then the new one");
    await assertQuiet(client);
    await client.close();

    // The storage's own rule still decides: a ConstantReplayId replays from its constant.
    const constant = new SalesforceStreamingClient({ ...login(), replay: new ConstantReplayId(ReplayOption.ALL_EVENTS) });
    await constant.open();
    await constant.subscribe(ch);
    const all = [...p1, ...p2, ...p3, ...p4, ...p5, ...p6];
    assert.deepEqual((await take(constant, all.length)).map(replayIdOf), all);
    await constant.unsubscribe(ch);
    await constant.subscribe(ch);
    assert.deepEqual((await take(constant, all.length)).map(replayIdOf), all, "ALL_EVENTS again");
    await constant.close();
  });

  test("a subscribe waits for its own channel's marker only: another channel's write that hangs does not hold it up", { timeout: 40000 }, async () => {
    const slow = channel("topic", "SlowWrite");
    const other = channel("topic", "Other");
    let hanging = 0;
    let release;
    const down = new Promise((r) => (release = r));
    // Writes hang (a store that is down) until released; the client would give each up after 10 s.
    const storage = new CountingStorage(async () => {
      hanging++;
      await down;
    });
    const client = new SalesforceStreamingClient({ ...login(), replay: storage });
    await client.open();
    await client.subscribe(slow);
    await publish(slow, 1);
    await take(client, 1);
    await assertQuiet(client, 100); // consumed: its marker is written at the next tick, and hangs
    await until(() => hanging === 1, { what: "the hanging write" });
    // Before: the subscribe waited for the hanging round, then wrote every channel again (20 s).
    const t0 = Date.now();
    await client.subscribe(other);
    const p = await publish(other, 1);
    assert.ok(Date.now() - t0 < 5000, `subscribe() took ${Date.now() - t0} ms`);
    assert.deepEqual((await take(client, 1)).map(replayIdOf), p);
    release();
    await client.close();
  });

  test("an async Map-like (a KV wrapper) through MappingStorage", async () => {
    const ch = channel("event", "AsyncMap");
    const backing = new Map();
    const kv = {
      get: async (k) => (backing.has(k) ? JSON.parse(backing.get(k)) : undefined),
      set: async (k, v) => void backing.set(k, JSON.stringify(v)),
    };
    const first = new SalesforceStreamingClient({ ...login(), replay: new MappingStorage(kv) });
    await first.open();
    await first.subscribe(ch);
    const p = await publish(ch, 8);
    await take(first, 3);
    await first.close();
    const second = new SalesforceStreamingClient({ ...login(), replay: new MappingStorage(kv) });
    await second.open();
    await second.subscribe(ch);
    assert.deepEqual((await take(second, 5)).map(replayIdOf), p.slice(3));
    await second.close();
    assert.equal(JSON.parse(backing.get(ch)).replayId, p.at(-1));
  });

  test("a ReplayMarkerStorage subclass and a plain object with async getReplayMarker/setReplayMarker", async () => {
    for (const kind of ["subclass", "plain object"]) {
      const ch = channel("u", "Custom");
      const inner = new CountingStorage();
      const storage =
        kind === "subclass"
          ? inner
          : { getReplayMarker: (s) => inner.getReplayMarker(s), setReplayMarker: (s, m) => inner.setReplayMarker(s, m) };
      const first = new SalesforceStreamingClient({ ...login(), replay: storage });
      await first.open();
      await first.subscribe(ch);
      const p = await publish(ch, 5);
      await take(first, 2);
      await first.close();
      assert.equal(inner.markers.get(ch)?.replayId, p[1], kind);
      assert.ok(inner.markers.get(ch) instanceof ReplayMarker, `${kind}: the storage gets ReplayMarker objects`);
      const second = new SalesforceStreamingClient({ ...login(), replay: storage });
      await second.open();
      await second.subscribe(ch);
      assert.deepEqual((await take(second, 3)).map(replayIdOf), p.slice(2), kind);
      await assertQuiet(second, 300);
      await second.close();
    }
  });

  test("DefaultMappingStorage: ALL_EVENTS without a marker, the marker once stored", async () => {
    const ch = channel("event", "Default");
    const p0 = await publish(ch, 4);
    const map = new Map();
    const first = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(map, ReplayOption.ALL_EVENTS) });
    await first.open();
    await first.subscribe(ch);
    assert.deepEqual((await take(first, 2)).map(replayIdOf), p0.slice(0, 2));
    await first.close();
    const second = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(map, ReplayOption.ALL_EVENTS) });
    await second.open();
    await second.subscribe(ch);
    assert.deepEqual((await take(second, 2)).map(replayIdOf), p0.slice(2));
    await assertQuiet(second, 300);
    await second.close();
  });

  test("MemoryReplayStorage keeps markers for the client's lifetime (close, reopen, resume)", async () => {
    const ch = channel("topic", "Memory");
    const p1 = await publish(ch, 5);
    const client = new SalesforceStreamingClient({ ...login(), replay: new MemoryReplayStorage({ defaultReplay: ReplayOption.ALL_EVENTS }) });
    await client.open();
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 5)).map(replayIdOf), p1, "no marker yet: defaultReplay ALL_EVENTS");
    await client.close();
    const p2 = await publish(ch, 2);
    await client.open();
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), p2, "resumes after the stored marker");
    await assertQuiet(client, 300);
    await client.close();

    // A fresh client with a fresh memory storage starts over (defaultReplay: ALL_EVENTS).
    const other = new SalesforceStreamingClient({ ...login(), replay: new MemoryReplayStorage({ defaultReplay: ReplayOption.ALL_EVENTS }) });
    await other.open();
    await other.subscribe(ch);
    assert.equal(replayIdOf((await take(other, 1))[0]), p1[0]);
    await other.close();
  });

  test("messages left in the buffer by close() are delivered after a reopen, then replayed again (a documented duplicate)", async () => {
    const ch = channel("topic", "Leftover");
    const p = await publish(ch, 5);
    const client = new SalesforceStreamingClient({ ...login(), replay: new MemoryReplayStorage({ defaultReplay: ReplayOption.ALL_EVENTS }) });
    await client.open();
    await client.subscribe(ch);
    await take(client, 3);
    await client.close();
    assert.equal(client.pendingCount, 2, "close() keeps prefetched messages receivable");
    await client.open();
    await client.subscribe(ch);
    // At-least-once: the two untaken events were not marked, so the resubscription replays them.
    assert.deepEqual((await take(client, 4)).map(replayIdOf), [...p.slice(3), ...p.slice(3)]);
    await assertQuiet(client, 300);
    await client.close();
  });
});

describe("at-least-once: the automatic policy", () => {
  test("the message being processed is not marked before the next one is asked for, however long it takes", async () => {
    const ch = channel("topic", "InHand");
    const store = new Map();
    const client = new SalesforceStreamingClient({ ...login(), replay: store });
    await client.open();
    await client.subscribe(ch);
    const p = await publish(ch, 5);
    // The first message is handed out and "processed" for longer than the periodic consumption
    // report (100 ms) plus a flush tick (200 ms): a crash now must bring it back.
    const [first] = await take(client, 1);
    assert.equal(replayIdOf(first), p[0]);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(store.get(ch), undefined, `marked while in hand: ${JSON.stringify(store.get(ch))}`);
    // Asking for the next one consumes the first, and the report goes out without another ask.
    const [second] = await take(client, 1);
    assert.equal(replayIdOf(second), p[1]);
    await until(() => ReplayMarker.from(store.get(ch))?.replayId === p[0], { timeout: 3000, what: "the first marked" });
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p[0], "the second, still in hand, is not marked");
    for await (const m of client) {
      // The iterator asking for the next message is the same as receive().
      if (replayIdOf(m) === p[3]) break;
    }
    await until(() => ReplayMarker.from(store.get(ch))?.replayId === p[2], { timeout: 3000, what: "the third marked" });
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p[2], "the fourth, where the loop broke, is not marked");
    await client.close();
    // The loop was left with the fourth in hand: it may not have been processed (a break and an
    // exception look the same to the iterator), so close() does not count it and it comes again.
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p[2], "close() leaves the message the loop was left with");
  });
});

describe("batches()", () => {
  test("every event once, in order, in batches of at most maxSize; a batch is consumed when the next is asked for", async () => {
    const ch = channel("topic", "Batches");
    const store = new Map();
    const p = await publish(ch, 300);
    const client = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(store, ReplayOption.ALL_EVENTS), maxPendingCount: 0 });
    await client.open();
    await client.subscribe(ch);
    await until(() => client.pendingCount === 300, { timeout: 10000, what: "the backlog buffered" });
    const got = [];
    const sizes = [];
    const signal = AbortSignal.timeout(15000);
    for await (const batch of client.batches({ maxSize: 64, signal })) {
      assert.ok(Array.isArray(batch) && batch.length >= 1 && batch.length <= 64, `batch of ${batch.length}`);
      sizes.push(batch.length);
      got.push(...batch.map(replayIdOf));
      if (got.length === 300) {
        // The last batch is in hand: after more than a report interval and a flush tick it is
        // not marked, only the batch before it.
        await new Promise((r) => setTimeout(r, 700));
        assert.equal(ReplayMarker.from(store.get(ch))?.replayId, got[300 - batch.length - 1], "the batch in hand is not marked");
        break;
      }
    }
    assert.deepEqual(got, p, "every event once, in order");
    assert.deepEqual(sizes, [64, 64, 64, 64, 44], "full batches from a full buffer");
    await client.close();
    // Left by break: the last batch may not have been processed, so close() does not count it.
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p[255]);
    const again = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(store, ReplayOption.ALL_EVENTS) });
    await again.open();
    await again.subscribe(ch);
    assert.deepEqual((await take(again, 44)).map(replayIdOf), p.slice(256), "the abandoned batch comes again, nothing else");
    await assertQuiet(again);
    await again.close();
  });

  test("a waiting batch takes everything one reply brought; return() while waiting loses nothing", async () => {
    const ch = channel("u", "BatchWait");
    const client = new SalesforceStreamingClient({ ...login(), replay: new Map() });
    await client.open();
    await client.subscribe(ch);
    const it = client.batches();
    const waiting = it.next();
    await emu.control("publish", { channel: ch, count: 5 });
    const first = await waiting;
    assert.equal(first.done, false);
    assert.equal(first.value.length, 5, "the five events of one reply in one batch");
    // A next() that waits, withdrawn by return(): the event published after goes to receive().
    const pending = it.next();
    await it.return();
    assert.deepEqual(await pending, { value: undefined, done: true });
    await emu.control("publish", { channel: ch, count: 1 });
    const m = await client.receive({ signal: AbortSignal.timeout(5000) });
    assert.ok(replayIdOf(m) > replayIdOf(first.value[4]));
    assert.deepEqual(await it.next(), { value: undefined, done: true }, "the iteration stays ended");
    await client.close();
  });

  test("a batch in hand no longer counts against maxPendingCount: the next reply is fetched while it is processed", async () => {
    const ch = channel("u", "BatchPipeline");
    const store = new Map();
    const client = new SalesforceStreamingClient({ ...login(), replay: store, maxPendingCount: 3 });
    await client.open();
    await client.subscribe(ch);
    const it = client.batches();
    const waiting = it.next();
    await emu.control("publish", { channel: ch, count: 3 });
    const { value: first } = await waiting;
    assert.equal(first.length, 3);
    // The batch is still being "processed": what is published now is prefetched all the same.
    await emu.control("publish", { channel: ch, count: 3 });
    await until(() => client.pendingCount === 3, { timeout: 5000, what: "the next reply buffered while the batch is in hand" });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(store.get(ch), undefined, "the batch in hand is not consumed");
    const { value: second } = await it.next();
    assert.equal(second.length, 3);
    assert.ok(replayIdOf(second[0]) > replayIdOf(first[2]));
    await it.return();
    await client.close();
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, replayIdOf(first[2]), "the first batch consumed, the second left in hand");
  });

  test("manual policy: acknowledging a batch's last message acknowledges the batch", async () => {
    const ch = channel("event", "BatchAck");
    const store = new Map();
    const p = await publish(ch, 6);
    const opts = { ...login(), replay: new DefaultMappingStorage(store, ReplayOption.ALL_EVENTS), ackPolicy: "manual" };
    const client = new SalesforceStreamingClient(opts);
    await client.open();
    await client.subscribe(ch);
    await until(() => client.pendingCount === 6, { timeout: 10000, what: "6 buffered" });
    const it = client.batches({ maxSize: 4 });
    const { value: batch } = await it.next();
    assert.deepEqual(batch.map(replayIdOf), p.slice(0, 4));
    client.acknowledge(batch[3]);
    await client.close();
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, p[3]);
  });

  test("a bad maxSize or signal is a TypeError naming it, from the first step", async () => {
    const client = new SalesforceStreamingClient({ ...login(), replay: new Map() });
    for (const maxSize of [0, -1, 1.5, "10", true, null, Number.NaN, Infinity]) {
      await assert.rejects(client.batches({ maxSize }).next(), (e) => e instanceof TypeError && /maxSize/.test(e.message), String(maxSize));
    }
    await assert.rejects(client.batches({ signal: "soon" }).next(), (e) => e instanceof TypeError && /signal/.test(e.message));
  });
});

describe("at-least-once: taking the buffer after close()", () => {
  test("messages taken after close() began are marked too, so none comes again", async () => {
    const ch = channel("topic", "CloseDrain");
    const store = new Map();
    const client = new SalesforceStreamingClient({ ...login(), replay: store });
    await client.open();
    await client.subscribe(ch);
    const p = await publish(ch, 8);
    await take(client, 1);
    await until(() => client.pendingCount === 7, { timeout: 5000, what: "7 messages buffered" });
    const closing = client.close();
    const rest = await take(client, 7);
    assert.deepEqual(rest.map(replayIdOf), p.slice(1));
    // The buffer is drained: asking again ends the iteration and counts the seventh as consumed.
    await assert.rejects(client.receive(), (e) => e.name === "ClientInvalidOperation");
    await closing;
    await until(() => ReplayMarker.from(store.get(ch))?.replayId === p[7], { timeout: 3000, what: "the last message marked" });
    const again = new SalesforceStreamingClient({ ...login(), replay: store });
    await again.open();
    await again.subscribe(ch);
    await assertQuiet(again);
    await again.close();
  });
});

describe("at-least-once: manual acknowledgement", () => {
  test("the marker does not advance until acknowledge(); acknowledging advances it (written by close)", async () => {
    const ch = channel("event", "Manual");
    const storage = new CountingStorage();
    const p = await publish(ch, 6);
    const opts = { ...login(), replay: new DefaultMappingStorage(storage.markers, ReplayOption.ALL_EVENTS), ackPolicy: "manual" };
    // DefaultMappingStorage over the CountingStorage's map: writes go through MappingStorage.
    const first = new SalesforceStreamingClient(opts);
    await first.open();
    await first.subscribe(ch);
    const got = await take(first, 6);
    await new Promise((r) => setTimeout(r, 500)); // more than a flush tick
    assert.equal(storage.markers.get(ch), undefined, "nothing acknowledged: no marker written");
    await first.close();
    assert.equal(storage.markers.get(ch), undefined, "close does not acknowledge under the manual policy");

    const second = new SalesforceStreamingClient(opts);
    await second.open();
    await second.subscribe(ch);
    const again = await take(second, 6);
    assert.deepEqual(again.map(replayIdOf), got.map(replayIdOf), "every unacknowledged event comes again");
    assert.throws(() => second.acknowledge({ channel: ch, data: {} }), TypeError);
    second.acknowledge(again[3]); // cumulative: the first four
    await second.close();
    assert.equal(ReplayMarker.from(storage.markers.get(ch))?.replayId, p[3]);

    const third = new SalesforceStreamingClient(opts);
    await third.open();
    await third.subscribe(ch);
    assert.deepEqual((await take(third, 2)).map(replayIdOf), p.slice(4));
    await third.close();
  });

  test("unacknowledged messages do not hold up polling: only the buffer counts against maxPendingCount", async () => {
    // An application that acknowledges every few hundred messages (after a bulk commit) must keep
    // receiving meanwhile, whatever maxPendingCount is.
    const ch = channel("u", "ManualFlow");
    const store = new Map();
    const client = new SalesforceStreamingClient({ ...login(), replay: store, ackPolicy: "manual", maxPendingCount: 3 });
    await client.open();
    await client.subscribe(ch);
    const got = [];
    for (let round = 0; round < 4; round++) {
      await emu.control("publish", { channel: ch, count: 3 });
      got.push(...(await take(client, 3, { timeout: 5000 })));
    }
    assert.equal(got.length, 12, "every round arrived with nothing acknowledged");
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(store.get(ch), undefined, "taken is not acknowledged: no marker");
    client.acknowledge(got[11]);
    await client.close();
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, replayIdOf(got[11]));
  });

  test("acknowledge() needs the manual policy", async () => {
    const client = new SalesforceStreamingClient({ ...login(), replay: new Map() });
    await client.open();
    const ch = channel("u", "AutoAck");
    await client.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    const [m] = await take(client, 1);
    assert.throws(() => client.acknowledge(m), (e) => e.name === "ClientInvalidOperation");
    await client.close();
  });
});

/** An open client subscribed to `ch`, with `n` events published and buffered. */
async function withBuffered(ch, n, options) {
  const client = new SalesforceStreamingClient({ ...login(), ...options });
  await client.open();
  await client.subscribe(ch);
  if (n > 0) {
    await emu.control("publish", { channel: ch, count: n });
    await until(() => client.pendingCount === n, { timeout: 5000, what: `${n} buffered` });
  }
  return client;
}

describe("maxPendingCount bounds what waits in the buffer, exactly, whatever the application holds", () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  /** Publish `n` events one at a time, each given time to be fetched if polling runs. */
  async function trickle(ch, n) {
    for (let i = 0; i < n; i++) {
      await emu.control("publish", { channel: ch, count: 1 });
      await sleep(150);
    }
  }
  /** Publish `n` events one by one while the application holds what it took: the buffer refills to `bound` and stops there. */
  async function refillsToBound(client, ch, n, bound) {
    await trickle(ch, n);
    await until(() => client.pendingCount >= bound, { timeout: 5000, what: "events fetched while the application holds what it took" });
    await sleep(400);
    assert.equal(client.pendingCount, bound, "polling pauses again at the bound, not later");
  }
  // One message taken out of a full buffer and held: the buffer is below the bound, so the next
  // event is fetched meanwhile, and only one: the buffer then holds maxPendingCount again.
  for (const ackPolicy of ["automatic", "manual"]) {
    for (const how of ["receive()", "for await", "batches({ maxSize: 1 })"]) {
      test(`${ackPolicy} policy, one message held after ${how}: the buffer refills to the bound and no further`, async () => {
        const ch = channel("u", "Bound");
        const client = await withBuffered(ch, 3, { replay: new Map(), ackPolicy, maxPendingCount: 3 });
        let it;
        if (how === "receive()") await client.receive();
        else {
          it = how === "for await" ? client[Symbol.asyncIterator]() : client.batches({ maxSize: 1 });
          await it.next();
        }
        assert.equal(client.pendingCount, 2);
        await refillsToBound(client, ch, 3, 3);
        await it?.return();
        await client.close();
      });
    }
  }

  test("single messages, then a batch in hand: the batch does not count, the messages before it are consumed", async () => {
    const ch = channel("u", "MixedBound");
    const store = new Map();
    const client = await withBuffered(ch, 10, { replay: store, maxPendingCount: 3 });
    const singles = [];
    for await (const m of client) {
      singles.push(m);
      if (singles.length === 5) break;
    }
    const it = client.batches();
    const { value: batch } = await it.next();
    assert.equal(batch.length, 5);
    await refillsToBound(client, ch, 5, 3);
    await it.return();
    await client.close();
    assert.equal(ReplayMarker.from(store.get(ch))?.replayId, replayIdOf(singles[4]), "the singles consumed, the batch left in hand not");
  });

  test("a batch that waited for its first message: the core hears of each message once (the bound stays exact)", async () => {
    const ch = channel("u", "WaitBound");
    const client = await withBuffered(ch, 0, { replay: new Map(), maxPendingCount: 3 });
    const it = client.batches({ maxSize: 2 });
    const waiting = it.next();
    await emu.control("publish", { channel: ch, count: 3 });
    const { value: first } = await waiting;
    assert.equal(first.length, 2, "the waiting step's message and one more");
    assert.equal(client.pendingCount, 1);
    await refillsToBound(client, ch, 4, 3);
    await it.return();
    await client.close();
  });
});

describe("an aborted signal", () => {
  for (const kind of ["messages", "batches"]) {
    test(`ends ${kind}() at the next step, with messages still buffered`, async () => {
      const ch = channel("u", "AbortLoop");
      const store = new Map();
      const client = await withBuffered(ch, 50, { replay: store, maxPendingCount: 0 });
      const ac = new AbortController();
      const seen = [];
      const it = kind === "messages" ? client.messages({ signal: ac.signal }) : client.batches({ maxSize: 2, signal: ac.signal });
      for await (const step of it) {
        seen.push(...(kind === "messages" ? [step] : step));
        if (seen.length >= 2) ac.abort(new Error("shutting down"));
      }
      assert.equal(seen.length, 2, "the loop ended at the step after the abort");
      assert.equal(client.pendingCount, 48, "nothing more was taken");
      await client.close();
      assert.equal(ReplayMarker.from(store.get(ch))?.replayId, replayIdOf(seen[1]), "what the loop finished is consumed");
    });
  }

  test("makes receive() reject with its reason even when a message is buffered, taking nothing", async () => {
    const client = await withBuffered(channel("u", "AbortReceive"), 1, { replay: new Map() });
    const ac = new AbortController();
    ac.abort(new Error("gone"));
    await assert.rejects(client.receive({ signal: ac.signal }), /gone/);
    assert.equal(client.pendingCount, 1);
    await client.receive();
    await client.close();
  });
});

describe("markers never move backwards; writes are coalesced", () => {
  test("replaying ALL after a newer marker was stored leaves the stored marker the newest", async () => {
    const ch = channel("event", "Backwards");
    const map = new Map();
    const p = await publish(ch, 10);
    const first = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(map, ReplayOption.ALL_EVENTS) });
    await first.open();
    await first.subscribe(ch);
    await take(first, 10);
    await first.close();
    const newest = ReplayMarker.from(map.get(ch));
    assert.equal(newest?.replayId, p.at(-1));

    // An application re-reads the whole retention window (it asks for ALL_EVENTS whatever is
    // stored) with the same storage: the older events it consumes must not drag the marker back.
    class ReplayAllAgain extends MappingStorage {
      async getReplayStart() {
        return { replayId: ReplayOption.ALL_EVENTS, date: null };
      }
    }
    const second = new SalesforceStreamingClient({ ...login(), replay: new ReplayAllAgain(map) });
    await second.open();
    await second.subscribe(ch);
    const old = await take(second, 4);
    assert.deepEqual(old.map(replayIdOf), p.slice(0, 4));
    await second.close();
    assert.equal(ReplayMarker.from(map.get(ch))?.replayId, p.at(-1), `stored marker moved back to ${JSON.stringify(map.get(ch))}`);
  });

  test("close() during a slow write waits for it, then writes the newest marker", async () => {
    const ch = channel("topic", "SlowWrite");
    const storage = new CountingStorage(() => new Promise((r) => setTimeout(r, 400)));
    const client = new SalesforceStreamingClient({ ...login(), replay: storage });
    await client.open();
    await client.subscribe(ch);
    const p = await publish(ch, 8);
    await take(client, 3);
    await until(() => storage.attempts === 1, { timeout: 3000, what: "the first write started" });
    await take(client, 3);
    await client.close();
    // close() took the six messages as consumed: their marker is written by the time it resolves,
    // although a write of an older marker was still in progress when it was called.
    assert.equal(storage.markers.get(ch)?.replayId, p[5], `stored ${JSON.stringify(storage.history)}`);
    assert.deepEqual(storage.history, [...storage.history].sort((a, b) => a - b), "markers only move forward");
  });

  test("2,000 events consumed quickly cost far fewer than 2,000 writes; the final marker is the last event", async () => {
    const ch = channel("event", "Burst");
    const storage = new CountingStorage();
    const client = new SalesforceStreamingClient({ ...login(), replay: storage, maxPendingCount: 0 });
    await client.open();
    await client.subscribe(ch);
    const p = await publish(ch, 2000);
    const got = await take(client, 2000, { timeout: 60000 });
    assert.deepEqual(got.map(replayIdOf), p);
    await client.close();
    assert.equal(storage.markers.get(ch)?.replayId, p.at(-1));
    assert.ok(storage.writes >= 1 && storage.writes <= 50, `${storage.writes} writes for 2,000 events`);
    const h = storage.history;
    assert.ok(h.every((id, i) => i === 0 || id > h[i - 1]), `written markers only move forward: ${h}`);
  });
});

describe("failing and corrupt storage", () => {
  test("a failing write is reported (storageError) and retried until it succeeds", async () => {
    const ch = channel("topic", "Failing");
    const storage = new CountingStorage((attempt) => {
      if (attempt <= 3) throw new Error("disk full (simulated by the application's storage)");
    });
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), replay: storage, onStatus: (s) => statuses.push(s) });
    await client.open();
    await client.subscribe(ch);
    const p = await publish(ch, 5);
    await take(client, 5);
    await client.receive({ signal: AbortSignal.timeout(10) }).catch(() => {}); // reports the 5th as taken
    await until(() => storage.markers.get(ch)?.replayId === p.at(-1), { timeout: 15000, what: "the retried write" });
    const errors = statuses.filter((s) => s.type === "storageError");
    assert.equal(errors.length, 3, JSON.stringify(errors));
    assert.ok(errors.every((s) => s.channel === ch && /disk full/.test(s.message)), JSON.stringify(errors));
    assert.equal(storage.attempts, 4);
    await client.close();
  });

  test("close() retries a failing write, and reports it if it keeps failing", async () => {
    const ch = channel("topic", "FailingClose");
    const once = new CountingStorage((attempt) => {
      if (attempt === 1) throw new Error("transient");
    });
    const a = new SalesforceStreamingClient({ ...login(), replay: once });
    await a.open();
    await a.subscribe(ch);
    const p = await publish(ch, 2);
    await take(a, 2);
    await a.close(); // the write happens here (no flush tick in between) and is retried
    assert.equal(once.markers.get(ch)?.replayId, p.at(-1));

    let readOnly = true;
    const statuses = [];
    const broken = new CountingStorage(() => {
      if (readOnly) throw new Error("read-only storage");
    });
    const b = new SalesforceStreamingClient({ ...login(), replay: broken, onStatus: (s) => statuses.push(s) });
    await b.open();
    await b.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    const [last] = await take(b, 1);
    await assert.rejects(b.close(), /read-only storage/, "a marker that cannot be stored is not dropped silently");
    assert.ok(statuses.some((s) => s.type === "storageError" && s.channel === ch));
    // After close() has reported the failure, no timer retries in the background (it would keep a
    // Node process alive); the marker stays pending, and the next close() writes it.
    readOnly = false;
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(broken.writes, 0, "no write after close() returned");
    await b.close();
    assert.equal(broken.markers.get(ch)?.replayId, replayIdOf(last), "the second close() wrote the pending marker");
  });

  test("garbage in a Map: storageError status, subscribe without a marker", async () => {
    const garbage = ["not json {", { replayId: "12" }, { foo: 1 }, 42, { replayId: 1.5, date: "x" }];
    for (const value of garbage) {
      const ch = channel("event", "Corrupt");
      const map = new Map([[ch, value]]);
      const statuses = [];
      const client = new SalesforceStreamingClient({ ...login(), replay: map, onStatus: (s) => statuses.push(s) });
      await client.open();
      await client.subscribe(ch);
      const p = await publish(ch, 1);
      assert.equal(replayIdOf((await take(client, 1))[0]), p[0], `${JSON.stringify(value)}: new events flow`);
      await client.close();
      const errs = statuses.filter((s) => s.type === "storageError" && s.channel === ch);
      assert.equal(errs.length, 1, `${JSON.stringify(value)}: corrupt data must be reported, got ${JSON.stringify(statuses.map((s) => s.type))}`);
      assert.equal(ReplayMarker.from(map.get(ch))?.replayId, p[0], "the garbage is replaced by a valid marker");
    }
  });

  // Bug B4 (fixed): corrupt data must not lose the storage's own default (DefaultMappingStorage's
  // defaultId, the edge stores' defaultReplay).
  // A stored replay id Salesforce refuses (0, below -2) is corrupt data too: it used to be taken
  // as a marker, so the default was dropped and the channel subscribed without replay.
  for (const [what, stored] of [
    ["garbage", "{garbage"],
    ["a stored replay id of 0", { replayId: 0, date: null }],
    ["a stored replay id of -5", { replayId: -5, date: "2026-01-01T00:00:00.000Z" }],
  ]) {
    test(`${what} in a DefaultMappingStorage(ALL_EVENTS): reported, then the default applies (no marker = ALL_EVENTS)`, async () => {
      const ch = channel("event", `CorruptDefault${what.replace(/[^a-z0-9]/gi, "")}`);
      const p = await publish(ch, 3);
      const map = new Map([[ch, stored]]);
      const statuses = [];
      const client = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(map, ReplayOption.ALL_EVENTS), onStatus: (s) => statuses.push(s) });
      await client.open();
      await client.subscribe(ch);
      try {
        assert.ok(statuses.some((s) => s.type === "storageError" && s.channel === ch), "reported");
        assert.deepEqual((await take(client, 3, { timeout: 3000 })).map(replayIdOf), p, "replays the window, as with no marker");
      } finally {
        await client.close();
      }
    });
  }

  test("garbage in a DefaultMappingStorage with a replay id as its default: reported, then replayed from that id", async () => {
    const ch = channel("event", "CorruptDefaultId");
    const p = await publish(ch, 4);
    const map = new Map([[ch, "{garbage"]]);
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), replay: new DefaultMappingStorage(map, p[1]), onStatus: (s) => statuses.push(s) });
    await client.open();
    await client.subscribe(ch);
    try {
      assert.ok(statuses.some((s) => s.type === "storageError" && s.channel === ch), "reported");
      assert.deepEqual((await take(client, 2, { timeout: 3000 })).map(replayIdOf), p.slice(2), "the events after the default id");
    } finally {
      await client.close();
    }
  });

  test("garbage from a custom storage: storageError status, subscribe without a marker", async () => {
    const ch = channel("u", "CorruptCustom");
    class Foreign extends ReplayMarkerStorage {
      async getReplayMarker() {
        return { replayId: "not-a-number", date: 17 };
      }
      async setReplayMarker() {}
    }
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), replay: new Foreign(), onStatus: (s) => statuses.push(s) });
    await client.open();
    await client.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    await take(client, 1);
    await client.close();
    assert.ok(statuses.some((s) => s.type === "storageError" && s.channel === ch), JSON.stringify(statuses.map((s) => s.type)));
  });

  test("a storage whose read throws: reported, and subscribe does not crash the client", async () => {
    const ch = channel("u", "ThrowingRead");
    class ThrowingRead extends ReplayMarkerStorage {
      async getReplayMarker() {
        throw new Error("storage offline");
      }
      async setReplayMarker() {}
    }
    const client = new SalesforceStreamingClient({ ...login(), replay: new ThrowingRead() });
    await client.open();
    await assert.rejects(client.subscribe(ch), /storage offline/);
    assert.equal(client.closed, false, "the client stays usable");
    await client.close();
  });
});

describe("retention", () => {
  test("a /topic marker dated 4 days ago takes replayFallback up front (reason retention); events flow", async () => {
    const ch = channel("topic", "Retention");
    const p0 = await publish(ch, 3);
    const fourDaysAgo = new Date(Date.now() - 4 * 24 * 3600 * 1000).toISOString();
    const map = new Map([[ch, { replayId: p0[0], date: fourDaysAgo }]]);
    const statuses = [];
    const client = new SalesforceStreamingClient({
      ...login(),
      replay: map,
      replayFallback: ReplayOption.ALL_EVENTS,
      onStatus: (s) => statuses.push(s),
    });
    await client.open();
    await client.subscribe(ch);
    const fb = statuses.filter((s) => s.type === "replayFallback");
    assert.equal(fb.length, 1, JSON.stringify(statuses.map((s) => s.type)));
    assert.equal(fb[0].reason, "retention");
    assert.equal(fb[0].channel, ch);
    assert.equal(fb[0].replayId, p0[0]);
    assert.equal(fb[0].fallback, ReplayOption.ALL_EVENTS);
    assert.deepEqual((await take(client, 3)).map(replayIdOf), p0, "ALL_EVENTS fallback replays the window");
    await client.close();
    assert.equal(client.stats.replayFallbacks, 1);
  });

  test("a /event marker dated 2 days ago is inside the 72 h window: no fallback", async () => {
    const ch = channel("event", "Retention72");
    const p0 = await publish(ch, 3);
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000).toISOString();
    const map = new Map([[ch, { replayId: p0[0], date: twoDaysAgo }]]);
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), replay: map, replayFallback: ReplayOption.ALL_EVENTS, onStatus: (s) => statuses.push(s) });
    await client.open();
    await client.subscribe(ch);
    assert.deepEqual((await take(client, 2)).map(replayIdOf), p0.slice(1));
    assert.equal(statuses.filter((s) => s.type === "replayFallback").length, 0);
    await client.close();
  });
});

describe("namespacing by org and user", () => {
  test("two users sharing one Workers-KV-like namespace get different keys", async () => {
    const emu2 = await startSfemu(["--hold-timeout", "3000", "--user", "alice@example.com:pw-a", "--user", "bob@example.com:pw-b"]);
    try {
      // The application's KV binding: a Map behind get/put (what a test double of a binding is).
      const backing = new Map();
      const kv = { get: async (k) => backing.get(k) ?? null, put: async (k, v) => void backing.set(k, v) };
      const ch = "/topic/SharedNamespace";
      const ids = {};
      for (const [username, password, n] of [["alice@example.com", "pw-a", 2], ["bob@example.com", "pw-b", 4]]) {
        const client = new SalesforceStreamingClient({ ...CREDENTIALS, username, password, loginUrl: emu2.url, replay: new WorkersKvReplayStorage(kv) });
        await client.open();
        await client.subscribe(ch);
        await emu2.control("publish", { channel: ch, count: n });
        const got = (await take(client, n)).map(replayIdOf);
        await client.close();
        ids[username] = got;
      }
      const keys = [...backing.keys()].sort();
      assert.equal(keys.length, 2, `keys: ${keys}`);
      for (const k of keys) assert.match(k, /^sfstream\/00D\w+\/005\w+\/\/topic\/SharedNamespace$/);
      const [org1, user1] = keys[0].split("/").slice(1, 3);
      const [org2, user2] = keys[1].split("/").slice(1, 3);
      assert.equal(org1, org2, "same org");
      assert.notEqual(user1, user2, "different users");
      const values = keys.map((k) => ReplayMarker.from(backing.get(k))?.replayId).sort((a, b) => a - b);
      assert.deepEqual(values, [ids["alice@example.com"].at(-1), ids["bob@example.com"].at(-1)].sort((a, b) => a - b));

      // Alice resumes from her own marker, not Bob's newer one.
      const p = await emu2.control("publish", { channel: ch, count: 1 });
      // Bob's four events are newer than Alice's marker: she gets them, then the new one.
      const alice = new SalesforceStreamingClient({ ...CREDENTIALS, username: "alice@example.com", password: "pw-a", loginUrl: emu2.url, replay: new WorkersKvReplayStorage(kv) });
      await alice.open();
      await alice.subscribe(ch);
      const got = await take(alice, 5);
      assert.deepEqual(got.map(replayIdOf), [...ids["bob@example.com"], p.lastReplayId]);
      await alice.close();
    } finally {
      await emu2.stop();
    }
  });

  test("AccessTokenAuthenticator: the token's id keeps users apart; without one, every user of the instance shares the host's keys", async () => {
    const emu2 = await startSfemu(["--hold-timeout", "3000", "--user", "alice@example.com:pw-a", "--user", "bob@example.com:pw-b"]);
    try {
      const backing = new Map();
      const kv = { get: async (k) => backing.get(k) ?? null, put: async (k, v) => void backing.set(k, v) };
      const ch = "/topic/TokenIdentity";
      const run = async (username, withId) => {
        const g = await emu2.control("token", { username });
        const source = { accessToken: g.access_token, instanceUrl: g.instance_url, ...(withId ? { id: g.id } : {}) };
        const client = new Client(new AccessTokenAuthenticator(source), { replay: new WorkersKvReplayStorage(kv) });
        await client.open();
        await client.subscribe(ch);
        await emu2.control("publish", { channel: ch, count: 1 });
        await take(client, 1);
        await client.close();
      };
      await run("alice@example.com", true);
      await run("bob@example.com", true);
      const keys = [...backing.keys()].sort();
      assert.equal(keys.length, 2, `keys: ${keys}`);
      for (const k of keys) assert.match(k, /^sfstream\/00D\w+\/005\w+\/\/topic\/TokenIdentity$/);
      backing.clear();
      await run("alice@example.com", false);
      await run("bob@example.com", false);
      assert.deepEqual([...backing.keys()], [`sfstream/127.0.0.1/-/${ch}`], "no identity: one key for the instance");
    } finally {
      await emu2.stop();
    }
    // An id that is not an identity URL is refused, naming id.
    assert.throws(() => new AccessTokenAuthenticator({ accessToken: "00Dx!t", instanceUrl: "https://example.my.salesforce.com", id: "alice" }), (e) => e instanceof TypeError && /^id must be the identity URL/.test(e.message));
  });

  test("Workers KV takes one write per key per second: a fast drain then close() stores the last marker without a refusal", { timeout: 30000 }, async () => {
    // Workers KV refuses (429) a write to a key written less than a second before; the stand-in
    // below does the same. The client writes markers up to five times a second, and close()
    // retried its flush three times back to back: before, close() rejected and the stored
    // marker lagged (events came again on the next run).
    const backing = new Map();
    const lastPut = new Map();
    const kv = {
      get: async (k) => backing.get(k) ?? null,
      put: async (k, v) => {
        const now = Date.now();
        if (now - (lastPut.get(k) ?? -Infinity) < 1000) throw new Error("KV PUT failed: 429 Too Many Requests");
        lastPut.set(k, now);
        backing.set(k, v);
      },
    };
    const statuses = [];
    const client = new SalesforceStreamingClient({ ...login(), replay: new WorkersKvReplayStorage(kv, { namespace: "kv-rate" }), onStatus: (s) => statuses.push(s) });
    await client.open();
    const ch = channel("topic", "KvRate");
    await client.subscribe(ch);
    const published = await emu.control("publish", { channel: ch, count: 60 });
    const signal = AbortSignal.timeout(15000);
    for (let i = 0; i < 60; i++) {
      await client.receive({ signal });
      await new Promise((r) => setTimeout(r, 25)); // the application's work: markers advance for 1.5 s
    }
    await client.close();
    assert.deepEqual(statuses.filter((s) => s.type === "storageError").map((s) => s.message), []);
    assert.equal(JSON.parse(backing.get(`sfstream/kv-rate/${ch}`)).replayId, published.lastReplayId);
  });

  test("a fixed namespace option overrides the identity", async () => {
    const backing = new Map();
    const kv = { get: async (k) => backing.get(k) ?? null, put: async (k, v) => void backing.set(k, v) };
    const grant = await emu.control("token", { username: CREDENTIALS.username });
    const client = new Client(new AccessTokenAuthenticator({ accessToken: grant.access_token, instanceUrl: grant.instance_url }), {
      replay: new WorkersKvReplayStorage(kv, { namespace: "tenant-7", prefix: "app:" }),
    });
    await client.open();
    const ch = channel("u", "Fixed");
    await client.subscribe(ch);
    await emu.control("publish", { channel: ch, count: 1 });
    await take(client, 1);
    await client.close();
    assert.deepEqual([...backing.keys()], [`app:tenant-7/${ch}`]);
  });
});
