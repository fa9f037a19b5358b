//! Issue point 2: the CometD endpoint and every rule of reference §12, over real HTTP.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn handshake_reply_is_salesforce_shaped_and_sets_cookies() {
    let emu = start().await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/cometd/59.0", emu.base))
        .header("Authorization", format!("Bearer {}", emu.token(USER)))
        .json(&json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"305","ext":{"replay":true}}]))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("application/json"));
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("BAYEUX_BROWSER=")
            && c.contains("HttpOnly")
            && c.contains("Path=/")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("sfdc-stream=") && c.contains("path=/")),
        "{cookies:?}"
    );
    let v: Value = r.json().await.unwrap_or(Value::Null);
    let h = &v[0];
    assert_eq!(h["channel"], "/meta/handshake");
    assert_eq!(h["successful"], true);
    assert_eq!(h["id"], "305");
    assert_eq!(h["version"], "1.0");
    assert_eq!(h["minimumVersion"], "1.0");
    assert_eq!(h["supportedConnectionTypes"], json!(["long-polling"]));
    assert_eq!(h["ext"], json!({"replay": true, "payload.format": true}));
    assert!(
        h.get("advice").is_none(),
        "Salesforce's handshake reply has no advice"
    );
    let cid = h["clientId"].as_str().unwrap_or("");
    assert!(
        (25..=28).contains(&cid.len())
            && cid
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
        "{cid}"
    );
}

#[tokio::test]
async fn all_url_forms_and_auth_schemes_are_accepted() {
    let emu = start().await;
    let tok = emu.token(USER);
    for (path, auth) in [
        ("/cometd/59.0", format!("Bearer {tok}")),
        ("/cometd/59.0/", format!("OAuth {tok}")),
        ("/cometd/59.0/handshake", tok.clone()),
    ] {
        let r = emu
            .http
            .post(format!("{}{path}", emu.base))
            .header("Authorization", auth)
            .json(&json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(v[0]["successful"], true, "{path}: {v}");
    }
    // The connect suffix works for a connect too.
    let mut c = emu.client();
    c.handshake().await;
    c.url = format!("{}/cometd/59.0/connect", emu.base);
    let r = c.connect().await;
    assert_eq!(reply(&r, "/meta/connect")["successful"], true);
}

#[tokio::test]
async fn first_connect_is_immediate_with_advice_then_held() {
    let emu = start_with(|c| c.hold_timeout_ms = 700).await;
    let mut c = emu.client();
    c.handshake().await;
    let t = Instant::now();
    let r = c.connect().await;
    assert!(t.elapsed() < Duration::from_millis(400));
    let cr = reply(&r, "/meta/connect");
    assert_eq!(cr["successful"], true);
    assert_eq!(cr["clientId"], c.client_id.as_str());
    assert_eq!(
        cr["advice"],
        json!({"interval": 0, "timeout": 700, "reconnect": "retry"})
    );
    // Second connect: held for the hold timeout, bare reply.
    let t = Instant::now();
    let r = c.connect().await;
    let el = t.elapsed();
    assert!(
        el >= Duration::from_millis(650) && el < Duration::from_millis(3000),
        "{el:?}"
    );
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["successful"], true);
    assert!(r[0].get("advice").is_none());
}

#[tokio::test]
async fn held_connect_returns_early_with_events_then_reply_last() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    assert_eq!(c.subscribe("/topic/Early", None).await["successful"], true);
    let pub_base = emu.base.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = reqwest::Client::new()
            .post(format!("{pub_base}/_sfemu/publish"))
            .json(&json!({"channel":"/topic/Early","count":2}))
            .send()
            .await;
    });
    let t = Instant::now();
    let r = c.connect().await;
    assert!(t.elapsed() < Duration::from_millis(3000));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[0]["channel"], "/topic/Early");
    assert_eq!(r[1]["channel"], "/topic/Early");
    assert_eq!(r[2]["channel"], "/meta/connect");
    assert!(r[2].get("advice").is_none());
}

#[tokio::test]
async fn advice_timeout_zero_answers_at_once() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let t = Instant::now();
    let r = c.ok(json!([{"channel":"/meta/connect","clientId":cid,"connectionType":"long-polling","advice":{"timeout":0},"id":"9"}])).await;
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(r[0]["successful"], true);
}

#[tokio::test]
async fn connect_batched_with_other_messages_is_not_held() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let t = Instant::now();
    let r = c
        .ok(json!([
            {"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/B","id":"a"},
            {"channel":"/meta/connect","clientId":cid,"connectionType":"long-polling","id":"b"}
        ]))
        .await;
    assert!(t.elapsed() < Duration::from_millis(1000));
    assert_eq!(reply(&r, "/meta/subscribe")["successful"], true);
    assert_eq!(reply(&r, "/meta/connect")["successful"], true);
}

#[tokio::test]
async fn unknown_client_gets_403_with_handshake_advice_and_no_client_id() {
    let emu = start().await;
    let mut c = emu.client();
    c.handshake().await;
    c.client_id = "doesnotexist0000000000000".into();
    let r = c.connect().await;
    assert_eq!(
        r[0],
        json!({"advice":{"interval":0,"reconnect":"handshake"},"channel":"/meta/connect","id":"2","error":"403::Unknown client","successful":false})
    );
    let s = c.subscribe("/topic/X", None).await;
    assert_eq!(s["error"], "403::Unknown client");
    assert_eq!(s["successful"], false);
    let cid = c.client_id.clone();
    let u = c.ok(json!([{"channel":"/meta/unsubscribe","clientId":cid,"subscription":"/topic/X","id":"u"}])).await;
    assert_eq!(u[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn missing_cookie_for_known_client_gets_400() {
    let emu = start().await;
    let mut c = emu.client();
    c.handshake().await;
    // Same token, but a client without the cookie jar.
    let nocookie = Bayeux {
        client_id: c.client_id.clone(),
        ..Bayeux::new(&emu.base, &c.token)
    };
    let cid = c.client_id.clone();
    let (st, v) = nocookie
        .send(&json!([{"channel":"/meta/connect","clientId":cid,"connectionType":"long-polling","id":"1"}]))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        v[0]["error"],
        format!(
            "400::Client {cid} has established a session, but no BAYEUX_BROWSER cookie present"
        )
    );
    assert_eq!(v[0]["successful"], false);
}

#[tokio::test]
async fn foreign_browser_cookie_is_an_unknown_client() {
    let emu = start().await;
    let mut a = emu.client();
    a.handshake().await;
    let mut b = emu.client();
    b.handshake().await;
    b.client_id = a.client_id.clone();
    let r = b.connect().await;
    assert_eq!(r[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn sessions_are_swept_after_max_interval_without_connect() {
    let emu = start_with(|c| c.max_interval_ms = 300).await;
    let mut c = emu.client();
    c.start().await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = c.connect().await;
    assert_eq!(r[0]["error"], "403::Unknown client");
    assert_eq!(r[0]["advice"]["reconnect"], "handshake");
    assert_eq!(emu.stats().await["clients"], 0);
}

#[tokio::test]
async fn a_held_connect_keeps_the_session_alive() {
    let emu = start_with(|c| {
        c.max_interval_ms = 300;
        c.hold_timeout_ms = 900;
    })
    .await;
    let mut c = emu.client();
    c.start().await;
    let r = c.connect().await; // held 900 ms > max interval
    assert_eq!(r[0]["successful"], true);
    let r = c.connect().await;
    assert_eq!(r[0]["successful"], true, "{r:?}");
}

#[tokio::test]
async fn second_held_connect_on_same_browser_gets_multiple_clients_advice() {
    let emu = start_with(|c| c.hold_timeout_ms = 1500).await;
    // Two sessions sharing one cookie jar.
    let mut a = emu.client();
    a.start().await;
    let mut b = Bayeux {
        http: a.http.clone(),
        ..Bayeux::new(&emu.base, &a.token)
    };
    b.start().await;
    let mut a2 = Bayeux {
        http: a.http.clone(),
        client_id: a.client_id.clone(),
        ..Bayeux::new(&emu.base, &a.token)
    };
    let held = tokio::spawn(async move { a2.connect().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let r = b.connect().await;
    assert!(t.elapsed() < Duration::from_millis(700));
    assert_eq!(
        r[0]["advice"],
        json!({"interval": 2000, "multiple-clients": true, "reconnect": "retry", "timeout": 1500})
    );
    assert_eq!(r[0]["successful"], true);
    let ar = held.await.unwrap_or_default();
    assert_eq!(ar[0]["successful"], true);
}

#[tokio::test]
async fn duplicate_connect_answers_the_previous_one() {
    let emu = start_with(|c| c.hold_timeout_ms = 4000).await;
    let mut c = emu.client();
    c.start().await;
    let mut c2 = Bayeux {
        http: c.http.clone(),
        client_id: c.client_id.clone(),
        ..Bayeux::new(&emu.base, &c.token)
    };
    let t = Instant::now();
    let first = tokio::spawn(async move { c2.connect().await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = tokio::spawn(async move { c.connect().await });
    let r1 = first.await.unwrap_or_default();
    assert!(
        t.elapsed() < Duration::from_millis(2000),
        "the superseded connect is answered at once"
    );
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0]["successful"], true);
    second.abort();
}

#[tokio::test]
async fn revoked_or_expired_token_gets_401_with_reconnect_none() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    emu.control("revoke-tokens", json!({})).await;
    let r = c.connect().await;
    assert_eq!(r[0]["error"], "401::Authentication invalid");
    assert_eq!(r[0]["advice"], json!({"reconnect": "none", "interval": 0}));
    assert_eq!(r[0]["clientId"], c.client_id.as_str());
    // Expiry via the movable clock (default lifetime 2 h).
    let mut d = emu.client();
    d.start().await;
    emu.control("clock", json!({"advanceMs": 3 * 3600 * 1000}))
        .await;
    let r = d.connect().await;
    assert_eq!(r[0]["error"], "401::Authentication invalid");
    assert_eq!(r[0]["advice"]["reconnect"], "none");
}

#[tokio::test]
async fn handshake_denied_for_bad_or_missing_auth() {
    let emu = start().await;
    let hs = json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"],"id":"1"}]);
    let r: Value = emu
        .http
        .post(format!("{}/cometd/59.0", emu.base))
        .json(&hs)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    assert_eq!(
        r[0],
        json!({"ext":{"sfdc":{"failureReason":"401::Request requires authentication"},"replay":true,"payload.format":true},
               "advice":{"reconnect":"none"},"channel":"/meta/handshake","id":"1","error":"403::Handshake denied","successful":false})
    );
    let bad = Bayeux::new(&emu.base, "00Dbogus!token");
    let (st, v) = bad.send(&hs).await;
    assert_eq!(st, 200);
    assert_eq!(v[0]["error"], "403::Handshake denied");
    assert_eq!(
        v[0]["ext"]["sfdc"]["failureReason"],
        "401::Authentication invalid"
    );
    assert!(v[0].get("clientId").is_none());
    assert_eq!(emu.stats().await["failedHandshakes"], 2);
}

#[tokio::test]
async fn concurrent_client_cap_denies_handshakes() {
    let emu = start_with(|c| c.max_clients = 2).await;
    for _ in 0..2 {
        let mut c = emu.client();
        assert_eq!(c.handshake().await["successful"], true);
    }
    let mut c = emu.client();
    let h = c.handshake().await;
    assert_eq!(h["error"], "403::Handshake denied");
    assert_eq!(
        h["ext"]["sfdc"]["failureReason"],
        "403::Organization concurrent user limit exceeded"
    );
    assert_eq!(h["advice"]["reconnect"], "none");
}

#[tokio::test]
async fn http_level_errors() {
    let emu = start().await;
    let url = format!("{}/cometd/59.0", emu.base);
    let r = emu
        .http
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.text().await.unwrap_or_default(), "Only POST allowed");
    let post = |body: String| {
        emu.http
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = post("{\"channel\":\"/meta/handshake\"}".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.status(),
        400,
        "a bare object is refused (strict JSON array)"
    );
    let r = post("[{\"channel\":".into())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
    let big = format!(
        "[{{\"channel\":\"/meta/handshake\",\"pad\":\"{}\"}}]",
        "x".repeat(40_000)
    );
    let r = post(big).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.text().await.unwrap_or_default(),
        "Maximum Request Size Exceeded"
    );
    // Just under the limit is fine.
    let ok = format!(
        "[{{\"channel\":\"/meta/handshake\",\"pad\":\"{}\"}}]",
        "x".repeat(32_000)
    );
    let r = post(ok).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    // Handshake must be alone.
    let r = post(json!([{"channel":"/meta/handshake"},{"channel":"/meta/connect"}]).to_string())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn api_version_errors() {
    let emu = start().await;
    let tok = emu.token(USER);
    let hs = json!([{"channel":"/meta/handshake","version":"1.0","id":"1"}]);
    for (path, err) in [
        ("/cometd", "400::API version in the URI is mandatory. URI format: '/cometd/66.0'"),
        ("/cometd/", "400::API version in the URI is mandatory. URI format: '/cometd/66.0'"),
        ("/cometd/handshake", "400::API version in the URI is mandatory. URI format: '/cometd/66.0'"),
        ("/cometd/36.0", "400::Unsupported API version. Only API versions '37.0' and later are supported. URI format: '/cometd/66.0'"),
        ("/cometd/23.0/handshake", "400::Unsupported API version. Only API versions '37.0' and later are supported. URI format: '/cometd/66.0'"),
    ] {
        let r = emu
            .http
            .post(format!("{}{path}", emu.base))
            .header("Authorization", format!("Bearer {tok}"))
            .json(&hs)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(v, json!([{"channel":"/meta/handshake","id":"1","error":err,"successful":false}]), "{path}");
    }
    let mut c = Bayeux::new(&emu.base, &tok);
    c.url = format!("{}/cometd/37.0", emu.base);
    assert_eq!(c.handshake().await["successful"], true);
}

#[tokio::test]
async fn invalid_connection_type() {
    let emu = start().await;
    let mut c = emu.client();
    c.handshake().await;
    let cid = c.client_id.clone();
    let r = c.ok(json!([{"channel":"/meta/connect","clientId":cid,"connectionType":"websocket","id":"1"}])).await;
    assert_eq!(r[0]["error"], "400::Invalid connection type {websocket}");
    assert_eq!(r[0]["successful"], false);
}

#[tokio::test]
async fn user_mismatch_is_refused() {
    let emu = start().await;
    let mut c = emu.client();
    c.handshake().await;
    c.token = emu.token(OTHER);
    let r = c.connect().await;
    assert_eq!(
        r[0]["error"],
        "400::Authenticated user id does not match the session's user id"
    );
    assert_eq!(r[0]["advice"]["reconnect"], "none");
}

#[tokio::test]
async fn subscribe_before_handshake() {
    let emu = start().await;
    let c = emu.client();
    let (_, v) = c
        .send(&json!([{"channel":"/meta/subscribe","subscription":"/topic/X","id":"1"}]))
        .await;
    assert_eq!(v[0]["error"], "403::Client has not completed handshake");
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/U", None).await;
    let cid = c.client_id.clone();
    let r = c.ok(json!([{"channel":"/meta/unsubscribe","clientId":cid,"subscription":"/topic/U","id":"9"}])).await;
    assert_eq!(
        r[0],
        json!({"channel":"/meta/unsubscribe","clientId":cid,"subscription":"/topic/U","id":"9","successful":true})
    );
    emu.publish("/topic/U", 2).await;
    let r = c.connect().await;
    assert!(events(&r).is_empty());
}

#[tokio::test]
async fn client_disconnect_ends_the_session() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let r = c
        .ok(json!([{"channel":"/meta/disconnect","clientId":cid,"id":"10"}]))
        .await;
    assert_eq!(
        r[0],
        json!({"channel":"/meta/disconnect","clientId":cid,"id":"10","successful":true})
    );
    let r = c.connect().await;
    assert_eq!(r[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn publish_over_cometd_on_u_channels_only() {
    let emu = start().await;
    let mut a = emu.client();
    a.start().await;
    a.subscribe("/u/chat", None).await;
    let mut b = emu.client();
    b.start().await;
    let cid = b.client_id.clone();
    let r = b
        .ok(json!([{"channel":"/u/chat","clientId":cid,"data":"hello","id":"p1"}]))
        .await;
    assert_eq!(
        r[0],
        json!({"channel":"/u/chat","id":"p1","successful":true})
    );
    let ev = a.collect(1, 3).await;
    assert_eq!(ev[0]["data"]["payload"], "hello");
    let r = b
        .ok(json!([{"channel":"/topic/Nope","clientId":cid,"data":{},"id":"p2"}]))
        .await;
    assert_eq!(r[0]["error"], "403::Publish denied");
    assert_eq!(r[0]["successful"], false);
}

#[tokio::test]
async fn server_initiated_disconnect_in_the_held_connect() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    let base = emu.base.clone();
    let cid = c.client_id.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = reqwest::Client::new()
            .post(format!("{base}/_sfemu/disconnect"))
            .json(&json!({"clientId": cid}))
            .send()
            .await;
    });
    let t = Instant::now();
    let r = c.connect().await;
    assert!(t.elapsed() < Duration::from_millis(3000));
    assert_eq!(
        r[0],
        json!({"channel":"/meta/disconnect","successful":true})
    );
    assert_eq!(r[1]["channel"], "/meta/connect");
    assert_eq!(r[1]["advice"]["reconnect"], "none");
    let r = c.connect().await;
    assert_eq!(r[0]["error"], "403::Unknown client");
}

#[tokio::test]
async fn expire_sessions_answers_held_connects_with_unknown_client() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    let base = emu.base.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = reqwest::Client::new()
            .post(format!("{base}/_sfemu/expire-sessions"))
            .send()
            .await;
    });
    let t = Instant::now();
    let r = c.connect().await;
    assert!(t.elapsed() < Duration::from_millis(3000));
    assert_eq!(r[0]["error"], "403::Unknown client");
    // Recovery: handshake and resubscribe.
    c.start().await;
    assert_eq!(
        c.subscribe("/topic/Again", Some(-1)).await["successful"],
        true
    );
}

#[tokio::test]
async fn form_encoded_message_parameter_is_accepted() {
    let emu = start().await;
    let msg = json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["long-polling"]}]).to_string();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("message", &msg)
        .finish();
    let r = emu
        .http
        .post(format!("{}/cometd/59.0", emu.base))
        .header("Authorization", format!("Bearer {}", emu.token(USER)))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(v[0]["successful"], true);
}

#[tokio::test]
async fn handshake_without_long_polling_is_denied() {
    let emu = start().await;
    let c = emu.client();
    let (st, v) = c
        .send(&json!([{"channel":"/meta/handshake","version":"1.0","supportedConnectionTypes":["websocket"],"id":"1"}]))
        .await;
    assert_eq!(st, 200);
    assert_eq!(v[0]["error"], "403::Handshake denied");
    assert_eq!(
        v[0]["ext"]["sfdc"]["failureReason"],
        "400::Invalid connection type {[\"websocket\"]}"
    );
    assert!(v[0].get("clientId").is_none());
}
