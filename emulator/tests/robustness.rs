//! Bad input never stops the server: malformed JSON, wrong types, huge bodies, unknown channels.

mod common;
use common::*;
use serde_json::json;

#[tokio::test]
async fn garbage_gets_errors_and_the_server_keeps_serving() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let url = format!("{}/cometd/59.0", emu.base);
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"null".to_vec(),
        b"42".to_vec(),
        b"\"str\"".to_vec(),
        b"[1,2,3]".to_vec(),
        b"[[]]".to_vec(),
        b"[]".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x5b],
        b"[{\"channel\":".to_vec(),
        vec![b'['; 100_000],
        b"[{}]".to_vec(),
        b"[{\"channel\":42}]".to_vec(),
        b"[{\"channel\":\"/meta/connect\",\"clientId\":42}]".to_vec(),
        b"[{\"channel\":\"/meta/subscribe\",\"clientId\":null,\"subscription\":[1]}]".to_vec(),
        b"[{\"channel\":\"/meta/handshake\",\"supportedConnectionTypes\":\"long-polling\"}]"
            .to_vec(),
        b"[{\"channel\":\"/meta/whatever\"}]".to_vec(),
        b"[{\"channel\":\"nochannelslash\"}]".to_vec(),
    ];
    for b in bodies {
        let r = emu
            .http
            .post(&url)
            .header("Authorization", format!("Bearer {}", c.token))
            .header("content-type", "application/json")
            .body(b.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let st = r.status().as_u16();
        assert!(
            st == 200 || st == 400 || st == 413,
            "{st} for {:?}",
            String::from_utf8_lossy(&b[..b.len().min(40)])
        );
        if st == 200 {
            let v: serde_json::Value = r.json().await.unwrap_or(serde_json::Value::Null);
            assert!(v.is_array(), "200 bodies are arrays");
            assert!(
                v.as_array()
                    .is_some_and(|a| a.iter().all(|m| m["successful"] == false)),
                "{v}"
            );
        }
    }
    // Wrong types inside a subscribe from a real session.
    for sub in [json!(123), json!(null), json!({"a":1}), json!("")] {
        let r = c
            .ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":sub,"id":"x"}]))
            .await;
        assert_eq!(r[0]["error"], "400::Channel name not specified");
    }
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/X","ext":{"replay":{"/topic/X":{"deep":[1]}}}}])).await;
    assert!(r[0]["error"]
        .as_str()
        .unwrap_or("")
        .starts_with("400::The replayId {"));
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/X","ext":"weird"}])).await;
    assert_eq!(r[0]["successful"], true);
    // Huge body with a lying content-length is refused, not buffered.
    let r = emu.http.post(&url).body(vec![b' '; 5_000_000]).send().await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(413), 413);
    // Still serving.
    let mut d = emu.client();
    d.start().await;
    assert_eq!(
        d.subscribe("/topic/Alive", Some(-1)).await["successful"],
        true
    );
    let s = emu.stats().await;
    assert!(s["clients"].as_u64().unwrap_or(0) >= 2);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let emu = start().await;
    for p in [
        "/cometd/59.0/bogus",
        "/nothing",
        "/services/data/v59.0/query",
    ] {
        let r = emu
            .http
            .post(format!("{}{p}", emu.base))
            .body("[]")
            .send()
            .await;
        assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 404, "{p}");
    }
}
