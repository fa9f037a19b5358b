//! sfemu throughput benchmark: how many events per second sfemu delivers to ONE long-polling
//! CometD subscriber (one HTTP/1.1 keep-alive connection, one connect in flight at a time, as a
//! real Bayeux client does).
//!
//! Scenarios:
//! - `backlog`: N events are bulk-published into `/topic/Bench…` through the control API first; the
//!   subscriber then handshakes, subscribes with replay -2 and reads until it has all N.
//!   Timed from the first `/meta/connect` to the last event.
//! - `live`: the subscriber handshakes, subscribes with replay -1 and has a connect held; then N
//!   events are bulk-published. Timed from the publish request to the last event.
//!
//! The subscriber checks every event: right channel, replay ids strictly increasing, count exact.
//!
//! Usage: `sfemu-throughput [--url http://127.0.0.1:8090 | --sfemu PATH] [--events N]
//! [--payload-size BYTES] [--runs R] [--api-version 62.0]`. Without `--url` it starts the sfemu
//! binary (`--sfemu`, else env `SFEMU_BIN`, else `target/release/sfemu`) on a free port and stops
//! it at the end. Prints a markdown table.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
struct Options {
    url: Option<String>,
    sfemu: String,
    events: u64,
    payload_size: u64,
    runs: u32,
    api_version: String,
}

fn parse_args() -> Result<Options, BoxError> {
    let mut o = Options {
        url: None,
        sfemu: std::env::var("SFEMU_BIN").unwrap_or_else(|_| "target/release/sfemu".to_string()),
        events: 200_000,
        payload_size: 200,
        runs: 3,
        api_version: "62.0".to_string(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--url" => o.url = Some(value()?.trim_end_matches('/').to_string()),
            "--sfemu" => o.sfemu = value()?,
            "--events" => o.events = value()?.parse()?,
            "--payload-size" => o.payload_size = value()?.parse()?,
            "--runs" => o.runs = value()?.parse()?,
            "--api-version" => o.api_version = value()?,
            "-h" | "--help" => {
                println!("sfemu-throughput [--url URL | --sfemu PATH] [--events N] [--payload-size B] [--runs R] [--api-version V]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(o)
}

/// The parts of a Bayeux message the subscriber looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
struct Msg {
    channel: String,
    #[serde(default)]
    successful: Option<bool>,
    #[serde(default, rename = "clientId")]
    client_id: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    advice: Option<Advice>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Advice {
    #[serde(default)]
    reconnect: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(default)]
    event: Option<EventInfo>,
}

#[derive(Deserialize)]
struct EventInfo {
    #[serde(rename = "replayId")]
    replay_id: i64,
}

/// One measured run.
struct Outcome {
    scenario: &'static str,
    events: u64,
    seconds: f64,
    connects: u64,
    bytes: u64,
    publish_seconds: f64,
}

/// A Bayeux long-polling subscriber on one keep-alive connection.
struct Subscriber {
    http: reqwest::Client,
    endpoint: String,
    auth: String,
    client_id: String,
    next_id: u64,
    connects: u64,
    bytes: u64,
}

impl Subscriber {
    async fn post(&mut self, body: Value) -> Result<Vec<Msg>, BoxError> {
        let r = self
            .http
            .post(&self.endpoint)
            .header("Authorization", &self.auth)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        let status = r.status();
        let bytes = r.bytes().await?;
        self.bytes += bytes.len() as u64;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes[..bytes.len().min(300)])).into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }

    async fn handshake(base: &str, version: &str, token: &str) -> Result<Subscriber, BoxError> {
        let http = reqwest::Client::builder().cookie_store(true).pool_max_idle_per_host(4).build()?;
        let mut s = Subscriber {
            http,
            endpoint: format!("{base}/cometd/{version}"),
            auth: format!("Bearer {token}"),
            client_id: String::new(),
            next_id: 0,
            connects: 0,
            bytes: 0,
        };
        let id = s.id();
        let reply = s
            .post(json!([{
                "channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                "supportedConnectionTypes": ["long-polling"], "id": id,
                "ext": {"replay": true, "payload.format": true}
            }]))
            .await?;
        let hs = reply.iter().find(|m| m.channel == "/meta/handshake").ok_or("no handshake reply")?;
        if hs.successful != Some(true) {
            return Err(format!("handshake failed: {:?}", hs.error).into());
        }
        s.client_id = hs.client_id.clone().ok_or("handshake reply without clientId")?;
        Ok(s)
    }

    async fn subscribe(&mut self, channel: &str, replay: i64) -> Result<(), BoxError> {
        let id = self.id();
        let reply = self
            .post(json!([{
                "channel": "/meta/subscribe", "clientId": self.client_id, "subscription": channel, "id": id,
                "ext": {"replay": {channel: replay}}
            }]))
            .await?;
        let sub = reply.iter().find(|m| m.channel == "/meta/subscribe").ok_or("no subscribe reply")?;
        if sub.successful != Some(true) {
            return Err(format!("subscribe failed: {:?}", sub.error).into());
        }
        Ok(())
    }

    /// One `/meta/connect`; returns the number of events received on `channel`, checking order.
    async fn connect(&mut self, channel: &str, last_replay: &mut i64) -> Result<u64, BoxError> {
        let id = self.id();
        let msgs = self
            .post(json!([{
                "channel": "/meta/connect", "clientId": self.client_id, "connectionType": "long-polling", "id": id
            }]))
            .await?;
        self.connects += 1;
        let mut n = 0;
        for m in msgs {
            if m.channel == "/meta/connect" {
                if m.successful != Some(true) {
                    let reconnect = m.advice.and_then(|a| a.reconnect);
                    return Err(format!("connect failed: {:?} (reconnect {:?})", m.error, reconnect).into());
                }
                continue;
            }
            if m.channel != channel {
                return Err(format!("unexpected message on {}", m.channel).into());
            }
            let replay = m.data.and_then(|d| d.event).map(|e| e.replay_id).ok_or("event without data.event.replayId")?;
            if replay <= *last_replay {
                return Err(format!("replay id {replay} after {last_replay}: out of order or duplicate").into());
            }
            *last_replay = replay;
            n += 1;
        }
        Ok(n)
    }

    /// Connects until `total` events arrived.
    async fn read_all(&mut self, channel: &str, total: u64) -> Result<(), BoxError> {
        let mut got = 0;
        let mut last = i64::MIN;
        while got < total {
            got += self.connect(channel, &mut last).await?;
        }
        if got != total {
            return Err(format!("received {got} events, expected {total}").into());
        }
        Ok(())
    }
}

async fn control(http: &reqwest::Client, base: &str, path: &str, body: Value) -> Result<Value, BoxError> {
    let r = http.post(format!("{base}/_sfemu/{path}")).json(&body).send().await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        return Err(format!("/_sfemu/{path}: HTTP {status}: {text}").into());
    }
    Ok(serde_json::from_str(&text)?)
}

async fn publish(http: &reqwest::Client, base: &str, channel: &str, count: u64, size: u64) -> Result<(), BoxError> {
    let v = control(http, base, "publish", json!({"channel": channel, "count": count, "payloadSize": size})).await?;
    let published = v.get("published").and_then(Value::as_u64).unwrap_or(0);
    if published != count {
        return Err(format!("published {published} of {count}: {v}").into());
    }
    Ok(())
}

async fn token(http: &reqwest::Client, base: &str) -> Result<String, BoxError> {
    let v = control(http, base, "token", json!({"username": "user@example.com"})).await?;
    Ok(v.get("access_token").and_then(Value::as_str).ok_or("no access_token from /_sfemu/token")?.to_string())
}

async fn run_backlog(o: &Options, base: &str, run: u32) -> Result<Outcome, BoxError> {
    let http = reqwest::Client::new();
    let channel = format!("/topic/Bench{run}");
    let t = Instant::now();
    publish(&http, base, &channel, o.events, o.payload_size).await?;
    let publish_seconds = t.elapsed().as_secs_f64();
    let tok = token(&http, base).await?;
    let mut s = Subscriber::handshake(base, &o.api_version, &tok).await?;
    s.subscribe(&channel, -2).await?;
    s.bytes = 0;
    let t0 = Instant::now();
    s.read_all(&channel, o.events).await?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(Outcome { scenario: "backlog (replay -2)", events: o.events, seconds, connects: s.connects, bytes: s.bytes, publish_seconds })
}

async fn run_live(o: &Options, base: &str, run: u32) -> Result<Outcome, BoxError> {
    let http = reqwest::Client::new();
    let channel = format!("/topic/BenchLive{run}");
    let tok = token(&http, base).await?;
    let mut s = Subscriber::handshake(base, &o.api_version, &tok).await?;
    s.subscribe(&channel, -1).await?;
    // The first connect is answered at once; the next one is held until events arrive.
    let mut last = i64::MIN;
    let early = s.connect(&channel, &mut last).await?;
    if early != 0 {
        return Err("events before publishing".into());
    }
    s.connects = 0;
    s.bytes = 0;
    let total = o.events;
    let ch = channel.clone();
    let reader = tokio::spawn(async move {
        let r = s.read_all(&ch, total).await;
        (r.map_err(|e| e.to_string()), Instant::now(), s.connects, s.bytes)
    });
    // Let the held connect reach the server.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    publish(&http, base, &channel, o.events, o.payload_size).await?;
    let publish_seconds = t0.elapsed().as_secs_f64();
    let (result, t1, connects, bytes) = reader.await?;
    result?;
    Ok(Outcome {
        scenario: "live (replay -1)",
        events: o.events,
        seconds: (t1 - t0).as_secs_f64(),
        connects,
        bytes,
        publish_seconds,
    })
}

/// Starts the sfemu binary on a free port; returns the child and its base URL.
async fn spawn_sfemu(path: &str) -> Result<(tokio::process::Child, String), BoxError> {
    let mut child = tokio::process::Command::new(path)
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start sfemu at {path}: {e} (build it: cargo build --release -p sfemu, or pass --sfemu/SFEMU_BIN/--url)"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.trim().strip_prefix("sfemu listening on ") {
                return Ok::<_, BoxError>(url.trim_end_matches('/').to_string());
            }
        }
        Err("sfemu exited before listening".into())
    })
    .await
    .map_err(|_| "sfemu did not print its listening line within 30 s")??;
    // Keep draining stdout so sfemu never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, url))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn main_async() -> Result<(), BoxError> {
    let o = parse_args()?;
    let mut child = None;
    let base = match &o.url {
        Some(u) => u.clone(),
        None => {
            let (c, url) = spawn_sfemu(&o.sfemu).await?;
            child = Some(c);
            url
        }
    };
    eprintln!("sfemu at {base}: {} events of {} bytes, {} runs per scenario", o.events, o.payload_size, o.runs);
    let mut outcomes: Vec<Outcome> = Vec::new();
    for run in 0..o.runs {
        let b = run_backlog(&o, &base, run).await?;
        eprintln!("  backlog run {run}: {:.0} events/s", b.events as f64 / b.seconds);
        outcomes.push(b);
        let l = run_live(&o, &base, run).await?;
        eprintln!("  live run {run}: {:.0} events/s", l.events as f64 / l.seconds);
        outcomes.push(l);
        // Free the store between runs where the control API allows it.
        let _ = control(&reqwest::Client::new(), &base, "reset", json!({})).await;
    }
    println!();
    println!("sfemu throughput, one long-polling subscriber, {} events of {}-byte payloads, {} runs", o.events, o.payload_size, o.runs);
    println!();
    println!("| scenario | events/s (median) | events/s (best) | seconds (median) | connects/run | MB received/run | bulk publish events/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for scenario in ["backlog (replay -2)", "live (replay -1)"] {
        let runs: Vec<&Outcome> = outcomes.iter().filter(|x| x.scenario == scenario).collect();
        if runs.is_empty() {
            continue;
        }
        let rates: Vec<f64> = runs.iter().map(|x| x.events as f64 / x.seconds).collect();
        let best = rates.iter().cloned().fold(0.0, f64::max);
        let secs = median(runs.iter().map(|x| x.seconds).collect());
        let connects = median(runs.iter().map(|x| x.connects as f64).collect());
        let mb = median(runs.iter().map(|x| x.bytes as f64 / 1e6).collect());
        let pub_rate = median(runs.iter().map(|x| x.events as f64 / x.publish_seconds).collect());
        println!(
            "| {scenario} | {:.0} | {best:.0} | {secs:.3} | {connects:.0} | {mb:.1} | {pub_rate:.0} |",
            median(rates.clone())
        );
    }
    if let Some(mut c) = child {
        let _ = c.kill().await;
    }
    Ok(())
}

fn main() {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(main_async()) {
        eprintln!("sfemu-throughput: {e}");
        std::process::exit(1);
    }
}
