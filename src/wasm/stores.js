// Browser storage primitives for the wasm shell's replay-marker backends (src/wasm/store.rs).
// Values are JSON text of { replayId, date }. IndexedDB writes happen in one readwrite
// transaction: a crash mid-write leaves the previous marker intact.

const IDB_STORE = "markers";
const dbs = new Map();

function storageArea() {
  const ls = globalThis.localStorage;
  if (ls === undefined || ls === null) throw new TypeError("localStorage is not available in this runtime");
  return ls;
}

export function lsGet(key) {
  const v = storageArea().getItem(key);
  return v === null ? undefined : v;
}

export function lsSet(key, value) {
  storageArea().setItem(key, value);
}

function openDb(name) {
  let p = dbs.get(name);
  if (p) return p;
  p = openAt(name, undefined);
  p.catch(() => dbs.delete(name));
  dbs.set(name, p);
  return p;
}

// Open `name` (at its current version when `version` is undefined). A database that exists
// without our object store (created by other code) is reopened one version up to add it.
function openAt(name, version) {
  return new Promise((resolve, reject) => {
    const idb = globalThis.indexedDB;
    if (idb === undefined || idb === null) {
      reject(new TypeError("indexedDB is not available in this runtime"));
      return;
    }
    const req = version === undefined ? idb.open(name) : idb.open(name, version);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(IDB_STORE)) req.result.createObjectStore(IDB_STORE);
    };
    req.onsuccess = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(IDB_STORE)) {
        const next = db.version + 1;
        db.close();
        openAt(name, next).then(resolve, reject);
        return;
      }
      db.onversionchange = () => {
        db.close();
        dbs.delete(name);
      };
      // Closed by the browser (site data cleared, a disk error): the next call opens it again.
      db.onclose = () => dbs.delete(name);
      resolve(db);
    };
    req.onerror = () => reject(req.error ?? new Error("indexedDB open failed"));
    req.onblocked = () => reject(new Error("indexedDB open blocked by another connection"));
  });
}

export async function idbGet(name, key) {
  const db = await openDb(name);
  return new Promise((resolve, reject) => {
    const req = db.transaction(IDB_STORE, "readonly").objectStore(IDB_STORE).get(key);
    // Our values are JSON text. Anything else under the key (written by other code) is handed on
    // as text that is no marker, so that the client reports it as corrupt (not as "no marker").
    req.onsuccess = () => {
      const v = req.result;
      resolve(v === undefined ? undefined : typeof v === "string" ? v : "(a stored value that is not text)");
    };
    req.onerror = () => reject(req.error ?? new Error("indexedDB read failed"));
  });
}

export async function idbSet(name, key, value) {
  const db = await openDb(name);
  return new Promise((resolve, reject) => {
    const tx = db.transaction(IDB_STORE, "readwrite");
    tx.objectStore(IDB_STORE).put(value, key);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error ?? new Error("indexedDB write failed"));
    tx.onabort = () => reject(tx.error ?? new Error("indexedDB write aborted"));
  });
}
