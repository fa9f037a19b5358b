//! The exported `WasmClient`: drives a [`Session`] and performs the I/O it asks for.
//!
//! Shape (after quinn's `ConnectionDriver`): every input — a user command, an HTTP response, a
//! timer — is fed to the session, then [`drive`] drains its outputs: requests go to `fetch`
//! (through `sfRequest`, whose one outcome comes back to a per-client callback), events resolve
//! promises or reach the TypeScript host, and the one timer is re-armed only when the session's
//! deadline changes. There are no Rust futures: an operation that waits for JavaScript continues
//! in a promise callback ([`g::then`], [`g::settle`]). State lives in `Rc<RefCell<..>>`; no borrow
//! is held across such a wait or while JavaScript code runs.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortController;

use super::error::{js_error, message_of, to_js};
use super::js::{self as g, Host, Projection, Step};
use super::store::{HostStore, IndexedDbStore, LocalStorageStore, MarkerStore, MemoryStore};
use super::vecmap::VecMap;
use crate::proto::{
    self, Advice, Config, CookieJar, Event, MetaView, Millis, Msg, ProtoError, Reconnect,
    ReplayMarker, Request, RequestKind, Session, TransportFailure,
};

/// Delay between a consumed event and the write of its channel's marker: a burst of events costs
/// one storage write per channel per interval, not one per event.
const FLUSH_INTERVAL_MS: f64 = 200.0;
/// The longest delay `setTimeout` honours (2^31 - 1 ms).
const MAX_TIMER_MS: f64 = 2_147_483_647.0;

/// A replay-marker write that has not settled by then counts as failed (reported, retried).
const STORE_WRITE_TIMEOUT_MS: f64 = 10_000.0;
/// A subscribe's read of its stored marker fails after this long: operations enter the core in
/// call order, so a read that never settles must not hold every later one.
const STORE_READ_TIMEOUT_MS: f64 = 10_000.0;

/// The latest time a JS `Date` holds (epoch ms).
const MAX_DATE_MS: f64 = 8.64e15;

/// A delay `setTimeout` takes as given: runtimes fire anything above 2^31−1 ms after 1 ms.
fn clamp_delay(ms: f64) -> f64 {
    ms.clamp(0.0, MAX_TIMER_MS)
}
/// Retries of a failing marker write during `close()` before `close()` reports it.
const CLOSE_FLUSH_ATTEMPTS: u32 = 3;

fn now_ms() -> Millis {
    let t = g::performance_now();
    if t.is_finite() && t > 0.0 {
        t as Millis
    } else {
        0
    }
}

fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

struct Waiter {
    resolve: Function,
    reject: Function,
}

fn waiter() -> (Promise, Waiter) {
    let mut slot: Option<Waiter> = None;
    let promise = Promise::new(&mut |resolve, reject| {
        slot = Some(Waiter { resolve, reject });
    });
    // The executor runs synchronously inside `new Promise`, so the slot is always filled; the
    // fallback (undefined: calling it fails quietly) keeps `new Function`, which a page's CSP may
    // forbid, out of the module.
    let w = slot.unwrap_or_else(|| Waiter {
        resolve: JsValue::UNDEFINED.unchecked_into(),
        reject: JsValue::UNDEFINED.unchecked_into(),
    });
    (promise, w)
}

impl Waiter {
    fn resolve(&self, v: &JsValue) {
        let _ = self.resolve.call1(&JsValue::UNDEFINED, v);
    }
    fn reject(&self, v: &JsValue) {
        let _ = self.reject.call1(&JsValue::UNDEFINED, v);
    }
}

/// A meta message of one response, copied out of the projection.
struct MetaOwned {
    position: usize,
    channel: String,
    successful: Option<bool>,
    error: Option<String>,
    client_id: Option<String>,
    id: Option<String>,
    subscription: Option<String>,
    advice: Option<Advice>,
    failure_reason: Option<String>,
    long_polling: Option<bool>,
}

const META_STRIDE: u32 = 13;

fn read_metas(arr: &Array) -> Vec<MetaOwned> {
    let n = arr.length() / META_STRIDE;
    let mut out = Vec::with_capacity(n as usize);
    for k in 0..n {
        let b = k * META_STRIDE;
        let s = |o: u32| arr.get(b + o).as_string();
        let f = |o: u32| arr.get(b + o).as_f64();
        let Some(pos) = f(0) else { continue };
        let Some(channel) = s(1) else { continue };
        // 1 | 0 | -1 (true, false, absent) in the projection.
        let flag = |o: u32| match f(o) {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        };
        let successful = flag(2);
        let reconnect = s(7).and_then(|r| match r.as_str() {
            "retry" => Some(Reconnect::Retry),
            "handshake" => Some(Reconnect::Handshake),
            "none" => Some(Reconnect::None),
            _ => None,
        });
        let interval = f(8).filter(|x| *x >= 0.0).map(|x| x as u64);
        let timeout = f(9).filter(|x| *x >= 0.0).map(|x| x as u64);
        let multiple_clients = f(10) == Some(1.0);
        let advice =
            if reconnect.is_some() || interval.is_some() || timeout.is_some() || multiple_clients {
                Some(Advice {
                    reconnect,
                    interval,
                    timeout,
                    multiple_clients,
                })
            } else {
                None
            };
        let long_polling = flag(12);
        out.push(MetaOwned {
            position: pos as usize,
            channel,
            successful,
            error: s(3),
            client_id: s(4),
            id: s(5),
            subscription: s(6),
            advice,
            failure_reason: s(11),
            long_polling,
        });
    }
    out
}

/// Kinds written by `sfProject` in the first slot of an event triple.
const KIND_META: f64 = -2.0;

struct Inner {
    session: Session,
    host: Host,
    api_version: String,
    endpoint: Option<String>,
    /// `"<type> <token>"`: a secret. Never logged, never put in an error or a status event.
    auth_header: Option<String>,
    jar: CookieJar,
    table: JsValue,
    chans: Vec<String>,
    inflight: VecMap<u64, (RequestKind, AbortController)>,
    timer: Option<(Millis, JsValue)>,
    // The callbacks below are JS functions the JS collector owns (`into_js_value`), each holding
    // only a weak reference to this: a timer still pending when the client is freed calls a
    // function that does nothing, not a dropped closure (which throws).
    timer_cb: Option<JsValue>,
    flush_cb: Option<JsValue>,
    /// `done` of every `sfRequest`: a JS function that outlives the client (a request may settle
    /// after the client is gone), holding only a weak reference to it.
    request_cb: JsValue,
    /// Runs in a later macrotask (see [`defer`]): the deferred drive, then the deferred requests.
    defer_cb: JsValue,
    /// `defer_cb` is scheduled and has not run yet.
    defer_scheduled: bool,
    /// Long-polls waiting for `defer_cb` to start them.
    deferred: Vec<Request>,
    flush_timer: Option<JsValue>,
    ops: VecMap<u64, Waiter>,
    /// `open()` while the authenticator runs: settled by the login, a `close()` or the login's
    /// deadline, whichever comes first; then it becomes `open_waiter`.
    login_waiter: Option<Waiter>,
    /// Settles once `login_waiter` is taken (by the login, a `close()` or the deadline):
    /// operations called while `open()` logs in enter the session after it (see `take_login`).
    login_phase: Option<Waiter>,
    login_timer: Option<JsValue>,
    /// Rejects `login_waiter` when `login_timer` fires: one persistent callback (a closure made
    /// per `open()` and never called, when the login won, was never freed).
    login_deadline_cb: Option<JsValue>,
    /// Aborts the authenticator's current login (its `signal`): on `close()`, at the first login's
    /// deadline, and when the client fails.
    login_abort: Option<AbortController>,
    /// Which login is current: each login takes the next number, and [`abort_login`] moves it on,
    /// so a login that answers after it was aborted or replaced is recognised as stale.
    login_gen: u64,
    /// Settles once every operation called so far has entered the core (see [`in_call_order`]).
    ops_entered: Promise,
    /// Which `open()` the session is from: an operation called before the latest one is stale.
    session_gen: u64,
    /// The connection timeout (ms), which also bounds the first login; None: no bound.
    connection_timeout: Option<f64>,
    /// The last error of a re-authentication: one the authenticator rejected with is reported as is
    /// (with its `error`, `errorDescription`, `status`) when the session fails because of it; one
    /// that could not reach the token endpoint is the cause of the failure at the timeout.
    auth_error: Option<JsValue>,
    open_waiter: Option<Waiter>,
    closed_waiters: Vec<Waiter>,
    /// Markers consumed but not yet written, newest per channel.
    dirty: VecMap<String, ReplayMarker>,
    writing: bool,
    /// The promise of the write round in progress while `writing` (a flush waits for it).
    round: JsValue,
    /// The channels (replay keys) the round in progress writes.
    round_keys: Vec<String>,
    last_batch: JsValue,
    /// A response's events were delivered and the session's outputs wait for a later macrotask
    /// (see [`finish_request`]); they are handled before the next response replaces `last_batch`,
    /// which holds the response's body only until then.
    drive_pending: bool,
    failed: bool,
    /// Where markers are read and written.
    store: Rc<dyn MarkerStore>,
    /// `<orgId>/<userId>` of the authenticated identity (native stores prefix their keys with it).
    namespace: String,
    /// Fixed namespace from the options, overriding the one derived from the identity.
    namespace_override: Option<String>,
    /// Replay id used when a native store has no marker for a channel.
    default_replay: Option<i64>,
    /// Allow a plain-http instance URL on a non-loopback host (the authenticator's opt-in).
    allow_insecure_http: bool,
    /// The application's JSON parser for responses, if it gave one (else `response.json()`).
    json_parse: Option<Function>,
}

/// The JS-facing client core. Not part of the public TS API: `js/client.ts` wraps it.
#[wasm_bindgen]
pub struct WasmClient {
    inner: Rc<RefCell<Inner>>,
}

fn opt_number(options: &JsValue, key: &str) -> Result<Option<f64>, JsValue> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => Err(js_error(
            "TypeError",
            &format!("option {key} must be a finite number or null"),
        )),
    }
}

#[wasm_bindgen]
impl WasmClient {
    /// `options`: `{ apiVersion, maxPendingCount, connectionTimeout, replayFallback,
    /// networkAllowance, seed, store, allowInsecureHttp, jsonParse }` (already validated by the
    /// wrapper; rechecked here).
    #[wasm_bindgen(constructor)]
    pub fn new(host: Host, options: &JsValue) -> Result<WasmClient, JsValue> {
        let mut config = Config::default();
        let api_version = get(options, "apiVersion")
            .as_string()
            .unwrap_or_else(|| "62.0".to_owned());
        if let Some(max) = opt_number(options, "maxPendingCount")? {
            config.max_pending = if max <= 0.0 { None } else { Some(max as usize) };
        }
        let ct = get(options, "connectionTimeout");
        if ct.is_null() {
            config.connection_timeout = None;
        } else if let Some(ms) = opt_number(options, "connectionTimeout")? {
            if ms < 0.0 {
                return Err(js_error(
                    "TypeError",
                    "option connectionTimeout must be >= 0 or null",
                ));
            }
            config.connection_timeout = Some(ms as Millis);
        }
        if let Some(fb) = opt_number(options, "replayFallback")? {
            config.replay_fallback = Some(fb as i64);
        }
        if let Some(ms) = opt_number(options, "networkAllowance")? {
            config.network_allowance = ms.max(0.0) as Millis;
        }
        if let Some(seed) = opt_number(options, "seed")? {
            config.seed = seed.abs() as u64 | 1;
        }
        let store_opts = get(options, "store");
        let (store, default_replay, namespace_override): (
            Rc<dyn MarkerStore>,
            Option<i64>,
            Option<String>,
        ) = if store_opts.is_object() {
            let default_replay = opt_number(&store_opts, "defaultReplay")?.map(|x| x as i64);
            let ns = get(&store_opts, "namespace")
                .as_string()
                .filter(|s| !s.is_empty());
            let store: Rc<dyn MarkerStore> = match get(&store_opts, "kind").as_string().as_deref() {
                Some("memory") => Rc::new(MemoryStore::default()),
                Some("localStorage") => Rc::new(LocalStorageStore {
                    prefix: get(&store_opts, "prefix")
                        .as_string()
                        .unwrap_or_else(|| "sfstream/".to_owned()),
                }),
                Some("indexedDB") => Rc::new(IndexedDbStore {
                    database: get(&store_opts, "database")
                        .as_string()
                        .unwrap_or_else(|| "sfstream".to_owned()),
                }),
                _ => {
                    return Err(js_error(
                        "TypeError",
                        "option store.kind must be memory, localStorage or indexedDB",
                    ))
                }
            };
            (store, default_replay, ns)
        } else {
            (Rc::new(HostStore { host: host.clone() }), None, None)
        };
        let inner = Rc::new(RefCell::new(Inner {
            connection_timeout: config.connection_timeout.map(|ms| ms as f64),
            session: Session::new(config),
            host,
            api_version,
            endpoint: None,
            auth_header: None,
            jar: CookieJar::default(),
            table: g::sf_new_table(),
            chans: Vec::new(),
            inflight: VecMap::default(),
            timer: None,
            timer_cb: None,
            flush_cb: None,
            request_cb: JsValue::UNDEFINED,
            defer_cb: JsValue::UNDEFINED,
            defer_scheduled: false,
            deferred: Vec::new(),
            flush_timer: None,
            ops: VecMap::default(),
            login_waiter: None,
            login_phase: None,
            login_timer: None,
            login_deadline_cb: None,
            login_abort: None,
            login_gen: 0,
            ops_entered: Promise::resolve(&JsValue::UNDEFINED),
            session_gen: 0,
            auth_error: None,
            open_waiter: None,
            closed_waiters: Vec::new(),
            dirty: VecMap::default(),
            writing: false,
            round: JsValue::UNDEFINED,
            round_keys: Vec::new(),
            last_batch: JsValue::UNDEFINED,
            drive_pending: false,
            failed: false,
            store,
            namespace: String::new(),
            namespace_override,
            default_replay,
            allow_insecure_http: get(options, "allowInsecureHttp").as_bool().unwrap_or(false),
            json_parse: get(options, "jsonParse").dyn_into::<Function>().ok(),
        }));
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&inner);
        let timer_cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                if let Ok(mut i) = rc.try_borrow_mut() {
                    i.timer = None;
                    i.session.handle_timeout(now_ms());
                }
                drive(&rc);
            }
        });
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&inner);
        let flush_cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                if let Ok(mut i) = rc.try_borrow_mut() {
                    i.flush_timer = None;
                }
                // A failure is reported as a status event and retried by flush itself.
                let _ = g::settle(&flush(&rc, false), |_| Ok(JsValue::UNDEFINED));
            }
        });
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&inner);
        let request_cb = Closure::<dyn FnMut(f64, u32, JsValue, JsValue, JsValue)>::new(
            move |id: f64, outcome: u32, status: JsValue, value: JsValue, cookies: JsValue| {
                if let Some(rc) = weak.upgrade() {
                    let fetched = fetch_outcome(outcome, &status, value, cookies);
                    finish_request(&rc, proto::RequestId(id as u64), fetched);
                }
            },
        );
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&inner);
        let login_deadline_cb = Closure::<dyn FnMut()>::new(move || {
            let Some(rc) = weak.upgrade() else { return };
            let (w, ms) = {
                let mut i = rc.borrow_mut();
                i.login_timer = None;
                (take_login(&mut i), i.connection_timeout.unwrap_or(0.0))
            };
            abort_login(&rc);
            if let Some(w) = w {
                w.reject(&js_error(
                    "AuthenticationError",
                    &format!(
                        "the authenticator did not answer within connectionTimeout ({} ms)",
                        ms as u64
                    ),
                ));
            }
        });
        let weak: Weak<RefCell<Inner>> = Rc::downgrade(&inner);
        let defer_cb = Closure::<dyn FnMut()>::new(move || {
            if let Some(rc) = weak.upgrade() {
                run_deferred(&rc);
            }
        });
        {
            let mut i = inner.borrow_mut();
            i.defer_cb = defer_cb.into_js_value();
            i.timer_cb = Some(timer_cb.into_js_value());
            i.flush_cb = Some(flush_cb.into_js_value());
            i.login_deadline_cb = Some(login_deadline_cb.into_js_value());
            i.request_cb = request_cb.into_js_value();
        }
        Ok(WasmClient { inner })
    }

    /// Authenticate, handshake and send the first connect. Resolves once connected. The login is
    /// bounded by `connectionTimeout`, and a `close()` during it settles this at once.
    pub fn open(&self) -> Promise {
        let rc = self.inner.clone();
        g::later(move || {
            {
                let i = rc.borrow();
                // Closing first: a close() during open()'s handshake leaves open()'s waiter set
                // until the handshake's session is disconnected.
                if i.session.state() == proto::State::Closing {
                    return Err(js_error(
                        "ClientInvalidOperation",
                        "the client is closing: open it again once close() has settled",
                    ));
                }
                if i.open_waiter.is_some() || i.login_waiter.is_some() {
                    return Err(js_error(
                        "ClientInvalidOperation",
                        "the client is already opening",
                    ));
                }
                match i.session.state() {
                    proto::State::Idle | proto::State::Closed => {}
                    _ => {
                        return Err(js_error(
                            "ClientInvalidOperation",
                            "the client is already open",
                        ))
                    }
                }
            }
            let (promise, w) = waiter();
            let (phase, phase_w) = waiter();
            let deadline = {
                let mut i = rc.borrow_mut();
                i.session_gen += 1;
                i.login_waiter = Some(w);
                i.login_phase = Some(phase_w);
                // A subscribe() (unsubscribe(), publish()) called from now on enters the session
                // this login opens, in call order, rather than failing because it came too early.
                let earlier = i.ops_entered.clone();
                i.ops_entered = g::then(&earlier, move |_| Ok(phase.into()));
                // An error kept from an earlier session's login explains nothing of this one.
                i.auth_error = None;
                i.connection_timeout
            };
            if let Some(ms) = deadline {
                let mut i = rc.borrow_mut();
                if let Some(cb) = &i.login_deadline_cb {
                    let id = g::set_timeout(cb.as_ref().unchecked_ref(), clamp_delay(ms));
                    i.login_timer = Some(id);
                }
            }
            let rc2 = rc.clone();
            let _ = g::settle(&authenticate(&rc), move |outcome| {
                // close() or the deadline settled this open() already, and a later open() has a
                // login of its own: nothing here is for it.
                if is_stale_login(&outcome) {
                    return Ok(JsValue::UNDEFINED);
                }
                let w = {
                    let mut i = rc2.borrow_mut();
                    if let Some(id) = i.login_timer.take() {
                        g::clear_timeout(&id);
                    }
                    take_login(&mut i)
                };
                // None: close() or the deadline settled open() already; the token is not used.
                let Some(w) = w else {
                    return Ok(JsValue::UNDEFINED);
                };
                if let Err(e) = outcome {
                    w.reject(&e);
                    return Ok(JsValue::UNDEFINED);
                }
                let opened = {
                    let mut i = rc2.borrow_mut();
                    i.failed = false;
                    i.session.open(now_ms())
                };
                match opened {
                    Ok(()) => {
                        rc2.borrow_mut().open_waiter = Some(w);
                        drive(&rc2);
                    }
                    Err(e) => w.reject(&to_js(&e)),
                }
                Ok(JsValue::UNDEFINED)
            });
            Ok(promise.into())
        })
    }

    /// Subscribe to `channel`, with the replay id from the host's storage.
    pub fn subscribe(&self, channel: String) -> Promise {
        let rc = self.inner.clone();
        g::later(move || {
            proto::validate_channel(&channel).map_err(|e| to_js(&e))?;
            ensure_open(&rc)?;
            let key = proto::replay_key(&channel).to_owned();
            let (store, ns, default_replay, unwritten) = {
                let i = rc.borrow();
                let unwritten = i.dirty.contains_key(&key) || i.round_keys.contains(&key);
                (
                    i.store.clone(),
                    i.namespace.clone(),
                    i.default_replay,
                    unwritten,
                )
            };
            // Read now, enter the core in call order. A marker of this channel consumed but not
            // written yet (writes are coalesced), or being written, is written first: read before
            // it, the storage would give an older marker or none, and a subscribe again soon
            // after an unsubscribe would resume before what was consumed (events again) or from
            // the newest event (the ones published meanwhile lost). Written, it also goes through
            // the storage's own rules (a `ConstantReplayId` still gives its constant). Only this
            // channel's marker: other channels' writes do not hold the subscribe up. A failed
            // write is reported as usual and retried later; the read goes ahead.
            let read_key = key.clone();
            let read = move || -> Promise {
                g::sf_within(
                    &store.get(&ns, &read_key).into(),
                    STORE_READ_TIMEOUT_MS,
                    "the replay storage did not answer a read within 10 s",
                )
            };
            let stored = if unwritten {
                g::settle(&flush_channel(&rc, key), move |_| Ok(read().into()))
            } else {
                read()
            };
            let rc2 = rc.clone();
            in_call_order(&rc, stored, move |stored| {
                let (replay, marker) = match read_stored_marker(&rc2, &channel, &stored) {
                    (None, None) => (default_replay, None),
                    found => found,
                };
                run_op(&rc2, |s| {
                    s.subscribe(now_ms(), g::date_now(), &channel, replay, marker.as_ref())
                })
            })
        })
    }

    /// Unsubscribe from `channel`.
    pub fn unsubscribe(&self, channel: String) -> Promise {
        let rc = self.inner.clone();
        g::later(move || {
            proto::validate_channel(&channel).map_err(|e| to_js(&e))?;
            ensure_open(&rc)?;
            let rc2 = rc.clone();
            in_call_order(&rc, Promise::resolve(&JsValue::UNDEFINED), move |_| {
                run_op(&rc2, |s| s.unsubscribe(now_ms(), &channel))
            })
        })
    }

    /// Publish already-serialised JSON `data` to `channel`; resolves to the server's reply.
    pub fn publish(&self, channel: String, data_json: String) -> Promise {
        let rc = self.inner.clone();
        g::later(move || {
            proto::validate_channel(&channel).map_err(|e| to_js(&e))?;
            ensure_open(&rc)?;
            let rc2 = rc.clone();
            in_call_order(&rc, Promise::resolve(&JsValue::UNDEFINED), move |_| {
                run_op(&rc2, |s| s.publish(now_ms(), &channel, &data_json))
            })
        })
    }

    /// Disconnect, then write every pending replay marker. Idempotent.
    pub fn close(&self) -> Promise {
        let rc = self.inner.clone();
        g::later(move || {
            // A close() during a login (open()'s or a re-authentication): the login is aborted,
            // open() rejects now, and the token is not used.
            let login = {
                let mut i = rc.borrow_mut();
                if let Some(id) = i.login_timer.take() {
                    g::clear_timeout(&id);
                }
                take_login(&mut i)
            };
            abort_login(&rc);
            if let Some(w) = login {
                w.reject(&js_error("ClientInvalidOperation", "the client was closed"));
            }
            let disconnected = {
                let mut i = rc.borrow_mut();
                if matches!(i.session.state(), proto::State::Idle | proto::State::Closed) {
                    None
                } else {
                    let (promise, w) = waiter();
                    i.closed_waiters.push(w);
                    i.session.close(now_ms());
                    Some(promise)
                }
            };
            let flushed = {
                let rc = rc.clone();
                move |_: JsValue| -> Step {
                    // Everything dirty is written now: the coalescing tick would only keep the
                    // runtime (a Node process) alive for nothing.
                    if let Some(id) = rc.borrow_mut().flush_timer.take() {
                        g::clear_timeout(&id);
                    }
                    Ok(flush_retrying(&rc, CLOSE_FLUSH_ATTEMPTS).into())
                }
            };
            match disconnected {
                Some(p) => {
                    drive(&rc);
                    Ok(g::then(&p, flushed).into())
                }
                None => flushed(JsValue::UNDEFINED),
            }
        })
    }

    /// The application consumed `count` more delivered messages (their markers may advance).
    pub fn consumed(&self, count: u32) {
        if let Ok(mut i) = self.inner.try_borrow_mut() {
            i.session.handle_consumed(now_ms(), count as usize);
        }
        drive(&self.inner);
    }

    /// The application took `count` more delivered messages out of the buffer without consuming
    /// them yet (a batch in hand, messages not acknowledged): they stop counting against
    /// `maxPendingCount`.
    pub fn taken(&self, count: u32) {
        if let Ok(mut i) = self.inner.try_borrow_mut() {
            i.session.handle_taken(now_ms(), count as usize);
        }
        drive(&self.inner);
    }

    /// No session and no `open()` under way (its login included): true before `open()`, after a
    /// failed `open()`, and after `close()` or a fatal error, unless `open()` was called again.
    #[wasm_bindgen(getter)]
    pub fn closed(&self) -> bool {
        let i = self.inner.borrow();
        matches!(i.session.state(), proto::State::Idle | proto::State::Closed)
            && i.login_waiter.is_none()
            && i.open_waiter.is_none()
    }

    /// Channels subscribed (confirmed or pending).
    #[wasm_bindgen(getter)]
    pub fn subscriptions(&self) -> Array {
        let i = self.inner.borrow();
        i.session.subscriptions().map(JsValue::from_str).collect()
    }

    /// `"long-polling"` while open, otherwise null.
    #[wasm_bindgen(getter, js_name = connectionType)]
    pub fn connection_type(&self) -> Option<String> {
        self.inner
            .borrow()
            .session
            .connection_type()
            .map(str::to_owned)
    }

    /// Messages delivered to the wrapper's buffer and not consumed yet.
    #[wasm_bindgen(getter, js_name = pendingCount)]
    pub fn pending_count(&self) -> u32 {
        self.inner.borrow().session.pending_count() as u32
    }

    /// Counters of the session (handshakes, reconnects, ...).
    #[wasm_bindgen(getter)]
    pub fn stats(&self) -> JsValue {
        stats_object(&self.inner.borrow().session)
    }
}

fn stats_object(session: &Session) -> JsValue {
    let s = session.stats();
    let o: JsValue = Object::new().into();
    let n = |x: u64| JsValue::from_f64(x as f64);
    set(&o, "handshakes", &n(s.handshakes));
    set(&o, "connects", &n(s.connects));
    set(&o, "reconnects", &n(s.reconnects));
    set(&o, "rehandshakes", &n(s.rehandshakes));
    set(&o, "reauthentications", &n(s.reauths));
    set(&o, "replayFallbacks", &n(s.fallbacks));
    set(&o, "eventsDelivered", &n(s.events_delivered));
    set(
        &o,
        "lastConnectAt",
        &if s.last_connect_at == 0 {
            JsValue::NULL
        } else {
            n(s.last_connect_at)
        },
    );
    o
}

/// Start a user operation in the core; the promise returned settles with its `OpDone`.
fn run_op(
    rc: &Rc<RefCell<Inner>>,
    start: impl FnOnce(&mut Session) -> Result<proto::OpId, ProtoError>,
) -> Step {
    let (promise, w) = waiter();
    {
        let mut i = rc.borrow_mut();
        let op = start(&mut i.session).map_err(|e| to_js(&e))?;
        i.ops.insert(op.0, w);
    }
    drive(rc);
    Ok(promise.into())
}

/// Enter an operation into the core in the order the application called it: once `ready` (what
/// it needs first: a subscribe's stored marker) has resolved and every operation called before it
/// has entered, and only if the client is still open in the session it was called in. A
/// subscribe's storage read used to let an `unsubscribe()` called after it reach the core first
/// (leaving the channel subscribed), and a `close()` and `open()` finishing during the read let
/// it into the next session.
fn in_call_order(
    rc: &Rc<RefCell<Inner>>,
    ready: Promise,
    enter: impl FnOnce(JsValue) -> Step + 'static,
) -> Step {
    let (earlier, gen) = {
        let i = rc.borrow();
        (i.ops_entered.clone(), i.session_gen)
    };
    let both = g::then(&earlier, move |_| Ok(ready.into()));
    let rc2 = rc.clone();
    let result = g::settle(&both, move |r| {
        let v = r?;
        if rc2.borrow().session_gen != gen {
            return Err(js_error("ClientInvalidOperation", "the client was closed"));
        }
        ensure_open(&rc2)?;
        enter(v)
    });
    // Registered on `both` after `result`'s continuation, so it settles once that has run; never
    // rejects (an operation that failed has entered as much as it ever will).
    rc.borrow_mut().ops_entered = g::settle(&both, |_| Ok(JsValue::UNDEFINED));
    Ok(result.into())
}

/// Take `open()`'s waiter while it logs in, which ends the login phase: the operations called
/// meanwhile may enter the session now (or fail, if there is none).
fn take_login(i: &mut Inner) -> Option<Waiter> {
    if let Some(phase) = i.login_phase.take() {
        phase.resolve(&JsValue::UNDEFINED);
    }
    i.login_waiter.take()
}

/// An operation may be called once `open()` was (during its login, it waits for the session).
fn ensure_open(rc: &Rc<RefCell<Inner>>) -> Result<(), JsValue> {
    let i = rc.borrow();
    if i.login_waiter.is_some() {
        return Ok(());
    }
    if i.session.is_closed() || matches!(i.session.state(), proto::State::Idle) {
        return Err(js_error("ClientInvalidOperation", "the client is closed"));
    }
    Ok(())
}

/// A stored value that is not a replay marker: report it (`storageError`) so it is never silent.
fn report_corrupt(rc: &Rc<RefCell<Inner>>, channel: &str, message: &str) {
    let s = status("storageError");
    set(&s, "channel", &JsValue::from_str(channel));
    set(&s, "message", &JsValue::from_str(message));
    let host = rc.borrow().host.clone();
    host.on_status(&s);
}

fn safe_integer(v: JsValue) -> Option<f64> {
    v.as_f64()
        .filter(|x| x.fract() == 0.0 && x.abs() <= 9_007_199_254_740_991.0)
}

/// A replay id Salesforce accepts: -2, -1 (a storage's start value) or a positive event id.
fn subscribable(replay_id: f64) -> bool {
    replay_id >= 1.0 || replay_id == -1.0 || replay_id == -2.0
}

/// Interpret what the host's storage returned: `{replayId, date}` or nothing. Foreign or corrupt
/// data is reported as a status event and treated as no marker (a storage's default still applies).
fn read_stored_marker(
    rc: &Rc<RefCell<Inner>>,
    channel: &str,
    stored: &JsValue,
) -> (Option<i64>, Option<ReplayMarker>) {
    if stored.is_null() || stored.is_undefined() {
        return (None, None);
    }
    if get(stored, "corrupt").as_bool() == Some(true) {
        report_corrupt(
            rc,
            channel,
            "the stored replay marker is not valid; using the storage's default",
        );
        let default = safe_integer(get(stored, "replayId")).filter(|x| subscribable(*x));
        return (default.map(|x| x as i64), None);
    }
    let Some(replay_id) = safe_integer(get(stored, "replayId"))
        .filter(|x| subscribable(*x))
        .map(|x| x as i64)
    else {
        report_corrupt(
            rc,
            channel,
            "the stored replay marker is not valid; subscribing as if none were stored",
        );
        return (None, None);
    };
    let date_of = |key: &str| {
        get(stored, key)
            .as_string()
            .map(|d| js_sys::Date::parse(&d))
            .filter(|x| x.is_finite())
    };
    // A stored marker newer than the start value (see js/client.ts): the core's persistence floor.
    let floor = safe_integer(get(stored, "floorReplayId")).map(|x| ReplayMarker {
        replay_id: x as i64,
        date_ms: date_of("floorDate").unwrap_or(0.0),
    });
    let marker =
        floor.or_else(|| date_of("date").map(|date_ms| ReplayMarker { replay_id, date_ms }));
    (Some(replay_id), marker)
}

/// The token endpoint could not be reached (set by `oauthToken`; the wrapper keeps it as `cause`).
fn is_unreachable(e: &JsValue) -> bool {
    get(e, "unreachable").as_bool() == Some(true)
        || get(&get(e, "cause"), "unreachable").as_bool() == Some(true)
}

/// Why a login could not reach the token endpoint, as the `reconnecting` event names it: the
/// endpoint's status when it answered (429, 5xx), else a network error.
fn unreachable_reason(e: &JsValue) -> proto::ReconnectReason {
    // The shell's login error carries the status; a wrapper of it has it as its `cause`.
    let status = get(e, "status")
        .as_f64()
        .or_else(|| get(&get(e, "cause"), "status").as_f64());
    match status {
        Some(s) if (100.0..600.0).contains(&s) => proto::ReconnectReason::HttpStatus(s as u16),
        _ => proto::ReconnectReason::NetworkError,
    }
}

/// Ask the host's authenticator for a token and derive the CometD endpoint from it. The promise
/// resolves once the login is over: to undefined when the client uses the new token, to
/// [`STALE_LOGIN`] when the login was aborted or replaced meanwhile (its token, or its error, is
/// not used: an authenticator may ignore its signal). The authenticator gets a signal that
/// [`abort_login`] aborts.
fn authenticate(rc: &Rc<RefCell<Inner>>) -> Promise {
    let controller = AbortController::new().ok();
    let signal: JsValue = controller
        .as_ref()
        .map_or(JsValue::UNDEFINED, |c| c.signal().into());
    let (host, gen) = {
        let mut i = rc.borrow_mut();
        i.login_abort = controller;
        i.login_gen += 1;
        (i.host.clone(), i.login_gen)
    };
    let token = match host.authenticate(&signal) {
        Ok(p) => p,
        Err(e) => {
            rc.borrow_mut().login_abort = None;
            return Promise::reject(&e);
        }
    };
    let rc = rc.clone();
    g::settle(&token, move |outcome| {
        {
            let mut i = rc.borrow_mut();
            if i.login_gen != gen {
                return Ok(JsValue::from_f64(STALE_LOGIN));
            }
            // This login is over: forget its controller.
            i.login_abort = None;
        }
        let result = outcome?;
        use_token(&rc, &result).map(|()| JsValue::UNDEFINED)
    })
}

/// What [`authenticate`]'s promise resolves to for a login that was aborted or replaced.
const STALE_LOGIN: f64 = -1.0;

/// Whether a settled [`authenticate`] was a stale login (nothing of it is to be used).
fn is_stale_login(outcome: &Result<JsValue, JsValue>) -> bool {
    matches!(outcome, Ok(v) if v.as_f64() == Some(STALE_LOGIN))
}

/// Abort the authenticator's login in progress, if any (the client no longer needs its token):
/// whatever it answers later is stale.
fn abort_login(rc: &Rc<RefCell<Inner>>) {
    let c = {
        let mut i = rc.borrow_mut();
        i.login_gen += 1;
        i.login_abort.take()
    };
    if let Some(c) = c {
        g::abort(&c);
    }
}

/// Take the authenticator's `result` (`{ accessToken, instanceUrl, tokenType, id }`) into use.
fn use_token(rc: &Rc<RefCell<Inner>>, result: &JsValue) -> Result<(), JsValue> {
    let token = get(result, "accessToken")
        .as_string()
        .filter(|t| !t.is_empty());
    let instance = get(result, "instanceUrl").as_string();
    let token_type = get(result, "tokenType")
        .as_string()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "Bearer".to_owned());
    let Some(token) = token else {
        return Err(js_error(
            "AuthenticationError",
            "the authenticator returned no accessToken",
        ));
    };
    let Some(instance) = instance else {
        return Err(js_error(
            "AuthenticationError",
            "the authenticator returned no instanceUrl",
        ));
    };
    // Visible ASCII only: anything else cannot go into the Authorization header, and fetch would
    // refuse every request (a slow, misleading timeout instead of this error).
    let header_safe = |v: &str| v.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if !header_safe(&token) || !header_safe(&token_type) {
        return Err(js_error(
            "AuthenticationError",
            "the authenticator returned an access token or token type that cannot go into an \
             HTTP header (whitespace, control or non-ASCII characters)",
        ));
    }
    let (version, allow_insecure) = {
        let i = rc.borrow();
        (i.api_version.clone(), i.allow_insecure_http)
    };
    crate::auth::require_secure(&instance, "instanceUrl", allow_insecure)
        .map_err(|e| js_error("AuthenticationError", &e.to_string()))?;
    let endpoint = crate::auth::cometd_url(&instance, &version).map_err(|e| {
        js_error(
            "AuthenticationError",
            &format!("unusable instanceUrl or apiVersion: {e}"),
        )
    })?;
    let identity = get(result, "id").as_string();
    let (namespace, host) = {
        let mut i = rc.borrow_mut();
        // Cookies belong to the server that set them: a token for another instance (a new login
        // after a 401, say) starts with an empty jar.
        if i.endpoint.as_deref().map(crate::auth::origin) != Some(crate::auth::origin(&endpoint)) {
            i.jar.clear();
        }
        i.endpoint = Some(endpoint);
        i.auth_header = Some(format!("{token_type} {token}"));
        i.namespace = i
            .namespace_override
            .clone()
            .unwrap_or_else(|| crate::auth::identity_namespace(identity.as_deref(), &instance));
        (i.namespace.clone(), i.host.clone())
    };
    host.on_authenticated(&namespace);
    Ok(())
}

/// Drain the session's outputs until it has nothing more to say.
fn drive(rc: &Rc<RefCell<Inner>>) {
    loop {
        let mut sends = Vec::new();
        let mut events = Vec::new();
        {
            let Ok(mut i) = rc.try_borrow_mut() else {
                return;
            };
            let now = now_ms();
            while let Some(e) = i.session.poll_event() {
                events.push(e);
            }
            while let Some(r) = i.session.poll_transmit(now) {
                sends.push(r);
            }
            let deadline = i.session.poll_timeout();
            arm_timer(&mut i, deadline, now);
        }
        if sends.is_empty() && events.is_empty() {
            return;
        }
        for e in events {
            handle_event(rc, e);
        }
        for r in sends {
            if r.kind == RequestKind::Connect {
                // Let the application see this response's events before the next long-poll is
                // set up (a fetch costs a fraction of a millisecond of the same thread).
                let mut i = rc.borrow_mut();
                i.deferred.push(r);
                defer(&mut i);
            } else {
                start_request(rc, r);
            }
        }
    }
}

fn arm_timer(i: &mut Inner, deadline: Option<Millis>, now: Millis) {
    if let (Some(d), Some((cur, _))) = (deadline, &i.timer) {
        if *cur == d {
            return;
        }
    }
    if let Some((_, id)) = i.timer.take() {
        g::clear_timeout(&id);
    }
    if let (Some(d), Some(cb)) = (deadline, &i.timer_cb) {
        // setTimeout fires at once for delays above 2^31-1 ms: clamp, and re-arm on the early wake
        // (handle_timeout before the deadline is a no-op).
        let delay = clamp_delay(d.saturating_sub(now) as f64 + 1.0);
        let id = g::set_timeout(cb.as_ref().unchecked_ref(), delay);
        i.timer = Some((d, id));
    }
}

fn status(kind: &str) -> JsValue {
    let o: JsValue = Object::new().into();
    set(&o, "type", &JsValue::from_str(kind));
    set(&o, "at", &JsValue::from_f64(g::date_now()));
    o
}

fn reason_name(r: &proto::ReconnectReason) -> String {
    use proto::ReconnectReason as R;
    match r {
        R::NetworkError => "networkError".into(),
        R::Timeout => "timeout".into(),
        // A browser hides a redirect's status (an opaque redirect): name it for what it is.
        R::HttpStatus(proto::REDIRECT_HIDDEN) => "redirect".into(),
        R::HttpStatus(s) => format!("http{s}"),
        R::UnknownClient => "unknownClient".into(),
        R::ServerDisconnect => "serverDisconnect".into(),
        R::MultipleClients => "multipleClients".into(),
        R::AuthInvalid => "authenticationInvalid".into(),
        R::ServerBusy => "serverBusy".into(),
        R::BufferFullPause => "bufferFull".into(),
        R::Malformed => "malformedResponse".into(),
        #[allow(unreachable_patterns)]
        _ => "other".into(),
    }
}

fn handle_event(rc: &Rc<RefCell<Inner>>, ev: Event) {
    let host = rc.borrow().host.clone();
    match ev {
        Event::Opened => {
            let w = rc.borrow_mut().open_waiter.take();
            if let Some(w) = w {
                w.resolve(&JsValue::UNDEFINED);
            }
        }
        Event::OpenFailed(err) => {
            let w = rc.borrow_mut().open_waiter.take();
            abort_inflight(rc, None);
            let e = failure_js(rc, &err);
            if let Some(w) = w {
                w.reject(&e);
            }
        }
        Event::Connecting => host.on_status(&status("connecting")),
        Event::Connected => {
            let s = status("connected");
            set(&s, "stats", &stats_object(&rc.borrow().session));
            host.on_status(&s);
        }
        Event::Reconnecting {
            reason,
            attempt,
            delay,
        } => {
            let s = status("reconnecting");
            set(&s, "reason", &JsValue::from_str(&reason_name(&reason)));
            set(&s, "attempt", &JsValue::from_f64(f64::from(attempt)));
            set(&s, "delay", &JsValue::from_f64(delay as f64));
            host.on_status(&s);
        }
        Event::Rehandshake { reason } => {
            let s = status("rehandshake");
            set(&s, "reason", &JsValue::from_str(&reason_name(&reason)));
            host.on_status(&s);
        }
        Event::NeedAuth => {
            let rc = rc.clone();
            // The authenticator is called after drive() returns, and its outcome fed to the core.
            let _ = g::later(move || {
                Ok(g::settle(&authenticate(&rc), move |outcome| {
                    if is_stale_login(&outcome) {
                        // Aborted (close(), the session ended) or replaced: its token and its
                        // error belong to no session.
                        return Ok(JsValue::UNDEFINED);
                    }
                    {
                        let mut i = rc.borrow_mut();
                        match &outcome {
                            Ok(_) => {
                                i.auth_error = None;
                                i.session.handle_authenticated(now_ms())
                            }
                            Err(e) if is_unreachable(e) => {
                                // The cause of the failure if the connection timeout passes
                                // before a login succeeds.
                                i.auth_error = Some(e.clone());
                                i.session
                                    .handle_auth_unreachable(now_ms(), unreachable_reason(e))
                            }
                            Err(e) => {
                                i.auth_error = Some(e.clone());
                                i.session.handle_auth_failed(now_ms(), &message_of(e))
                            }
                        }
                    }
                    drive(&rc);
                    Ok(JsValue::UNDEFINED)
                })
                .into())
            });
        }
        Event::Reauthenticated => host.on_status(&status("reauthenticated")),
        Event::ReplayFallback {
            channel,
            replay_id,
            fallback,
            reason,
        } => {
            let s = status("replayFallback");
            set(&s, "channel", &JsValue::from_str(&channel));
            set(&s, "replayId", &JsValue::from_f64(replay_id as f64));
            set(&s, "fallback", &JsValue::from_f64(fallback as f64));
            let why = match reason {
                proto::FallbackReason::ReplayRejected => "replayRejected",
                proto::FallbackReason::Retention => "retention",
                #[allow(unreachable_patterns)]
                _ => "other",
            };
            set(&s, "reason", &JsValue::from_str(why));
            host.on_status(&s);
        }
        Event::OpDone { op, result } => {
            let (w, reply) = {
                let mut i = rc.borrow_mut();
                let reply = match &result {
                    Ok(Some(pos)) => {
                        Reflect::get_u32(&i.last_batch, *pos).unwrap_or(JsValue::UNDEFINED)
                    }
                    Err(ProtoError::Server(se)) => original_reply(&i.last_batch, se),
                    _ => JsValue::UNDEFINED,
                };
                (i.ops.remove(&op.0), reply)
            };
            if let Some(w) = w {
                match result {
                    Ok(_) => w.resolve(&reply),
                    Err(e) => {
                        let err = to_js(&e);
                        // ServerError.response: the reply exactly as the server sent it, when it is
                        // in the response just handled (else the rebuilt one stays).
                        if !reply.is_undefined() {
                            set(&err, "response", &reply);
                        }
                        w.reject(&err)
                    }
                }
            }
        }
        Event::PersistMarker { channel, marker } => {
            let mut i = rc.borrow_mut();
            i.dirty.insert(channel, marker);
            if i.flush_timer.is_none() && !i.writing {
                if let Some(cb) = &i.flush_cb {
                    let id = g::set_timeout(cb.as_ref().unchecked_ref(), FLUSH_INTERVAL_MS);
                    i.flush_timer = Some(id);
                }
            }
        }
        Event::Failed(err) => {
            let e = failure_js(rc, &err);
            let (open_w, ops) = {
                let mut i = rc.borrow_mut();
                i.failed = true;
                let ops: Vec<Waiter> = i.ops.drain_values();
                (i.open_waiter.take(), ops)
            };
            abort_inflight(rc, None);
            if let Some(w) = open_w {
                w.reject(&e);
            }
            for w in ops {
                w.reject(&e);
            }
            // The client's own state first: a `failed` listener that opens the client again must
            // find the failure recorded already, not have it recorded over its new session.
            host.on_failed(&e);
            let s = status("failed");
            set(&s, "error", &e);
            host.on_status(&s);
        }
        Event::Closed => {
            let (waiters, ops, open_w) = {
                let mut i = rc.borrow_mut();
                if let Some((_, id)) = i.timer.take() {
                    g::clear_timeout(&id);
                }
                let ops: Vec<Waiter> = i.ops.drain_values();
                (
                    std::mem::take(&mut i.closed_waiters),
                    ops,
                    i.open_waiter.take(),
                )
            };
            abort_inflight(rc, None);
            abort_login(rc);
            let closed = js_error("ClientInvalidOperation", "the client was closed");
            // close() during open(): the pending open() settles too.
            if let Some(w) = open_w {
                w.reject(&closed);
            }
            for w in ops {
                w.reject(&closed);
            }
            host.on_status(&status("closed"));
            for w in waiters {
                w.resolve(&JsValue::UNDEFINED);
            }
        }
        Event::AbortAll => abort_inflight(rc, Some(RequestKind::Connect)),
        #[allow(unreachable_patterns)]
        _ => {}
    }
}

/// The failed reply a `ServerError` was parsed from: the message of `batch` with its channel and
/// error text, or undefined.
fn original_reply(batch: &JsValue, se: &proto::ServerError) -> JsValue {
    let Some(arr) = batch.dyn_ref::<Array>() else {
        return JsValue::UNDEFINED;
    };
    let error = se.error.as_deref();
    arr.iter()
        .find(|m| {
            get(m, "channel").as_string().as_deref() == Some(se.channel.as_str())
                && get(m, "error").as_string().as_deref() == error
        })
        .unwrap_or(JsValue::UNDEFINED)
}

/// The JS error for a failure of the session: the authenticator's own error when a rejected
/// re-authentication caused it (with its `error`, `errorDescription`, `status`); when logins
/// could not reach the token endpoint until the connection timeout, `err`'s with the last one's
/// error as its cause; else `err`'s.
fn failure_js(rc: &Rc<RefCell<Inner>>, err: &ProtoError) -> JsValue {
    let auth = rc.borrow_mut().auth_error.take();
    match (err, auth) {
        (ProtoError::Authentication(_), Some(e)) if is_unreachable(&e) => {
            let js = to_js(err);
            set(&js, "cause", &e);
            js
        }
        (ProtoError::Authentication(_), Some(e))
            if get(&e, "name").as_string().as_deref() == Some("AuthenticationError") =>
        {
            e
        }
        _ => to_js(err),
    }
}

/// Abort in-flight requests (of one kind, or all). A long-poll still waiting for its macrotask
/// (see [`drive`]) is in flight for the core too: it is dropped, not sent.
fn abort_inflight(rc: &Rc<RefCell<Inner>>, kind: Option<RequestKind>) {
    let controllers: Vec<AbortController> = {
        let mut i = rc.borrow_mut();
        i.deferred
            .retain(|r| kind.is_some_and(|want| r.kind != want));
        i.inflight
            .remove_where(|_, (k, _)| kind.map_or(true, |want| *k == want))
            .into_iter()
            .map(|(_, c)| c)
            .collect()
    };
    for c in controllers {
        g::abort(&c);
    }
}

/// What a request produced: the HTTP status, the parsed body (None: not JSON) and the Set-Cookie
/// values; or why it failed.
type Fetched = Result<(u16, Option<JsValue>, Array), TransportFailure>;

/// Outcomes reported by `sfRequest` (`OUTCOME_*` in `src/wasm/project.js`).
const OUTCOME_BODY: u32 = 0;
const OUTCOME_NOT_JSON: u32 = 1;
const OUTCOME_TIMEOUT: u32 = 2;
const OUTCOME_NO_RESPONSE: u32 = 4;
const OUTCOME_TOO_LARGE: u32 = 5;
const OUTCOME_REDIRECT: u32 = 6;

/// The core's view of what `sfRequest` reported (`value`: the body, or the error).
fn fetch_outcome(outcome: u32, status: &JsValue, value: JsValue, cookies: JsValue) -> Fetched {
    let status = g::status_code(status);
    let cookies = cookies.dyn_into::<Array>().unwrap_or_else(|_| Array::new());
    match outcome {
        OUTCOME_BODY => Ok((status, Some(value), cookies)),
        OUTCOME_NOT_JSON if status == 200 => Err(TransportFailure::Malformed(
            "the response body is not JSON".into(),
        )),
        OUTCOME_NOT_JSON => Ok((status, None, cookies)),
        OUTCOME_TIMEOUT => Err(TransportFailure::Timeout),
        OUTCOME_NO_RESPONSE => Err(TransportFailure::Malformed(
            "fetch returned no Response".into(),
        )),
        OUTCOME_TOO_LARGE => Err(TransportFailure::Malformed(
            "the response is larger than 64 MiB".into(),
        )),
        // A browser hides a redirect's status (an "opaqueredirect" response).
        OUTCOME_REDIRECT => Err(TransportFailure::HttpStatus(proto::REDIRECT_HIDDEN)),
        // OUTCOME_FAILED (3): the fetch or the body read failed.
        _ => Err(TransportFailure::Network(message_of(&value))),
    }
}

/// Send `req`; its outcome reaches [`finish_request`] through the client's `request_cb`.
fn start_request(rc: &Rc<RefCell<Inner>>, req: Request) {
    let mut i = rc.borrow_mut();
    let controller = match AbortController::new() {
        Ok(c) => c,
        Err(e) => {
            drop(i);
            return fail_request(rc, req.id, TransportFailure::Network(message_of(&e)));
        }
    };
    i.inflight.insert(req.id.0, (req.kind, controller.clone()));
    let Some(url) = i.endpoint.clone() else {
        drop(i);
        return fail_request(
            rc,
            req.id,
            TransportFailure::Network("no endpoint: the client has not authenticated".into()),
        );
    };
    let cookie = i.jar.cookie_header();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(3);
    headers.push(("Content-Type", "application/json;charset=UTF-8"));
    if let Some(a) = &i.auth_header {
        headers.push(("Authorization", a));
    }
    if let Some(c) = &cookie {
        // Browsers drop this forbidden header silently and use their own jar.
        headers.push(("Cookie", c));
    }
    let signal: JsValue = controller.signal().into();
    let init = g::post_init(&req.body, &headers, Some(&signal));
    // Never follow a redirect: fetch would send the Authorization and Cookie headers set here on
    // to wherever it points (Workers do, cross-origin). Salesforce sends none; a 3xx is reported
    // as the HTTP status it is (the Node transport never follows one either).
    set(&init, "redirect", &JsValue::from_str("manual"));
    if req.kind.repeatable() {
        // Read by the Node transport only (fetch ignores unknown members): it may resend the
        // request when a reused keep-alive connection turns out to be closed.
        let _ = js_sys::Reflect::set(&init, &JsValue::from_str("repeatable"), &JsValue::TRUE);
    }
    let json_parse: JsValue = i
        .json_parse
        .clone()
        .map_or(JsValue::UNDEFINED, JsValue::from);
    let done = i.request_cb.clone();
    drop(i);
    g::request(
        &url,
        &init,
        &controller,
        clamp_delay(req.timeout as f64),
        &json_parse,
        req.id.0 as f64,
        &done,
    );
}

/// Report a request that could not be sent, in a microtask (as a failed fetch would be).
fn fail_request(rc: &Rc<RefCell<Inner>>, id: proto::RequestId, failure: TransportFailure) {
    let rc = rc.clone();
    let _ = g::later(move || {
        finish_request(&rc, id, Err(failure));
        Ok(JsValue::UNDEFINED)
    });
}

/// Feed a request's outcome to the core, deliver the events it carried, and drive.
fn finish_request(rc: &Rc<RefCell<Inner>>, id: proto::RequestId, fetched: Fetched) {
    // What the previous response left for later goes first: its outputs may refer to its body.
    let pending = std::mem::take(&mut rc.borrow_mut().drive_pending);
    if pending {
        drive_response(rc);
    }
    let mut deliveries = Vec::new();
    let mut delivered_body = JsValue::UNDEFINED;
    let host;
    {
        let mut i = rc.borrow_mut();
        i.inflight.remove(&id.0);
        host = i.host.clone();
        let now = now_ms();
        match fetched {
            Ok((status, body, cookies)) => {
                for c in cookies.iter() {
                    if let Some(c) = c.as_string() {
                        i.jar.handle_set_cookie(&c);
                    }
                }
                match body {
                    Some(body) => {
                        let table = i.table.clone();
                        match g::sf_project(&body, &table) {
                            Some(p) => {
                                feed_batch(&mut i, now, id, status, &p);
                                i.session.take_deliveries(&mut deliveries);
                                i.last_batch = body.clone();
                                delivered_body = body;
                            }
                            None => {
                                let f = if status == 200 {
                                    TransportFailure::Malformed(
                                        "the response is not a JSON array".into(),
                                    )
                                } else {
                                    TransportFailure::HttpStatus(status)
                                };
                                i.session.handle_failure(now, id, f);
                            }
                        }
                    }
                    None => i
                        .session
                        .handle_failure(now, id, TransportFailure::HttpStatus(status)),
                }
            }
            Err(f) => i.session.handle_failure(now, id, f),
        }
    }
    if deliveries.is_empty() {
        drive_response(rc);
        return;
    }
    host.on_events(&delivered_body, &deliveries);
    // The application takes the events (promise continuations) before the session's next outputs
    // are handled: the next long-poll, timers and status events wait for a later macrotask, or
    // for the next response, whichever comes first.
    let mut i = rc.borrow_mut();
    i.drive_pending = true;
    defer(&mut i);
}

/// Schedule `defer_cb` in a later macrotask, unless it already is. One persistent callback: no
/// closure is made per response.
fn defer(i: &mut Inner) {
    if !i.defer_scheduled {
        i.defer_scheduled = true;
        g::sf_defer(&i.defer_cb);
    }
}

/// The deferred work: the outputs a delivered response left for later, then the long-polls
/// waiting to be sent.
fn run_deferred(rc: &Rc<RefCell<Inner>>) {
    let pending = {
        let mut i = rc.borrow_mut();
        i.defer_scheduled = false;
        std::mem::take(&mut i.drive_pending)
    };
    if pending {
        drive_response(rc);
    }
    let requests = std::mem::take(&mut rc.borrow_mut().deferred);
    for r in requests {
        start_request(rc, r);
    }
}

/// Drive after a response, then let go of its body: the replies in it have been matched, and
/// holding it longer would keep events the application consumed reachable until the next
/// response (and an error raised later would look for its reply in a response it is not from).
fn drive_response(rc: &Rc<RefCell<Inner>>) {
    drive(rc);
    rc.borrow_mut().last_batch = JsValue::UNDEFINED;
}

/// One projected response as the core reads it: each position is turned into a [`Msg`] when the
/// core asks for it, so a batch of 25,000 events costs no intermediate vector of messages.
struct ProjectedBatch<'a> {
    /// `EVENT_STRIDE` numbers per position (see `sfProject`).
    ev: Vec<f64>,
    /// The meta messages, in position order (as `sfProject` lists them).
    metas: Vec<MetaOwned>,
    channels: &'a [String],
}

impl ProjectedBatch<'_> {
    fn meta_view(m: &MetaOwned) -> MetaView<'_> {
        MetaView {
            channel: &m.channel,
            successful: m.successful,
            error: m.error.as_deref(),
            client_id: m.client_id.as_deref(),
            id: m.id.as_deref(),
            subscription: m.subscription.as_deref(),
            advice: m.advice,
            failure_reason: m.failure_reason.as_deref(),
            supported_connection_types_has_long_polling: m.long_polling,
        }
    }
}

impl proto::BatchSource for ProjectedBatch<'_> {
    fn len(&self) -> usize {
        self.ev.len() / 3
    }

    fn msg(&self, k: usize) -> Msg<'_> {
        let Some(&kind) = self.ev.get(3 * k) else {
            return Msg::Other;
        };
        if kind >= 0.0 {
            let r = self.ev.get(3 * k + 1).copied().unwrap_or(f64::NAN);
            let d = self.ev.get(3 * k + 2).copied().unwrap_or(f64::NAN);
            Msg::Event {
                channel: kind as u32,
                replay_id: if r.is_finite() { Some(r as i64) } else { None },
                date_ms: if d.is_finite() { Some(d) } else { None },
            }
        } else if kind == KIND_META {
            // sfProject lists metas in position order (a hostile body can hold thousands).
            match self.metas.binary_search_by_key(&k, |m| m.position) {
                Ok(at) => self
                    .metas
                    .get(at)
                    .map_or(Msg::Other, |m| Msg::Meta(Self::meta_view(m))),
                Err(_) => Msg::Other,
            }
        } else {
            Msg::Other
        }
    }

    fn channel(&self, idx: u32) -> Option<&str> {
        self.channels.get(idx as usize).map(String::as_str)
    }
}

/// Hand one projected response to the core.
fn feed_batch(i: &mut Inner, now: Millis, id: proto::RequestId, status: u16, p: &Projection) {
    // The mirror of the projection's table: what it kept, then what it added.
    i.chans.truncate(p.base() as usize);
    if let Some(new) = p.new_chans() {
        for c in new.iter() {
            i.chans.push(c.as_string().unwrap_or_default());
        }
    }
    let metas = p.metas().map(|m| read_metas(&m)).unwrap_or_default();
    let Inner { session, chans, .. } = i;
    let batch = ProjectedBatch {
        ev: p.ev().to_vec(),
        metas,
        channels: chans,
    };
    session.handle_response(now, id, status, &batch);
}

/// Write the dirty markers, one round. `drain` (close): then write what became dirty meanwhile, at
/// once. Otherwise what became dirty waits for the next coalescing tick: at most one write per
/// channel per `FLUSH_INTERVAL_MS` however fast the storage answers (a store with a slower limit,
/// as Workers KV's one write per second per key, spaces its own writes: `WorkersKvReplayStorage`).
fn flush(rc: &Rc<RefCell<Inner>>, drain: bool) -> Promise {
    write_round(rc, None, drain)
}

/// Write the pending marker of one channel (replay key) now, after a round under way (a marker
/// is never written while an older one of it may still land). Resolves once written, or failed
/// (reported and kept for the next round, as in `flush`).
fn flush_channel(rc: &Rc<RefCell<Inner>>, key: String) -> Promise {
    g::settle(&write_round(rc, Some(key), false), |_| {
        Ok(JsValue::UNDEFINED)
    })
}

/// One write round through the host's storage, of every dirty marker or of `only` that channel's,
/// after the round under way, if any. A failed write keeps its marker dirty (unless a newer one
/// arrived meanwhile), is reported as a status event and is retried; the promise rejects then.
fn write_round(rc: &Rc<RefCell<Inner>>, only: Option<String>, drain: bool) -> Promise {
    let mut i = rc.borrow_mut();
    if i.writing {
        // A round is writing older markers: wait for it, then write what is dirty by then (so
        // that close() resolves only once the newest markers are stored).
        let round = i.round.clone();
        drop(i);
        let rc = rc.clone();
        return g::settle(&round, move |_| Ok(write_round(&rc, only, drain).into()));
    }
    let batch: Vec<(String, ReplayMarker)> = match only {
        Some(key) => i.dirty.remove(&key).map(|m| (key, m)).into_iter().collect(),
        None => std::mem::take(&mut i.dirty).into_iter().collect(),
    };
    if batch.is_empty() {
        return Promise::resolve(&JsValue::UNDEFINED);
    }
    i.writing = true;
    i.round_keys = batch.iter().map(|(k, _)| k.clone()).collect();
    let writes = Flush {
        rc: rc.clone(),
        batch: batch.into_iter(),
        host: i.host.clone(),
        store: i.store.clone(),
        namespace: i.namespace.clone(),
        failure: None,
        drain,
    };
    drop(i);
    let round = writes.next();
    let mut i = rc.borrow_mut();
    if i.writing {
        i.round = round.clone().into();
    }
    round
}

/// `flush`, retried until it succeeds or `attempts` have failed; rejects with the last failure.
fn flush_retrying(rc: &Rc<RefCell<Inner>>, attempts: u32) -> Promise {
    let again = rc.clone();
    g::settle(&flush(rc, true), move |r| match r {
        Err(e) if attempts <= 1 => Err(e),
        Err(_) => Ok(flush_retrying(&again, attempts - 1).into()),
        ok => ok,
    })
}

/// One round of `flush`: the markers taken, written one after the other.
struct Flush {
    rc: Rc<RefCell<Inner>>,
    batch: std::vec::IntoIter<(String, ReplayMarker)>,
    host: Host,
    store: Rc<dyn MarkerStore>,
    namespace: String,
    /// The last failed write's error.
    failure: Option<JsValue>,
    /// See [`flush`].
    drain: bool,
}

impl Flush {
    /// Write the next marker, or end the round.
    fn next(mut self) -> Promise {
        let Some((channel, marker)) = self.batch.next() else {
            return self.end();
        };
        let m: JsValue = Object::new().into();
        set(&m, "replayId", &JsValue::from_f64(marker.replay_id as f64));
        // Unknown (0) or outside what a Date can hold (toISOString would throw): null.
        let date = if marker.date_ms > 0.0 && marker.date_ms <= MAX_DATE_MS {
            let d = js_sys::Date::new(&JsValue::from_f64(marker.date_ms));
            JsValue::from(d.to_iso_string())
        } else {
            JsValue::NULL
        };
        set(&m, "date", &date);
        let written = g::sf_within(
            &self.store.set(&self.namespace, &channel, &m).into(),
            STORE_WRITE_TIMEOUT_MS,
            "the replay storage did not answer a write within 10 s",
        );
        g::settle(&written, move |r| {
            if let Err(e) = r {
                let s = status("storageError");
                set(&s, "channel", &JsValue::from_str(&channel));
                set(&s, "storage", &JsValue::from_str(self.store.describe()));
                set(&s, "message", &JsValue::from_str(&message_of(&e)));
                self.host.on_status(&s);
                self.rc.borrow_mut().dirty.insert_if_absent(channel, marker);
                self.failure = Some(e);
            }
            Ok(self.next().into())
        })
    }

    /// After the last write: on success, write what became dirty meanwhile; on failure, schedule
    /// the retry and reject.
    fn end(self) -> Promise {
        let mut i = self.rc.borrow_mut();
        i.writing = false;
        i.round_keys.clear();
        let Some(e) = self.failure else {
            if self.drain {
                drop(i);
                return flush(&self.rc, true);
            }
            if !i.dirty.is_empty() && i.flush_timer.is_none() {
                if let Some(cb) = &i.flush_cb {
                    let id = g::set_timeout(cb.as_ref().unchecked_ref(), FLUSH_INTERVAL_MS);
                    i.flush_timer = Some(id);
                }
            }
            return Promise::resolve(&JsValue::UNDEFINED);
        };
        // Retried in the background while the client is open; after close() the marker stays
        // dirty for the next open()/close() rather than keep a timer (and a process) alive.
        if i.flush_timer.is_none() && !i.session.is_closed() {
            if let Some(cb) = &i.flush_cb {
                let id = g::set_timeout(cb.as_ref().unchecked_ref(), 1000.0);
                i.flush_timer = Some(id);
            }
        }
        Promise::reject(&js_error(
            "ClientError",
            &format!("could not store a replay marker: {}", message_of(&e)),
        ))
    }
}
