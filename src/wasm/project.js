// The wasm shell's JavaScript side (src/wasm/client.rs decides, this performs):
// * the per-response projection (see ARCHITECTURE.md, "Messages do not cross the boundary twice").
//   JS has already parsed the response; this walks the array once and hands Rust only what the
//   protocol core needs: for events a channel index, the replay id and the event date as numbers;
//   for meta replies a handful of strings. Event objects themselves never enter Rust. Types are
//   validated here, so a hostile body can never make a wasm getter throw.
// * one HTTP exchange (`sfRequest`) and promise continuations (`sfSettle`), so that the shell
//   needs no Rust futures: their executor and state machines were a third of the wasm module.

const EVENT_STRIDE = 3;
export const KIND_OTHER = -1;
export const KIND_META = -2;
/**
 * Most distinct event channel names the table holds. The table starts again before a response
 * whose messages might not all fit (its indices mean something only within one response), so a
 * client that meets more names over its life loses nothing, and a hostile server cannot grow
 * the table without bound (names past this many in one response are not tracked).
 */
const MAX_CHANNELS = 4096;

/** A channel-name table shared by one client and its Rust side: name -> index. */
export function sfNewTable() {
  return new Map();
}

function str(v) {
  return typeof v === "string" ? v : undefined;
}

function idString(v) {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  return undefined;
}

/** The latest time a Date holds: a later "date" from a server is no date. */
const MAX_DATE_MS = 8.64e15;

function dateOf(data) {
  const ev = data.event;
  if (ev !== null && typeof ev === "object" && typeof ev.createdDate === "string") {
    return Date.parse(ev.createdDate);
  }
  const p = data.payload;
  if (p !== null && typeof p === "object") {
    const h = p.ChangeEventHeader;
    if (h !== null && typeof h === "object" && typeof h.commitTimestamp === "number") {
      const t = h.commitTimestamp;
      return t > 0 && t <= MAX_DATE_MS ? t : NaN;
    }
    if (typeof p.CreatedDate === "string") return Date.parse(p.CreatedDate);
  }
  return NaN;
}

/** A replay id as a number: a safe integer, or a BigInt one (from a BigInt-preserving jsonParse). */
function replayIdOf(v) {
  if (Number.isSafeInteger(v)) return v;
  if (typeof v === "bigint" && v >= -9007199254740991n && v <= 9007199254740991n) return Number(v);
  if (v !== null && typeof v === "object" && typeof v.valueOf === "function") {
    // lossless-json's LosslessNumber and the like: a number kept as its text.
    const n = Number(v.valueOf());
    if (Number.isSafeInteger(n)) return n;
  }
  return NaN;
}

// Meta layout, 13 slots per message:
// [position, channel, successful(1|0|-1), error, clientId, id, subscription,
//  reconnect, interval(number|-1), timeout(number|-1), multipleClients(1|0), failureReason, longPolling(1|0|-1)]
function pushMeta(out, i, m) {
  let reconnect;
  let interval = -1;
  let timeout = -1;
  let multiple = 0;
  const a = m.advice;
  if (a !== null && typeof a === "object") {
    reconnect = str(a.reconnect);
    if (typeof a.interval === "number" && a.interval >= 0) interval = a.interval;
    if (typeof a.timeout === "number" && a.timeout >= 0) timeout = a.timeout;
    if (a["multiple-clients"] === true) multiple = 1;
  }
  let failure;
  const ext = m.ext;
  if (ext !== null && typeof ext === "object") {
    const sfdc = ext.sfdc;
    if (sfdc !== null && typeof sfdc === "object") failure = str(sfdc.failureReason);
  }
  let lp = -1;
  if (Array.isArray(m.supportedConnectionTypes)) {
    lp = m.supportedConnectionTypes.includes("long-polling") ? 1 : 0;
  }
  out.push(
    i,
    m.channel,
    m.successful === true ? 1 : m.successful === false ? 0 : -1,
    str(m.error),
    str(m.clientId),
    idString(m.id),
    str(m.subscription),
    reconnect,
    interval,
    timeout,
    multiple,
    failure,
    lp,
  );
}

/**
 * Project one parsed response. Returns null when the body is not an array.
 * `ev` holds EVENT_STRIDE numbers per message: kind-or-channel-index, replayId (NaN if none), date ms (NaN if none).
 * `base`: the index of the first of `newChans` (0 when the table started again: the Rust mirror
 * keeps its first `base` names, then appends `newChans`).
 */
export function sfProject(body, table) {
  if (!Array.isArray(body)) return null;
  const n = body.length;
  if (table.size > 0 && table.size + n > MAX_CHANNELS) table.clear();
  const base = table.size;
  const ev = new Float64Array(n * EVENT_STRIDE);
  let metas = null;
  let newChans = null;
  for (let i = 0; i < n; i++) {
    const m = body[i];
    const o = i * EVENT_STRIDE;
    ev[o + 1] = NaN;
    ev[o + 2] = NaN;
    if (m === null || typeof m !== "object" || Array.isArray(m) || typeof m.channel !== "string") {
      ev[o] = KIND_OTHER;
      continue;
    }
    const ch = m.channel;
    const data = m.data;
    if (ch.startsWith("/meta/") || (data === undefined && (typeof m.successful === "boolean" || typeof m.error === "string"))) {
      ev[o] = KIND_META;
      if (metas === null) metas = [];
      pushMeta(metas, i, m);
      continue;
    }
    if (data === undefined) {
      ev[o] = KIND_OTHER;
      continue;
    }
    let idx = table.get(ch);
    if (idx === undefined) {
      // A hostile server could send a new channel name in every reply: the table (and its Rust
      // mirror) is bounded. Salesforce sends only subscribed channels, far fewer than this.
      if (table.size >= MAX_CHANNELS) {
        ev[o] = KIND_OTHER;
        continue;
      }
      idx = table.size;
      table.set(ch, idx);
      if (newChans === null) newChans = [];
      newChans.push(ch);
    }
    ev[o] = idx;
    if (data !== null && typeof data === "object") {
      const e = data.event;
      if (e !== null && typeof e === "object") ev[o + 1] = replayIdOf(e.replayId);
      ev[o + 2] = dateOf(data);
    }
  }
  return { ev, metas, newChans, base };
}

/** Every Set-Cookie header of a response, where the runtime exposes them (not in browsers). */
export function sfSetCookies(headers) {
  if (typeof headers.getSetCookie === "function") return headers.getSetCookie();
  if (typeof headers.getAll === "function") {
    try {
      return headers.getAll("Set-Cookie");
    } catch {
      return [];
    }
  }
  return [];
}

/**
 * Run `fn` in a later macrotask. The shell starts the next long-poll this way, so that the events
 * of a response reach the application before the next request is set up.
 */
export function sfDefer(fn) {
  if (typeof setImmediate === "function") setImmediate(fn);
  else setTimeout(fn, 0);
}

/**
 * `p`, or a rejection with `new Error(message)` if it has not settled within `ms` (a storage call
 * that never answers must not stop every later write, nor `close()`).
 */
export function sfWithin(p, ms, message) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([Promise.resolve(p), late]).finally(() => clearTimeout(timer));
}

/**
 * A signal that aborts after `ms`, or when `outer` (an AbortSignal, or anything else for none)
 * aborts, with that signal's reason. `AbortSignal.any` where the runtime has it.
 */
export function sfTimeoutOr(ms, outer) {
  const timeout = AbortSignal.timeout(ms);
  if (outer === null || typeof outer !== "object" || typeof outer.addEventListener !== "function" || typeof outer.aborted !== "boolean") {
    return timeout;
  }
  if (typeof AbortSignal.any === "function") return AbortSignal.any([timeout, outer]);
  const c = new AbortController();
  const abort = (s) => () => c.abort(s.reason);
  if (outer.aborted) c.abort(outer.reason);
  else {
    outer.addEventListener("abort", abort(outer), { once: true });
    timeout.addEventListener("abort", abort(timeout), { once: true });
  }
  return c.signal;
}

/**
 * Call `cb(true, value)` or `cb(false, reason)` once `p` settles (a value that is not a promise
 * counts as resolved). The returned promise adopts what `cb` returns, or rejects with what it throws.
 */
export function sfSettle(p, cb) {
  return Promise.resolve(p).then(
    (v) => cb(true, v),
    (e) => cb(false, e),
  );
}

// What `sfRequest` reports; src/wasm/client.rs turns each into the core's outcome.
/** `value` is the parsed body. */
const OUTCOME_BODY = 0;
/** The body is not JSON (`value`: the error). */
const OUTCOME_NOT_JSON = 1;
/** The request's timer aborted it. */
const OUTCOME_TIMEOUT = 2;
/** The fetch failed (`value`: the error). */
const OUTCOME_FAILED = 3;
/** The fetch resolved to something that is not an object. */
const OUTCOME_NO_RESPONSE = 4;
/** The declared body is above the cap. */
const OUTCOME_TOO_LARGE = 5;
/** A redirect whose status the runtime hides (a browser's "opaqueredirect"); never followed. */
const OUTCOME_REDIRECT = 6;

/** The largest response body the client accepts (a hostile server must not exhaust memory). */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Whether the declared Content-Length (a string of digits; anything else declares nothing) is above the cap. */
function declaredTooLarge(headers) {
  let v;
  try {
    v = headers.get("content-length");
  } catch {
    return false;
  }
  if (v === null || v === undefined) return false;
  const m = /^\+?0*([0-9]+)$/.exec(String(v).trim());
  if (m === null) return false;
  // The cap has 8 digits: a longer number is above it (and may be beyond a Number's precision).
  return m[1].length > 8 || Number(m[1]) > MAX_RESPONSE_BYTES;
}

/**
 * One POST of the shell: `fetchFn(url, init)` (the global `fetch` when `fetchFn` is undefined),
 * aborted through `controller` (whose signal is in `init`) after `timeoutMs`. The body is read with
 * `json()`, or with `text()` and `jsonParse`. Calls `done(id, outcome, status, value, cookies)`
 * exactly once, after the timer is cleared.
 */
export function sfRequest(fetchFn, url, init, controller, timeoutMs, jsonParse, id, done) {
  const state = { timedOut: false };
  // `timeoutMs` comes clamped to what setTimeout takes (the shell's clamp_delay).
  const timer = setTimeout(() => {
    state.timedOut = true;
    controller.abort();
  }, timeoutMs);
  const report = (r) => {
    clearTimeout(timer);
    done(id, r[0], r[1], r[2], r[3]);
  };
  exchange(fetchFn, url, init, controller, jsonParse, state).then(report, (e) => report(failed(state, e)));
}

function failed(state, e) {
  return [state.timedOut ? OUTCOME_TIMEOUT : OUTCOME_FAILED, undefined, e, undefined];
}

/** `[outcome, status, value, cookies]` of one exchange. */
async function exchange(fetchFn, url, init, controller, jsonParse, state) {
  let resp;
  try {
    resp = await (fetchFn === undefined ? fetch(url, init) : fetchFn(url, init));
  } catch (e) {
    return failed(state, e);
  }
  if (resp === null || typeof resp !== "object") return [OUTCOME_NO_RESPONSE];
  if (resp.type === "opaqueredirect") return [OUTCOME_REDIRECT];
  const status = resp.status;
  const headers = resp.headers;
  const cookies = sfSetCookies(headers);
  // A declared body above the cap is refused before it is read (Salesforce's batches are about
  // 10 MB at most); the Node transport also enforces the cap while reading.
  if (declaredTooLarge(headers)) {
    controller.abort();
    return [OUTCOME_TOO_LARGE];
  }
  // A body that cannot be read (the connection dropped halfway: a TypeError in every runtime)
  // is a failed exchange; only a body that was read and is not JSON is "not JSON".
  if (jsonParse === undefined) {
    try {
      return [OUTCOME_BODY, status, await resp.json(), cookies];
    } catch (e) {
      if (state.timedOut || controller.signal.aborted || !(e instanceof SyntaxError)) return failed(state, e);
      return [OUTCOME_NOT_JSON, status, e, cookies];
    }
  }
  let text;
  try {
    text = await resp.text();
  } catch (e) {
    return failed(state, e);
  }
  try {
    // The application's JSON parser (the seed's json_loads) reads the text.
    return [OUTCOME_BODY, status, jsonParse(text), cookies];
  } catch (e) {
    return [OUTCOME_NOT_JSON, status, e, cookies];
  }
}
