//! Bindings to the JavaScript globals and to the shell's snippet (`src/wasm/project.js`: the
//! response projection, the HTTP exchange, promise continuations).
//!
//! Everything binds to globals (`fetch`, `setTimeout`, `performance`), never to `window`: there is
//! no `window` in Node, Deno, workers or workerd.

use js_sys::{Array, Float64Array, Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::AbortController;

/// Cancel a timer; one the runtime no longer knows (workerd: made while serving another request)
/// is left alone. A JS exception must never unwind through the shell's state.
pub fn clear_timeout(id: &JsValue) {
    let _ = clear_timeout_binding(id);
}

/// Abort `c`'s request, if the runtime lets this context do so (workerd does not for a controller
/// made while serving another request, whose request is cancelled with it anyway).
pub fn abort(c: &AbortController) {
    // Called through `Function.call`, which catches (web-sys's `abort` does not).
    if let Ok(f) = js_sys::Reflect::get(c, &JsValue::from_str("abort")) {
        if let Some(f) = f.dyn_ref::<Function>() {
            let _ = f.call0(c);
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch_binding(input: &str, init: &JsValue) -> Promise;

    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(handler: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(catch, js_name = clearTimeout)]
    fn clear_timeout_binding(id: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub fn performance_now() -> f64;

    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    pub fn date_now() -> f64;

}

thread_local! {
    /// A runtime-specific `fetch` installed by an entry point (Node: `node:http` with keep-alive).
    static FETCH: std::cell::RefCell<Option<Function>> = const { std::cell::RefCell::new(None) };
}

/// Replace the global `fetch` used for every request (an entry point's choice, e.g. Node's faster
/// `node:http` transport). Pass null to go back to the global.
#[wasm_bindgen(js_name = setFetch)]
pub fn set_fetch(f: Option<Function>) {
    FETCH.with(|slot| *slot.borrow_mut() = f);
}

/// The transport installed with [`set_fetch`], or undefined (the global `fetch`).
fn installed_fetch() -> JsValue {
    FETCH.with(|slot| {
        slot.borrow()
            .clone()
            .map_or(JsValue::UNDEFINED, JsValue::from)
    })
}

/// `fetch(input, init)`: the installed transport, else the global `fetch`. `init` is a plain
/// object (`method`, `body`, `headers` as a plain object, `signal`), which every fetch accepts.
pub fn global_fetch(input: &str, init: &JsValue) -> Promise {
    let custom = FETCH.with(|slot| slot.borrow().clone());
    match custom {
        Some(f) => match f.call2(&JsValue::UNDEFINED, &JsValue::from_str(input), init) {
            Ok(p) => p
                .dyn_into::<Promise>()
                .unwrap_or_else(|v| Promise::resolve(&v)),
            Err(e) => Promise::reject(&e),
        },
        None => global_fetch_binding(input, init),
    }
}

#[wasm_bindgen(module = "/src/wasm/project.js")]
extern "C" {
    /// The per-response projection built by `sfProject`.
    pub type Projection;

    #[wasm_bindgen(js_name = sfProject)]
    pub fn sf_project(body: &JsValue, table: &JsValue) -> Option<Projection>;

    #[wasm_bindgen(method, getter)]
    pub fn ev(this: &Projection) -> Float64Array;

    #[wasm_bindgen(method, getter)]
    pub fn metas(this: &Projection) -> Option<Array>;

    #[wasm_bindgen(method, getter, js_name = newChans)]
    pub fn new_chans(this: &Projection) -> Option<Array>;

    /// How many names of the table were kept: the index of the first of `newChans`.
    #[wasm_bindgen(method, getter)]
    pub fn base(this: &Projection) -> u32;

    #[wasm_bindgen(js_name = sfNewTable)]
    pub fn sf_new_table() -> JsValue;

    #[wasm_bindgen(js_name = sfDefer)]
    pub fn sf_defer(f: &JsValue);

    /// `p`, or a rejection with an `Error(message)` if it has not settled within `ms`.
    #[wasm_bindgen(js_name = sfWithin)]
    pub fn sf_within(p: &JsValue, ms: f64, message: &str) -> Promise;

    /// A signal that aborts after `ms`, or when `outer` (if an AbortSignal) aborts.
    #[wasm_bindgen(js_name = sfTimeoutOr, catch)]
    pub fn sf_timeout_or(ms: f64, outer: &JsValue) -> Result<JsValue, JsValue>;

    #[wasm_bindgen(js_name = sfRequest)]
    #[allow(clippy::too_many_arguments)]
    fn sf_request(
        fetch: &JsValue,
        url: &str,
        init: &JsValue,
        controller: &AbortController,
        timeout_ms: f64,
        json_parse: &JsValue,
        id: f64,
        done: &JsValue,
    );

    #[wasm_bindgen(js_name = sfSettle)]
    fn sf_settle(p: &JsValue, cb: &JsValue) -> Promise;
}

/// Send one POST with `fetch` (the installed transport, else the global) and report its outcome
/// to `done(id, outcome, status, value, cookies)` (see `sfRequest` in `src/wasm/project.js`): the
/// request is aborted through `controller` after `timeout_ms`, and the body is read with
/// `json()`, or with `text()` and `json_parse` when that is a function.
pub fn request(
    url: &str,
    init: &JsValue,
    controller: &AbortController,
    timeout_ms: f64,
    json_parse: &JsValue,
    id: f64,
    done: &JsValue,
) {
    sf_request(
        &installed_fetch(),
        url,
        init,
        controller,
        timeout_ms,
        json_parse,
        id,
        done,
    );
}

/// What a promise continuation returns: a value (a promise is adopted), or the error to reject with.
pub type Step = Result<JsValue, JsValue>;

/// Continue with `f` once `p` settles (`Ok(value)` or `Err(reason)`; a value that is not a promise
/// counts as resolved). The returned promise settles as `f`'s result does.
pub fn settle(p: &JsValue, f: impl FnOnce(Step) -> Step + 'static) -> Promise {
    settle_boxed(p, Box::new(f))
}

/// `settle` for any continuation: one closure type, so the module holds one copy of its glue.
fn settle_boxed(p: &JsValue, f: Box<dyn FnOnce(Step) -> Step>) -> Promise {
    let cb = Closure::once_into_js(move |ok: bool, v: JsValue| f(if ok { Ok(v) } else { Err(v) }));
    sf_settle(p, &cb)
}

/// Continue with `f` once `p` resolves; a rejection passes through.
pub fn then(p: &JsValue, f: impl FnOnce(JsValue) -> Step + 'static) -> Promise {
    settle(p, move |r| f(r?))
}

/// Run `f` in a microtask, after the caller's synchronous code (as an `async` export does), and
/// return a promise that settles as its result does.
pub fn later(f: impl FnOnce() -> Step + 'static) -> Promise {
    settle(&JsValue::UNDEFINED, move |_| f())
}

/// What a fetch resolves to, duck-typed: a `Response`, or the Node transport's lighter object with
/// the same members (no undici `Response` per request).
#[wasm_bindgen]
extern "C" {
    pub type FetchResponse;

    #[wasm_bindgen(method, getter)]
    pub fn status(this: &FetchResponse) -> JsValue;

    #[wasm_bindgen(method, getter)]
    pub fn headers(this: &FetchResponse) -> ResponseHeaders;

    #[wasm_bindgen(method, catch)]
    pub fn json(this: &FetchResponse) -> Result<Promise, JsValue>;

    #[wasm_bindgen(method, catch)]
    pub fn text(this: &FetchResponse) -> Result<Promise, JsValue>;

    pub type ResponseHeaders;

    #[wasm_bindgen(method, catch)]
    pub fn get(this: &ResponseHeaders, name: &str) -> Result<Option<String>, JsValue>;
}

impl FetchResponse {
    /// The HTTP status, 0 when the object has none (never a real response).
    pub fn status_code(&self) -> u16 {
        status_code(&self.status())
    }
}

/// A response's `status` as an HTTP status, 0 when it is none (never a real response).
pub fn status_code(status: &JsValue) -> u16 {
    match status.as_f64() {
        Some(s) if (0.0..=999.0).contains(&s) => s as u16,
        _ => 0,
    }
}

/// A fetch `init` for a POST with a string body: `{ method, body, headers, signal }`.
pub fn post_init(body: &str, headers: &[(&str, &str)], signal: Option<&JsValue>) -> JsValue {
    let h = js_sys::Object::new();
    for (k, v) in headers {
        let _ = js_sys::Reflect::set(&h, &JsValue::from_str(k), &JsValue::from_str(v));
    }
    let init = js_sys::Object::new();
    let _ = js_sys::Reflect::set(
        &init,
        &JsValue::from_str("method"),
        &JsValue::from_str("POST"),
    );
    let _ = js_sys::Reflect::set(&init, &JsValue::from_str("body"), &JsValue::from_str(body));
    let _ = js_sys::Reflect::set(&init, &JsValue::from_str("headers"), &h);
    if let Some(sig) = signal {
        let _ = js_sys::Reflect::set(&init, &JsValue::from_str("signal"), sig);
    }
    init.into()
}

/// The object the TypeScript wrapper hands to [`super::client::WasmClient`]: callbacks for what
/// the shell produces, and the authenticator and replay-marker storage it consumes.
#[wasm_bindgen]
extern "C" {
    #[derive(Clone)]
    pub type Host;

    /// Deliver `body[positions[i]]` for every i, in order. `positions` is only valid during the call.
    #[wasm_bindgen(method, js_name = onEvents)]
    pub fn on_events(this: &Host, body: &JsValue, positions: &[u32]);

    /// A status event (a plain object with a `type`).
    #[wasm_bindgen(method, js_name = onStatus)]
    pub fn on_status(this: &Host, status: &JsValue);

    /// The client failed for good; `receive()` raises this error once the buffer is drained.
    #[wasm_bindgen(method, js_name = onFailed)]
    pub fn on_failed(this: &Host, error: &JsValue);

    /// Resolve to `{ accessToken, instanceUrl, tokenType }`. `signal` aborts when the client no
    /// longer needs the token (closed, or the login outlived `connectionTimeout`).
    #[wasm_bindgen(method, catch)]
    pub fn authenticate(this: &Host, signal: &JsValue) -> Result<JsValue, JsValue>;

    /// Called after every successful authentication with the identity namespace
    /// (`<orgId>/<userId>`), so that storages can namespace their keys.
    #[wasm_bindgen(method, js_name = onAuthenticated)]
    pub fn on_authenticated(this: &Host, namespace: &str);

    /// Resolve to `{ replayId, date }`, or null/undefined.
    #[wasm_bindgen(method, js_name = getReplayMarker)]
    pub fn get_replay_marker(this: &Host, channel: &str) -> Promise;

    /// Store `{ replayId, date }` for `channel`.
    #[wasm_bindgen(method, js_name = setReplayMarker)]
    pub fn set_replay_marker(this: &Host, channel: &str, marker: &JsValue) -> Promise;
}
