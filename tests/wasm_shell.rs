//! The wasm shell on its own (ARCHITECTURE.md, testing layer 3): `WasmClient` driven from Rust
//! under wasm-bindgen-test in Node, talking real HTTP to sfemu (its URL is baked in at compile
//! time from `SFEMU_URL` by `tests/wasm/run.mjs`, which starts sfemu as its own process). The host
//! object is built here from closures, the way the TypeScript wrapper builds it.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Function, Object, Promise, Reflect};
use sfstream::wasm::client::WasmClient;
use sfstream::wasm::js::{global_fetch, set_timeout};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::wasm_bindgen_test;

const SFEMU_URL: Option<&str> = option_env!("SFEMU_URL");

fn url() -> &'static str {
    SFEMU_URL.unwrap_or("http://127.0.0.1:8090")
}

fn set(obj: &JsValue, key: &str, value: &JsValue) {
    Reflect::set(obj, &JsValue::from_str(key), value).expect("set a property on a plain object");
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

async fn sleep(ms: f64) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    JsFuture::from(p).await.expect("a timer promise resolves");
}

/// POST JSON to sfemu's control API.
async fn control(path: &str, body: &str) -> JsValue {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&JsValue::from_str(body));
    let headers = web_sys::Headers::new().expect("Headers");
    headers
        .set("content-type", "application/json")
        .expect("header");
    init.set_headers(&headers);
    let resp: web_sys::Response =
        JsFuture::from(global_fetch(&format!("{}/_sfemu/{path}", url()), &init))
            .await
            .expect("sfemu answers the control API")
            .dyn_into()
            .expect("a Response");
    assert!(resp.ok(), "control {path}: HTTP {}", resp.status());
    JsFuture::from(resp.json().expect("json"))
        .await
        .expect("a JSON body")
}

/// What the host saw.
#[derive(Default)]
struct Seen {
    events: Vec<JsValue>,
    statuses: Vec<String>,
    authentications: u32,
}

/// A host object like the one `js/client.ts` builds, recording into `seen`.
fn host(seen: Rc<RefCell<Seen>>, token: JsValue) -> JsValue {
    let h: JsValue = Object::new().into();
    let s = seen.clone();
    let on_events =
        Closure::<dyn FnMut(JsValue, JsValue)>::new(move |body: JsValue, positions: JsValue| {
            let arr: Array = body.unchecked_into();
            for p in js_sys::Uint32Array::new(&positions).to_vec() {
                s.borrow_mut().events.push(arr.get(p));
            }
        });
    set(&h, "onEvents", &on_events.into_js_value());
    let s = seen.clone();
    let on_status = Closure::<dyn FnMut(JsValue)>::new(move |st: JsValue| {
        s.borrow_mut()
            .statuses
            .push(get(&st, "type").as_string().unwrap_or_default());
    });
    set(&h, "onStatus", &on_status.into_js_value());
    set(
        &h,
        "onFailed",
        &Closure::<dyn FnMut(JsValue)>::new(|_e: JsValue| {}).into_js_value(),
    );
    set(
        &h,
        "onAuthenticated",
        &Closure::<dyn FnMut(JsValue)>::new(|_ns: JsValue| {}).into_js_value(),
    );
    let s = seen;
    let authenticate = Closure::<dyn FnMut() -> Promise>::new(move || {
        s.borrow_mut().authentications += 1;
        let result: JsValue = Object::new().into();
        set(&result, "accessToken", &get(&token, "access_token"));
        set(&result, "instanceUrl", &get(&token, "instance_url"));
        Promise::resolve(&result)
    });
    set(&h, "authenticate", &authenticate.into_js_value());
    let null = Function::new_with_args("", "return Promise.resolve(null)");
    set(&h, "getReplayMarker", &null);
    set(
        &h,
        "setReplayMarker",
        &Function::new_with_args("", "return Promise.resolve()"),
    );
    h
}

fn options(max_pending: f64) -> JsValue {
    let o: JsValue = Object::new().into();
    set(&o, "apiVersion", &JsValue::from_str("62.0"));
    set(&o, "maxPendingCount", &JsValue::from_f64(max_pending));
    set(&o, "connectionTimeout", &JsValue::from_f64(10_000.0));
    o
}

async fn wait_for_events(seen: &Rc<RefCell<Seen>>, n: usize) {
    for _ in 0..200 {
        if seen.borrow().events.len() >= n {
            return;
        }
        sleep(25.0).await;
    }
    panic!("only {} of {n} events arrived", seen.borrow().events.len());
}

fn replay_id(event: &JsValue) -> f64 {
    get(&get(&get(event, "data"), "event"), "replayId")
        .as_f64()
        .expect("data.event.replayId")
}

#[wasm_bindgen_test]
async fn open_subscribe_receive_and_close_over_real_http() {
    let token = control("token", r#"{"username":"user@example.com"}"#).await;
    let seen = Rc::new(RefCell::new(Seen::default()));
    let client = WasmClient::new(host(seen.clone(), token).unchecked_into(), &options(100.0))
        .expect("a client");
    assert!(client.closed());
    JsFuture::from(client.open()).await.expect("open");
    assert_eq!(client.connection_type().as_deref(), Some("long-polling"));
    JsFuture::from(client.subscribe("/topic/WasmShell".into()))
        .await
        .expect("subscribe");
    control("publish", r#"{"channel":"/topic/WasmShell","count":3}"#).await;
    wait_for_events(&seen, 3).await;
    let ids: Vec<f64> = seen.borrow().events.iter().map(replay_id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in replay-id order: {ids:?}"
    );
    assert_eq!(client.pending_count(), 3, "delivered and not consumed");
    client.consumed(3);
    assert_eq!(client.pending_count(), 0);
    JsFuture::from(client.close()).await.expect("close");
    assert!(client.closed());
    let statuses = seen.borrow().statuses.clone();
    assert!(
        statuses.contains(&"connected".to_owned()) && statuses.contains(&"closed".to_owned()),
        "{statuses:?}"
    );
}

#[wasm_bindgen_test]
async fn recovers_from_expired_sessions_without_losing_an_event() {
    let token = control("token", r#"{"username":"user@example.com"}"#).await;
    let seen = Rc::new(RefCell::new(Seen::default()));
    let client = WasmClient::new(host(seen.clone(), token).unchecked_into(), &options(0.0))
        .expect("a client");
    JsFuture::from(client.open()).await.expect("open");
    JsFuture::from(client.subscribe("/event/WasmShell__e".into()))
        .await
        .expect("subscribe");
    control("publish", r#"{"channel":"/event/WasmShell__e","count":2}"#).await;
    wait_for_events(&seen, 2).await;
    control("expire-sessions", "{}").await;
    control("publish", r#"{"channel":"/event/WasmShell__e","count":4}"#).await;
    wait_for_events(&seen, 6).await;
    let ids: Vec<f64> = seen.borrow().events.iter().map(replay_id).collect();
    assert_eq!(ids.len(), 6, "no duplicate: {ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in order, nothing twice: {ids:?}"
    );
    assert!(seen.borrow().statuses.contains(&"rehandshake".to_owned()));
    JsFuture::from(client.close()).await.expect("close");
}

#[wasm_bindgen_test]
async fn a_subscribe_the_server_rejects_is_a_server_error() {
    let token = control("token", r#"{"username":"user@example.com"}"#).await;
    let seen = Rc::new(RefCell::new(Seen::default()));
    let client =
        WasmClient::new(host(seen, token).unchecked_into(), &options(100.0)).expect("a client");
    JsFuture::from(client.open()).await.expect("open");
    let err = JsFuture::from(client.subscribe("/nothing/here".into()))
        .await
        .expect_err("rejected");
    assert_eq!(
        get(&err, "name").as_string().as_deref(),
        Some("ServerError")
    );
    assert_eq!(get(&err, "errorCode").as_f64(), Some(400.0));
    JsFuture::from(client.close()).await.expect("close");
}
