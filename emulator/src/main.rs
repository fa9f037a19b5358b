//! The `sfemu` binary: parses flags (or `SFEMU_*` environment variables), starts the emulator,
//! prints `sfemu listening on http://HOST:PORT` and exits 0 on SIGINT/SIGTERM.

use clap::Parser;
use sfemu::oauth::OAuthConfig;
use sfemu::{Config, Server};
use std::io::Write;
use std::path::PathBuf;

/// A Salesforce-faithful Streaming API (CometD) and OAuth emulator.
#[derive(Parser, Debug)]
#[command(name = "sfemu", version, about)]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, env = "SFEMU_PORT", default_value_t = 8090)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "SFEMU_HOST", default_value = "127.0.0.1")]
    host: String,
    /// OAuth consumer key (client_id) of the emulated connected app.
    #[arg(long, env = "SFEMU_CONSUMER_KEY", default_value = "sfemu-consumer-key")]
    consumer_key: String,
    /// OAuth consumer secret.
    #[arg(
        long,
        env = "SFEMU_CONSUMER_SECRET",
        default_value = "sfemu-consumer-secret"
    )]
    consumer_secret: String,
    /// A user as USERNAME:PASSWORD (repeatable; default user@example.com:password).
    #[arg(long = "user", env = "SFEMU_USER", value_delimiter = ',')]
    users: Vec<String>,
    /// How long a /meta/connect is held, in ms.
    #[arg(long, env = "SFEMU_HOLD_TIMEOUT", default_value_t = 110_000)]
    hold_timeout: u64,
    /// Sessions with no connect this long after a reply are dropped, in ms.
    #[arg(long, env = "SFEMU_MAX_INTERVAL", default_value_t = 40_000)]
    max_interval: u64,
    /// Access token lifetime in ms.
    #[arg(long, env = "SFEMU_TOKEN_LIFETIME", default_value_t = 7_200_000)]
    token_lifetime: u64,
    /// PEM file (public key or X.509 certificate) that verifies JWT bearer assertions.
    #[arg(long, env = "SFEMU_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Run a steady synthetic event stream (PushTopics, a platform event, Account CDC).
    #[arg(long, env = "SFEMU_DEMO")]
    demo: bool,
    /// Allow CORS from this origin (repeatable; local development only; off by default as on Salesforce).
    #[arg(long = "cors", env = "SFEMU_CORS", value_delimiter = ',')]
    cors: Vec<String>,
    /// Serve this folder at / (same origin as /cometd).
    #[arg(long, env = "SFEMU_WWW")]
    www: Option<PathBuf>,
    /// Concurrent CometD client cap (handshakes beyond it are denied).
    #[arg(long, env = "SFEMU_MAX_CLIENTS", default_value_t = 2000)]
    max_clients: usize,
    /// Fixed comma-separated list of allowed /topic and /event channels (default: any name).
    #[arg(long, env = "SFEMU_CHANNELS", value_delimiter = ',')]
    channels: Option<Vec<String>>,
    /// Maximum bytes of events in one connect reply.
    #[arg(long, env = "SFEMU_MAX_BATCH_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_batch_bytes: usize,
}

fn main() {
    let args = Args::parse();
    let defaults = OAuthConfig::default();
    let mut users = Vec::new();
    for u in &args.users {
        match u.split_once(':') {
            Some((name, pw)) if !name.is_empty() => users.push((name.to_string(), pw.to_string())),
            _ => {
                eprintln!("sfemu: --user must be USERNAME:PASSWORD, got {u:?}");
                std::process::exit(2);
            }
        }
    }
    if users.is_empty() {
        users = defaults.users.clone();
    }
    let jwt_public_key_pem = match &args.jwt_public_key {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("sfemu: cannot read {}: {e}", p.display());
                std::process::exit(2);
            }
        },
        None => None,
    };
    let config = Config {
        host: args.host,
        port: args.port,
        oauth: OAuthConfig {
            consumer_key: args.consumer_key,
            consumer_secret: args.consumer_secret,
            users,
            token_lifetime_ms: args.token_lifetime,
            jwt_public_key_pem,
            ..defaults
        },
        hold_timeout_ms: args.hold_timeout,
        max_interval_ms: args.max_interval,
        max_clients: args.max_clients,
        channels: args.channels,
        max_batch_bytes: args.max_batch_bytes.max(1024),
        demo: args.demo,
        cors: args.cors,
        www: args.www,
        ..Config::default()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sfemu: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(async move {
        // Install the signal handlers before announcing readiness, so a signal sent right after
        // the listening line is never missed.
        let signals = Signals::install();
        let handle = match Server::start(config).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("sfemu: cannot listen: {e}");
                return 1;
            }
        };
        println!("sfemu listening on {}", handle.url());
        let _ = std::io::stdout().flush();
        signals.wait().await;
        handle.shutdown().await;
        0
    });
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    std::process::exit(code);
}

/// SIGINT/SIGTERM listeners.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let streams = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(i)) => Some((t, i)),
            _ => None,
        };
        Signals { streams }
    }

    #[cfg(not(unix))]
    fn install() -> Signals {
        Signals {}
    }

    /// Resolves on the first SIGINT or SIGTERM (Ctrl-C elsewhere).
    async fn wait(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.streams {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
