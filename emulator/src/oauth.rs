//! OAuth 2.0 emulation of Salesforce's token endpoint (reference §10).
//!
//! Routes (see [`OAuth::routes`]):
//! - `POST /services/oauth2/token`: grants `password`, `refresh_token`,
//!   `urn:ietf:params:oauth:grant-type:jwt-bearer` (RS256 against the configured key),
//!   `client_credentials` (form or HTTP Basic) and `authorization_code` (with PKCE S256).
//! - `GET /services/oauth2/authorize`: logs the first configured user in at once and redirects
//!   back with a single-use code (valid 15 minutes).
//! - `POST /services/oauth2/revoke`: revokes an access or refresh token (a refresh token takes its
//!   access tokens with it).
//!
//! Success bodies follow §10.2 (`issued_at` is epoch ms as a string; `signature` is
//! base64(HMAC-SHA256(id + issued_at, consumer secret))); errors are HTTP 400
//! `{"error":…,"error_description":…}` with Salesforce's strings. Tokens expire after
//! [`OAuthConfig::token_lifetime_ms`] on the emulator's movable clock ([`NowFn`]).
//! Secrets and tokens are never logged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::Rng;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Epoch milliseconds on the emulator's movable clock.
pub type NowFn = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The JWT-bearer grant type URN.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The org id every emulated user belongs to (18 characters, `00D…`).
pub const ORG_ID: &str = "00D5g00000SfEmUEAV";

/// Allowed clock skew for JWT `exp`, in seconds (Salesforce tolerates about 3 minutes).
const JWT_SKEW_S: u64 = 180;
/// A JWT whose `exp` lies further ahead than this (seconds) is refused: it catches `exp` given in
/// milliseconds, which Salesforce rejects.
const JWT_MAX_AHEAD_S: u64 = 3600;
/// Lifetime of an authorization code (Salesforce: 15 minutes).
const CODE_LIFETIME_MS: u64 = 15 * 60 * 1000;
/// Default scope string of the emulated connected app.
const APP_SCOPE: &str = "api refresh_token id";
/// Scope granted by flows that give no refresh token.
const API_SCOPE: &str = "api id";

/// Configuration of the emulated connected app and its users.
#[derive(Clone, Debug)]
pub struct OAuthConfig {
    /// The connected app's consumer key (`client_id`, JWT `iss`). Default `sfemu-consumer-key`.
    pub consumer_key: String,
    /// The connected app's consumer secret. Default `sfemu-consumer-secret`.
    pub consumer_secret: String,
    /// `(username, password)` pairs. Default `[("user@example.com", "password")]`.
    pub users: Vec<(String, String)>,
    /// Lifetime of access tokens in ms on the emulator clock. Default 2 h (7 200 000).
    pub token_lifetime_ms: u64,
    /// PEM used to verify JWT-bearer assertions: SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY` or an
    /// X.509 `CERTIFICATE`. Without it (or if it cannot be read) the JWT-bearer grant fails with
    /// `invalid_grant` / `invalid assertion`.
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

/// An issued access token.
struct AccessRecord {
    username: String,
    /// When it was last accepted: Salesforce keeps extending the session of a client that keeps
    /// using it (a streaming client never sees its token expire while connected).
    last_used_ms: u64,
    revoked: bool,
    /// The refresh token it was obtained with or alongside, if any.
    refresh: Option<String>,
}

/// An issued refresh token.
struct RefreshRecord {
    username: String,
    revoked: bool,
}

/// An authorization code waiting for its exchange.
struct CodeRecord {
    username: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scope: String,
    created_ms: u64,
}

#[derive(Default)]
struct Tokens {
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
    codes: HashMap<String, CodeRecord>,
}

struct Inner {
    config: OAuthConfig,
    now: NowFn,
    jwt_key: Option<RsaPublicKey>,
    instance_url: RwLock<String>,
    tokens: Mutex<Tokens>,
}

/// The emulated OAuth server; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct OAuth {
    inner: Arc<Inner>,
}

/// An OAuth error answered as HTTP 400 JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OAuthError {
    error: &'static str,
    description: &'static str,
}

const fn err(error: &'static str, description: &'static str) -> OAuthError {
    OAuthError { error, description }
}

const AUTH_FAILURE: OAuthError = err("invalid_grant", "authentication failure");
const BAD_CLIENT_ID: OAuthError = err("invalid_client_id", "client identifier invalid");
const BAD_CLIENT: OAuthError = err("invalid_client", "invalid client credentials");
const EXPIRED_TOKEN: OAuthError = err("invalid_grant", "expired access/refresh token");
const EXPIRED_CODE: OAuthError = err("invalid_grant", "expired authorization code");
const BAD_ASSERTION: OAuthError = err("invalid_grant", "invalid assertion");

impl OAuth {
    /// Creates the OAuth server with its configuration and clock. An unreadable
    /// `jwt_public_key_pem` is reported on stderr and disables the JWT-bearer grant.
    pub fn new(config: OAuthConfig, now: NowFn) -> OAuth {
        let jwt_key = match config.jwt_public_key_pem.as_deref() {
            None => None,
            Some(pem) => match parse_public_key_pem(pem) {
                Ok(key) => Some(key),
                Err(e) => {
                    eprintln!("sfemu oauth: cannot read the JWT public key ({e}); JWT bearer grant disabled");
                    None
                }
            },
        };
        let instance_url = RwLock::new(trim_url(&config.instance_url));
        OAuth {
            inner: Arc::new(Inner {
                config,
                now,
                jwt_key,
                instance_url,
                tokens: Mutex::new(Tokens::default()),
            }),
        }
    }

    /// Sets the `instance_url` used in later responses (e.g. once the port is bound).
    pub fn set_instance_url(&self, url: &str) {
        let mut guard = match self.inner.instance_url.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = trim_url(url);
    }

    /// Routes: `POST /services/oauth2/token`, `GET /services/oauth2/authorize`,
    /// `POST /services/oauth2/revoke` (also `GET …/revoke?token=…` as Salesforce allows).
    pub fn routes(&self) -> axum::Router {
        axum::Router::new()
            .route("/services/oauth2/token", post(token_handler))
            .route("/services/oauth2/authorize", get(authorize_handler))
            .route(
                "/services/oauth2/revoke",
                post(revoke_handler).get(revoke_handler),
            )
            .with_state(self.clone())
    }

    /// For the CometD and REST endpoints: the value after `Bearer ` / `OAuth ` (or a raw token).
    /// A full `Authorization` header value is accepted too.
    /// A token expires `token_lifetime_ms` after it was last accepted, not after it was issued.
    pub fn check_token(&self, token: &str) -> TokenStatus {
        let token = strip_scheme(token);
        let now = self.now();
        let mut tokens = self.tokens();
        match tokens.access.get_mut(token) {
            None => TokenStatus::Unknown,
            Some(rec) if rec.revoked => TokenStatus::Revoked,
            Some(rec)
                if now
                    >= rec
                        .last_used_ms
                        .saturating_add(self.inner.config.token_lifetime_ms) =>
            {
                TokenStatus::Expired
            }
            Some(rec) => {
                rec.last_used_ms = rec.last_used_ms.max(now);
                let username = rec.username.clone();
                TokenStatus::Valid {
                    user_id: self.user_id(&username),
                    username,
                    org_id: ORG_ID.to_string(),
                }
            }
        }
    }

    /// Control API: revokes every access and refresh token; returns how many were live
    /// (not yet revoked) before.
    pub fn revoke_all(&self) -> usize {
        let mut tokens = self.tokens();
        let mut n = 0;
        for rec in tokens.access.values_mut() {
            if !rec.revoked {
                rec.revoked = true;
                n += 1;
            }
        }
        for rec in tokens.refresh.values_mut() {
            if !rec.revoked {
                rec.revoked = true;
                n += 1;
            }
        }
        tokens.codes.clear();
        n
    }

    /// Control API/tests: mints an access token for a configured user without a login
    /// (`None` if there is no such user).
    pub fn mint_token(&self, username: &str) -> Option<TokenGrant> {
        if !self.has_user(username) {
            return None;
        }
        let issued = self.issue(username, None);
        Some(TokenGrant {
            access_token: issued.access_token,
            instance_url: issued.instance_url,
            id: issued.id,
            token_type: "Bearer".to_string(),
            issued_at: issued.issued_at,
        })
    }

    fn now(&self) -> u64 {
        (self.inner.now)()
    }

    fn tokens(&self) -> MutexGuard<'_, Tokens> {
        match self.inner.tokens.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn instance_url(&self) -> String {
        match self.inner.instance_url.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn has_user(&self, username: &str) -> bool {
        self.inner.config.users.iter().any(|(u, _)| u == username)
    }

    /// The user's stable 18-character id, derived from its position in the configuration.
    fn user_id(&self, username: &str) -> String {
        let index = self
            .inner
            .config
            .users
            .iter()
            .position(|(u, _)| u == username)
            .unwrap_or(0);
        salesforce_id(&format!("0055g{:010}", index + 1))
    }

    /// Creates and records an access token (and a refresh token when `refresh` says so).
    fn issue(&self, username: &str, refresh: Option<RefreshMode>) -> Issued {
        let now = self.now();
        let access_token = format!("{}!AR{}", &ORG_ID[..15], random_token(94));
        let refresh_token = match &refresh {
            Some(RefreshMode::New) => Some(format!("5Aep861{}", random_token(80))),
            _ => None,
        };
        let linked_refresh = match refresh {
            Some(RefreshMode::New) => refresh_token.clone(),
            Some(RefreshMode::Existing(rt)) => Some(rt),
            None => None,
        };
        {
            let mut tokens = self.tokens();
            tokens.access.insert(
                access_token.clone(),
                AccessRecord {
                    username: username.to_string(),
                    last_used_ms: now,
                    revoked: false,
                    refresh: linked_refresh,
                },
            );
            if let Some(rt) = &refresh_token {
                tokens.refresh.insert(
                    rt.clone(),
                    RefreshRecord {
                        username: username.to_string(),
                        revoked: false,
                    },
                );
            }
        }
        let instance_url = self.instance_url();
        let id = format!("{}/id/{}/{}", instance_url, ORG_ID, self.user_id(username));
        let issued_at = now.to_string();
        Issued {
            access_token,
            refresh_token,
            instance_url,
            id,
            issued_at,
        }
    }

    /// The §10.2 success body.
    fn success_body(&self, issued: &Issued, scope: &str) -> Value {
        let signature = sign(
            &self.inner.config.consumer_secret,
            &issued.id,
            &issued.issued_at,
        );
        let mut body = json!({
            "access_token": issued.access_token,
            "signature": signature,
            "scope": scope,
            "instance_url": issued.instance_url,
            "id": issued.id,
            "token_type": "Bearer",
            "issued_at": issued.issued_at,
        });
        if let (Some(rt), Some(obj)) = (&issued.refresh_token, body.as_object_mut()) {
            obj.insert("refresh_token".to_string(), Value::String(rt.clone()));
        }
        body
    }

    fn check_client_id(&self, client_id: Option<&str>) -> Result<(), OAuthError> {
        match client_id {
            Some(id) if id == self.inner.config.consumer_key => Ok(()),
            _ => Err(BAD_CLIENT_ID),
        }
    }

    fn check_secret(&self, secret: Option<&str>) -> Result<(), OAuthError> {
        match secret {
            Some(s)
                if constant_time_eq(s.as_bytes(), self.inner.config.consumer_secret.as_bytes()) =>
            {
                Ok(())
            }
            _ => Err(BAD_CLIENT),
        }
    }

    /// Dispatches a token request on its grant type.
    fn token(&self, params: &Params, basic: Option<(String, String)>) -> Result<Value, OAuthError> {
        let grant = match params.get("grant_type") {
            None | Some("") => return Err(err("invalid_request", "grant type is missing")),
            Some(g) => g,
        };
        match grant {
            "password" => self.grant_password(params),
            "refresh_token" => self.grant_refresh(params),
            JWT_BEARER_GRANT => self.grant_jwt(params),
            "client_credentials" => self.grant_client_credentials(params, basic),
            "authorization_code" => self.grant_code(params),
            _ => Err(err("unsupported_grant_type", "grant type not supported")),
        }
    }

    fn grant_password(&self, p: &Params) -> Result<Value, OAuthError> {
        self.check_client_id(p.get("client_id"))?;
        self.check_secret(p.get("client_secret"))?;
        let username = p.get("username").unwrap_or("");
        let password = p.get("password").unwrap_or("");
        let ok =
            self.inner.config.users.iter().any(|(u, pw)| {
                u == username && constant_time_eq(pw.as_bytes(), password.as_bytes())
            });
        if !ok {
            return Err(AUTH_FAILURE);
        }
        let issued = self.issue(username, None);
        Ok(self.success_body(&issued, API_SCOPE))
    }

    fn grant_refresh(&self, p: &Params) -> Result<Value, OAuthError> {
        self.check_client_id(p.get("client_id"))?;
        if let Some(secret) = p.get("client_secret") {
            self.check_secret(Some(secret))?;
        }
        let rt = p.get("refresh_token").unwrap_or("");
        let username = {
            let tokens = self.tokens();
            match tokens.refresh.get(rt) {
                Some(rec) if !rec.revoked => rec.username.clone(),
                _ => return Err(EXPIRED_TOKEN),
            }
        };
        if !self.has_user(&username) {
            return Err(EXPIRED_TOKEN);
        }
        let issued = self.issue(&username, Some(RefreshMode::Existing(rt.to_string())));
        Ok(self.success_body(&issued, APP_SCOPE))
    }

    fn grant_jwt(&self, p: &Params) -> Result<Value, OAuthError> {
        let assertion = match p.get("assertion") {
            Some(a) if !a.is_empty() => a,
            _ => return Err(BAD_ASSERTION),
        };
        let claims = self.verify_jwt(assertion)?;
        let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
        if iss != self.inner.config.consumer_key {
            return Err(BAD_CLIENT_ID);
        }
        let instance = self.instance_url();
        let aud_ok = |a: &str| {
            let a = a.trim_end_matches('/');
            a == "https://login.salesforce.com"
                || a == "https://test.salesforce.com"
                || a == instance
        };
        let aud_valid = match claims.get("aud") {
            Some(Value::String(a)) => aud_ok(a),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(aud_ok),
            _ => false,
        };
        if !aud_valid {
            return Err(err("invalid_grant", "Audience validation failed"));
        }
        let now_s = self.now() / 1000;
        let exp = match claims.get("exp") {
            Some(Value::Number(n)) => match n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            {
                Some(e) => e,
                None => return Err(BAD_ASSERTION),
            },
            _ => return Err(BAD_ASSERTION),
        };
        if exp.saturating_add(JWT_SKEW_S) <= now_s {
            return Err(EXPIRED_CODE);
        }
        if exp > now_s.saturating_add(JWT_MAX_AHEAD_S + JWT_SKEW_S) {
            // Typically `exp` in milliseconds.
            return Err(BAD_ASSERTION);
        }
        let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
        if !self.has_user(sub) {
            return Err(err("invalid_grant", "user hasn't approved this consumer"));
        }
        let issued = self.issue(sub, None);
        Ok(self.success_body(&issued, API_SCOPE))
    }

    /// Checks the JWT's form, its `RS256` header and its signature; returns the claims.
    fn verify_jwt(&self, jwt: &str) -> Result<serde_json::Map<String, Value>, OAuthError> {
        let mut parts = jwt.trim().split('.');
        let (h, c, s) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(h), Some(c), Some(s), None) => (h, c, s),
            _ => return Err(BAD_ASSERTION),
        };
        let header: Value = b64url_json(h).ok_or(BAD_ASSERTION)?;
        if header.get("alg").and_then(Value::as_str) != Some("RS256") {
            return Err(BAD_ASSERTION);
        }
        let key = self.inner.jwt_key.as_ref().ok_or(BAD_ASSERTION)?;
        let sig = b64url(s).ok_or(BAD_ASSERTION)?;
        let signed = &jwt.trim()[..h.len() + 1 + c.len()];
        let hashed = Sha256::digest(signed.as_bytes());
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, &sig)
            .map_err(|_| BAD_ASSERTION)?;
        match b64url_json(c) {
            Some(Value::Object(map)) => Ok(map),
            _ => Err(BAD_ASSERTION),
        }
    }

    fn grant_client_credentials(
        &self,
        p: &Params,
        basic: Option<(String, String)>,
    ) -> Result<Value, OAuthError> {
        let (id, secret) = match (p.get("client_id"), basic) {
            (Some(id), _) => (
                Some(id.to_string()),
                p.get("client_secret").map(str::to_string),
            ),
            (None, Some((id, secret))) => (Some(id), Some(secret)),
            (None, None) => (None, None),
        };
        self.check_client_id(id.as_deref())?;
        self.check_secret(secret.as_deref())?;
        let user = match &self.inner.config.client_credentials_user {
            Some(u) => Some(u.clone()),
            None => self.inner.config.users.first().map(|(u, _)| u.clone()),
        };
        let user = match user {
            Some(u) if self.has_user(&u) => u,
            _ => return Err(err("invalid_grant", "no client credentials user enabled")),
        };
        let issued = self.issue(&user, None);
        Ok(self.success_body(&issued, API_SCOPE))
    }

    fn grant_code(&self, p: &Params) -> Result<Value, OAuthError> {
        let client_id = p.get("client_id");
        self.check_client_id(client_id)?;
        if let Some(secret) = p.get("client_secret") {
            self.check_secret(Some(secret))?;
        }
        let code = p.get("code").unwrap_or("");
        // Single use: the code is gone whatever the outcome.
        let rec = match self.tokens().codes.remove(code) {
            Some(rec) => rec,
            None => return Err(EXPIRED_CODE),
        };
        if self.now() >= rec.created_ms.saturating_add(CODE_LIFETIME_MS) {
            return Err(EXPIRED_CODE);
        }
        if Some(rec.client_id.as_str()) != client_id {
            return Err(BAD_CLIENT_ID);
        }
        if p.get("redirect_uri") != Some(rec.redirect_uri.as_str()) {
            return Err(err(
                "invalid_grant",
                "redirect_uri must match configuration",
            ));
        }
        match (&rec.challenge, p.get("code_verifier")) {
            (Some(_), None) => return Err(err("invalid_grant", "invalid code verifier")),
            (Some(challenge), Some(verifier)) => {
                let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if !constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
                    return Err(err("invalid_request", "invalid code verifier"));
                }
            }
            (None, Some(_)) => return Err(err("invalid_request", "invalid code verifier")),
            (None, None) => {
                // Without PKCE the web-server flow needs the consumer secret.
                self.check_secret(p.get("client_secret"))?;
            }
        }
        let wants_refresh = rec
            .scope
            .split_whitespace()
            .any(|s| s == "refresh_token" || s == "offline_access" || s == "full");
        let mode = if wants_refresh {
            Some(RefreshMode::New)
        } else {
            None
        };
        let issued = self.issue(&rec.username, mode);
        Ok(self.success_body(&issued, &rec.scope))
    }

    /// `GET /services/oauth2/authorize`: the first configured user "logs in" at once.
    fn authorize(&self, p: &Params) -> Response {
        let redirect_uri = match p.get("redirect_uri") {
            Some(r) if !r.is_empty() => r.to_string(),
            _ => {
                return error_response(&err(
                    "invalid_request",
                    "missing required redirect_uri parameter",
                ))
            }
        };
        if p.get("client_id") != Some(self.inner.config.consumer_key.as_str()) {
            return error_response(&BAD_CLIENT_ID);
        }
        let state = p.get("state");
        let fail = |error: &str, description: &str| {
            let mut q = form_urlencoded::Serializer::new(String::new());
            q.append_pair("error", error)
                .append_pair("error_description", description);
            if let Some(s) = state {
                q.append_pair("state", s);
            }
            redirect(&redirect_uri, &q.finish())
        };
        if p.get("response_type") != Some("code") {
            return fail("unsupported_response_type", "response type not supported");
        }
        let challenge = p
            .get("code_challenge")
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        match p.get("code_challenge_method") {
            None | Some("S256") => {}
            Some(_) => return fail("invalid_request", "invalid code_challenge_method"),
        }
        if let Some(c) = &challenge {
            // A S256 challenge is 43 base64url characters.
            let decoded_len = URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .map(|d| d.len())
                .unwrap_or(0);
            if decoded_len != 32 {
                return fail("invalid_request", "invalid code challenge");
            }
        }
        let username = match self.inner.config.users.first() {
            Some((u, _)) => u.clone(),
            None => return fail("access_denied", "end-user denied authorization"),
        };
        let scope = match p.get("scope") {
            Some(s) if !s.trim().is_empty() => s.split_whitespace().collect::<Vec<_>>().join(" "),
            _ => APP_SCOPE.to_string(),
        };
        let code = format!("aPrx{}", random_token(60));
        self.tokens().codes.insert(
            code.clone(),
            CodeRecord {
                username,
                client_id: self.inner.config.consumer_key.clone(),
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                created_ms: self.now(),
            },
        );
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("code", &code);
        if let Some(s) = state {
            q.append_pair("state", s);
        }
        redirect(&redirect_uri, &q.finish())
    }

    /// `/services/oauth2/revoke`.
    fn revoke(&self, p: &Params) -> Result<(), OAuthError> {
        let token = match p.get("token") {
            Some(t) if !t.is_empty() => t,
            _ => return Err(err("unsupported_token_type", "unsupported token type")),
        };
        let mut tokens = self.tokens();
        if let Some(rec) = tokens.refresh.get_mut(token) {
            if rec.revoked {
                return Err(err("invalid_token", "invalid token"));
            }
            rec.revoked = true;
            for a in tokens.access.values_mut() {
                if a.refresh.as_deref() == Some(token) {
                    a.revoked = true;
                }
            }
            return Ok(());
        }
        match tokens.access.get_mut(token) {
            Some(rec) if !rec.revoked => {
                rec.revoked = true;
                Ok(())
            }
            _ => Err(err("invalid_token", "invalid token")),
        }
    }
}

enum RefreshMode {
    /// Issue a new refresh token with the access token.
    New,
    /// Link the access token to this existing refresh token (no rotation).
    Existing(String),
}

struct Issued {
    access_token: String,
    refresh_token: Option<String>,
    instance_url: String,
    id: String,
    issued_at: String,
}

/// Request parameters: the form body, then the query string (the body wins).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>, body: &[u8]) -> Params {
        let mut v: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        if let Some(q) = query {
            v.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params(v)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn token_handler(
    State(oauth): State<OAuth>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = Params::parse(uri.query(), &body);
    let basic = basic_auth(&headers);
    match oauth.token(&params, basic) {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => error_response(&e),
    }
}

async fn authorize_handler(State(oauth): State<OAuth>, uri: Uri) -> Response {
    let params = Params::parse(uri.query(), b"");
    oauth.authorize(&params)
}

async fn revoke_handler(State(oauth): State<OAuth>, uri: Uri, body: Bytes) -> Response {
    let params = Params::parse(uri.query(), &body);
    match oauth.revoke(&params) {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, json_content_type());
            r
        }
        Err(e) => error_response(&e),
    }
}

fn json_content_type() -> HeaderValue {
    HeaderValue::from_static("application/json;charset=UTF-8")
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, json_content_type());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,must-revalidate,max-age=0,no-store,private"),
    );
    r
}

fn error_response(e: &OAuthError) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"error": e.error, "error_description": e.description}),
    )
}

/// A 302 to `target` with `query` appended.
fn redirect(target: &str, query: &str) -> Response {
    let sep = if target.contains('?') { '&' } else { '?' };
    let location = format!("{target}{sep}{query}");
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => error_response(&err(
            "invalid_request",
            "redirect_uri must match configuration",
        )),
    }
}

/// `Authorization: Basic base64(id:secret)`.
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(rest.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let dec = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((
        dec(id).unwrap_or_else(|| id.to_string()),
        dec(secret).unwrap_or_else(|| secret.to_string()),
    ))
}

fn strip_scheme(token: &str) -> &str {
    let t = token.trim();
    for scheme in ["Bearer ", "OAuth "] {
        if t.len() >= scheme.len()
            && t.is_char_boundary(scheme.len())
            && t[..scheme.len()].eq_ignore_ascii_case(scheme)
        {
            return t[scheme.len()..].trim();
        }
    }
    t
}

fn trim_url(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// base64(HMAC-SHA256(id + issued_at, secret)).
fn sign(secret: &str, id: &str, issued_at: &str) -> String {
    match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(issued_at.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Appends Salesforce's 3-character case-safe suffix to a 15-character id.
fn salesforce_id(id15: &str) -> String {
    const MAP: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let bytes = id15.as_bytes();
    let mut out = id15.to_string();
    for chunk in bytes.chunks(5).take(3) {
        let mut bits = 0usize;
        for (i, c) in chunk.iter().enumerate() {
            if c.is_ascii_uppercase() {
                bits |= 1 << i;
            }
        }
        out.push(MAP[bits] as char);
    }
    out
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('=').as_bytes())
        .ok()
}

fn b64url_json(s: &str) -> Option<Value> {
    serde_json::from_slice(&b64url(s)?).ok()
}

/// Reads an RSA public key from SPKI (`PUBLIC KEY`), PKCS#1 (`RSA PUBLIC KEY`) or X.509
/// (`CERTIFICATE`) PEM.
pub fn parse_public_key_pem(pem: &str) -> Result<RsaPublicKey, String> {
    let (label, der) = pem_decode(pem).ok_or_else(|| "not a PEM block".to_string())?;
    match label.as_str() {
        "PUBLIC KEY" => RsaPublicKey::from_public_key_der(&der).map_err(|e| e.to_string()),
        "RSA PUBLIC KEY" => RsaPublicKey::from_pkcs1_der(&der).map_err(|e| e.to_string()),
        "CERTIFICATE" => {
            let spki = certificate_spki(&der).ok_or_else(|| "malformed certificate".to_string())?;
            RsaPublicKey::from_public_key_der(spki).map_err(|e| e.to_string())
        }
        other => Err(format!("unsupported PEM label {other:?}")),
    }
}

/// The label and DER bytes of the first PEM block.
fn pem_decode(pem: &str) -> Option<(String, Vec<u8>)> {
    let start = pem.find("-----BEGIN ")?;
    let rest = &pem[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body.find(&end_marker)?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(b64.as_bytes()).ok()?;
    Some((label, der))
}

/// One DER element: (tag, full element bytes, content bytes, remaining input).
type DerElement<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Splits the first DER element off `input`.
fn der_next(input: &[u8]) -> Option<DerElement<'_>> {
    let tag = *input.first()?;
    let first = *input.get(1)? as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *input.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > input.len() {
        return None;
    }
    Some((tag, &input[..end], &input[header..end], &input[end..]))
}

/// The `subjectPublicKeyInfo` element of an X.509 certificate.
fn certificate_spki(der: &[u8]) -> Option<&[u8]> {
    let (tag, _, cert, _) = der_next(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, _, tbs, _) = der_next(cert)?;
    if tag != 0x30 {
        return None;
    }
    let mut rest = tbs;
    // Optional explicit [0] version.
    if rest.first() == Some(&0xa0) {
        rest = der_next(rest)?.3;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        rest = der_next(rest)?.3;
    }
    let (tag, spki, _, _) = der_next(rest)?;
    if tag != 0x30 {
        return None;
    }
    Some(spki)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_safe_suffix() {
        // Known Salesforce example: 001A0000006Vm9r → 001A0000006Vm9rIAC.
        assert_eq!(salesforce_id("001A0000006Vm9r"), "001A0000006Vm9rIAC");
    }

    #[test]
    fn strips_auth_schemes() {
        assert_eq!(strip_scheme("Bearer abc"), "abc");
        assert_eq!(strip_scheme("oauth abc"), "abc");
        assert_eq!(strip_scheme(" abc "), "abc");
    }
}
