//! Issue point 5: publishing as Salesforce has it (REST), and simulated record changes.

mod common;
use common::*;
use serde_json::{json, Value};

async fn post(emu: &Emu, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut rb = emu.http.post(format!("{}{path}", emu.base)).json(&body);
    if let Some(t) = token {
        rb = rb.header("Authorization", format!("Bearer {t}"));
    }
    let r = rb.send().await.unwrap_or_else(|e| panic!("{e}"));
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn platform_event_publish_returns_201_and_delivers() {
    let emu = start().await;
    let tok = emu.token(USER);
    let mut c = emu.client();
    c.start().await;
    c.subscribe("/event/Low_Ink__e", None).await;
    let (st, v) = post(
        &emu,
        "/services/data/v59.0/sobjects/Low_Ink__e/",
        Some(&tok),
        json!({"Printer_Model__c":"XZO-5"}),
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(v["success"], true);
    assert_eq!(v["errors"], json!([]));
    assert!(v["id"].as_str().unwrap_or("").starts_with("e01"));
    let ev = c.collect(1, 3).await;
    assert_eq!(ev[0]["data"]["payload"]["Printer_Model__c"], "XZO-5");
    assert!(ev[0]["data"]["payload"]["CreatedById"]
        .as_str()
        .unwrap_or("")
        .starts_with("005"));
    // Without the trailing slash too.
    let (st, _) = post(
        &emu,
        "/services/data/v59.0/sobjects/Low_Ink__e",
        Some(&tok),
        json!({}),
    )
    .await;
    assert_eq!(st, 201);
}

#[tokio::test]
async fn rest_auth_errors_are_invalid_session_id() {
    let emu = start().await;
    let expect = json!([{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]);
    let (st, v) = post(
        &emu,
        "/services/data/v59.0/sobjects/Low_Ink__e",
        None,
        json!({}),
    )
    .await;
    assert_eq!((st, &v), (401, &expect));
    let tok = emu.token(USER);
    emu.control("revoke-tokens", json!({})).await;
    let (st, v) = post(
        &emu,
        "/services/data/v59.0/sobjects/Low_Ink__e",
        Some(&tok),
        json!({}),
    )
    .await;
    assert_eq!((st, &v), (401, &expect));
}

#[tokio::test]
async fn bad_rest_input() {
    let emu = start().await;
    let tok = emu.token(USER);
    let r = emu
        .http
        .post(format!(
            "{}/services/data/v59.0/sobjects/Low_Ink__e",
            emu.base
        ))
        .header("Authorization", format!("Bearer {tok}"))
        .body("{not json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(v[0]["errorCode"], "JSON_PARSER_ERROR");
    let (st, v) = post(
        &emu,
        "/services/data/v59.0/sobjects/Account_Nope",
        Some(&tok),
        json!({}),
    )
    .await;
    assert_eq!(st, 404);
    assert_eq!(v[0]["errorCode"], "NOT_FOUND");
}

#[tokio::test]
async fn streaming_channel_create_and_push() {
    let emu = start().await;
    let tok = emu.token(USER);
    let (st, v) = post(
        &emu,
        "/services/data/v59.0/sobjects/StreamingChannel",
        Some(&tok),
        json!({"Name":"/u/notifications/ExampleUserChannel"}),
    )
    .await;
    assert_eq!(st, 201);
    assert_eq!(v["success"], true);
    let id = v["id"].as_str().unwrap_or("").to_string();
    assert!(id.starts_with("0M6"));
    let (st, _) = post(
        &emu,
        "/services/data/v59.0/sobjects/StreamingChannel",
        Some(&tok),
        json!({"Name":"/topic/Bad"}),
    )
    .await;
    assert_eq!(st, 400);

    let mut c = emu.client();
    c.start().await;
    c.subscribe("/u/notifications/ExampleUserChannel", None)
        .await;
    let (st, v) = post(
        &emu,
        &format!("/services/data/v59.0/sobjects/StreamingChannel/{id}/push"),
        Some(&tok),
        json!({
        "pushEvents":[{"payload":"hello world!","userIds":["005xx000001Svq3AAC"]},
                      {"payload":"broadcast to everybody (empty user list)!","userIds":[]}]}),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v[0]["fanoutCount"], 0);
    assert_eq!(
        v[0]["userOnlineStatus"],
        json!({"005xx000001Svq3AAC": false})
    );
    assert_eq!(v[1], json!({"fanoutCount": -1, "userOnlineStatus": {}}));
    // Only the broadcast reaches our (different) user.
    let ev = c.collect(1, 3).await;
    assert_eq!(ev.len(), 1);
    assert_eq!(
        ev[0]["data"]["payload"],
        "broadcast to everybody (empty user list)!"
    );

    // The channel name (url-encoded) works as the id; GET lists online users.
    let r = emu
        .http
        .get(format!("{}/services/data/v59.0/sobjects/StreamingChannel/%2Fu%2Fnotifications%2FExampleUserChannel/push", emu.base))
        .header("Authorization", format!("Bearer {tok}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(v["ChannelName"], "/u/notifications/ExampleUserChannel");
    assert_eq!(v["OnlineUserIds"].as_array().map(Vec::len), Some(1));
    let online = v["OnlineUserIds"][0].as_str().unwrap_or("").to_string();
    let (_, v) = post(&emu, "/services/data/v59.0/sobjects/StreamingChannel/%2Fu%2Fnotifications%2FExampleUserChannel/push", Some(&tok),
        json!({"pushEvents":[{"payload":"to you","userIds":[online.clone()]}]})).await;
    assert_eq!(v[0]["fanoutCount"], 1);
    assert_eq!(v[0]["userOnlineStatus"][&online], true);
    let ev = c.collect(1, 3).await;
    assert_eq!(ev[0]["data"]["payload"], "to you");
}

#[tokio::test]
async fn record_changes_fire_pushtopic_and_cdc_events() {
    let emu = start().await;
    emu.control(
        "pushtopic",
        json!({"name":"BigDeals","entity":"Opportunity"}),
    )
    .await;
    let mut c = emu.client();
    c.start().await;
    for ch in [
        "/topic/BigDeals",
        "/topic/OpportunityUpdates",
        "/data/OpportunityChangeEvent",
        "/data/ChangeEvents",
    ] {
        assert_eq!(c.subscribe(ch, None).await["successful"], true);
    }
    let v = emu.control("record-change", json!({"entity":"Opportunity","changeType":"UPDATE","fields":{"StageName":"Closed Won","Amount":5000}})).await;
    assert_eq!(
        v["pushTopicEvents"].as_array().map(Vec::len),
        Some(2),
        "{v}"
    );
    assert_eq!(v["changeEvents"].as_array().map(Vec::len), Some(2));
    let ev = c.collect(4, 4).await;
    assert_eq!(ev.len(), 4);
    let topic = ev
        .iter()
        .find(|e| e["channel"] == "/topic/BigDeals")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(topic["data"]["event"]["type"], "updated");
    assert_eq!(topic["data"]["sobject"]["StageName"], "Closed Won");
    assert_eq!(topic["data"]["sobject"]["Id"], v["recordId"]);
    let cdc = ev
        .iter()
        .find(|e| e["channel"] == "/data/OpportunityChangeEvent")
        .cloned()
        .unwrap_or(Value::Null);
    let h = &cdc["data"]["payload"]["ChangeEventHeader"];
    assert_eq!(h["changeType"], "UPDATE");
    assert_eq!(h["recordIds"][0], v["recordId"]);
    assert!(h["changedFields"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("StageName"))));
    assert_eq!(cdc["data"]["payload"]["Amount"], 5000);
}
