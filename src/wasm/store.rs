//! Replay-marker storage: the trait the client writes markers through, and its backends.
//!
//! * [`HostStore`]: any JavaScript object (the TypeScript `ReplayMarkerStorage` classes,
//!   `MappingStorage` over a Map-like, `DefaultMappingStorage`, `ConstantReplayId`, and the
//!   edge stores written in TS: Deno KV, Workers KV, Durable Object storage), reached through the
//!   host object.
//! * [`MemoryStore`], [`LocalStorageStore`], [`IndexedDbStore`]: native backends. Their keys are
//!   namespaced by org and user (`sfstream/<orgId>/<userId>/<channel>`), so two orgs or users in
//!   one browser never share markers.
//!
//! A marker crosses this interface as a JS object `{ replayId, date }`; native backends store it as
//! JSON text. Reading never trusts the data: the client validates it (corrupt or foreign data is
//! reported and treated as no marker).

use std::cell::RefCell;

use js_sys::{Promise, JSON};
use wasm_bindgen::prelude::*;

use super::js::{self as g, Host};

#[wasm_bindgen(module = "/src/wasm/stores.js")]
extern "C" {
    #[wasm_bindgen(js_name = lsGet, catch)]
    fn ls_get(key: &str) -> Result<Option<String>, JsValue>;
    #[wasm_bindgen(js_name = lsSet, catch)]
    fn ls_set(key: &str, value: &str) -> Result<(), JsValue>;
    #[wasm_bindgen(js_name = idbGet)]
    fn idb_get(db: &str, key: &str) -> Promise;
    #[wasm_bindgen(js_name = idbSet)]
    fn idb_set(db: &str, key: &str, value: &str) -> Promise;
}

/// Where the client reads a channel's marker when it subscribes and writes it after consumption.
pub trait MarkerStore {
    /// Resolves to the stored `{ replayId, date }` of `channel` (or what the storage wants to start
    /// from), or null.
    fn get(&self, namespace: &str, channel: &str) -> Promise;
    /// Store `marker` (`{ replayId, date }`) for `channel`; resolves once stored (to no particular value).
    fn set(&self, namespace: &str, channel: &str, marker: &JsValue) -> Promise;
    /// A short description for status events ("localStorage", "indexedDB", ...).
    fn describe(&self) -> &'static str;
}

fn key(prefix: &str, namespace: &str, channel: &str) -> String {
    format!("{prefix}{namespace}/{channel}")
}

fn parse(text: Option<String>) -> JsValue {
    match text {
        // Corrupt text is handed on as a string: the client reports it and ignores it.
        Some(t) => JSON::parse(&t).unwrap_or(JsValue::from_str(&t)),
        None => JsValue::NULL,
    }
}

/// A promise already settled with `r`.
fn settled(r: Result<JsValue, JsValue>) -> Promise {
    match r {
        Ok(v) => Promise::resolve(&v),
        Err(e) => Promise::reject(&e),
    }
}

fn stringify(marker: &JsValue) -> Result<String, JsValue> {
    JSON::stringify(marker)?
        .as_string()
        .ok_or_else(|| JsValue::from_str("marker is not serialisable"))
}

/// A JavaScript storage object behind the host (`host.getReplayMarker` / `host.setReplayMarker`).
pub struct HostStore {
    pub host: Host,
}

impl MarkerStore for HostStore {
    fn get(&self, _namespace: &str, channel: &str) -> Promise {
        self.host.get_replay_marker(channel)
    }
    fn set(&self, _namespace: &str, channel: &str, marker: &JsValue) -> Promise {
        self.host.set_replay_marker(channel, marker)
    }
    fn describe(&self) -> &'static str {
        "custom"
    }
}

/// Markers in memory, for the lifetime of the client.
#[derive(Default)]
pub struct MemoryStore {
    map: RefCell<Vec<(String, String)>>,
}

impl MarkerStore for MemoryStore {
    fn get(&self, namespace: &str, channel: &str) -> Promise {
        let k = key("", namespace, channel);
        let v = self
            .map
            .borrow()
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone());
        Promise::resolve(&parse(v))
    }
    fn set(&self, namespace: &str, channel: &str, marker: &JsValue) -> Promise {
        let r = stringify(marker).map(|t| {
            let k = key("", namespace, channel);
            let mut map = self.map.borrow_mut();
            match map.iter_mut().find(|(n, _)| *n == k) {
                Some(slot) => slot.1 = t,
                None => map.push((k, t)),
            }
        });
        settled(r.map(|()| JsValue::UNDEFINED))
    }
    fn describe(&self) -> &'static str {
        "memory"
    }
}

/// `localStorage` (browsers), keys `<prefix><orgId>/<userId>/<channel>`.
pub struct LocalStorageStore {
    pub prefix: String,
}

impl MarkerStore for LocalStorageStore {
    fn get(&self, namespace: &str, channel: &str) -> Promise {
        settled(ls_get(&key(&self.prefix, namespace, channel)).map(parse))
    }
    fn set(&self, namespace: &str, channel: &str, marker: &JsValue) -> Promise {
        let r = stringify(marker).and_then(|t| ls_set(&key(&self.prefix, namespace, channel), &t));
        settled(r.map(|()| JsValue::UNDEFINED))
    }
    fn describe(&self) -> &'static str {
        "localStorage"
    }
}

/// IndexedDB (browsers and workers): one object store, one readwrite transaction per write.
pub struct IndexedDbStore {
    pub database: String,
}

impl MarkerStore for IndexedDbStore {
    fn get(&self, namespace: &str, channel: &str) -> Promise {
        let p = idb_get(&self.database, &key("", namespace, channel));
        g::then(&p, |text| Ok(parse(text.as_string())))
    }
    fn set(&self, namespace: &str, channel: &str, marker: &JsValue) -> Promise {
        match stringify(marker) {
            Ok(text) => idb_set(&self.database, &key("", namespace, channel), &text),
            Err(e) => Promise::reject(&e),
        }
    }
    fn describe(&self) -> &'static str {
        "indexedDB"
    }
}
