// Durable replay scenarios in a real Chromium page (tests/storage/run.mjs drives them). The
// storages are the package's own native backends (localStorage, IndexedDB) implemented in the wasm
// shell; the page reads localStorage / IndexedDB directly to check what was written.
import {
  SalesforceStreamingClient,
  ReplayOption,
  ReplayMarker,
  LocalStorageReplayStorage,
  IndexedDbReplayStorage,
} from "./sfstream/dist/browser.js";
import { check, control } from "./helpers.js";

async function take(client, n, timeout = 15000) {
  const signal = AbortSignal.timeout(timeout);
  const out = [];
  try {
    for (let i = 0; i < n; i++) out.push((await client.receive({ signal })).data.event.replayId);
  } catch (e) {
    throw new Error(`got ${out.length} of ${n} events (${e?.name}: ${e?.message})`, { cause: e });
  }
  return out;
}

async function quiet(client, ms = 400) {
  try {
    const m = await client.receive({ signal: AbortSignal.timeout(ms) });
    throw new Error(`unexpected event ${m.data.event.replayId}`);
  } catch (e) {
    if (e?.name !== "TimeoutError") throw e;
  }
}

/** The replay ids of everything published on `ch` (a reference consumer replaying ALL_EVENTS). */
async function allIds(creds, ch, last) {
  const ref = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: ReplayOption.ALL_EVENTS, maxPendingCount: 0 });
  await ref.open();
  try {
    await ref.subscribe(ch);
    const ids = [];
    const signal = AbortSignal.timeout(30000);
    while (ids.at(-1) !== last) ids.push((await ref.receive({ signal })).data.event.replayId);
    return ids;
  } finally {
    await ref.close();
  }
}

export function makeStorage(kind, options = {}) {
  if (kind === "localStorage") return new LocalStorageReplayStorage(options);
  if (kind === "indexedDB") return new IndexedDbReplayStorage(options);
  throw new Error(`unknown storage kind ${kind}`);
}

/** Every key/value of an IndexedDB database's "markers" store, read directly. */
export async function idbDump(database = "sfstream") {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open(database);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  try {
    if (!db.objectStoreNames.contains("markers")) return {};
    const tx = db.transaction("markers", "readonly");
    const store = tx.objectStore("markers");
    const [keys, values] = await Promise.all(
      [store.getAllKeys(), store.getAll()].map((req) => new Promise((resolve, reject) => {
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      })),
    );
    return Object.fromEntries(keys.map((k, i) => [k, values[i]]));
  } finally {
    db.close();
  }
}

function lsDump(prefix) {
  const out = {};
  for (let i = 0; i < localStorage.length; i++) {
    const k = localStorage.key(i);
    if (k.startsWith(prefix)) out[k] = localStorage.getItem(k);
  }
  return out;
}

async function dump(kind, options) {
  return kind === "localStorage" ? lsDump(options.prefix ?? "sfstream/") : idbDump(options.database ?? "sfstream");
}

/**
 * A first consumer takes 3 of 6 events and closes; the stored marker (read directly from the
 * browser storage, under <prefix><orgId>/<userId>/<channel>) is the 3rd; a second consumer
 * resumes with the 4th, then gets new events, and no more.
 */
export async function resume(creds, kind, ch, options = {}) {
  const p1 = await control("publish", { channel: ch, count: 6 });
  const ids1 = await allIds(creds, ch, p1.lastReplayId);
  const first = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: makeStorage(kind, { defaultReplay: ReplayOption.ALL_EVENTS, ...options }) });
  await first.open();
  await first.subscribe(ch);
  const got1 = await take(first, 3);
  check(JSON.stringify(got1) === JSON.stringify(ids1.slice(0, 3)), `first consumer ${got1} vs ${ids1}`);
  await first.close();
  const stored = Object.entries(await dump(kind, options)).filter(([k]) => k.endsWith(`/${ch}`));
  check(stored.length === 1, `one stored marker for ${ch}: ${JSON.stringify(stored)}`);
  const [key, value] = stored[0];
  const prefix = kind === "localStorage" ? (options.prefix ?? "sfstream/") : "";
  check(key.startsWith(prefix) && /^00D\w+\/005\w+\/\/\w+\//.test(key.slice(prefix.length)), `key <prefix><orgId>/<userId>/<channel>: ${key}`);
  check(ReplayMarker.from(value)?.replayId === ids1[2], `stored ${value}, expected ${ids1[2]}`);

  const p2 = await control("publish", { channel: ch, count: 2 });
  const ids2 = (await allIds(creds, ch, p2.lastReplayId)).slice(6);
  const second = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: makeStorage(kind, { defaultReplay: ReplayOption.ALL_EVENTS, ...options }) });
  await second.open();
  await second.subscribe(ch);
  const got2 = await take(second, 5);
  check(JSON.stringify(got2) === JSON.stringify([...ids1.slice(3), ...ids2]), `second consumer ${got2} vs ${[...ids1.slice(3), ...ids2]}`);
  await quiet(second);
  await second.close();
  return { key, stored: ReplayMarker.from((await dump(kind, options))[key])?.replayId, last: ids2.at(-1) };
}

/** Two users in one browser: their markers live under different keys, each resumes from its own. */
export async function twoUsers(users, kind, ch, options = {}) {
  const keys = {};
  for (const creds of users) {
    const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: makeStorage(kind, options) });
    await client.open();
    await client.subscribe(ch);
    await control("publish", { channel: ch, count: 1 });
    const [id] = await take(client, 1);
    await client.close();
    keys[creds.username] = id;
  }
  const stored = Object.entries(await dump(kind, options)).filter(([k]) => k.endsWith(`/${ch}`));
  check(stored.length === users.length, `one key per user: ${JSON.stringify(stored)}`);
  const values = stored.map(([, v]) => ReplayMarker.from(v)?.replayId).sort((a, b) => a - b);
  const expected = Object.values(keys).sort((a, b) => a - b);
  check(JSON.stringify(values) === JSON.stringify(expected), `markers ${values} vs ${expected}`);
  return stored.map(([k]) => k);
}

/** Corrupt data under the key: a storageError status, and the subscription starts without it. */
export async function corrupt(creds, kind, ch, options = {}, garbage = "{not json") {
  // Learn the key with a first, valid run.
  const first = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: makeStorage(kind, options) });
  await first.open();
  await first.subscribe(ch);
  await control("publish", { channel: ch, count: 1 });
  await take(first, 1);
  await first.close();
  const [key] = Object.keys(await dump(kind, options)).filter((k) => k.endsWith(`/${ch}`));
  check(key, "a key was written");
  if (kind === "localStorage") localStorage.setItem(key, garbage);
  else {
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open(options.database ?? "sfstream");
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    await new Promise((resolve, reject) => {
      const tx = db.transaction("markers", "readwrite");
      tx.objectStore("markers").put(garbage, key);
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
    db.close();
  }
  const statuses = [];
  const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay: makeStorage(kind, options), onStatus: (s) => statuses.push(s) });
  await client.open();
  await client.subscribe(ch);
  const p = await control("publish", { channel: ch, count: 1 });
  const [id] = await take(client, 1);
  check(id === p.lastReplayId, `new events flow: ${id} vs ${p.lastReplayId}`);
  await client.close();
  const errs = statuses.filter((s) => s.type === "storageError" && s.channel === ch);
  check(errs.length === 1, `one storageError status: ${JSON.stringify(statuses.map((s) => s.type))}`);
  check(ReplayMarker.from((await dump(kind, options))[key])?.replayId === id, "the corrupt value was replaced by a valid marker");
  return errs[0].message;
}

// ---- the reload scenario -------------------------------------------------------------------
// The consumer records each processed replay id in sessionStorage (synchronous, survives a
// reload) BEFORE asking for the next message; under the automatic policy asking for the next
// message is what lets the marker advance, so a reload at any point loses nothing.

const CONSUMER_KEY = "sfstream-test-consumer";
const PROCESSED_KEY = "sfstream-test-processed";

export function processed() {
  return JSON.parse(sessionStorage.getItem(PROCESSED_KEY) ?? "[]");
}

/** Start the consumer (and remember its configuration for after a reload). */
export function startConsumer(config) {
  sessionStorage.setItem(CONSUMER_KEY, JSON.stringify(config));
  sessionStorage.setItem(PROCESSED_KEY, "[]");
  window.sfstreamConsumer = runConsumer(config);
  return true;
}

export function resumeConsumerAfterReload() {
  const config = sessionStorage.getItem(CONSUMER_KEY);
  if (config !== null) window.sfstreamConsumer = runConsumer(JSON.parse(config));
}

export function stopConsumer() {
  sessionStorage.removeItem(CONSUMER_KEY);
  window.sfstreamStop?.();
}

async function runConsumer({ creds, kind, ch, options = {}, delayMs = 0 }) {
  const state = { starts: Number(sessionStorage.getItem(`${CONSUMER_KEY}-starts`) ?? 0) + 1, error: null, statuses: [] };
  sessionStorage.setItem(`${CONSUMER_KEY}-starts`, String(state.starts));
  window.sfstreamConsumerState = state;
  const stop = new AbortController();
  window.sfstreamStop = () => stop.abort();
  const client = new SalesforceStreamingClient({
    ...creds,
    loginUrl: location.origin,
    replay: makeStorage(kind, { defaultReplay: ReplayOption.ALL_EVENTS, ...options }),
    maxPendingCount: 200,
    onStatus: (s) => state.statuses.push(s.type),
  });
  try {
    await client.open();
    await client.subscribe(ch);
    state.subscribed = true;
    for await (const m of client.messages({ signal: stop.signal })) {
      const list = processed();
      list.push(m.data.event.replayId);
      sessionStorage.setItem(PROCESSED_KEY, JSON.stringify(list));
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    }
    await client.close();
    state.closed = true;
  } catch (e) {
    state.error = String(e?.stack ?? e);
  }
}

export { allIds, control };

// ---- measurements (tests/storage/bench.mjs) ----------------------------------------------------
// Writes are counted by wrapping the browser's own Storage.setItem / IDBObjectStore.put (the
// platform, not the package), for the time of one run.
let writeCount = 0;
let writeMs = 0;
function countWrites() {
  const ls = Storage.prototype.setItem;
  const idb = IDBObjectStore.prototype.put;
  Storage.prototype.setItem = function (...a) {
    writeCount++;
    const t = performance.now();
    try {
      return ls.apply(this, a);
    } finally {
      writeMs += performance.now() - t;
    }
  };
  IDBObjectStore.prototype.put = function (...a) {
    writeCount++;
    return idb.apply(this, a);
  };
  return () => {
    Storage.prototype.setItem = ls;
    IDBObjectStore.prototype.put = idb;
  };
}

/** Consume `n` retained events of `ch` (ALL_EVENTS) with `kind` ("none", "localStorage", "indexedDB"); time from subscribe to close. */
export async function bench(creds, kind, ch, n, run, paced = false) {
  const replay = kind === "none" ? ReplayOption.ALL_EVENTS : makeStorage(kind, { defaultReplay: ReplayOption.ALL_EVENTS, prefix: kind === "localStorage" ? `bench${run}/` : undefined, database: kind === "indexedDB" ? `bench${run}` : undefined });
  const client = new SalesforceStreamingClient({ ...creds, loginUrl: location.origin, replay });
  await client.open();
  writeCount = 0;
  writeMs = 0;
  const restore = countWrites();
  try {
    const t0 = performance.now();
    await client.subscribe(ch);
    const signal = AbortSignal.timeout(120000);
    for (let i = 0; i < n; i++) {
      await client.receive({ signal });
      if (paced && i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    await client.close();
    return { ms: performance.now() - t0, writes: writeCount, writeMs: kind === "localStorage" ? writeMs : null };
  } finally {
    restore();
  }
}

/** Mean time of one IndexedDB marker write as the shell does it (one readwrite transaction, until complete). */
export async function idbWriteCost(count = 200) {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open("bench-write-cost", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("markers");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    await new Promise((resolve, reject) => {
      const tx = db.transaction("markers", "readwrite");
      tx.objectStore("markers").put(JSON.stringify({ replayId: i, date: new Date().toISOString() }), "00D/005//event/X__e");
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
  }
  const ms = (performance.now() - t0) / count;
  db.close();
  return ms;
}
