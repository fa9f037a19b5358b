//! HTTP plumbing: the router, the accept loop (tracking every connection so the control API can
//! drop them), CORS for local development and the static `--www` folder.

use crate::state::{lock, App, ConnId};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use hyper_util::rt::TokioIo;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tower::ServiceExt;

/// Builds the complete router.
pub fn router(app: Arc<App>) -> Router {
    let mut r = Router::new()
        .route("/cometd", any(crate::bayeux::handle))
        .route("/cometd/", any(crate::bayeux::handle))
        .route("/cometd/{*rest}", any(crate::bayeux::handle))
        .merge(crate::rest::routes())
        .merge(crate::control::routes())
        .fallback(static_files)
        .with_state(app.clone())
        .merge(app.oauth.routes());
    if !app.cfg.cors.is_empty() {
        r = r.layer(axum::middleware::from_fn_with_state(app, cors));
    }
    r
}

/// CORS for the configured origins (credentials allowed), including preflight. Salesforce has no CORS
/// on `/cometd`; this exists only for local development (`--cors ORIGIN`).
async fn cors(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let allowed = origin
        .as_ref()
        .filter(|o| app.cfg.cors.iter().any(|c| c == *o || c == "*"))
        .cloned();
    let Some(origin) = allowed else {
        return next.run(req).await;
    };
    let add = |resp: &mut Response| {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    };
    if req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        let req_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or(HeaderValue::from_static("Authorization, Content-Type"));
        let mut resp = StatusCode::NO_CONTENT.into_response();
        add(&mut resp);
        let h = resp.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, req_headers);
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    add(&mut resp);
    resp
}

/// Content type by file extension.
fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
        .as_str()
    {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "ts" => "text/plain; charset=utf-8",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

/// Serves `--www DIR` at `/` (GET/HEAD), else 404.
async fn static_files(State(app): State<Arc<App>>, req: Request) -> Response {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain")],
            "Not Found",
        )
            .into_response()
    };
    let Some(root) = app.cfg.www.clone() else {
        return not_found();
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return not_found();
    }
    let raw = req.uri().path();
    let decoded: String = percent_decode(raw);
    let mut path = PathBuf::from(&root);
    for c in Path::new(decoded.trim_start_matches('/')).components() {
        match c {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            _ => return not_found(),
        }
    }
    if tokio::fs::metadata(&path)
        .await
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        if !raw.ends_with('/') {
            let loc = format!("{raw}/");
            return (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, loc)]).into_response();
        }
        path.push("index.html");
    }
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            let ct = content_type(&path);
            let body = if req.method() == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            };
            (
                [
                    (header::CONTENT_TYPE, ct),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response()
        }
        Err(_) => not_found(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decodes a path segment (used for channel names given as ids).
pub fn decode_segment(s: &str) -> String {
    percent_decode(s)
}

/// Accepts connections until `stop` is notified; every connection is tracked in `app.conns`.
pub async fn accept_loop(listener: TcpListener, app: Arc<App>, router: Router, stop: Arc<Notify>) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.notified() => break,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(_) => {
                // Out of file descriptors or similar: back off briefly and keep serving.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = app.conns.next.fetch_add(1, Ordering::Relaxed);
        let router = router.clone();
        let app2 = app.clone();
        let svc =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnId(id));
                router.clone().oneshot(req.map(Body::new))
            });
        let mut live = lock(&app.conns.live);
        let task = tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = conn.await;
            lock(&app2.conns.live).remove(&id);
        });
        live.insert(id, task.abort_handle());
    }
}
