//! The CometD/Bayeux long-polling endpoint `POST /cometd/{version}`, with Salesforce's rules
//! (reference §12): handshake, connect (held), subscribe with replay, unsubscribe, disconnect,
//! publish on `/u/` channels, and Salesforce's error strings.

use crate::oauth::TokenStatus;
use crate::state::{bump, lock, App, Hold, Session, Sub};
use crate::store::{classify, Body, Kind};
use crate::util::{http_date, json_str, new_affinity_cookie, new_browser_id, new_client_id};
use axum::body::Body as HttpBody;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The API version Salesforce names in its version error messages.
pub const LATEST_API_VERSION: &str = "66.0";
/// Lowest API version accepted on `/cometd`.
pub const MIN_API_VERSION: f64 = 37.0;

const JSON_CT: &str = "application/json;charset=UTF-8";

/// `403::Unknown client`.
pub const ERR_UNKNOWN_CLIENT: &str = "403::Unknown client";
/// `403::Handshake denied`.
pub const ERR_HANDSHAKE_DENIED: &str = "403::Handshake denied";
/// `401::Authentication invalid`.
pub const ERR_AUTH_INVALID: &str = "401::Authentication invalid";
/// `401::Request requires authentication`.
pub const ERR_AUTH_REQUIRED: &str = "401::Request requires authentication";
/// Concurrent client cap reached.
pub const ERR_CONCURRENT_LIMIT: &str = "403::Organization concurrent user limit exceeded";

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut r = Response::new(HttpBody::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
    r
}

/// A Bayeux error reply for the message `msg` (channel and id echoed).
fn error_reply(msg: Option<&Map<String, Value>>, default_channel: &str, error: &str) -> Value {
    let mut r = Map::new();
    let channel = msg
        .and_then(|m| m.get("channel"))
        .and_then(Value::as_str)
        .unwrap_or(default_channel);
    r.insert("channel".into(), Value::String(channel.to_string()));
    if let Some(id) = msg.and_then(|m| m.get("id")) {
        r.insert("id".into(), id.clone());
    }
    r.insert("error".into(), Value::String(error.to_string()));
    r.insert("successful".into(), Value::Bool(false));
    Value::Object(r)
}

/// The authentication token of a request: `Authorization: Bearer|OAuth <t>` or a raw token, else the `sid` cookie.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        let t = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
            .or_else(|| v.strip_prefix("OAuth "))
            .unwrap_or(v)
            .trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    cookie(headers, "sid")
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for h in headers.get_all(header::COOKIE) {
        let Ok(s) = h.to_str() else { continue };
        for part in s.split(';') {
            if let Some((k, v)) = part.trim().split_once('=') {
                if k.trim() == name {
                    return Some(v.trim().to_string());
                }
            }
        }
    }
    None
}

/// Per-request context.
struct Ctx {
    token: Option<String>,
    browser: Option<String>,
}

/// Result of processing one message.
struct Outcome {
    events: Vec<u8>,
    event_count: u64,
    reply: Value,
}

impl Outcome {
    fn reply(reply: Value) -> Outcome {
        Outcome {
            events: Vec::new(),
            event_count: 0,
            reply,
        }
    }
}

/// Handler for every `/cometd…` request.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    // Fault injection (control API) applies to CometD requests only.
    let (fail, delay) = {
        let mut f = lock(&app.faults);
        let fail = match f.fail {
            Some((status, n)) if n > 0 => {
                f.fail = if n > 1 { Some((status, n - 1)) } else { None };
                Some((status, f.location.clone()))
            }
            _ => None,
        };
        let delay = match f.delay {
            Some((ms, n)) if n > 0 => {
                f.delay = if n > 1 { Some((ms, n - 1)) } else { None };
                Some(ms)
            }
            _ => None,
        };
        (fail, delay)
    };
    if let Some(ms) = delay {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some((status, location)) = fail {
        let st = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut resp = text(st, st.canonical_reason().unwrap_or("Injected failure"));
        if st.is_redirection() {
            if let Ok(l) = header::HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, l);
            }
        }
        return resp;
    }

    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Only POST allowed");
    }
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/cometd").unwrap_or("");
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    const SUFFIXES: [&str; 5] = [
        "handshake",
        "connect",
        "subscribe",
        "unsubscribe",
        "disconnect",
    ];
    let (version, suffix_ok) = match segs.as_slice() {
        [] => (None, true),
        [v] if SUFFIXES.contains(v) => (None, true),
        [v] => (Some(*v), true),
        [v, s] => (Some(*v), SUFFIXES.contains(s)),
        _ => (None, false),
    };
    if !suffix_ok {
        return text(StatusCode::NOT_FOUND, "Not Found");
    }
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), app.cfg.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Maximum Request Size Exceeded",
            )
        }
    };

    // Body: a JSON array (or the form-encoded `message=` parameter).
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // A form body carries the messages in `message=`; a "form" body without it (e.g. curl's
    // default content type) is read as raw JSON.
    let form_message = if is_form {
        form_urlencoded::parse(&body)
            .find(|(k, _)| k == "message")
            .map(|(_, v)| v.into_owned())
    } else {
        None
    };
    let parsed: Result<Value, String> = match form_message {
        Some(m) => serde_json::from_str(&m).map_err(|e| e.to_string()),
        None => serde_json::from_slice(&body).map_err(|e| e.to_string()),
    };
    let bad = |why: &str| {
        let body = json!([{"error": format!("400::{why}"), "successful": false}]);
        json_response(StatusCode::BAD_REQUEST, body.to_string().into_bytes())
    };
    let value = match parsed {
        Ok(v) => v,
        Err(_) => {
            return bad("Invalid JSON: the request body must be a JSON array of Bayeux messages")
        }
    };
    let Value::Array(items) = value else {
        return bad("The request body must be a JSON array of Bayeux messages");
    };
    let mut msgs: Vec<Map<String, Value>> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Object(m) => msgs.push(m),
            _ => return bad("Every Bayeux message must be a JSON object"),
        }
    }
    if msgs.is_empty() {
        return bad("The request contains no Bayeux message");
    }

    // API version.
    let version_error = match version {
        None => Some(format!("400::API version in the URI is mandatory. URI format: '/cometd/{LATEST_API_VERSION}'")),
        Some(v) => match v.parse::<f64>() {
            Ok(n) if n >= MIN_API_VERSION => None,
            _ => Some(format!(
                "400::Unsupported API version. Only API versions '37.0' and later are supported. URI format: '/cometd/{LATEST_API_VERSION}'"
            )),
        },
    };
    if let Some(err) = version_error {
        let replies: Vec<Value> = msgs
            .iter()
            .map(|m| error_reply(Some(m), "/meta/handshake", &err))
            .collect();
        return json_response(
            StatusCode::BAD_REQUEST,
            Value::Array(replies).to_string().into_bytes(),
        );
    }

    let channel_of =
        |m: &Map<String, Value>| m.get("channel").and_then(Value::as_str).map(str::to_string);
    if msgs.len() > 1
        && msgs
            .iter()
            .any(|m| channel_of(m).as_deref() == Some("/meta/handshake"))
    {
        return bad("A /meta/handshake must be the only message in its request");
    }

    let ctx = Ctx {
        token: token_of(&headers),
        browser: cookie(&headers, "BAYEUX_BROWSER"),
    };
    let alone = msgs.len() == 1;
    let mut set_cookies: Vec<String> = Vec::new();
    let mut events: Vec<u8> = Vec::new();
    let mut replies: Vec<Value> = Vec::with_capacity(msgs.len());
    let mut event_count = 0u64;
    for m in &msgs {
        let channel = channel_of(m);
        let out = match channel.as_deref() {
            Some("/meta/handshake") => handshake(&app, m, &ctx, &mut set_cookies),
            Some("/meta/connect") => connect(&app, m, &ctx, alone).await,
            Some("/meta/subscribe") => Outcome::reply(subscribe(&app, m, &ctx)),
            Some("/meta/unsubscribe") => Outcome::reply(unsubscribe(&app, m, &ctx)),
            Some("/meta/disconnect") => Outcome::reply(disconnect(&app, m, &ctx)),
            Some(ch) if ch.starts_with("/meta/") => Outcome::reply(error_reply(
                Some(m),
                ch,
                &format!("400::Unknown meta channel {{{ch}}}"),
            )),
            Some(ch) if ch.starts_with('/') => Outcome::reply(publish(&app, m, &ctx, ch)),
            Some(_) => Outcome::reply(error_reply(
                Some(m),
                "",
                "400::Channel names must start with a leading '/'",
            )),
            None => Outcome::reply(error_reply(Some(m), "", "400::Channel name not specified")),
        };
        if !out.events.is_empty() {
            if !events.is_empty() {
                events.push(b',');
            }
            events.extend_from_slice(&out.events);
            event_count += out.event_count;
        }
        replies.push(out.reply);
    }
    bump(&app.counters.delivered, event_count);

    let mut body = Vec::with_capacity(events.len() + 256);
    body.push(b'[');
    body.extend_from_slice(&events);
    for r in &replies {
        if body.len() > 1 {
            body.push(b',');
        }
        if serde_json::to_writer(&mut body, r).is_err() {
            body.extend_from_slice(b"{}");
        }
    }
    body.push(b']');
    let cut = event_count > 0 && {
        let mut f = lock(&app.faults);
        let due = f.cut > 0;
        f.cut = f.cut.saturating_sub(1);
        due
    };
    let mut resp = if cut {
        let mut r = Response::new(HttpBody::new(CutBody::new(body)));
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CT));
        r
    } else {
        json_response(StatusCode::OK, body)
    };
    for c in set_cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A response body that sends the first half of `body`, waits a moment (so that hyper flushes
/// the head and that half), then fails: hyper aborts the connection, and the client sees the
/// response start and the connection drop (the `cut-responses` fault).
struct CutBody {
    first: Option<bytes::Bytes>,
    pause: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl CutBody {
    fn new(mut body: Vec<u8>) -> CutBody {
        body.truncate(body.len() / 2);
        CutBody {
            first: Some(body.into()),
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
        }
    }
}

impl http_body::Body for CutBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::future::Future;
        if let Some(b) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b))));
        }
        if self.pause.as_mut().poll(cx).is_pending() {
            return std::task::Poll::Pending;
        }
        std::task::Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "sfemu: response cut (cut-responses fault)",
        ))))
    }
}

fn with_id(mut r: Map<String, Value>, m: &Map<String, Value>) -> Map<String, Value> {
    if let Some(id) = m.get("id") {
        r.insert("id".into(), id.clone());
    }
    r
}

fn handshake(
    app: &App,
    m: &Map<String, Value>,
    ctx: &Ctx,
    set_cookies: &mut Vec<String>,
) -> Outcome {
    let deny = |reason: &str| {
        bump(&app.counters.failed_handshakes, 1);
        let mut r = Map::new();
        r.insert(
            "ext".into(),
            json!({"sfdc": {"failureReason": reason}, "replay": true, "payload.format": true}),
        );
        r.insert("advice".into(), json!({"reconnect": "none"}));
        r.insert("channel".into(), json!("/meta/handshake"));
        r.insert("error".into(), json!(ERR_HANDSHAKE_DENIED));
        r.insert("successful".into(), json!(false));
        Outcome::reply(Value::Object(with_id(r, m)))
    };
    let (username, user_id) = match app.check(ctx.token.as_deref()) {
        None => return deny(ERR_AUTH_REQUIRED),
        Some(TokenStatus::Valid {
            username, user_id, ..
        }) => (username, user_id),
        Some(_) => return deny(ERR_AUTH_INVALID),
    };
    if let Some(types) = m.get("supportedConnectionTypes") {
        let ok = types
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t.as_str() == Some("long-polling")));
        if !ok {
            return deny(&format!("400::Invalid connection type {{{}}}", types));
        }
    }
    let client_id = new_client_id();
    {
        let mut inner = app.inner();
        if inner.sessions.len() >= app.cfg.max_clients {
            drop(inner);
            return deny(ERR_CONCURRENT_LIMIT);
        }
        let browser = match &ctx.browser {
            Some(b) if !b.is_empty() => b.clone(),
            _ => {
                let b = new_browser_id();
                set_cookies.push(format!("BAYEUX_BROWSER={b}; Path=/; HttpOnly"));
                b
            }
        };
        inner.sessions.insert(
            client_id.clone(),
            Session {
                client_id: client_id.clone(),
                browser,
                username,
                user_id,
                subs: Default::default(),
                connected: false,
                hold: None,
                gen: 0,
                last_activity: Instant::now(),
                disconnect_pending: false,
            },
        );
    }
    // Affinity cookie: Salesforce sends `path=/; Expires=…; SameSite=None; Secure`. The emulator
    // serves plain http, where browsers drop `Secure` and `SameSite=None` cookies, so both are omitted.
    let expires = http_date(crate::util::real_now_ms() + 3600 * 1000);
    set_cookies.push(format!(
        "sfdc-stream={}; path=/; Expires={expires}",
        new_affinity_cookie()
    ));
    bump(&app.counters.handshakes, 1);
    let mut r = Map::new();
    r.insert(
        "ext".into(),
        json!({"replay": true, "payload.format": true}),
    );
    r.insert("minimumVersion".into(), json!("1.0"));
    r.insert("clientId".into(), json!(client_id));
    r.insert("supportedConnectionTypes".into(), json!(["long-polling"]));
    r.insert("channel".into(), json!("/meta/handshake"));
    r.insert("version".into(), json!("1.0"));
    r.insert("successful".into(), json!(true));
    Outcome::reply(Value::Object(with_id(r, m)))
}

/// Why a request for an existing session is refused.
enum Refusal {
    Unknown,
    NoCookie(String),
    Auth(&'static str, String),
    UserMismatch(String),
}

/// Looks up the session of message `m` and checks cookie and token.
fn check_session<'a>(
    app: &App,
    inner: &'a mut crate::state::Inner,
    m: &Map<String, Value>,
    ctx: &Ctx,
    status: &Option<TokenStatus>,
) -> Result<&'a mut Session, Refusal> {
    let cid = m
        .get("clientId")
        .and_then(Value::as_str)
        .ok_or(Refusal::Unknown)?;
    let s = inner.sessions.get_mut(cid).ok_or(Refusal::Unknown)?;
    match &ctx.browser {
        None => return Err(Refusal::NoCookie(cid.to_string())),
        Some(b) if *b != s.browser => return Err(Refusal::Unknown),
        _ => {}
    }
    match status {
        None => return Err(Refusal::Auth(ERR_AUTH_REQUIRED, cid.to_string())),
        Some(TokenStatus::Valid { username, .. }) => {
            if *username != s.username {
                return Err(Refusal::UserMismatch(cid.to_string()));
            }
        }
        Some(_) => return Err(Refusal::Auth(ERR_AUTH_INVALID, cid.to_string())),
    }
    let _ = app;
    Ok(s)
}

/// [`check_session`], then mark the session active (a subscribe, unsubscribe or publish restarts
/// its sweep timer) and return its clientId.
fn touch_session(
    app: &App,
    inner: &mut crate::state::Inner,
    m: &Map<String, Value>,
    ctx: &Ctx,
    status: &Option<TokenStatus>,
) -> Result<String, Refusal> {
    let s = check_session(app, inner, m, ctx, status)?;
    s.last_activity = Instant::now();
    Ok(s.client_id.clone())
}

/// Reply for a refusal on `channel`.
fn refusal_reply(m: &Map<String, Value>, channel: &str, why: Refusal) -> Value {
    let mut r = Map::new();
    match why {
        Refusal::Unknown => {
            r.insert(
                "advice".into(),
                json!({"interval": 0, "reconnect": "handshake"}),
            );
            r.insert("error".into(), json!(ERR_UNKNOWN_CLIENT));
        }
        Refusal::NoCookie(cid) => {
            r.insert(
                "error".into(),
                json!(format!("400::Client {cid} has established a session, but no BAYEUX_BROWSER cookie present")),
            );
            r.insert("clientId".into(), json!(cid));
        }
        Refusal::Auth(err, cid) => {
            r.insert("advice".into(), json!({"reconnect": "none", "interval": 0}));
            r.insert("error".into(), json!(err));
            r.insert("clientId".into(), json!(cid));
        }
        Refusal::UserMismatch(cid) => {
            r.insert("advice".into(), json!({"reconnect": "none", "interval": 0}));
            r.insert(
                "error".into(),
                json!("400::Authenticated user id does not match the session's user id"),
            );
            r.insert("clientId".into(), json!(cid));
        }
    }
    r.insert("channel".into(), json!(channel));
    if channel == "/meta/subscribe" || channel == "/meta/unsubscribe" {
        if let Some(s) = m.get("subscription") {
            r.insert("subscription".into(), s.clone());
        }
    }
    r.insert("successful".into(), json!(false));
    Value::Object(with_id(r, m))
}

fn connect_reply(m: &Map<String, Value>, cid: &str, advice: Option<Value>) -> Value {
    let mut r = Map::new();
    r.insert("clientId".into(), json!(cid));
    if let Some(a) = advice {
        r.insert("advice".into(), a);
    }
    r.insert("channel".into(), json!("/meta/connect"));
    r.insert("successful".into(), json!(true));
    Value::Object(with_id(r, m))
}

/// Copies pending events of session `cid` (up to `max_bytes`) into `out`, comma-separated; returns the count.
fn collect(inner: &mut crate::state::Inner, cid: &str, max_bytes: usize, out: &mut Vec<u8>) -> u64 {
    let crate::state::Inner {
        store, sessions, ..
    } = inner;
    let Some(s) = sessions.get_mut(cid) else {
        return 0;
    };
    let mut n = 0u64;
    for (ch_name, sub) in s.subs.iter_mut() {
        let Some(ch) = store.channels.get(ch_name) else {
            continue;
        };
        let start = sub.cursor.max(ch.base_seq);
        let end = ch.end_seq();
        let mut seq = start;
        while seq < end {
            if out.len() >= max_bytes && n > 0 {
                break;
            }
            let Some(e) = ch.events.get((seq - ch.base_seq) as usize) else {
                break;
            };
            seq += 1;
            if let Some(t) = &e.targets {
                if !t.contains(&s.user_id) {
                    continue;
                }
            }
            if !out.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(&e.json);
            n += 1;
        }
        sub.cursor = seq;
    }
    n
}

/// Clears the hold of a connect when its request finishes or is dropped (connection closed).
struct HoldGuard<'a> {
    app: &'a App,
    cid: String,
    gen: u64,
}

impl Drop for HoldGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.app.inner();
        let mut browser = None;
        if let Some(s) = inner.sessions.get_mut(&self.cid) {
            if s.hold.as_ref().is_some_and(|h| h.gen == self.gen) {
                s.hold = None;
                s.last_activity = Instant::now();
                browser = Some(s.browser.clone());
            }
        }
        if let Some(b) = browser {
            if inner.held_by_browser.get(&b) == Some(&self.cid) {
                inner.held_by_browser.remove(&b);
            }
        }
    }
}

fn disconnect_outcome(
    inner: &mut crate::state::Inner,
    m: &Map<String, Value>,
    cid: &str,
) -> Outcome {
    inner.remove_session(cid);
    Outcome {
        events: br#"{"channel":"/meta/disconnect","successful":true}"#.to_vec(),
        event_count: 0,
        reply: connect_reply(m, cid, Some(json!({"reconnect": "none", "interval": 0}))),
    }
}

async fn connect(app: &App, m: &Map<String, Value>, ctx: &Ctx, alone: bool) -> Outcome {
    bump(&app.counters.connects, 1);
    let status = app.check(ctx.token.as_deref());
    let hold_ms = app.cfg.hold_timeout_ms;
    let max_bytes = app.cfg.max_batch_bytes;
    let (cid, gen, waker) = {
        let mut guard = app.inner();
        let inner = &mut *guard;
        let s = match check_session(app, inner, m, ctx, &status) {
            Ok(s) => s,
            Err(why) => return Outcome::reply(refusal_reply(m, "/meta/connect", why)),
        };
        let cid = s.client_id.clone();
        if let Some(ct) = m.get("connectionType") {
            if ct.as_str() != Some("long-polling") {
                let shown = ct
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| ct.to_string());
                let mut r = Map::new();
                r.insert("clientId".into(), json!(cid));
                r.insert("channel".into(), json!("/meta/connect"));
                r.insert(
                    "error".into(),
                    json!(format!("400::Invalid connection type {{{shown}}}")),
                );
                r.insert("successful".into(), json!(false));
                return Outcome::reply(Value::Object(with_id(r, m)));
            }
        }
        if s.disconnect_pending {
            return disconnect_outcome(inner, m, &cid);
        }
        // A new connect supersedes a held one for the same client: the old one is answered with a
        // plain successful connect reply (no events), so no event is lost or duplicated.
        if let Some(old) = s.hold.take() {
            old.waker.notify_one();
        }
        s.gen += 1;
        s.last_activity = Instant::now();
        let timeout0 = m
            .get("advice")
            .and_then(|a| a.get("timeout"))
            .and_then(Value::as_u64)
            == Some(0);
        let first = !s.connected;
        let browser = s.browser.clone();
        let other_holds = inner
            .held_by_browser
            .get(&browser)
            .filter(|other| **other != cid)
            .and_then(|other| inner.sessions.get(other))
            .is_some_and(|o| o.hold.is_some());
        let immediate = first || timeout0 || !alone || other_holds;
        let mut out = Vec::new();
        let n = collect(inner, &cid, max_bytes, &mut out);
        if n > 0 || immediate {
            let advice = if other_holds && !first {
                Some(
                    json!({"interval": app.cfg.multi_session_interval_ms, "multiple-clients": true, "reconnect": "retry", "timeout": hold_ms}),
                )
            } else if first {
                Some(json!({"interval": 0, "timeout": hold_ms, "reconnect": "retry"}))
            } else {
                None
            };
            if let Some(s) = inner.sessions.get_mut(&cid) {
                s.connected = true;
                s.last_activity = Instant::now();
            }
            return Outcome {
                events: out,
                event_count: n,
                reply: connect_reply(m, &cid, advice),
            };
        }
        let waker = Arc::new(Notify::new());
        let gen = inner.sessions.get(&cid).map(|s| s.gen).unwrap_or(0);
        if let Some(s) = inner.sessions.get_mut(&cid) {
            s.hold = Some(Hold {
                gen,
                waker: waker.clone(),
            });
        }
        inner.held_by_browser.insert(browser, cid.clone());
        (cid, gen, waker)
    };
    let guard = HoldGuard {
        app,
        cid: cid.clone(),
        gen,
    };
    let deadline = Instant::now() + Duration::from_millis(hold_ms);
    let outcome = loop {
        let timed_out = tokio::select! {
            _ = waker.notified() => false,
            _ = tokio::time::sleep_until(deadline) => true,
        };
        let mut inner = app.inner();
        let Some(s) = inner.sessions.get(&cid) else {
            // Expired or swept while held.
            break Outcome::reply(refusal_reply(m, "/meta/connect", Refusal::Unknown));
        };
        if s.gen != gen {
            break Outcome::reply(connect_reply(m, &cid, None));
        }
        if s.disconnect_pending {
            break disconnect_outcome(&mut inner, m, &cid);
        }
        let mut out = Vec::new();
        let n = collect(&mut inner, &cid, max_bytes, &mut out);
        if n > 0 || timed_out {
            break Outcome {
                events: out,
                event_count: n,
                reply: connect_reply(m, &cid, None),
            };
        }
    };
    drop(guard);
    outcome
}

/// Formats a replay map the way Salesforce (Java) prints it: `{/topic/A=-1, /topic/B=5}`.
fn java_map(map: &Map<String, Value>) -> String {
    let parts: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}={v}")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn subscribe_error(m: &Map<String, Value>, cid: &str, error: String) -> Value {
    let mut r = Map::new();
    r.insert("clientId".into(), json!(cid));
    r.insert("channel".into(), json!("/meta/subscribe"));
    if let Some(s) = m.get("subscription") {
        r.insert("subscription".into(), s.clone());
    }
    r.insert("error".into(), json!(error));
    r.insert("successful".into(), json!(false));
    Value::Object(with_id(r, m))
}

/// The replay id error text (note the two spaces after "invalid.").
pub fn invalid_replay_error(shown: &str) -> String {
    format!(
        "400::The replayId {{{shown}}} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."
    )
}

/// The reply to a subscribe or unsubscribe that carries no clientId at all (before any session
/// lookup: Salesforce answers it the same whatever the token).
fn without_client_id(m: &Map<String, Value>, channel: &str) -> Option<Value> {
    if m.get("clientId").and_then(Value::as_str).is_some() {
        return None;
    }
    Some(error_reply(
        Some(m),
        channel,
        "403::Client has not completed handshake",
    ))
}

fn subscribe(app: &App, m: &Map<String, Value>, ctx: &Ctx) -> Value {
    if let Some(refusal) = without_client_id(m, "/meta/subscribe") {
        return refusal;
    }
    let status = app.check(ctx.token.as_deref());
    let now = app.now_ms();
    let mut guard = app.inner();
    let inner = &mut *guard;
    let cid = match touch_session(app, inner, m, ctx, &status) {
        Ok(cid) => cid,
        Err(why) => return refusal_reply(m, "/meta/subscribe", why),
    };
    let subscription = match m.get("subscription").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => return subscribe_error(m, &cid, "400::Channel name not specified".into()),
    };
    if !subscription.starts_with('/') {
        return subscribe_error(
            m,
            &cid,
            "400::Channel subscriptions must start with a leading '/'".into(),
        );
    }
    let base = subscription.split('?').next().unwrap_or("").to_string();
    let not_exist = || {
        format!("400::The channel you requested to subscribe to does not exist {{{subscription}}}")
    };
    let kind = match classify(&base) {
        Some(k) => k,
        None => return subscribe_error(m, &cid, not_exist()),
    };
    if subscription.contains('?') && kind != Kind::PushTopic {
        return subscribe_error(m, &cid, not_exist());
    }
    if !app.channel_allowed(inner, &base) {
        return subscribe_error(m, &cid, not_exist());
    }
    // Replay: ext.replay is a map channel → id; absent means -1.
    let replay = match m.get("ext").and_then(|e| e.get("replay")) {
        Some(Value::Object(map)) => match map.get(&base) {
            None => {
                return subscribe_error(
                    m,
                    &cid,
                    format!(
                        "400::The replayId for channel {{{base}}} wasn't found using the provided replay ID map {{{}}}. Ensure that the channel name you provided in the replay map is valid and matches the channel name used for subscribing.",
                        java_map(map)
                    ),
                )
            }
            Some(v) => {
                let parsed = match v {
                    Value::Number(n) => n.as_i64(),
                    Value::String(s) => s.trim().parse::<i64>().ok(),
                    _ => None,
                };
                match parsed {
                    Some(n) if n >= -2 && n != 0 => n,
                    _ => {
                        let shown = match v {
                            Value::String(s) => s.clone(),
                            o => o.to_string(),
                        };
                        return subscribe_error(m, &cid, invalid_replay_error(&shown));
                    }
                }
            }
        },
        _ => -1,
    };
    let max_events = inner.store.max_events;
    let Some(ch) = inner.store.channel_mut(&base) else {
        return subscribe_error(m, &cid, not_exist());
    };
    ch.prune(now, max_events);
    let cursor = match ch.cursor_for(replay) {
        Some(c) => c,
        None => return subscribe_error(m, &cid, invalid_replay_error(&replay.to_string())),
    };
    ch.subscribers.insert(cid.clone());
    let has_backlog = cursor < ch.end_seq();
    if let Some(s) = inner.sessions.get_mut(&cid) {
        s.subs.insert(
            base.clone(),
            Sub {
                subscription: subscription.clone(),
                cursor,
            },
        );
        if has_backlog {
            if let Some(h) = &s.hold {
                h.waker.notify_one();
            }
        }
    }
    subscription_reply(m, &cid, "/meta/subscribe", &subscription)
}

/// The successful reply to a subscribe or unsubscribe.
fn subscription_reply(
    m: &Map<String, Value>,
    cid: &str,
    channel: &str,
    subscription: &str,
) -> Value {
    let mut r = Map::new();
    r.insert("clientId".into(), json!(cid));
    r.insert("channel".into(), json!(channel));
    r.insert("subscription".into(), json!(subscription));
    r.insert("successful".into(), json!(true));
    Value::Object(with_id(r, m))
}

fn unsubscribe(app: &App, m: &Map<String, Value>, ctx: &Ctx) -> Value {
    if let Some(refusal) = without_client_id(m, "/meta/unsubscribe") {
        return refusal;
    }
    let status = app.check(ctx.token.as_deref());
    let mut guard = app.inner();
    let inner = &mut *guard;
    let cid = match touch_session(app, inner, m, ctx, &status) {
        Ok(cid) => cid,
        Err(why) => return refusal_reply(m, "/meta/unsubscribe", why),
    };
    let subscription = match m.get("subscription").and_then(Value::as_str) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => {
            let mut r = subscribe_error(m, &cid, "400::Channel name not specified".into());
            if let Some(o) = r.as_object_mut() {
                o.insert("channel".into(), json!("/meta/unsubscribe"));
            }
            return r;
        }
    };
    let base = subscription.split('?').next().unwrap_or("").to_string();
    if let Some(s) = inner.sessions.get_mut(&cid) {
        s.subs.remove(&base);
    }
    if let Some(ch) = inner.store.channels.get_mut(&base) {
        ch.subscribers.remove(&cid);
    }
    subscription_reply(m, &cid, "/meta/unsubscribe", &subscription)
}

fn disconnect(app: &App, m: &Map<String, Value>, ctx: &Ctx) -> Value {
    let status = app.check(ctx.token.as_deref());
    let mut guard = app.inner();
    let inner = &mut *guard;
    // A client may always leave, even with an expired token.
    let status = match status {
        Some(TokenStatus::Valid { .. }) => status,
        _ => {
            let s = m
                .get("clientId")
                .and_then(Value::as_str)
                .and_then(|c| inner.sessions.get(c));
            s.map(|s| TokenStatus::Valid {
                username: s.username.clone(),
                user_id: s.user_id.clone(),
                org_id: String::new(),
            })
        }
    };
    let cid = match check_session(app, inner, m, ctx, &status) {
        Ok(s) => s.client_id.clone(),
        Err(why) => return refusal_reply(m, "/meta/disconnect", why),
    };
    inner.remove_session(&cid);
    let mut r = Map::new();
    r.insert("clientId".into(), json!(cid));
    r.insert("channel".into(), json!("/meta/disconnect"));
    r.insert("successful".into(), json!(true));
    Value::Object(with_id(r, m))
}

fn publish(app: &App, m: &Map<String, Value>, ctx: &Ctx, channel: &str) -> Value {
    let status = app.check(ctx.token.as_deref());
    let now = app.now_ms();
    let mut guard = app.inner();
    let inner = &mut *guard;
    let cid = match touch_session(app, inner, m, ctx, &status) {
        Ok(cid) => cid,
        Err(why) => return refusal_reply(m, channel, why),
    };
    if classify(channel) != Some(Kind::Generic) {
        let mut r = match error_reply(Some(m), channel, "403::Publish denied") {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        r.insert("clientId".into(), json!(cid));
        return Value::Object(r);
    }
    let payload = match m.get("data") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let body = Body::Generic {
        payload: json_str(&payload),
        targets: None,
    };
    let _ = inner.publish(channel, &body, 1, now);
    let mut r = Map::new();
    r.insert("channel".into(), json!(channel));
    r.insert("successful".into(), json!(true));
    Value::Object(with_id(r, m))
}

/// Sweeps sessions with no connect within `max_interval` after their last reply (real time).
pub async fn sweeper(app: Arc<App>) {
    let max = Duration::from_millis(app.cfg.max_interval_ms);
    let tick = Duration::from_millis((app.cfg.max_interval_ms / 4).clamp(10, 1000));
    loop {
        tokio::time::sleep(tick).await;
        let mut inner = app.inner();
        let now = Instant::now();
        let stale: Vec<String> = inner
            .sessions
            .values()
            .filter(|s| s.hold.is_none() && now.duration_since(s.last_activity) > max)
            .map(|s| s.client_id.clone())
            .collect();
        for cid in stale {
            inner.remove_session(&cid);
        }
    }
}
