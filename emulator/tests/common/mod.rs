//! Shared helpers for the sfemu integration tests: start a server on 127.0.0.1:0 and talk Bayeux
//! to it over real HTTP with a cookie-keeping client.
#![allow(dead_code)]

use reqwest::StatusCode;
use serde_json::{json, Value};
use sfemu::{Config, Handle, Server};

/// Default test user.
pub const USER: &str = "user@example.com";
/// Second configured user.
pub const OTHER: &str = "other@example.com";

/// A running emulator for one test.
pub struct Emu {
    /// The server handle.
    pub handle: Handle,
    /// Base URL.
    pub base: String,
    /// A plain client (no cookies).
    pub http: reqwest::Client,
}

/// Starts an emulator with short timeouts; `f` adjusts the config.
pub async fn start_with(f: impl FnOnce(&mut Config)) -> Emu {
    let mut cfg = Config {
        port: 0,
        hold_timeout_ms: 600,
        max_interval_ms: 5_000,
        ..Config::default()
    };
    cfg.oauth.users = vec![
        (USER.into(), "password".into()),
        (OTHER.into(), "password2".into()),
    ];
    f(&mut cfg);
    let handle = Server::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("start: {e}"));
    let base = handle.url();
    Emu {
        handle,
        base,
        http: reqwest::Client::new(),
    }
}

/// Starts an emulator with the test defaults.
pub async fn start() -> Emu {
    start_with(|_| {}).await
}

impl Emu {
    /// A fresh access token for `user`.
    pub fn token(&self, user: &str) -> String {
        self.handle
            .token(user)
            .unwrap_or_else(|| panic!("no token for {user}"))
    }

    /// A Bayeux client with its own cookie jar and a token for the default user.
    pub fn client(&self) -> Bayeux {
        Bayeux::new(&self.base, &self.token(USER))
    }

    /// POSTs JSON to a control endpoint and returns the JSON answer.
    pub async fn control(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(format!("{}/_sfemu/{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("control {path}: {e}"));
        assert!(r.status().is_success(), "control {path} → {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }

    /// `GET /_sfemu/stats`.
    pub async fn stats(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/_sfemu/stats", self.base))
            .send()
            .await;
        r.unwrap_or_else(|e| panic!("stats: {e}"))
            .json()
            .await
            .unwrap_or(Value::Null)
    }

    /// Publishes `count` events on `channel` via the control API.
    pub async fn publish(&self, channel: &str, count: u64) -> Value {
        self.control("publish", json!({"channel": channel, "count": count}))
            .await
    }
}

/// A minimal Bayeux client over reqwest (cookie jar per instance).
pub struct Bayeux {
    /// HTTP client with a cookie store.
    pub http: reqwest::Client,
    /// Endpoint URL (`…/cometd/59.0`).
    pub url: String,
    /// Access token sent as `Authorization: Bearer`.
    pub token: String,
    /// clientId after a handshake.
    pub client_id: String,
    /// Next message id.
    pub next_id: u64,
}

impl Bayeux {
    /// A client for `base` with `token`.
    pub fn new(base: &str, token: &str) -> Bayeux {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .build()
            .unwrap_or_else(|e| panic!("client: {e}"));
        Bayeux {
            http,
            url: format!("{base}/cometd/59.0"),
            token: token.into(),
            client_id: String::new(),
            next_id: 0,
        }
    }

    /// A message id.
    pub fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    /// POSTs a raw JSON body; returns status and parsed body (Null if not JSON).
    pub async fn send(&self, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(&self.url)
            .header("Authorization", format!("Bearer {}", self.token))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("send: {e}"));
        let st = r.status();
        let text = r.text().await.unwrap_or_default();
        (st, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends and asserts HTTP 200; returns the reply array.
    pub async fn ok(&self, body: Value) -> Vec<Value> {
        let (st, v) = self.send(&body).await;
        assert_eq!(st, StatusCode::OK, "body {v}");
        match v {
            Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        }
    }

    /// Handshakes; stores and returns the reply.
    pub async fn handshake(&mut self) -> Value {
        let id = self.id();
        let r = self
            .ok(
                json!([{"channel":"/meta/handshake","version":"1.0","minimumVersion":"1.0",
                        "supportedConnectionTypes":["long-polling"],"id":id}]),
            )
            .await;
        let reply = r.into_iter().next().unwrap_or(Value::Null);
        if let Some(c) = reply["clientId"].as_str() {
            self.client_id = c.to_string();
        }
        reply
    }

    /// One connect; returns the whole response array.
    pub async fn connect(&mut self) -> Vec<Value> {
        let id = self.id();
        let cid = self.client_id.clone();
        self.ok(json!([{"channel":"/meta/connect","clientId":cid,"connectionType":"long-polling","id":id}])).await
    }

    /// Subscribes with an optional replay id; returns the reply.
    pub async fn subscribe(&mut self, channel: &str, replay: Option<i64>) -> Value {
        let id = self.id();
        let cid = self.client_id.clone();
        let mut m =
            json!({"channel":"/meta/subscribe","clientId":cid,"subscription":channel,"id":id});
        if let Some(r) = replay {
            m["ext"] = json!({"replay": {channel: r}});
        }
        self.ok(json!([m]))
            .await
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    }

    /// Handshake + first (immediate) connect.
    pub async fn start(&mut self) {
        let h = self.handshake().await;
        assert_eq!(h["successful"], true, "{h}");
        let c = self.connect().await;
        assert_eq!(c.last().map(|r| &r["successful"]), Some(&json!(true)));
    }

    /// Connects until at least `n` events arrived (or `max_polls` connects); returns the events.
    pub async fn collect(&mut self, n: usize, max_polls: usize) -> Vec<Value> {
        let mut events = Vec::new();
        for _ in 0..max_polls {
            let r = self.connect().await;
            for m in r {
                if !m["channel"].as_str().unwrap_or("").starts_with("/meta/") {
                    events.push(m);
                }
            }
            if events.len() >= n {
                break;
            }
        }
        events
    }
}

/// The reply of a given meta channel in a response array.
pub fn reply<'a>(r: &'a [Value], channel: &str) -> &'a Value {
    r.iter()
        .find(|m| m["channel"] == channel)
        .unwrap_or(&Value::Null)
}

/// The non-meta messages of a response array.
pub fn events(r: &[Value]) -> Vec<Value> {
    r.iter()
        .filter(|m| !m["channel"].as_str().unwrap_or("").starts_with("/meta/"))
        .cloned()
        .collect()
}
