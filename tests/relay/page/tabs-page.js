// One tab of the shared-connection test: a SharedTabClient from the packed package, pointed at the
// relay. Every message this tab receives is recorded; the harness reads them back.
import * as sfstream from "./sfstream/dist/browser.js";

// The browser entry re-exports SharedTabClient once the package wires it (checked by the harness);
// until then the packed dist/tabs.js, which shares the same initialised wasm module.
const exported = typeof sfstream.SharedTabClient === "function";
const { SharedTabClient } = exported ? sfstream : await import("./sfstream/dist/tabs.js");
const { AccessTokenAuthenticator, AuthenticationError, ClientInvalidOperation, ServerError, SfstreamError, TransportTimeoutError } = sfstream;

let client = null;
const got = [];
const roles = [];
const statuses = [];
let failure = null;
/** What the tokenOnFailed hook's open() came to: null, "pending", "open" or its error. */
let reopened = null;
// The session token the tab's authenticator hands out; setToken() changes it (an expired session).
let token = null;
/** The page lifecycle as this page saw it: pageshow events with `persisted`. */
const shown = [];
addEventListener("pageshow", (e) => shown.push(e.persisted));
// For the page navigated to: whether this page went into the back/forward cache.
addEventListener("pagehide", (e) => sessionStorage.setItem("sfstream-test-pagehide", String(e.persisted)));
/** A call started by startCall(), settled or not. */
let started = null;

/** What an error is, as the harness can read it: its name, message, classes and fields. */
function describe(e) {
  return {
    name: e?.name,
    message: e?.message,
    instanceOf: {
      SfstreamError: e instanceof SfstreamError,
      AuthenticationError: e instanceof AuthenticationError,
      ClientInvalidOperation: e instanceof ClientInvalidOperation,
      ServerError: e instanceof ServerError,
      TransportTimeoutError: e instanceof TransportTimeoutError,
    },
    error: e?.error ?? null,
    errorCode: e?.errorCode ?? null,
    errorMessage: e?.errorMessage ?? null,
    status: e?.status ?? null,
  };
}

export const tabTest = {
  exported,
  /**
   * Open this tab's client and subscribe. `hooks.closeOnRole`: close the client from the status
   * listener as soon as this tab gets that role; `hooks.batchSize`: consume with
   * `batches({ maxSize })` instead of `for await` over the client.
   */
  async open(relayUrl, sessionToken, channel, options = {}, hooks = {}) {
    token = sessionToken;
    client = new SharedTabClient(new AccessTokenAuthenticator(async () => ({ accessToken: token, instanceUrl: relayUrl })), {
      connectionTimeout: 8000,
      onStatus: (s) => {
        if (s.type === "role") roles.push(s.role);
        if (s.type === "role" && s.role === hooks.closeOnRole) void client.close();
        // A supervisor written the Client way: on failure, a good token, then close() and open().
        if (s.type === "failed" && hooks.tokenOnFailed) {
          token = hooks.tokenOnFailed;
          void client.close();
          reopened = "pending";
          client.open().then(
            () => (reopened = "open"),
            (e) => (reopened = `${e?.name}: ${e?.message}`),
          );
        }
        statuses.push(s.type === "failed" ? `failed: ${s.error?.name}: ${s.error?.message}` : s.type === "reconnecting" ? `reconnecting ${s.reason}` : s.type);
      },
      ...options,
    });
    try {
      await client.open();
    } catch (e) {
      return { role: client.role, key: client.key, error: describe(e) };
    }
    for (const ch of Array.isArray(channel) ? channel : [channel]) await client.subscribe(ch);
    if (hooks.consume === false) return { role: client.role, key: client.key };
    void (async () => {
      try {
        if (hooks.batchSize) {
          for await (const batch of client.batches({ maxSize: hooks.batchSize })) {
            if (batch.length < 1 || batch.length > hooks.batchSize) throw new Error(`a batch of ${batch.length}`);
            for (const m of batch) got.push({ channel: m.channel, replayId: m.data.event.replayId });
          }
        } else {
          for await (const m of client) got.push({ channel: m.channel, replayId: m.data.event.replayId });
        }
      } catch (e) {
        failure = `${e.name}: ${e.message}`;
        tabTest.failureError = describe(e);
      }
    })();
    return { role: client.role, key: client.key };
  },
  failureError: null,
  /**
   * A tab whose authenticator never answers (shared mode, no key: open() must log in to learn
   * whose connection to share): what open() does at `connectionTimeout`, and on close() during it.
   */
  async hangingLogin(relayUrl) {
    const signals = [];
    const hang = new AccessTokenAuthenticator((signal) => {
      signals.push(signal);
      return new Promise(() => {});
    });
    // Bounded: a login nothing aborts would keep open() pending for ever.
    const late = (what) => new Promise((r) => setTimeout(() => r({ late: what }), 3000));
    const timed = new SharedTabClient(hang, { connectionTimeout: 300, leaderTimeout: 20000 });
    const t0 = performance.now();
    const deadline = await Promise.race([timed.open().then(() => ({ resolved: true }), (e) => describe(e)), late("open() was still pending after 3 s")]);
    deadline.ms = Math.round(performance.now() - t0);
    deadline.aborted = signals[0]?.aborted === true;
    await timed.close();
    const closing = new SharedTabClient(hang, { connectionTimeout: null });
    const opening = closing.open().then(() => ({ resolved: true }), (e) => describe(e));
    await new Promise((r) => setTimeout(r, 50));
    await Promise.race([closing.close(), late("close() did not settle")]);
    const closed = await Promise.race([opening, late("open() did not settle within 3 s of close()")]);
    closed.aborted = signals[1]?.aborted === true;
    return { deadline, closed, signalPassed: signals.every((x) => x instanceof AbortSignal) };
  },
  /**
   * (A client opened with `hooks.consume: false`.) Start a step of `messages()` or `batches()`,
   * end the iteration while it waits, and report what the step resolved to.
   */
  async returnWhileWaiting(kind) {
    const it = kind === "batches" ? client.batches() : client.messages();
    // Two steps waiting (next() called without awaiting, as a Promise.race loop does): return()
    // must end both, or the next message would go to an ended iteration.
    const steps = [it.next(), it.next()];
    await new Promise((r) => setTimeout(r, 50));
    // Bounded: an async generator's return() waits for the pending step, which may never come.
    const late = (what) => new Promise((r) => setTimeout(() => r({ late: what }), 2000));
    const ended = await Promise.race([it.return().then(() => null), late("return() did not settle within 2 s")]);
    if (ended) return ended;
    for (const [i, step] of steps.entries()) {
      const r = await Promise.race([step, late(`waiting step ${i + 1} did not settle within 2 s`)]);
      if (r.late || !r.done || r.value !== undefined) return r.late ? r : { step: i + 1, done: r.done, value: JSON.stringify(r.value) };
    }
    return { done: true, value: null };
  },
  /** The next message, as `{ channel, replayId }`, waiting at most `ms`. */
  async receiveOne(ms) {
    const m = await client.receive({ signal: AbortSignal.timeout(ms) });
    return { channel: m.channel, replayId: m.data.event.replayId };
  },
  setToken(t) {
    token = t;
  },
  /** close() not awaited, then open(), as a supervisor restarting the tab does; the receive loop goes on. */
  async restart() {
    const closing = client.close();
    const second = client.close(); // a second close() waits for the first
    let opened;
    try {
      await client.open();
      opened = "open";
    } catch (e) {
      opened = `${e?.name}: ${e?.message}`;
    }
    await Promise.all([closing, second]);
    return { opened, closed: client.closed, role: client.role };
  },
  reopened() {
    return reopened;
  },
  /** call() without waiting for it: pendingCall() gives its result. */
  startCall(op, ...args) {
    started = tabTest.call(op, ...args);
  },
  pendingCall() {
    return started;
  },
  /** On a failed tab: open() (which starts it over) and, in the same task, close(). */
  async openThenClose() {
    const opened = client.open().then(
      () => "open",
      (e) => `${e?.name}: ${e?.message}`,
    );
    await client.close();
    return { opened: await opened, closed: client.closed, role: client.role };
  },
  state() {
    return { role: client?.role ?? null, roles: [...roles], statuses: statuses.slice(-20), got: [...got], failure, failureError: tabTest.failureError, closed: client?.closed ?? true, shown: [...shown] };
  },
  async subscribeForbidden(channel) {
    try {
      await client.subscribe(channel);
      return { ok: true };
    } catch (e) {
      return { ok: false, ...describe(e) };
    }
  },
  /** subscribe() / publish() through this tab, timed; an error comes back described. */
  async call(op, ...args) {
    const t0 = performance.now();
    try {
      const value = await client[op](...args);
      return { ok: true, value: value ?? null, ms: performance.now() - t0 };
    } catch (e) {
      return { ok: false, ms: performance.now() - t0, ...describe(e) };
    }
  },
  /** The shared replay markers (IndexedDB `sfstream-tabs` / `markers`), for diagnostics. */
  markers() {
    return new Promise((resolve) => {
      const req = indexedDB.open("sfstream-tabs");
      // Never create the database here: an empty one would lack the shell's object store.
      req.onupgradeneeded = () => req.transaction.abort();
      req.onerror = () => resolve({ none: String(req.error) });
      req.onsuccess = () => {
        const db = req.result;
        if (!db.objectStoreNames.contains("markers")) {
          db.close();
          resolve({});
          return;
        }
        const out = {};
        const cur = db.transaction("markers", "readonly").objectStore("markers").openCursor();
        cur.onsuccess = () => {
          const c = cur.result;
          if (c) {
            out[c.key] = c.value;
            c.continue();
          } else {
            db.close();
            resolve(out);
          }
        };
      };
    });
  },
  async close() {
    await client?.close();
  },
};
