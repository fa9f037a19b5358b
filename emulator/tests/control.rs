//! Issue point 6: the control API under /_sfemu/.

mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn bulk_publish_with_payload_size() {
    let emu = start().await;
    let v = emu
        .control(
            "publish",
            json!({"channel":"/topic/Bench","count":1000,"payloadSize":200}),
        )
        .await;
    assert_eq!(v["published"], 1000);
    assert!(v["lastReplayId"].as_i64() > v["firstReplayId"].as_i64());
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/Bench", Some(-2)).await;
    let ev = c.collect(1000, 5).await;
    assert_eq!(ev.len(), 1000);
    assert_eq!(
        ev[0]["data"]["sobject"]["Description"]
            .as_str()
            .map(str::len),
        Some(200)
    );
    let s = emu.stats().await;
    assert_eq!(s["channels"]["/topic/Bench"]["published"], 1000);
    assert_eq!(
        s["channels"]["/topic/Bench"]["lastReplayId"],
        v["lastReplayId"]
    );
    assert!(s["delivered"].as_u64().unwrap_or(0) >= 1000);
}

#[tokio::test]
async fn token_endpoint_mints() {
    let emu = start().await;
    let v = emu.control("token", json!({"username": USER})).await;
    for k in [
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ] {
        assert!(v[k].is_string(), "{k}: {v}");
    }
    assert_eq!(v["instance_url"], emu.base.as_str());
    let v = emu.control("token", json!({})).await;
    assert!(v["access_token"].is_string());
    let r = emu
        .http
        .post(format!("{}/_sfemu/token", emu.base))
        .json(&json!({"username":"nobody@x"}))
        .send()
        .await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 400);
}

#[tokio::test]
async fn drop_connections_and_restart() {
    let emu = start_with(|c| c.hold_timeout_ms = 5000).await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/K", None).await;
    let mut c2 = Bayeux {
        http: c.http.clone(),
        client_id: c.client_id.clone(),
        ..Bayeux::new(&emu.base, &c.token)
    };
    let held = tokio::spawn(async move {
        let id = c2.id();
        let cid = c2.client_id.clone();
        c2.http
            .post(&c2.url)
            .header("Authorization", format!("Bearer {}", c2.token))
            .json(&json!([{"channel":"/meta/connect","clientId":cid,"connectionType":"long-polling","id":id}]))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let v = emu.control("drop-connections", json!({})).await;
    assert!(v["dropped"].as_u64().unwrap_or(0) >= 1, "{v}");
    let r = held.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_err(), "the held request saw its connection closed");
    // The session survives a dropped connection.
    let r = c.connect().await;
    assert_eq!(r[0]["successful"], true);
    // Restart: sessions gone, store kept.
    emu.publish("/topic/K", 2).await;
    let v = emu.control("restart", json!({})).await;
    assert_eq!(v["sessions"], 1);
    let r = c.connect().await;
    assert_eq!(r[0]["error"], "403::Unknown client");
    c.start().await;
    assert_eq!(c.subscribe("/topic/K", Some(-2)).await["successful"], true);
    assert_eq!(c.collect(2, 3).await.len(), 2);
}

#[tokio::test]
async fn fail_and_delay_injection() {
    let emu = start().await;
    emu.control("fail", json!({"status":503,"count":2})).await;
    let mut c = emu.client();
    for _ in 0..2 {
        let (st, _) = c.send(&json!([{"channel":"/meta/handshake"}])).await;
        assert_eq!(st, 503);
    }
    assert_eq!(c.handshake().await["successful"], true);
    emu.control("delay", json!({"ms":400,"count":1})).await;
    let t = Instant::now();
    c.connect().await;
    assert!(t.elapsed() >= Duration::from_millis(380));
    let t = Instant::now();
    c.ok(json!([{"channel":"/meta/connect","clientId":c.client_id,"advice":{"timeout":0}}]))
        .await;
    assert!(t.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn clock_moves() {
    let emu = start().await;
    let a = emu.control("clock", json!({})).await["nowMs"]
        .as_u64()
        .unwrap_or(0);
    let b = emu.control("clock", json!({"advanceMs": 3_600_000})).await["nowMs"]
        .as_u64()
        .unwrap_or(0);
    assert!(b >= a + 3_600_000);
    let c = emu
        .control("clock", json!({"setMs": 1_000_000_000_000u64}))
        .await["nowMs"]
        .as_u64()
        .unwrap_or(0);
    assert!((1_000_000_000_000..1_000_000_010_000).contains(&c));
}

#[tokio::test]
async fn expire_revoke_stats_and_reset() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/St", None).await;
    emu.publish("/topic/St", 3).await;
    let s = emu.stats().await;
    assert_eq!(s["clients"], 1);
    assert_eq!(s["subscriptions"], 1);
    assert_eq!(s["handshakes"], 1);
    assert_eq!(s["sessions"][0]["clientId"], c.client_id.as_str());
    assert_eq!(s["sessions"][0]["subscriptions"], json!(["/topic/St"]));
    assert!(s["sessions"][0]["browser"].is_string());
    assert_eq!(s["channels"]["/topic/St"]["count"], 3);
    assert!(s["connects"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(
        emu.control("expire-sessions", json!({})).await["expired"],
        1
    );
    assert_eq!(emu.stats().await["clients"], 0);
    assert!(
        emu.control("revoke-tokens", json!({})).await["revoked"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    emu.control("reset", json!({})).await;
    let s = emu.stats().await;
    assert_eq!(s["channels"], json!({}));
}

#[tokio::test]
async fn control_api_rejects_bad_input_and_keeps_serving() {
    let emu = start().await;
    for (path, body) in [
        ("publish", "{"),
        ("publish", "{\"channel\":\"/nope/x\"}"),
        ("publish", "{\"channel\":\"/topic/X\",\"count\":-1}"),
        ("publish", "[]"),
        ("fail", "{\"status\":200}"),
        ("clock", "{\"advanceMs\":\"x\"}"),
        ("record-change", "{}"),
        (
            "record-change",
            "{\"entity\":\"Account\",\"changeType\":\"EXPLODE\"}",
        ),
        ("pushtopic", "{\"name\":\"bad name\"}"),
    ] {
        let r = emu
            .http
            .post(format!("{}/_sfemu/{path}", emu.base))
            .body(body)
            .send()
            .await;
        assert_eq!(
            r.map(|r| r.status().as_u16()).unwrap_or(0),
            400,
            "{path} {body}"
        );
    }
    let v: Value = emu.stats().await;
    assert_eq!(v["clients"], 0);
}

#[tokio::test]
async fn cut_responses_lose_the_events_they_carried() {
    // The fault emulates a connection lost while a reply with events was on its way: the events
    // have left the session's queue, as on a real server, and only a replay brings them back.
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/Cut", Some(-1)).await;
    assert_eq!(
        emu.control("cut-responses", json!({"count": 1})).await["count"],
        1
    );
    let p = emu.publish("/topic/Cut", 3).await;
    let (first, last) = (
        p["firstReplayId"].as_i64().unwrap_or(-1),
        p["lastReplayId"].as_i64().unwrap_or(-1),
    );
    let id = c.id();
    let r = c
        .http
        .post(&c.url)
        .header("Authorization", format!("Bearer {}", c.token))
        .json(&json!([{"channel":"/meta/connect","clientId":c.client_id,"connectionType":"long-polling","id":id}]))
        .send()
        .await;
    let body = match r {
        Ok(resp) => resp.bytes().await.map(|b| b.len()),
        Err(e) => panic!("the response should start: {e}"),
    };
    assert!(body.is_err(), "the body must fail midway, got {body:?}");
    // The session is alive, its three events are gone from it...
    let later = emu.publish("/topic/Cut", 1).await["lastReplayId"]
        .as_i64()
        .unwrap_or(-1);
    let got = c.collect(1, 3).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["data"]["event"]["replayId"], later);
    // ...and a subscribe that replays from before them gets them back.
    assert_eq!(
        c.subscribe("/topic/Cut", Some(-2)).await["successful"],
        true
    );
    let replayed: Vec<Value> = c.collect(4, 3).await;
    let ids: Vec<i64> = replayed
        .iter()
        .filter_map(|e| e["data"]["event"]["replayId"].as_i64())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!((ids[0], ids[2], ids[3]), (first, last, later), "{ids:?}");
    // Bad input is refused.
    let r = emu
        .http
        .post(format!("{}/_sfemu/cut-responses", emu.base))
        .json(&json!({"count": "x"}))
        .send()
        .await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 400);
}
