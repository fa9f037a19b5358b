//! sfemu: a Salesforce-faithful emulator of the Streaming API (CometD/Bayeux long-polling) and of
//! the OAuth 2.0 token endpoint, run as a real local HTTP server for tests, benchmarks and demos.
//!
//! Start it in-process with [`Server::start`] (tests bind `127.0.0.1:0`), or run the `sfemu` binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let handle = sfemu::Server::start(sfemu::Config { port: 0, ..Default::default() }).await?;
//! println!("{}", handle.url());
//! let token = handle.token("user@example.com");
//! handle.shutdown().await;
//! # Ok(()) }
//! ```

pub mod bayeux;
pub mod control;
pub mod demo;
pub mod oauth;
pub mod rest;
pub mod server;
pub mod state;
pub mod store;
pub mod util;

use oauth::{OAuth, OAuthConfig};
use state::{App, Conns, Counters, Faults, Inner};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Emulator configuration. [`Config::default`] gives Salesforce's values.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to bind (default `127.0.0.1`).
    pub host: String,
    /// Port (default 8090; 0 = ephemeral).
    pub port: u16,
    /// OAuth settings (consumer key/secret, users, token lifetime, JWT key).
    pub oauth: OAuthConfig,
    /// How long a `/meta/connect` is held, ms (default 110 000, `advice.timeout`).
    pub hold_timeout_ms: u64,
    /// Sessions without a new connect this long after a reply are swept, ms (default 40 000).
    pub max_interval_ms: u64,
    /// `advice.interval` in the `multiple-clients` reply, ms (default 2000).
    pub multi_session_interval_ms: u64,
    /// Concurrent client cap (default 2000, as Performance/Unlimited Edition).
    pub max_clients: usize,
    /// Fixed list of allowed `/topic` and `/event` channels (`None` = any name accepted).
    pub channels: Option<Vec<String>>,
    /// Maximum bytes of events per connect reply (default 10 MiB).
    pub max_batch_bytes: usize,
    /// Maximum CometD request body (default 32 768 bytes → 413 above).
    pub max_body_bytes: usize,
    /// Maximum events retained per channel, beyond retention (memory guard; default 2 000 000).
    pub max_events_per_channel: usize,
    /// Run the synthetic demo stream.
    pub demo: bool,
    /// Milliseconds between demo events (default 400).
    pub demo_interval_ms: u64,
    /// Origins allowed by CORS (empty = no CORS at all, as Salesforce on `/cometd`).
    pub cors: Vec<String>,
    /// Folder served at `/`.
    pub www: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host: "127.0.0.1".into(),
            port: 8090,
            oauth: OAuthConfig::default(),
            hold_timeout_ms: 110_000,
            max_interval_ms: 40_000,
            multi_session_interval_ms: 2000,
            max_clients: 2000,
            channels: None,
            max_batch_bytes: 10 * 1024 * 1024,
            max_body_bytes: 32_768,
            max_events_per_channel: 2_000_000,
            demo: false,
            demo_interval_ms: 400,
            cors: Vec::new(),
            www: None,
        }
    }
}

/// The emulator server.
pub struct Server;

impl Server {
    /// Binds, starts serving in the background and returns once connections are accepted.
    pub async fn start(config: Config) -> std::io::Result<Handle> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        let addr = listener.local_addr()?;
        let clock = Arc::new(util::Clock::new());
        let c2 = clock.clone();
        let now: oauth::NowFn = Arc::new(move || c2.now_ms());
        let mut ocfg = config.oauth.clone();
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let url = format!("http://{host}:{}", addr.port());
        ocfg.instance_url = url.clone();
        let oauth = OAuth::new(ocfg, now);
        oauth.set_instance_url(&url);
        let allowed = config
            .channels
            .as_ref()
            .map(|l| l.iter().map(|s| s.trim().to_string()).collect());
        let app = Arc::new(App {
            oauth,
            clock,
            inner: Mutex::new(Inner {
                store: store::Store::new(config.max_events_per_channel),
                sessions: Default::default(),
                held_by_browser: Default::default(),
                pushtopics: Default::default(),
                streaming_channels: Default::default(),
            }),
            counters: Counters::default(),
            faults: Mutex::new(Faults::default()),
            conns: Conns::default(),
            allowed,
            cfg: config,
        });
        let router = server::router(app.clone());
        let stop = Arc::new(Notify::new());
        let mut tasks = vec![tokio::spawn(server::accept_loop(
            listener,
            app.clone(),
            router,
            stop.clone(),
        ))];
        tasks.push(tokio::spawn(bayeux::sweeper(app.clone())));
        if app.cfg.demo {
            tasks.push(tokio::spawn(demo::run(app.clone())));
        }
        Ok(Handle {
            addr,
            url,
            app,
            stop,
            tasks,
        })
    }
}

/// A running emulator.
pub struct Handle {
    /// The bound address.
    pub addr: SocketAddr,
    url: String,
    app: Arc<App>,
    stop: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

impl Handle {
    /// Base URL, e.g. `http://127.0.0.1:8090` (also the OAuth `instance_url`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The OAuth module (mint, check, revoke tokens).
    pub fn oauth(&self) -> &OAuth {
        &self.app.oauth
    }

    /// Mints an access token for a configured user (no login).
    pub fn token(&self, username: &str) -> Option<String> {
        self.app.oauth.mint_token(username).map(|g| g.access_token)
    }

    /// Stops accepting, drops every connection and background task. Resolves when done.
    pub async fn shutdown(self) {
        self.stop.notify_one();
        self.app.conns.drop_all(None);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        self.app.conns.drop_all(None);
    }
}
