//! Salesforce's REST publish side (reference §11): platform events via
//! `POST /services/data/vXX.X/sobjects/{Name}__e`, StreamingChannel records and their `/push`.

use crate::bayeux::token_of;
use crate::oauth::TokenStatus;
use crate::server::decode_segment;
use crate::state::App;
use crate::store::{classify, Body, Kind};
use crate::util::{json_str, random_from, uuid4};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Routes of the REST publish API.
pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/services/data/{version}/sobjects/{*rest}", any(handle))
}

fn err(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

fn not_found() -> Response {
    err(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "The requested resource does not exist",
    )
}

fn method_not_allowed(method: &Method) -> Response {
    err(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        &format!("HTTP Method '{method}' not allowed. Allowed are POST"),
    )
}

const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let segs: Vec<String> = path
        .trim_start_matches("/services/data/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect();
    // segs: [version, "sobjects", ...]
    let version_ok = segs
        .first()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse::<f64>().ok())
        .is_some_and(|v| v >= 20.0);
    if !version_ok || segs.get(1).map(String::as_str) != Some("sobjects") {
        return not_found();
    }
    let (username, user_id) = match token_of(&headers).map(|t| app.oauth.check_token(&t)) {
        Some(TokenStatus::Valid {
            username, user_id, ..
        }) => (username, user_id),
        _ => {
            return err(
                StatusCode::UNAUTHORIZED,
                "INVALID_SESSION_ID",
                "Session expired or invalid",
            )
        }
    };
    let _ = username;
    let body = match axum::body::to_bytes(req.into_body(), 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => {
            return err(
                StatusCode::PAYLOAD_TOO_LARGE,
                "JSON_PARSER_ERROR",
                "Request body too large",
            )
        }
    };
    let rest: Vec<&str> = segs[2..].iter().map(String::as_str).collect();
    match rest.as_slice() {
        [name] if name.ends_with("__e") => {
            if method != Method::POST {
                return method_not_allowed(&method);
            }
            publish_platform_event(&app, name, &body, &user_id)
        }
        ["StreamingChannel"] => {
            if method != Method::POST {
                return method_not_allowed(&method);
            }
            create_streaming_channel(&app, &body)
        }
        ["StreamingChannel", id, "push"] => {
            let Some(channel) = resolve_channel(&app, id) else {
                return not_found();
            };
            match method {
                Method::POST => push(&app, &channel, &body),
                Method::GET => online(&app, &channel),
                _ => method_not_allowed(&method),
            }
        }
        _ => not_found(),
    }
}

#[allow(clippy::result_large_err)]
fn parse_object(body: &Bytes) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "Expected a JSON object",
        )),
        Err(e) => Err(err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            &format!("Malformed JSON: {e}"),
        )),
    }
}

fn publish_platform_event(app: &App, name: &str, body: &Bytes, user_id: &str) -> Response {
    let channel = format!("/event/{name}");
    if classify(&channel) != Some(Kind::PlatformEvent) {
        return not_found();
    }
    let fields = match parse_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let now = app.now_ms();
    let mut inner = app.inner();
    if !app.channel_allowed(&inner, &channel) {
        return not_found();
    }
    let b = Body::Platform {
        fields: Value::Object(fields).to_string(),
        created_by: user_id.to_string(),
    };
    let _ = inner.publish(&channel, &b, 1, now);
    drop(inner);
    let id = format!("e01xx{}AAA", random_from(B62, 10));
    let _ = uuid4;
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response()
}

fn create_streaming_channel(app: &App, body: &Bytes) -> Response {
    let fields = match parse_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(name) = fields.get("Name").and_then(Value::as_str) else {
        return err(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            "Required fields are missing: [Name]",
        );
    };
    if classify(name) != Some(Kind::Generic) {
        return err(
            StatusCode::BAD_REQUEST,
            "FIELD_INTEGRITY_EXCEPTION",
            "Streaming Channel name must be of the form /u/ChannelName",
        );
    }
    let mut inner = app.inner();
    if let Some((id, _)) = inner
        .streaming_channels
        .iter()
        .find(|(_, n)| n.as_str() == name)
    {
        let id = id.clone();
        return err(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_VALUE",
            &format!("duplicate value found: Name duplicates value on record with id: {id}"),
        );
    }
    let id = format!("0M6xx{}AAA", random_from(B62, 10));
    inner
        .streaming_channels
        .insert(id.clone(), name.to_string());
    (
        StatusCode::CREATED,
        Json(json!({"id": id, "success": true, "errors": []})),
    )
        .into_response()
}

/// A channel id (from `POST …/StreamingChannel`) or, for convenience, the channel name itself.
fn resolve_channel(app: &App, id: &str) -> Option<String> {
    if let Some(n) = app.inner().streaming_channels.get(id) {
        return Some(n.clone());
    }
    (classify(id) == Some(Kind::Generic)).then(|| id.to_string())
}

fn online_users(inner: &crate::state::Inner, channel: &str) -> Vec<String> {
    let mut users: Vec<String> = inner
        .store
        .channels
        .get(channel)
        .map(|c| {
            c.subscribers
                .iter()
                .filter_map(|cid| inner.sessions.get(cid))
                .map(|s| s.user_id.clone())
                .collect()
        })
        .unwrap_or_default();
    users.sort();
    users.dedup();
    users
}

fn push(app: &App, channel: &str, body: &Bytes) -> Response {
    let req = match parse_object(body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let Some(events) = req.get("pushEvents").and_then(Value::as_array) else {
        return err(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "pushEvents is required",
        );
    };
    let now = app.now_ms();
    let mut inner = app.inner();
    let online = online_users(&inner, channel);
    let mut out = Vec::new();
    for ev in events {
        let payload = match ev.get("payload") {
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
            None => String::new(),
        };
        if payload.chars().count() > 3000 {
            return err(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "payload: data value too large (max length=3000)",
            );
        }
        let users: Vec<String> = ev
            .get("userIds")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let (targets, fanout, status) = if users.is_empty() {
            (None, -1i64, Map::new())
        } else {
            let mut status = Map::new();
            let mut n = 0i64;
            for u in &users {
                let on = online.contains(u);
                n += on as i64;
                status.insert(u.clone(), Value::Bool(on));
            }
            (Some(Arc::new(users)), n, status)
        };
        let b = Body::Generic {
            payload: json_str(&payload),
            targets,
        };
        let _ = inner.publish(channel, &b, 1, now);
        out.push(json!({"fanoutCount": fanout, "userOnlineStatus": status}));
    }
    Json(Value::Array(out)).into_response()
}

fn online(app: &App, channel: &str) -> Response {
    let inner = app.inner();
    let users = online_users(&inner, channel);
    let _ = header::CONTENT_TYPE;
    Json(json!({"OnlineUserIds": users, "ChannelName": channel})).into_response()
}
