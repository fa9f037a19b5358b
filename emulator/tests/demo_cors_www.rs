//! Issue points 7, 8 and 9: the demo stream, CORS (off by default) and the static folder.

mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn demo_stream_covers_every_channel_kind() {
    let emu = start_with(|c| {
        c.demo = true;
        c.demo_interval_ms = 20;
        c.hold_timeout_ms = 2000;
    })
    .await;
    let mut c = emu.client();
    c.start().await;
    for ch in [
        "/topic/OpportunityUpdates",
        "/topic/CaseUpdates",
        "/event/Order_Placed__e",
        "/data/AccountChangeEvent",
        "/data/ChangeEvents",
    ] {
        assert_eq!(c.subscribe(ch, None).await["successful"], true);
    }
    let mut seen = HashSet::new();
    for _ in 0..40 {
        for e in c.collect(1, 1).await {
            seen.insert(e["channel"].as_str().unwrap_or("").to_string());
        }
        if seen.len() == 5 {
            break;
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
}

/// A CORS preflight of `/cometd/59.0` from `origin` for a POST (with `headers`, if given).
async fn preflight(emu: &Emu, origin: &str, headers: Option<&str>) -> reqwest::Response {
    let mut req = emu
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/cometd/59.0", emu.base),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST");
    if let Some(h) = headers {
        req = req.header("Access-Control-Request-Headers", h);
    }
    req.send().await.unwrap_or_else(|e| panic!("{e}"))
}

/// A handshake POSTed to `/cometd/59.0` from `origin`.
async fn handshake_from(emu: &Emu, origin: &str) -> reqwest::Response {
    emu.http
        .post(format!("{}/cometd/59.0", emu.base))
        .header("Origin", origin)
        .json(&json!([{"channel":"/meta/handshake"}]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn no_cors_by_default() {
    let emu = start().await;
    let r = preflight(&emu, "http://localhost:3000", None).await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = handshake_from(&emu, "http://localhost:3000").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn cors_for_a_configured_origin() {
    let emu = start_with(|c| c.cors = vec!["http://localhost:3000".into()]).await;
    let r = preflight(
        &emu,
        "http://localhost:3000",
        Some("authorization, content-type"),
    )
    .await;
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap_or("")
        .contains("POST"));
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization, content-type"
    );
    let r = emu
        .http
        .post(format!("{}/services/oauth2/token", emu.base))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    // Other origins get nothing.
    let r = handshake_from(&emu, "http://evil.example").await;
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn www_folder_is_served_with_content_types() {
    let dir = std::env::temp_dir().join(format!("sfemu-www-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("pkg"));
    let _ = std::fs::write(dir.join("index.html"), "<h1>dash</h1>");
    let _ = std::fs::write(dir.join("app.js"), "export {}");
    let _ = std::fs::write(dir.join("pkg/x.wasm"), [0u8, 97, 115, 109]);
    let d2 = dir.clone();
    let emu = start_with(move |c| c.www = Some(d2)).await;
    let get = |p: &str| emu.http.get(format!("{}{p}", emu.base)).send();
    let r = get("/").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    assert_eq!(r.text().await.unwrap_or_default(), "<h1>dash</h1>");
    let r = get("/app.js").await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/javascript"));
    let r = get("/pkg/x.wasm").await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.headers()["content-type"], "application/wasm");
    assert_eq!(
        get("/missing.txt")
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        404
    );
    assert_eq!(
        get("/../etc/passwd")
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        404
    );
    assert_eq!(
        get("/%2e%2e/%2e%2e/etc/passwd")
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0),
        404
    );
    // /cometd is still the endpoint, same origin.
    let v: Value = emu
        .http
        .get(format!("{}/cometd/59.0", emu.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .map(Value::String)
        .unwrap_or(Value::Null);
    assert_eq!(v, "Only POST allowed");
    let _ = std::fs::remove_dir_all(&dir);
}
