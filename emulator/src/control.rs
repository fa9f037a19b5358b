//! The emulator-only control API under `/_sfemu/` (JSON in and out, unauthenticated).
//! See `emulator/README.md` for the reference.

use crate::state::{get, lock, App, ConnId, Inner};
use crate::store::{body_for, cdc_channel, classify, key_prefix, Body, Kind, DEFAULT_USER_ID};
use crate::util::{iso_seconds, record_id};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get as get_route, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Routes of the control API.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/_sfemu/publish", post(publish))
        .route("/_sfemu/token", post(token))
        .route("/_sfemu/drop-connections", post(drop_connections))
        .route("/_sfemu/expire-sessions", post(expire_sessions))
        .route("/_sfemu/revoke-tokens", post(revoke_tokens))
        .route("/_sfemu/restart", post(restart))
        .route("/_sfemu/fail", post(fail))
        .route("/_sfemu/delay", post(delay))
        .route("/_sfemu/cut-responses", post(cut_responses))
        .route("/_sfemu/clock", post(clock).get(clock_get))
        .route("/_sfemu/disconnect", post(disconnect))
        .route("/_sfemu/pushtopic", post(pushtopic))
        .route("/_sfemu/record-change", post(record_change))
        .route("/_sfemu/reset", post(reset))
        .route("/_sfemu/stats", get_route(stats))
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

/// Parses an optional JSON object body (empty body = `{}`).
#[allow(clippy::result_large_err)]
fn obj(body: &Bytes) -> Result<Map<String, Value>, Response> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("the body must be a JSON object")),
        Err(e) => Err(bad(format!("invalid JSON: {e}"))),
    }
}

/// Number of events published per lock acquisition in bulk publishes.
const CHUNK: u64 = 4096;

async fn publish(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(channel) = req
        .get("channel")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return bad("\"channel\" is required");
    };
    let Some(kind) = classify(&channel) else {
        return bad(format!("not a valid channel: {channel}"));
    };
    let count = match req.get("count") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 10_000_000 => n,
            _ => return bad("\"count\" must be an integer from 0 to 10000000"),
        },
    };
    let body = body_for(kind, &channel, &req, DEFAULT_USER_ID);
    let fanout = (kind == Kind::ChangeEvent && channel != "/data/ChangeEvents")
        .then_some("/data/ChangeEvents");
    let mut first = None;
    let mut last = 0i64;
    let mut done = 0u64;
    while done < count {
        let n = CHUNK.min(count - done);
        let now = app.now_ms();
        {
            let mut inner = app.inner();
            if let Some(p) = inner.publish(&channel, &body, n, now) {
                first.get_or_insert(p.first);
                last = p.last;
            }
            if let Some(f) = fanout {
                let _ = inner.publish(f, &body, n, now);
            }
        }
        done += n;
        if done < count {
            tokio::task::yield_now().await;
        }
    }
    Json(json!({"published": done, "firstReplayId": first, "lastReplayId": if done > 0 { Some(last) } else { None }}))
        .into_response()
}

async fn token(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let username = match req.get("username").and_then(Value::as_str) {
        Some(u) => u.to_string(),
        None => match app.cfg.oauth.users.first() {
            Some((u, _)) => u.clone(),
            None => return bad("no user configured"),
        },
    };
    match app.oauth.mint_token(&username) {
        Some(g) => Json(json!({
            "access_token": g.access_token,
            "instance_url": g.instance_url,
            "id": g.id,
            "token_type": g.token_type,
            "issued_at": g.issued_at,
        }))
        .into_response(),
        None => bad(format!("unknown user: {username}")),
    }
}

async fn drop_connections(
    State(app): State<Arc<App>>,
    conn: Option<Extension<ConnId>>,
) -> Response {
    let n = app.conns.drop_all(conn.map(|c| c.0 .0));
    Json(json!({"dropped": n})).into_response()
}

fn expire_all(inner: &mut Inner) -> usize {
    let ids: Vec<String> = inner.sessions.keys().cloned().collect();
    for id in &ids {
        inner.remove_session(id);
    }
    ids.len()
}

async fn expire_sessions(State(app): State<Arc<App>>) -> Response {
    let n = expire_all(&mut app.inner());
    Json(json!({"expired": n})).into_response()
}

async fn revoke_tokens(State(app): State<Arc<App>>) -> Response {
    let n = app.oauth.revoke_all();
    Json(json!({"revoked": n})).into_response()
}

async fn restart(State(app): State<Arc<App>>, conn: Option<Extension<ConnId>>) -> Response {
    let sessions = expire_all(&mut app.inner());
    let dropped = app.conns.drop_all(conn.map(|c| c.0 .0));
    Json(json!({"sessions": sessions, "dropped": dropped})).into_response()
}

async fn fail(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let status = req.get("status").and_then(Value::as_u64).unwrap_or(503);
    if !(300..=599).contains(&status) {
        return bad("\"status\" must be a redirect or an HTTP error status (300-599)");
    }
    // A redirect's target (what a misconfigured proxy or instance URL would answer with).
    let location = match req.get("location") {
        None => "/".to_owned(),
        Some(Value::String(l)) if !l.is_empty() && !l.contains(['\r', '\n']) => l.clone(),
        Some(_) => return bad("\"location\" must be a non-empty string without line breaks"),
    };
    let count = req.get("count").and_then(Value::as_u64).unwrap_or(1);
    let mut f = lock(&app.faults);
    f.fail = (count > 0).then_some((status as u16, count));
    f.location = location.clone();
    Json(json!({"status": status, "count": count, "location": location})).into_response()
}

async fn delay(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(ms) = req.get("ms").and_then(Value::as_u64) else {
        return bad("\"ms\" is required");
    };
    let count = req.get("count").and_then(Value::as_u64).unwrap_or(1);
    lock(&app.faults).delay = (count > 0).then_some((ms.min(600_000), count));
    Json(json!({"ms": ms, "count": count})).into_response()
}

async fn cut_responses(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let count = match req.get("count") {
        None => 1,
        Some(v) => match v.as_u64() {
            Some(n) => n,
            None => return bad("\"count\" must be a non-negative integer"),
        },
    };
    lock(&app.faults).cut = count;
    Json(json!({"count": count})).into_response()
}

async fn clock(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = if let Some(a) = req.get("advanceMs").and_then(Value::as_i64) {
        app.clock.advance(a)
    } else if let Some(t) = req.get("setMs").and_then(Value::as_u64) {
        app.clock.set(t)
    } else if req.is_empty() {
        app.now_ms()
    } else {
        return bad("give \"advanceMs\" (integer) or \"setMs\" (epoch ms)");
    };
    Json(json!({"nowMs": now})).into_response()
}

async fn clock_get(State(app): State<Arc<App>>) -> Response {
    Json(json!({"nowMs": app.now_ms()})).into_response()
}

async fn disconnect(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let only = req.get("clientId").and_then(Value::as_str);
    let mut inner = app.inner();
    let mut n = 0;
    for s in inner.sessions.values_mut() {
        if only.is_none_or(|c| c == s.client_id) {
            s.disconnect_pending = true;
            if let Some(h) = &s.hold {
                h.waker.notify_one();
            }
            n += 1;
        }
    }
    Json(json!({"disconnected": n})).into_response()
}

async fn pushtopic(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(name) = req.get("name").and_then(Value::as_str) else {
        return bad("\"name\" is required");
    };
    let name = name.strip_prefix("/topic/").unwrap_or(name).to_string();
    if classify(&format!("/topic/{name}")).is_none() {
        return bad(format!("invalid PushTopic name: {name}"));
    }
    let entity = req
        .get("entity")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| default_entity(&name));
    app.inner().pushtopics.insert(name.clone(), entity.clone());
    Json(json!({"name": name, "entity": entity, "channel": format!("/topic/{name}")}))
        .into_response()
}

/// The entity a PushTopic watches when none is configured: the leading capitalised word of its
/// name (`OpportunityUpdates` → `Opportunity`).
pub fn default_entity(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.char_indices() {
        if i > 0 && c.is_ascii_uppercase() {
            break;
        }
        out.push(c);
    }
    out
}

/// Simulates a record change: fires PushTopic events on every topic watching the entity
/// (registered ones, and known `/topic/<Entity>…` channels), and CDC events on the entity's
/// channel and `/data/ChangeEvents`. Returns a JSON summary.
pub fn fire_record_change(
    app: &App,
    entity: &str,
    change_type: &str,
    fields: &Map<String, Value>,
    record: Option<&str>,
) -> Value {
    let now = app.now_ms();
    let rid = record
        .map(str::to_string)
        .unwrap_or_else(|| record_id(key_prefix(entity)));
    let event_type = match change_type {
        "CREATE" => "created",
        "DELETE" => "deleted",
        "UNDELETE" => "undeleted",
        _ => "updated",
    };
    let mut sobject = Map::new();
    sobject.insert("Id".into(), json!(rid));
    for (k, v) in fields {
        sobject.insert(k.clone(), v.clone());
    }
    let topic_body = Body::PushTopic {
        event_type: event_type.into(),
        sobject: Value::Object(sobject).to_string(),
    };

    let mut cdc_fields = fields.clone();
    let stamp = iso_seconds(now);
    if change_type == "CREATE" {
        cdc_fields
            .entry("CreatedDate")
            .or_insert_with(|| json!(stamp));
    }
    if change_type == "CREATE" || change_type == "UPDATE" {
        cdc_fields
            .entry("LastModifiedDate")
            .or_insert_with(|| json!(stamp));
    }
    let changed_fields = if change_type == "UPDATE" {
        cdc_fields.keys().cloned().collect()
    } else {
        Vec::new()
    };
    let cdc_body = Body::Change {
        entity: entity.to_string(),
        change_type: change_type.to_string(),
        record_ids: vec![rid.clone()],
        fields: Value::Object(cdc_fields).to_string(),
        changed_fields,
        commit_user: DEFAULT_USER_ID.into(),
    };

    let mut inner = app.inner();
    let mut topics: Vec<String> = inner
        .pushtopics
        .iter()
        .filter(|(_, e)| e.as_str() == entity)
        .map(|(n, _)| format!("/topic/{n}"))
        .collect();
    for name in inner.store.channels.keys() {
        if let Some(t) = name.strip_prefix("/topic/") {
            if !inner.pushtopics.contains_key(t) && t.starts_with(entity) && !topics.contains(name)
            {
                topics.push(name.clone());
            }
        }
    }
    topics.sort();
    let mut topic_events = Vec::new();
    for t in &topics {
        if let Some(p) = inner.publish(t, &topic_body, 1, now) {
            topic_events.push(json!({"channel": t, "replayId": p.last}));
        }
    }
    let mut change_events = Vec::new();
    for ch in [cdc_channel(entity), "/data/ChangeEvents".to_string()] {
        if let Some(p) = inner.publish(&ch, &cdc_body, 1, now) {
            change_events.push(json!({"channel": ch, "replayId": p.last}));
        }
    }
    json!({"recordId": rid, "pushTopicEvents": topic_events, "changeEvents": change_events})
}

async fn record_change(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req = match obj(&body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(entity) = req.get("entity").and_then(Value::as_str) else {
        return bad("\"entity\" is required");
    };
    if entity.is_empty()
        || !entity
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return bad("invalid entity name");
    }
    let change_type = req
        .get("changeType")
        .and_then(Value::as_str)
        .unwrap_or("UPDATE");
    const TYPES: [&str; 9] = [
        "CREATE",
        "UPDATE",
        "DELETE",
        "UNDELETE",
        "GAP_CREATE",
        "GAP_UPDATE",
        "GAP_DELETE",
        "GAP_UNDELETE",
        "GAP_OVERFLOW",
    ];
    if !TYPES.contains(&change_type) {
        return bad(format!("invalid changeType: {change_type}"));
    }
    let fields = match req.get("fields") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return bad("\"fields\" must be an object"),
    };
    let record = req.get("recordId").and_then(Value::as_str);
    Json(fire_record_change(
        &app,
        entity,
        change_type,
        &fields,
        record,
    ))
    .into_response()
}

async fn reset(State(app): State<Arc<App>>) -> Response {
    let mut inner = app.inner();
    let sessions = expire_all(&mut inner);
    let max = inner.store.max_events;
    inner.store = crate::store::Store::new(max);
    inner.pushtopics.clear();
    inner.streaming_channels.clear();
    drop(inner);
    *lock(&app.faults) = Default::default();
    Json(json!({"sessions": sessions, "reset": true})).into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    let inner = app.inner();
    let sessions: Vec<Value> = inner
        .sessions
        .values()
        .map(|s| {
            json!({
                "clientId": s.client_id,
                "subscriptions": s.subs.values().map(|x| x.subscription.clone()).collect::<Vec<_>>(),
                "browser": s.browser,
                "username": s.username,
                "connected": s.connected,
                "held": s.hold.is_some(),
            })
        })
        .collect();
    let subscriptions: usize = inner.sessions.values().map(|s| s.subs.len()).sum();
    let mut channels = Map::new();
    for (name, ch) in &inner.store.channels {
        channels.insert(
            name.clone(),
            json!({
                "lastReplayId": ch.last_replay_id,
                "count": ch.events.len(),
                "published": ch.published,
                "subscribers": ch.subscribers.len(),
            }),
        );
    }
    let pushtopics: Map<String, Value> = inner
        .pushtopics
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Json(json!({
        "clients": inner.sessions.len(),
        "sessions": sessions,
        "subscriptions": subscriptions,
        "channels": channels,
        "pushTopics": pushtopics,
        "handshakes": get(&app.counters.handshakes),
        "failedHandshakes": get(&app.counters.failed_handshakes),
        "connects": get(&app.counters.connects),
        "published": inner.store.published,
        "delivered": get(&app.counters.delivered),
        "connections": lock(&app.conns.live).len(),
        "nowMs": app.now_ms(),
    }))
    .into_response()
}
