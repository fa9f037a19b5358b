// One tab of the shared-connection test: a SharedTabClient from the packed package, pointed at the
// relay. Every message this tab receives is recorded; the harness reads them back.
import * as sfstream from "./sfstream/dist/browser.js";

// The browser entry re-exports SharedTabClient once the package wires it (checked by the harness);
// until then the packed dist/tabs.js, which shares the same initialised wasm module.
const exported = typeof sfstream.SharedTabClient === "function";
const { SharedTabClient } = exported ? sfstream : await import("./sfstream/dist/tabs.js");
const { AccessTokenAuthenticator } = sfstream;

let client = null;
const got = [];
const roles = [];
const statuses = [];
let failure = null;

export const tabTest = {
  exported,
  async open(relayUrl, sessionToken, channel, options = {}) {
    client = new SharedTabClient(new AccessTokenAuthenticator({ accessToken: sessionToken, instanceUrl: relayUrl }), {
      connectionTimeout: 8000,
      onStatus: (s) => {
        if (s.type === "role") roles.push(s.role);
        statuses.push(s.type === "failed" ? `failed: ${s.error?.message}` : s.type === "reconnecting" ? `reconnecting ${s.reason}` : s.type);
      },
      ...options,
    });
    await client.open();
    for (const ch of Array.isArray(channel) ? channel : [channel]) await client.subscribe(ch);
    void (async () => {
      try {
        for await (const m of client) got.push({ channel: m.channel, replayId: m.data.event.replayId });
      } catch (e) {
        failure = `${e.name}: ${e.message}`;
      }
    })();
    return { role: client.role, key: client.key };
  },
  state() {
    return { role: client?.role ?? null, roles: [...roles], statuses: statuses.slice(-20), got: [...got], failure, closed: client?.closed ?? true };
  },
  async subscribeForbidden(channel) {
    try {
      await client.subscribe(channel);
      return { ok: true };
    } catch (e) {
      return { ok: false, name: e.name, error: e.error ?? null };
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
