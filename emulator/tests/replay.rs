//! Issue point 4: replay ids, retention on the movable clock, ext.replay -1/-2/N and its errors.

mod common;
use common::*;
use serde_json::{json, Value};

fn ids(ev: &[Value]) -> Vec<i64> {
    ev.iter()
        .map(|e| e["data"]["event"]["replayId"].as_i64().unwrap_or(0))
        .collect()
}

const INVALID: &str = "you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";

#[tokio::test]
async fn replay_ids_increase_per_channel() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/topic/R", Some(-2)).await;
    emu.publish("/topic/R", 20).await;
    let ev = c.collect(20, 5).await;
    let ids = ids(&ev);
    assert_eq!(ids.len(), 20);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
}

#[tokio::test]
async fn minus_one_minus_two_and_n() {
    let emu = start().await;
    let p = emu.publish("/event/Rp__e", 5).await;
    let first = p["firstReplayId"].as_i64().unwrap_or(0);
    let last = p["lastReplayId"].as_i64().unwrap_or(0);
    // -2: everything retained.
    let mut all = emu.client();
    all.start().await;
    assert_eq!(
        all.subscribe("/event/Rp__e", Some(-2)).await["successful"],
        true
    );
    let ev = all.collect(5, 3).await;
    assert_eq!(ids(&ev).first(), Some(&first));
    assert_eq!(ids(&ev).last(), Some(&last));
    // N: strictly after N.
    let mut after = emu.client();
    after.start().await;
    assert_eq!(
        after.subscribe("/event/Rp__e", Some(first)).await["successful"],
        true
    );
    let ev = after.collect(4, 3).await;
    assert_eq!(ev.len(), 4);
    assert!(ids(&ev).iter().all(|i| *i > first));
    // -1 and no ext: only new events.
    let mut new = emu.client();
    new.start().await;
    assert_eq!(
        new.subscribe("/event/Rp__e", Some(-1)).await["successful"],
        true
    );
    let mut none = emu.client();
    none.start().await;
    assert_eq!(
        none.subscribe("/event/Rp__e", None).await["successful"],
        true
    );
    emu.publish("/event/Rp__e", 1).await;
    let a = new.collect(1, 3).await;
    let b = none.collect(1, 3).await;
    assert_eq!(ids(&a), ids(&b));
    assert_eq!(a.len(), 1);
    assert!(ids(&a)[0] > last);
    // N = last: caught up, only new.
    let mut caught = emu.client();
    caught.start().await;
    let last2 = ids(&a)[0];
    assert_eq!(
        caught.subscribe("/event/Rp__e", Some(last2)).await["successful"],
        true
    );
    let r = caught.connect().await;
    assert!(events(&r).is_empty());
}

#[tokio::test]
async fn unknown_replay_id_is_invalid() {
    let emu = start().await;
    emu.publish("/topic/Inv", 3).await;
    let mut c = emu.client();
    c.start().await;
    let r = c.subscribe("/topic/Inv", Some(999_999)).await;
    assert_eq!(
        r["error"],
        format!("400::The replayId {{999999}} {INVALID}")
    );
    assert_eq!(r["successful"], false);
    assert_eq!(r["clientId"], c.client_id.as_str());
    // Non-numeric and out-of-range values.
    for (v, shown) in [(json!("abc"), "abc"), (json!(-3), "-3"), (json!(0), "0")] {
        let id = c.id();
        let cid = c.client_id.clone();
        let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/Inv","id":id,
                             "ext":{"replay":{"/topic/Inv": v}}}])).await;
        assert_eq!(
            r[0]["error"],
            format!("400::The replayId {{{shown}}} {INVALID}")
        );
    }
}

#[tokio::test]
async fn retention_uses_the_movable_clock() {
    let emu = start().await;
    let t = emu.publish("/topic/Old", 2).await;
    let e = emu.publish("/event/Old__e", 2).await;
    // 25 h later: /topic (24 h) gone, /event (72 h) kept.
    emu.control("clock", json!({"advanceMs": 25 * 3600 * 1000}))
        .await;
    // Fresh token: the default lifetime is 2 h.
    let mut c = emu.client();
    c.start().await;
    let r = c.subscribe("/topic/Old", t["firstReplayId"].as_i64()).await;
    assert!(r["error"].as_str().unwrap_or("").contains(INVALID), "{r}");
    assert_eq!(
        c.subscribe("/topic/Old", Some(-2)).await["successful"],
        true
    );
    let r = c
        .subscribe("/event/Old__e", e["firstReplayId"].as_i64())
        .await;
    assert_eq!(r["successful"], true);
    let ev = c.collect(1, 3).await;
    assert_eq!(
        ev.len(),
        1,
        "only the /event one after the first is replayed"
    );
    // 73 h: the platform event is gone too.
    emu.control("clock", json!({"advanceMs": 48 * 3600 * 1000}))
        .await;
    let mut d = emu.client();
    d.start().await;
    let r = d
        .subscribe("/event/Old__e", e["firstReplayId"].as_i64())
        .await;
    assert!(r["error"].as_str().unwrap_or("").contains(INVALID));
}

#[tokio::test]
async fn replay_map_without_the_channel_is_not_found() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/topicName","id":"1",
                         "ext":{"replay":{}}}])).await;
    assert_eq!(r[0]["error"], "400::The replayId for channel {/topic/topicName} wasn't found using the provided replay ID map {{}}. Ensure that the channel name you provided in the replay map is valid and matches the channel name used for subscribing.");
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/TestContact1?LastName='Smith'","id":"2",
                         "ext":{"replay":{"/topic/TestContact1?LastName='Smith'":-1}}}])).await;
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("map {{/topic/TestContact1?LastName='Smith'=-1}}"),
        "{}",
        r[0]
    );
    // `ext.replay: true` (no map) means -1.
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/T","id":"3","ext":{"replay":true}}])).await;
    assert_eq!(r[0]["successful"], true);
}

#[tokio::test]
async fn string_replay_ids_are_tolerated() {
    let emu = start().await;
    emu.publish("/topic/S", 3).await;
    let mut c = emu.client();
    c.start().await;
    let cid = c.client_id.clone();
    let r = c.ok(json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":"/topic/S","id":"1","ext":{"replay":{"/topic/S":"-2"}}}])).await;
    assert_eq!(r[0]["successful"], true);
    assert_eq!(c.collect(3, 3).await.len(), 3);
}

#[tokio::test]
async fn backlog_larger_than_a_batch_is_delivered_across_connects() {
    let emu = start_with(|c| c.max_batch_bytes = 4096).await;
    emu.publish("/u/big", 200).await;
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/u/big", Some(-2)).await;
    let first = c.connect().await;
    let n1 = events(&first).len();
    assert!(n1 > 0 && n1 < 200, "{n1}");
    let ev = c.collect(200 - n1, 100).await;
    assert_eq!(n1 + ev.len(), 200);
}
