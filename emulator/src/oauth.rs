//! OAuth 2.0 token endpoint emulation (reference §10): `/services/oauth2/token`, `/authorize`
//! and `/revoke`, plus token checks for the CometD and REST endpoints.
//!
//! This first version publishes the interface; the grant behaviour follows.

use std::sync::{Arc, Mutex};

/// Epoch milliseconds on the emulator's movable clock.
pub type NowFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Configuration of the emulated connected app and its users.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The connected app's consumer key (`client_id`, JWT `iss`). Default `sfemu-consumer-key`.
    pub consumer_key: String,
    /// The connected app's consumer secret. Default `sfemu-consumer-secret`.
    pub consumer_secret: String,
    /// `(username, password)` pairs. Default `[("user@example.com", "password")]`.
    pub users: Vec<(String, String)>,
    /// Lifetime of access tokens in ms on the emulator clock. Default 2 h.
    pub token_lifetime_ms: u64,
    /// PEM used to verify JWT-bearer assertions: SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY` or an
    /// X.509 `CERTIFICATE`. Without it the JWT-bearer grant fails.
    pub jwt_public_key_pem: Option<String>,
    /// The "Run As" user of the client-credentials flow; default the first configured user.
    pub client_credentials_user: Option<String>,
    /// Base URL returned as `instance_url`, e.g. `http://127.0.0.1:8090`.
    pub instance_url: String,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        OAuthConfig {
            consumer_key: "sfemu-consumer-key".to_string(),
            consumer_secret: "sfemu-consumer-secret".to_string(),
            users: vec![("user@example.com".to_string(), "password".to_string())],
            token_lifetime_ms: 7_200_000,
            jwt_public_key_pem: None,
            client_credentials_user: None,
            instance_url: "http://127.0.0.1:8090".to_string(),
        }
    }
}

/// What a presented access token is worth.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    /// A live token and whom it belongs to.
    Valid {
        /// The configured username.
        username: String,
        /// The user's 18-character id (`005…`).
        user_id: String,
        /// The org's 18-character id (`00D…`).
        org_id: String,
    },
    /// Issued by this emulator but past its lifetime.
    Expired,
    /// Issued by this emulator but revoked.
    Revoked,
    /// Never issued here.
    Unknown,
}

/// The fields of a successful token response that callers of [`OAuth::mint_token`] need.
#[derive(Clone, Debug)]
pub struct TokenGrant {
    /// The access token (`00D…!…`).
    pub access_token: String,
    /// The instance URL.
    pub instance_url: String,
    /// The identity URL `{instance}/id/00D…/005…`.
    pub id: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Epoch ms as a string.
    pub issued_at: String,
}

struct Inner {
    config: OAuthConfig,
    now: NowFn,
    state: Mutex<()>,
}

/// The emulated OAuth server; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct OAuth {
    inner: Arc<Inner>,
}

impl OAuth {
    /// Creates the OAuth server with its configuration and clock.
    pub fn new(config: OAuthConfig, now: NowFn) -> OAuth {
        OAuth { inner: Arc::new(Inner { config, now, state: Mutex::new(()) }) }
    }

    /// Sets the `instance_url` used in later responses (e.g. once the port is bound).
    pub fn set_instance_url(&self, url: &str) {
        let _ = url;
        let _ = &self.inner.state;
        let _ = (self.inner.now)();
        let _ = &self.inner.config;
    }

    /// Routes: `POST /services/oauth2/token`, `GET /services/oauth2/authorize`,
    /// `POST /services/oauth2/revoke`.
    pub fn routes(&self) -> axum::Router {
        axum::Router::new()
    }

    /// For the CometD and REST endpoints: the value after `Bearer ` / `OAuth ` (or a raw token).
    pub fn check_token(&self, token: &str) -> TokenStatus {
        let _ = token;
        TokenStatus::Unknown
    }

    /// Control API: revokes every access and refresh token; returns how many.
    pub fn revoke_all(&self) -> usize {
        0
    }

    /// Control API/tests: mints an access token for a configured user without a login
    /// (`None` if there is no such user).
    pub fn mint_token(&self, username: &str) -> Option<TokenGrant> {
        let _ = username;
        None
    }
}
