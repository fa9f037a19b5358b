//! Issue point 3: channels and event shapes exactly as reference §6, and the fixed-list mode.

mod common;
use common::*;
use serde_json::{json, Value};

fn is_iso_millis(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T' && s.as_bytes()[19] == b'.'
}

async fn one_event(emu: &Emu, channel: &str, publish: Value) -> Value {
    let mut c = emu.client();
    c.start().await;
    assert_eq!(c.subscribe(channel, None).await["successful"], true);
    emu.control("publish", publish).await;
    let ev = c.collect(1, 3).await;
    assert_eq!(ev.len(), 1, "{ev:?}");
    ev[0].clone()
}

#[tokio::test]
async fn pushtopic_shape() {
    let emu = start().await;
    let e = one_event(&emu, "/topic/InvoiceStatementUpdates",
        json!({"channel":"/topic/InvoiceStatementUpdates","payload":{"Name":"INV-0001","Status__c":"Open"},"type":"created"})).await;
    assert_eq!(e["channel"], "/topic/InvoiceStatementUpdates");
    let ev = &e["data"]["event"];
    assert!(
        is_iso_millis(ev["createdDate"].as_str().unwrap_or("")),
        "{e}"
    );
    assert!(ev["replayId"].as_i64().unwrap_or(0) > 0);
    assert_eq!(ev["type"], "created");
    assert_eq!(e["data"]["sobject"]["Name"], "INV-0001");
    assert_eq!(e["data"]["sobject"]["Id"].as_str().map(str::len), Some(18));
    assert!(e.get("id").is_none() && e.get("successful").is_none());
}

#[tokio::test]
async fn generic_shape() {
    let emu = start().await;
    let e = one_event(
        &emu,
        "/u/TestStreaming",
        json!({"channel":"/u/TestStreaming","payload":"This is a message."}),
    )
    .await;
    assert_eq!(e["channel"], "/u/TestStreaming");
    assert_eq!(e["data"]["payload"], "This is a message.");
    assert!(is_iso_millis(
        e["data"]["event"]["createdDate"].as_str().unwrap_or("")
    ));
    assert!(e["data"]["event"]["replayId"].is_i64());
    assert_eq!(e["data"]["event"].as_object().map(|o| o.len()), Some(2));
}

#[tokio::test]
async fn platform_event_shape() {
    let emu = start().await;
    let e = one_event(&emu, "/event/Low_Ink__e",
        json!({"channel":"/event/Low_Ink__e","payload":{"Printer_Model__c":"XZO-5","Ink_Percentage__c":0.2}})).await;
    let d = &e["data"];
    assert_eq!(d["schema"].as_str().map(str::len), Some(22));
    assert!(is_iso_millis(
        d["payload"]["CreatedDate"].as_str().unwrap_or("")
    ));
    assert!(d["payload"]["CreatedById"]
        .as_str()
        .unwrap_or("")
        .starts_with("005"));
    assert_eq!(d["payload"]["Printer_Model__c"], "XZO-5");
    assert_eq!(d["payload"]["Ink_Percentage__c"], 0.2);
    assert_eq!(d["event"]["EventUuid"].as_str().map(str::len), Some(36));
    assert!(d["event"]["replayId"].is_i64());
}

#[tokio::test]
async fn change_event_shape_and_fanout_to_change_events() {
    let emu = start().await;
    let mut all = emu.client();
    all.start().await;
    all.subscribe("/data/ChangeEvents", None).await;
    let e = one_event(&emu, "/data/AccountChangeEvent",
        json!({"channel":"/data/AccountChangeEvent","changeType":"CREATE","payload":{"Name":"Acme"}})).await;
    let h = &e["data"]["payload"]["ChangeEventHeader"];
    assert_eq!(h["entityName"], "Account");
    assert_eq!(h["changeType"], "CREATE");
    assert!(h["recordIds"][0].as_str().unwrap_or("").starts_with("001"));
    assert!(h["commitTimestamp"].as_u64().unwrap_or(0) > 1_500_000_000_000);
    assert_eq!(h["changedFields"], json!([]));
    for k in [
        "changeOrigin",
        "transactionKey",
        "sequenceNumber",
        "isTransactionEnd",
        "commitNumber",
        "commitUser",
    ] {
        assert!(h.get(k).is_some(), "{k} missing in {h}");
    }
    assert_eq!(e["data"]["payload"]["Name"], "Acme");
    assert!(e["data"]["event"]["replayId"].is_i64());
    assert_eq!(e["data"]["schema"].as_str().map(str::len), Some(22));
    let ev = all.collect(1, 3).await;
    assert_eq!(ev[0]["channel"], "/data/ChangeEvents");
    assert_eq!(
        ev[0]["data"]["payload"]["ChangeEventHeader"]["entityName"],
        "Account"
    );
}

#[tokio::test]
async fn any_topic_and_event_name_is_accepted_by_default_but_bad_prefixes_are_not() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    for ch in [
        "/topic/Anything",
        "/event/Whatever__e",
        "/data/ChangeEvents",
        "/data/Order__ChangeEvent",
        "/u/notifications/X",
    ] {
        assert_eq!(c.subscribe(ch, None).await["successful"], true, "{ch}");
    }
    for ch in [
        "/foo/bar",
        "/event/NoSuffix",
        "/topic/",
        "/topic/a/b",
        "/data/Nope",
        "/meta/connect",
    ] {
        let r = c.subscribe(ch, None).await;
        assert_eq!(
            r["error"],
            format!("400::The channel you requested to subscribe to does not exist {{{ch}}}"),
            "{ch}"
        );
        assert_eq!(r["subscription"], ch);
        assert_eq!(r["successful"], false);
    }
}

#[tokio::test]
async fn fixed_channel_list_refuses_other_names() {
    let emu =
        start_with(|c| c.channels = Some(vec!["/topic/Allowed".into(), "Order_Placed__e".into()]))
            .await;
    let mut c = emu.client();
    c.start().await;
    assert_eq!(
        c.subscribe("/topic/Allowed", None).await["successful"],
        true
    );
    assert_eq!(
        c.subscribe("/event/Order_Placed__e", None).await["successful"],
        true
    );
    let r = c.subscribe("/topic/Other", None).await;
    assert_eq!(
        r["error"],
        "400::The channel you requested to subscribe to does not exist {/topic/Other}"
    );
    let r = c.subscribe("/event/Other__e", None).await;
    assert_eq!(r["successful"], false);
    // A PushTopic registered through the control API becomes valid.
    emu.control("pushtopic", json!({"name":"Other","entity":"Account"}))
        .await;
    assert_eq!(c.subscribe("/topic/Other", None).await["successful"], true);
}

#[tokio::test]
async fn pushtopic_filter_subscription_is_accepted() {
    let emu = start().await;
    let mut c = emu.client();
    c.start().await;
    let ch = "/topic/Contacts?LastName='Smith'";
    let id = c.id();
    let cid = c.client_id.clone();
    let r = c
        .ok(
            json!([{"channel":"/meta/subscribe","clientId":cid,"subscription":ch,"id":id,
                         "ext":{"replay":{"/topic/Contacts":-1}}}]),
        )
        .await;
    assert_eq!(r[0]["successful"], true, "{r:?}");
    assert_eq!(r[0]["subscription"], ch);
}
