//! The event store: per-channel retained events with increasing replay ids.
//!
//! Every event is serialised to JSON bytes once, when it is published; delivery copies those bytes
//! into the response (no per-event allocation or re-serialisation). Subscribers keep a cursor (an
//! absolute sequence number into their channel) instead of a copy of the backlog.

use crate::util::{iso_millis, json_str, record_id, schema_id, uuid4};
use rand::Rng;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// Retention of PushTopic and generic streaming events: 24 h.
pub const RETENTION_SHORT_MS: u64 = 24 * 3600 * 1000;
/// Retention of platform events and change events: 72 h.
pub const RETENTION_LONG_MS: u64 = 72 * 3600 * 1000;

/// The user id that the emulator uses as `CreatedById`/`commitUser` when no user is known.
pub const DEFAULT_USER_ID: &str = "005xx000001SwiUAAS";

/// The kind of a streaming channel, which decides the event shape and the retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PushTopic `/topic/Name`.
    PushTopic,
    /// Generic streaming `/u/Name`.
    Generic,
    /// Platform event `/event/Name__e` (or a custom `__chn` channel).
    PlatformEvent,
    /// Change Data Capture `/data/...`.
    ChangeEvent,
}

impl Kind {
    /// Retention window for this kind.
    pub fn retention_ms(self) -> u64 {
        match self {
            Kind::PushTopic | Kind::Generic => RETENTION_SHORT_MS,
            Kind::PlatformEvent | Kind::ChangeEvent => RETENTION_LONG_MS,
        }
    }
}

/// Classifies a channel name (without a PushTopic filter). `None` when it is not a channel that a
/// Salesforce org can have.
pub fn classify(channel: &str) -> Option<Kind> {
    let valid_name =
        |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if let Some(name) = channel.strip_prefix("/topic/") {
        return valid_name(name).then_some(Kind::PushTopic);
    }
    if let Some(name) = channel.strip_prefix("/u/") {
        let ok = !name.is_empty()
            && name.split('/').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            });
        return ok.then_some(Kind::Generic);
    }
    if let Some(name) = channel.strip_prefix("/event/") {
        let ok = valid_name(name)
            && (name.ends_with("__e") || name.ends_with("__chn"))
            && name.len() > 3;
        return ok.then_some(Kind::PlatformEvent);
    }
    if let Some(name) = channel.strip_prefix("/data/") {
        let ok = valid_name(name)
            && (name == "ChangeEvents"
                || (name.ends_with("ChangeEvent") && name.len() > "ChangeEvent".len())
                || (name.ends_with("__chn") && name.len() > 5));
        return ok.then_some(Kind::ChangeEvent);
    }
    None
}

/// The entity of a CDC channel: `/data/AccountChangeEvent` → `Account`,
/// `/data/Order__ChangeEvent` → `Order__c`; `None` for `/data/ChangeEvents` and custom channels.
pub fn cdc_entity(channel: &str) -> Option<String> {
    let name = channel.strip_prefix("/data/")?;
    if name == "ChangeEvents" {
        return None;
    }
    if let Some(base) = name.strip_suffix("__ChangeEvent") {
        return Some(format!("{base}__c"));
    }
    name.strip_suffix("ChangeEvent")
        .filter(|b| !b.is_empty())
        .map(str::to_string)
}

/// The CDC channel of an entity: `Account` → `/data/AccountChangeEvent`, `Order__c` → `/data/Order__ChangeEvent`.
pub fn cdc_channel(entity: &str) -> String {
    match entity.strip_suffix("__c") {
        Some(base) => format!("/data/{base}__ChangeEvent"),
        None => format!("/data/{entity}ChangeEvent"),
    }
}

/// One stored event.
#[derive(Debug)]
pub struct Event {
    /// Replay id (increasing per channel).
    pub replay_id: i64,
    /// Creation time on the movable clock (epoch ms), used for retention.
    pub created_ms: u64,
    /// The complete Bayeux message, serialised once.
    pub json: Box<[u8]>,
    /// For generic events pushed to specific users: the user ids that receive it.
    pub targets: Option<Arc<Vec<String>>>,
}

/// A channel's retained events and its subscribers.
#[derive(Debug)]
pub struct Channel {
    /// Channel name.
    pub name: String,
    /// The channel's kind.
    pub kind: Kind,
    /// Retained events, oldest first.
    pub events: VecDeque<Event>,
    /// Absolute sequence number of `events[0]`.
    pub base_seq: u64,
    /// Last replay id handed out (0 before the first event).
    pub last_replay_id: i64,
    /// Events published on this channel since start (or reset).
    pub published: u64,
    /// Client ids of sessions subscribed to this channel.
    pub subscribers: HashSet<String>,
    /// The channel name as a JSON string literal, computed once.
    name_json: String,
    /// Schema id (platform and change events).
    schema: String,
}

impl Channel {
    fn new(name: &str, kind: Kind) -> Channel {
        Channel {
            name: name.to_string(),
            kind,
            events: VecDeque::new(),
            base_seq: 0,
            last_replay_id: 0,
            published: 0,
            subscribers: HashSet::new(),
            name_json: json_str(name),
            schema: schema_id(name),
        }
    }

    /// Absolute sequence number one past the newest event.
    pub fn end_seq(&self) -> u64 {
        self.base_seq + self.events.len() as u64
    }

    /// Drops events older than the retention window (and beyond the count cap).
    pub fn prune(&mut self, now_ms: u64, max_events: usize) {
        let cutoff = now_ms.saturating_sub(self.kind.retention_ms());
        while let Some(front) = self.events.front() {
            if front.created_ms < cutoff || self.events.len() > max_events {
                self.events.pop_front();
                self.base_seq += 1;
            } else {
                break;
            }
        }
    }

    /// Where a subscription starts for a replay value, or `None` when the id is invalid
    /// (unknown or no longer retained). Call [`Channel::prune`] first.
    pub fn cursor_for(&self, replay: i64) -> Option<u64> {
        match replay {
            -1 => Some(self.end_seq()),
            -2 => Some(self.base_seq),
            n => {
                // Only a retained event is a valid position: an id that has aged out is refused,
                // the channel's last one too (a quiet channel after a long outage).
                let idx = self.events.binary_search_by(|e| e.replay_id.cmp(&n)).ok()?;
                Some(self.base_seq + idx as u64 + 1)
            }
        }
    }

    fn next_replay_id(&mut self) -> i64 {
        let step = rand::thread_rng().gen_range(1..=3);
        self.last_replay_id += step;
        self.last_replay_id
    }
}

/// What to publish: the payload part of an event, already decided by the caller.
#[derive(Clone, Debug)]
pub enum Body {
    /// PushTopic: `type` and the `sobject` JSON object (serialised).
    PushTopic {
        /// `created`, `updated`, `deleted` or `undeleted`.
        event_type: String,
        /// The sobject as serialised JSON object text.
        sobject: String,
    },
    /// Generic: the payload string.
    Generic {
        /// The payload as a JSON string literal (serialised, with quotes).
        payload: String,
        /// Target user ids (None = broadcast).
        targets: Option<Arc<Vec<String>>>,
    },
    /// Platform event: the custom fields as serialised JSON object text.
    Platform {
        /// Serialised JSON object of the event fields.
        fields: String,
        /// `CreatedById`.
        created_by: String,
    },
    /// Change event.
    Change {
        /// Entity name.
        entity: String,
        /// CREATE/UPDATE/DELETE/UNDELETE/GAP_*.
        change_type: String,
        /// Record ids.
        record_ids: Vec<String>,
        /// Serialised JSON object of the record fields.
        fields: String,
        /// `changedFields` (names).
        changed_fields: Vec<String>,
        /// `commitUser`.
        commit_user: String,
    },
}

/// Result of a publish: the replay ids given to the first and last event.
#[derive(Clone, Copy, Debug, Default)]
pub struct Published {
    /// Number of events stored.
    pub count: u64,
    /// Replay id of the first.
    pub first: i64,
    /// Replay id of the last.
    pub last: i64,
}

/// All channels.
#[derive(Debug, Default)]
pub struct Store {
    /// Channels by name.
    pub channels: HashMap<String, Channel>,
    /// Total events published.
    pub published: u64,
    /// Max events retained per channel (memory guard).
    pub max_events: usize,
}

/// Inner text of a serialised JSON object (`{"a":1}` → `"a":1`), for splicing into another object.
fn object_inner(obj: &str) -> &str {
    let t = obj.trim();
    let t = t.strip_prefix('{').unwrap_or(t);
    let t = t.strip_suffix('}').unwrap_or(t);
    t.trim()
}

impl Store {
    /// A store that keeps at most `max_events` per channel.
    pub fn new(max_events: usize) -> Store {
        Store {
            channels: HashMap::new(),
            published: 0,
            max_events,
        }
    }

    /// The channel, created on first use. `None` if the name is not a valid channel.
    pub fn channel_mut(&mut self, name: &str) -> Option<&mut Channel> {
        if !self.channels.contains_key(name) {
            let kind = classify(name)?;
            self.channels
                .insert(name.to_string(), Channel::new(name, kind));
        }
        self.channels.get_mut(name)
    }

    /// Publishes `count` events with the same body on `channel`, at `now_ms`.
    /// Returns `None` if the channel name is invalid.
    pub fn publish(
        &mut self,
        channel: &str,
        body: &Body,
        count: u64,
        now_ms: u64,
    ) -> Option<Published> {
        let max_events = self.max_events;
        let ch = self.channel_mut(channel)?;
        let mut out = Published::default();
        let created = iso_millis(now_ms);
        // The parts of the message that do not change between events are built once.
        let (head, mid) = match body {
            Body::PushTopic { event_type, sobject } => (
                format!("{{\"channel\":{},\"data\":{{\"event\":{{\"createdDate\":\"{created}\",\"replayId\":", ch.name_json),
                format!(",\"type\":{}}},\"sobject\":{sobject}}}}}", json_str(event_type)),
            ),
            Body::Generic { payload, .. } => (
                format!("{{\"channel\":{},\"data\":{{\"event\":{{\"createdDate\":\"{created}\",\"replayId\":", ch.name_json),
                format!("}},\"payload\":{payload}}}}}"),
            ),
            Body::Platform { fields, created_by } => {
                let inner = object_inner(fields);
                let sep = if inner.is_empty() { "" } else { "," };
                (
                    format!(
                        "{{\"channel\":{},\"data\":{{\"schema\":\"{}\",\"payload\":{{\"CreatedDate\":\"{created}\",\"CreatedById\":{}{sep}{inner}}},\"event\":{{\"EventUuid\":\"",
                        ch.name_json,
                        ch.schema,
                        json_str(created_by)
                    ),
                    String::new(),
                )
            }
            Body::Change { .. } => (String::new(), String::new()),
        };
        for _ in 0..count {
            let replay_id = ch.next_replay_id();
            let mut json = Vec::with_capacity(head.len() + mid.len() + 64);
            let targets = match body {
                Body::PushTopic { .. } => {
                    json.extend_from_slice(head.as_bytes());
                    json.extend_from_slice(replay_id.to_string().as_bytes());
                    json.extend_from_slice(mid.as_bytes());
                    None
                }
                Body::Generic { targets, .. } => {
                    json.extend_from_slice(head.as_bytes());
                    json.extend_from_slice(replay_id.to_string().as_bytes());
                    json.extend_from_slice(mid.as_bytes());
                    targets.clone()
                }
                Body::Platform { .. } => {
                    json.extend_from_slice(head.as_bytes());
                    json.extend_from_slice(uuid4().as_bytes());
                    json.extend_from_slice(format!("\",\"replayId\":{replay_id}}}}}}}").as_bytes());
                    None
                }
                Body::Change {
                    entity,
                    change_type,
                    record_ids,
                    fields,
                    changed_fields,
                    commit_user,
                } => {
                    let inner = object_inner(fields);
                    let sep = if inner.is_empty() { "" } else { "," };
                    let header = serde_json::json!({
                        "entityName": entity,
                        "recordIds": record_ids,
                        "changeType": change_type,
                        "changeOrigin": "com/salesforce/api/rest/60.0;client=sfemu",
                        "transactionKey": uuid4(),
                        "sequenceNumber": 1,
                        "isTransactionEnd": true,
                        "commitTimestamp": now_ms,
                        "commitNumber": 92_847_272_780u64 + replay_id as u64,
                        "commitUser": commit_user,
                        "changedFields": changed_fields,
                    });
                    json.extend_from_slice(
                        format!(
                            "{{\"channel\":{},\"data\":{{\"schema\":\"{}\",\"payload\":{{\"ChangeEventHeader\":{header}{sep}{inner}}},\"event\":{{\"replayId\":{replay_id}}}}}}}",
                            ch.name_json, ch.schema
                        )
                        .as_bytes(),
                    );
                    None
                }
            };
            ch.events.push_back(Event {
                replay_id,
                created_ms: now_ms,
                json: json.into_boxed_slice(),
                targets,
            });
            ch.published += 1;
            if out.count == 0 {
                out.first = replay_id;
            }
            out.last = replay_id;
            out.count += 1;
        }
        ch.prune(now_ms, max_events);
        self.published += out.count;
        Some(out)
    }
}

/// Builds a default body for a channel kind from a control-API style request:
/// `payload` (object or string), `payloadSize` (pads a string field), `type`/`changeType`/`entity`.
pub fn body_for(kind: Kind, channel: &str, req: &Map<String, Value>, user_id: &str) -> Body {
    let payload = req.get("payload");
    let size = req
        .get("payloadSize")
        .and_then(Value::as_u64)
        .map(|n| n.min(4 * 1024 * 1024) as usize);
    let pad = |n: usize| "x".repeat(n);
    let mut fields: Map<String, Value> = match payload {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    match kind {
        Kind::PushTopic => {
            if !fields.contains_key("Id") {
                fields.insert("Id".into(), Value::String(record_id("006")));
            }
            if payload.is_none() {
                fields.insert("Name".into(), Value::String("Emulated record".into()));
            }
            if let Some(n) = size {
                fields.insert("Description".into(), Value::String(pad(n)));
            }
            let event_type = req
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("updated")
                .to_string();
            Body::PushTopic {
                event_type,
                sobject: Value::Object(fields).to_string(),
            }
        }
        Kind::Generic => {
            let text = match (payload, size) {
                (_, Some(n)) => pad(n),
                (Some(Value::String(s)), None) => s.clone(),
                (Some(v), None) => v.to_string(),
                (None, None) => "Hello from sfemu".to_string(),
            };
            Body::Generic {
                payload: json_str(&text),
                targets: None,
            }
        }
        Kind::PlatformEvent => {
            if let Some(n) = size {
                fields.insert("Payload__c".into(), Value::String(pad(n)));
            }
            Body::Platform {
                fields: Value::Object(fields).to_string(),
                created_by: user_id.to_string(),
            }
        }
        Kind::ChangeEvent => {
            let entity = req
                .get("entity")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or_else(|| cdc_entity(channel))
                .unwrap_or_else(|| "Account".to_string());
            let change_type = req
                .get("changeType")
                .and_then(Value::as_str)
                .unwrap_or("UPDATE")
                .to_string();
            if let Some(n) = size {
                fields.insert("Description".into(), Value::String(pad(n)));
            }
            let record_ids = match req.get("recordId").and_then(Value::as_str) {
                Some(id) => vec![id.to_string()],
                None => vec![record_id(key_prefix(&entity))],
            };
            let changed_fields = if change_type == "UPDATE" {
                fields.keys().cloned().collect()
            } else {
                Vec::new()
            };
            Body::Change {
                entity,
                change_type,
                record_ids,
                fields: Value::Object(fields).to_string(),
                changed_fields,
                commit_user: user_id.to_string(),
            }
        }
    }
}

/// The 3-character id prefix of a few standard objects (`001` Account, …), `a00` otherwise.
pub fn key_prefix(entity: &str) -> &'static str {
    match entity {
        "Account" => "001",
        "Contact" => "003",
        "Opportunity" => "006",
        "Lead" => "00Q",
        "Case" => "500",
        "User" => "005",
        "Order" => "801",
        _ => "a00",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_channels() {
        assert_eq!(classify("/topic/Foo"), Some(Kind::PushTopic));
        assert_eq!(classify("/topic/"), None);
        assert_eq!(classify("/u/notifications/X"), Some(Kind::Generic));
        assert_eq!(classify("/event/Low_Ink__e"), Some(Kind::PlatformEvent));
        assert_eq!(classify("/event/Low_Ink"), None);
        assert_eq!(classify("/data/ChangeEvents"), Some(Kind::ChangeEvent));
        assert_eq!(
            classify("/data/AccountChangeEvent"),
            Some(Kind::ChangeEvent)
        );
        assert_eq!(classify("/foo/bar"), None);
        assert_eq!(
            cdc_entity("/data/Order__ChangeEvent").as_deref(),
            Some("Order__c")
        );
        assert_eq!(cdc_channel("Order__c"), "/data/Order__ChangeEvent");
    }

    #[test]
    fn publish_shapes_are_valid_json() {
        let mut s = Store::new(1000);
        let empty = Map::new();
        for ch in [
            "/topic/T",
            "/u/U",
            "/event/E__e",
            "/data/AccountChangeEvent",
        ] {
            let kind = classify(ch).unwrap_or(Kind::Generic);
            let body = body_for(kind, ch, &empty, DEFAULT_USER_ID);
            let p = s.publish(ch, &body, 3, 1_000_000).unwrap_or_default();
            assert_eq!(p.count, 3);
            assert!(p.last > p.first);
            for e in &s.channels[ch].events {
                let v: Value = serde_json::from_slice(&e.json).unwrap_or(Value::Null);
                assert_eq!(v["channel"], ch, "{}", String::from_utf8_lossy(&e.json));
                assert_eq!(v["data"]["event"]["replayId"], e.replay_id);
            }
        }
    }

    #[test]
    fn cursors_and_retention() {
        let mut s = Store::new(1000);
        let body = body_for(Kind::Generic, "/u/X", &Map::new(), DEFAULT_USER_ID);
        let p = s.publish("/u/X", &body, 5, 1000).unwrap_or_default();
        let ch = s.channels.get_mut("/u/X").unwrap_or_else(|| unreachable!());
        assert_eq!(ch.cursor_for(-2), Some(0));
        assert_eq!(ch.cursor_for(-1), Some(5));
        assert_eq!(ch.cursor_for(p.first), Some(1));
        assert_eq!(ch.cursor_for(p.last + 100), None);
        ch.prune(1000 + RETENTION_SHORT_MS + 1, 1000);
        assert!(ch.events.is_empty());
        assert_eq!(ch.cursor_for(p.first), None);
    }
}
