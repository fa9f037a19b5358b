//! OAuth emulation over real HTTP: `OAuth::routes()` served on 127.0.0.1:0, called with reqwest.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sfemu::oauth::{NowFn, OAuth, OAuthConfig, TokenStatus};
use sha2::{Digest, Sha256};

const KEY: &str = "sfemu-consumer-key";
const SECRET: &str = "sfemu-consumer-secret";
const JWT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const START_MS: u64 = 1_700_000_000_000;

/// One RSA key per test binary (key generation is slow in debug builds).
fn private_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("generate RSA key"))
}

fn spki_pem() -> String {
    private_key()
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI PEM")
}

struct Emu {
    base: String,
    oauth: OAuth,
    clock: Arc<AtomicU64>,
    http: reqwest::Client,
}

impl Emu {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url("/services/oauth2/token"))
            .form(form)
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert_eq!(ct, "application/json;charset=UTF-8");
        (status, r.json().await.expect("json body"))
    }

    async fn expect_error(&self, form: &[(&str, &str)], error: &str, description: &str) {
        let (status, body) = self.token(form).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body,
            json!({"error": error, "error_description": description})
        );
    }

    fn advance(&self, ms: u64) {
        self.clock.fetch_add(ms, Ordering::SeqCst);
    }
}

async fn start(mut config: OAuthConfig) -> Emu {
    let clock = Arc::new(AtomicU64::new(START_MS));
    let c = clock.clone();
    let now: NowFn = Arc::new(move || c.load(Ordering::SeqCst));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    config.instance_url = "http://placeholder:1".to_string();
    let oauth = OAuth::new(config, now);
    oauth.set_instance_url(&base);
    let app = oauth.routes();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Emu {
        base,
        oauth,
        clock,
        http,
    }
}

async fn default_emu() -> Emu {
    start(OAuthConfig::default()).await
}

fn password_form<'a>(user: &'a str, pw: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "password"),
        ("client_id", KEY),
        ("client_secret", SECRET),
        ("username", user),
        ("password", pw),
    ]
}

fn assert_success_shape(emu: &Emu, body: &Value, expect_refresh: bool) {
    let obj = body.as_object().expect("object");
    let token = obj["access_token"].as_str().expect("access_token");
    assert!(token.starts_with("00D") && token.contains('!'), "{token}");
    assert_eq!(obj["token_type"], "Bearer");
    assert_eq!(obj["instance_url"], emu.base.as_str());
    let id = obj["id"].as_str().expect("id");
    assert!(id.starts_with(&format!("{}/id/00D", emu.base)), "{id}");
    let tail: Vec<&str> = id.rsplit('/').take(2).collect();
    assert!(tail[0].starts_with("005") && tail[0].len() == 18, "{id}");
    assert!(tail[1].starts_with("00D") && tail[1].len() == 18, "{id}");
    let issued_at = obj["issued_at"].as_str().expect("issued_at is a string");
    assert_eq!(
        issued_at.parse::<u64>().expect("ms"),
        emu.clock.load(Ordering::SeqCst)
    );
    assert!(obj["scope"].is_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac");
    mac.update(format!("{id}{issued_at}").as_bytes());
    assert_eq!(
        obj["signature"].as_str().expect("signature"),
        STANDARD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(obj.contains_key("refresh_token"), expect_refresh, "{body}");
    assert!(!obj.contains_key("expires_in"));
}

fn valid_user(status: TokenStatus) -> String {
    match status {
        TokenStatus::Valid {
            username,
            user_id,
            org_id,
        } => {
            assert!(user_id.starts_with("005") && user_id.len() == 18);
            assert!(org_id.starts_with("00D") && org_id.len() == 18);
            username
        }
        other => panic!("expected a valid token, got {other:?}"),
    }
}

// ---------------------------------------------------------------- password

#[tokio::test]
async fn password_grant_returns_salesforce_shape() {
    let emu = default_emu().await;
    let (status, body) = emu
        .token(&password_form("user@example.com", "password"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(&emu, &body, false);
    let token = body["access_token"].as_str().unwrap_or_default();
    assert_eq!(valid_user(emu.oauth.check_token(token)), "user@example.com");
    assert_eq!(
        valid_user(emu.oauth.check_token(&format!("Bearer {token}"))),
        "user@example.com"
    );
    assert_eq!(
        valid_user(emu.oauth.check_token(&format!("OAuth {token}"))),
        "user@example.com"
    );
    assert_eq!(emu.oauth.check_token("00Dnope!nope"), TokenStatus::Unknown);
}

#[tokio::test]
async fn password_grant_errors() {
    let emu = default_emu().await;
    emu.expect_error(
        &password_form("user@example.com", "wrong"),
        "invalid_grant",
        "authentication failure",
    )
    .await;
    emu.expect_error(
        &password_form("nobody@example.com", "password"),
        "invalid_grant",
        "authentication failure",
    )
    .await;
    let mut bad_id = password_form("user@example.com", "password");
    bad_id[1] = ("client_id", "nope");
    emu.expect_error(&bad_id, "invalid_client_id", "client identifier invalid")
        .await;
    let mut bad_secret = password_form("user@example.com", "password");
    bad_secret[2] = ("client_secret", "nope");
    emu.expect_error(&bad_secret, "invalid_client", "invalid client credentials")
        .await;
    emu.expect_error(
        &[("client_id", KEY)],
        "invalid_request",
        "grant type is missing",
    )
    .await;
    emu.expect_error(
        &[("grant_type", "magic")],
        "unsupported_grant_type",
        "grant type not supported",
    )
    .await;
}

#[tokio::test]
async fn several_users_and_query_string_parameters() {
    let config = OAuthConfig {
        users: vec![
            ("a@x.com".into(), "pa".into()),
            ("b@x.com".into(), "pb".into()),
        ],
        ..OAuthConfig::default()
    };
    let emu = start(config).await;
    // Salesforce also accepts the parameters in the query string of the POST.
    let url = format!(
        "{}?grant_type=password&client_id={KEY}&client_secret={SECRET}&username=b%40x.com&password=pb",
        emu.url("/services/oauth2/token")
    );
    let r = emu.http.post(url).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    let token = body["access_token"].as_str().unwrap_or_default();
    assert_eq!(valid_user(emu.oauth.check_token(token)), "b@x.com");
    let (_, a) = emu.token(&password_form("a@x.com", "pa")).await;
    assert_ne!(a["id"], body["id"], "users get distinct ids");
    emu.expect_error(
        &password_form("a@x.com", "pb"),
        "invalid_grant",
        "authentication failure",
    )
    .await;
}

#[tokio::test]
async fn bad_input_keeps_the_server_serving() {
    let emu = default_emu().await;
    let url = emu.url("/services/oauth2/token");
    let r = emu.http.get(&url).send().await.expect("send");
    assert_eq!(r.status(), 405);
    for body in [
        &b"{\"grant_type\":\"password\"}"[..],
        b"%%%&&==",
        b"\xff\xfe\x00garbage",
        &[b'a'; 100_000][..],
    ] {
        let r = emu
            .http
            .post(&url)
            .body(body.to_vec())
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request");
    }
    let (status, _) = emu
        .token(&password_form("user@example.com", "password"))
        .await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------- expiry, mint, revoke

#[tokio::test]
async fn tokens_expire_on_the_movable_clock() {
    let config = OAuthConfig {
        token_lifetime_ms: 60_000,
        ..OAuthConfig::default()
    };
    let emu = start(config).await;
    let grant = emu
        .oauth
        .mint_token("user@example.com")
        .expect("configured user");
    assert_eq!(grant.token_type, "Bearer");
    assert_eq!(grant.instance_url, emu.base);
    assert_eq!(grant.issued_at, START_MS.to_string());
    assert!(grant.id.starts_with(&format!("{}/id/00D", emu.base)));
    assert!(emu.oauth.mint_token("nobody@example.com").is_none());
    emu.advance(59_999);
    assert!(matches!(
        emu.oauth.check_token(&grant.access_token),
        TokenStatus::Valid { .. }
    ));
    // That use extended it (as Salesforce keeps a connected client's session alive): a full
    // lifetime without use expires it.
    emu.advance(59_999);
    assert!(matches!(
        emu.oauth.check_token(&grant.access_token),
        TokenStatus::Valid { .. }
    ));
    emu.advance(60_000);
    assert_eq!(
        emu.oauth.check_token(&grant.access_token),
        TokenStatus::Expired
    );
}

#[tokio::test]
async fn revoke_endpoint_and_revoke_all() {
    let emu = default_emu().await;
    let revoke = |token: &str| {
        let form = vec![("token".to_string(), token.to_string())];
        emu.http
            .post(emu.url("/services/oauth2/revoke"))
            .form(&form)
            .send()
    };
    let a = emu
        .oauth
        .mint_token("user@example.com")
        .expect("mint")
        .access_token;
    let r = revoke(&a).await.expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(emu.oauth.check_token(&a), TokenStatus::Revoked);
    let r = revoke(&a).await.expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_token"
    );
    let r = revoke("00Dunknown!x").await.expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error":"invalid_token","error_description":"invalid token"})
    );
    let r = emu
        .http
        .post(emu.url("/services/oauth2/revoke"))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "unsupported_token_type"
    );
    // GET with a query string works too.
    let b = emu
        .oauth
        .mint_token("user@example.com")
        .expect("mint")
        .access_token;
    let r = emu
        .http
        .get(format!(
            "{}?token={}",
            emu.url("/services/oauth2/revoke"),
            b
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(emu.oauth.check_token(&b), TokenStatus::Revoked);

    let c = emu
        .oauth
        .mint_token("user@example.com")
        .expect("mint")
        .access_token;
    let d = emu
        .oauth
        .mint_token("user@example.com")
        .expect("mint")
        .access_token;
    assert_eq!(emu.oauth.revoke_all(), 2);
    assert_eq!(emu.oauth.check_token(&c), TokenStatus::Revoked);
    assert_eq!(emu.oauth.check_token(&d), TokenStatus::Revoked);
    assert_eq!(emu.oauth.revoke_all(), 0);
}

// ---------------------------------------------------------------- authorization code + PKCE, refresh

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Runs /authorize and returns the query pairs of the redirect.
async fn authorize(emu: &Emu, extra: &[(&str, &str)]) -> (u16, String, Vec<(String, String)>) {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    let r = emu
        .http
        .get(format!(
            "{}?{}",
            emu.url("/services/oauth2/authorize"),
            q.finish()
        ))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    let pairs = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    (status, location, pairs)
}

fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

const REDIRECT: &str = "http://localhost:3000/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk-sfemu-verifier";

async fn pkce_code(emu: &Emu) -> String {
    let ch = challenge(VERIFIER);
    let (status, location, pairs) = authorize(
        emu,
        &[
            ("response_type", "code"),
            ("client_id", KEY),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &ch),
            ("code_challenge_method", "S256"),
            ("state", "xyz 1"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    assert_eq!(get(&pairs, "state"), Some("xyz 1"));
    get(&pairs, "code").expect("code").to_string()
}

fn code_form<'a>(code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", KEY),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]
}

#[tokio::test]
async fn authorization_code_with_pkce_and_refresh() {
    let emu = default_emu().await;
    let code = pkce_code(&emu).await;
    let (status, body) = emu.token(&code_form(&code, VERIFIER)).await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(&emu, &body, true);
    assert_eq!(body["scope"], "api refresh_token id");
    let access = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refresh = body["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        valid_user(emu.oauth.check_token(&access)),
        "user@example.com"
    );

    // The code is single use.
    emu.expect_error(
        &code_form(&code, VERIFIER),
        "invalid_grant",
        "expired authorization code",
    )
    .await;

    // Refresh without rotation: a new access token, no new refresh token.
    emu.advance(1000);
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", KEY),
        ("refresh_token", refresh.as_str()),
    ];
    let (status, body) = emu.token(&refresh_form).await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(&emu, &body, false);
    let access2 = body["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_ne!(access, access2);
    // With a secret it must be the right one.
    let with_secret = [
        ("grant_type", "refresh_token"),
        ("client_id", KEY),
        ("client_secret", "bad"),
        ("refresh_token", refresh.as_str()),
    ];
    emu.expect_error(&with_secret, "invalid_client", "invalid client credentials")
        .await;
    let bad_client = [
        ("grant_type", "refresh_token"),
        ("client_id", "x"),
        ("refresh_token", refresh.as_str()),
    ];
    emu.expect_error(
        &bad_client,
        "invalid_client_id",
        "client identifier invalid",
    )
    .await;
    let unknown = [
        ("grant_type", "refresh_token"),
        ("client_id", KEY),
        ("refresh_token", "5Aepnope"),
    ];
    emu.expect_error(&unknown, "invalid_grant", "expired access/refresh token")
        .await;

    // Revoking the refresh token revokes the access tokens obtained with it.
    let r = emu
        .http
        .post(emu.url("/services/oauth2/revoke"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(emu.oauth.check_token(&access), TokenStatus::Revoked);
    assert_eq!(emu.oauth.check_token(&access2), TokenStatus::Revoked);
    emu.expect_error(
        &refresh_form,
        "invalid_grant",
        "expired access/refresh token",
    )
    .await;
}

#[tokio::test]
async fn pkce_errors() {
    let emu = default_emu().await;
    // Wrong verifier.
    let code = pkce_code(&emu).await;
    emu.expect_error(
        &code_form(&code, "not-the-verifier-not-the-verifier-not-the-verifier"),
        "invalid_request",
        "invalid code verifier",
    )
    .await;
    // Missing verifier.
    let code = pkce_code(&emu).await;
    let mut form = code_form(&code, "");
    form.pop();
    emu.expect_error(&form, "invalid_grant", "invalid code verifier")
        .await;
    // Redirect URI must match the one given to /authorize.
    let code = pkce_code(&emu).await;
    let mut form = code_form(&code, VERIFIER);
    form[3] = ("redirect_uri", "http://localhost:3000/other");
    emu.expect_error(
        &form,
        "invalid_grant",
        "redirect_uri must match configuration",
    )
    .await;
    // Wrong client id.
    let code = pkce_code(&emu).await;
    let mut form = code_form(&code, VERIFIER);
    form[2] = ("client_id", "someone-else");
    emu.expect_error(&form, "invalid_client_id", "client identifier invalid")
        .await;
    // Codes are short-lived (15 minutes).
    let code = pkce_code(&emu).await;
    emu.advance(15 * 60 * 1000);
    emu.expect_error(
        &code_form(&code, VERIFIER),
        "invalid_grant",
        "expired authorization code",
    )
    .await;
    // Unknown code.
    emu.expect_error(
        &code_form("aPrxnope", VERIFIER),
        "invalid_grant",
        "expired authorization code",
    )
    .await;
}

/// An authorization code for the web-server flow without PKCE, with scope `api` (no refresh token).
async fn code_without_pkce(emu: &Emu) -> String {
    let (_, _, pairs) = authorize(
        emu,
        &[
            ("response_type", "code"),
            ("client_id", KEY),
            ("redirect_uri", REDIRECT),
            ("scope", "api"),
        ],
    )
    .await;
    get(&pairs, "code").expect("code").to_string()
}

#[tokio::test]
async fn authorize_errors_and_web_server_flow_without_pkce() {
    let emu = default_emu().await;
    let (status, _, pairs) = authorize(
        &emu,
        &[
            ("response_type", "token"),
            ("client_id", KEY),
            ("redirect_uri", REDIRECT),
            ("state", "s"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(get(&pairs, "error"), Some("unsupported_response_type"));
    assert_eq!(get(&pairs, "state"), Some("s"));
    let (status, _, pairs) = authorize(
        &emu,
        &[
            ("response_type", "code"),
            ("client_id", KEY),
            ("redirect_uri", REDIRECT),
            ("code_challenge", "abc"),
            ("code_challenge_method", "plain"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(get(&pairs, "error"), Some("invalid_request"));
    let r = emu
        .http
        .get(format!(
            "{}?response_type=code&client_id=nope&redirect_uri=x",
            emu.url("/services/oauth2/authorize")
        ))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json")["error"],
        "invalid_client_id"
    );

    // Without PKCE the exchange needs the consumer secret; scope without refresh_token gives none.
    let code = code_without_pkce(&emu).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", KEY),
        ("redirect_uri", REDIRECT),
    ];
    emu.expect_error(&form, "invalid_client", "invalid client credentials")
        .await;
    let code = code_without_pkce(&emu).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("client_id", KEY),
        ("client_secret", SECRET),
        ("redirect_uri", REDIRECT),
    ];
    let (status, body) = emu.token(&form).await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(&emu, &body, false);
    assert_eq!(body["scope"], "api");
}

// ---------------------------------------------------------------- client credentials

#[tokio::test]
async fn client_credentials_form_and_basic() {
    let config = OAuthConfig {
        users: vec![
            ("first@x.com".into(), "p1".into()),
            ("integration@x.com".into(), "p2".into()),
        ],
        client_credentials_user: Some("integration@x.com".into()),
        ..OAuthConfig::default()
    };
    let emu = start(config).await;
    let (status, body) = emu
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(&emu, &body, false);
    assert_eq!(
        valid_user(
            emu.oauth
                .check_token(body["access_token"].as_str().unwrap_or_default())
        ),
        "integration@x.com"
    );

    let r = emu
        .http
        .post(emu.url("/services/oauth2/token"))
        .basic_auth(KEY, Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        valid_user(
            emu.oauth
                .check_token(body["access_token"].as_str().unwrap_or_default())
        ),
        "integration@x.com"
    );

    let r = emu
        .http
        .post(emu.url("/services/oauth2/token"))
        .basic_auth(KEY, Some("wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.expect("json"),
        json!({"error":"invalid_client","error_description":"invalid client credentials"})
    );
    emu.expect_error(
        &[("grant_type", "client_credentials")],
        "invalid_client_id",
        "client identifier invalid",
    )
    .await;
    emu.expect_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "nope"),
            ("client_secret", SECRET),
        ],
        "invalid_client_id",
        "client identifier invalid",
    )
    .await;
}

#[tokio::test]
async fn client_credentials_defaults_to_first_user_and_needs_a_run_as_user() {
    let emu = default_emu().await;
    let (status, body) = emu
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", KEY),
            ("client_secret", SECRET),
        ])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        valid_user(
            emu.oauth
                .check_token(body["access_token"].as_str().unwrap_or_default())
        ),
        "user@example.com"
    );

    let config = OAuthConfig {
        client_credentials_user: Some("ghost@x.com".into()),
        ..OAuthConfig::default()
    };
    let emu = start(config).await;
    emu.expect_error(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", KEY),
            ("client_secret", SECRET),
        ],
        "invalid_grant",
        "no client credentials user enabled",
    )
    .await;
}

// ---------------------------------------------------------------- JWT bearer

fn jwt_with(header: &Value, claims: &Value, key: &RsaPrivateKey) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{h}.{c}");
    let sig = key
        .sign(
            Pkcs1v15Sign::new::<Sha256>(),
            &Sha256::digest(signing_input.as_bytes()),
        )
        .expect("sign");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(aud: &str, exp: u64) -> Value {
    json!({"iss": KEY, "sub": "user@example.com", "aud": aud, "exp": exp})
}

fn now_s() -> u64 {
    START_MS / 1000
}

async fn jwt_emu(pem: String) -> Emu {
    start(OAuthConfig {
        jwt_public_key_pem: Some(pem),
        ..OAuthConfig::default()
    })
    .await
}

async fn expect_jwt_ok(emu: &Emu, assertion: &str) {
    let (status, body) = emu
        .token(&[("grant_type", JWT), ("assertion", assertion)])
        .await;
    assert_eq!(status, 200, "{body}");
    assert_success_shape(emu, &body, false);
    assert_eq!(
        valid_user(
            emu.oauth
                .check_token(body["access_token"].as_str().unwrap_or_default())
        ),
        "user@example.com"
    );
}

#[tokio::test]
async fn jwt_bearer_accepts_each_audience_and_key_format() {
    let key = private_key();
    let header = json!({"alg": "RS256"});
    let emu = jwt_emu(spki_pem()).await;
    for aud in [
        "https://login.salesforce.com",
        "https://test.salesforce.com",
        emu.base.as_str(),
    ] {
        expect_jwt_ok(&emu, &jwt_with(&header, &claims(aud, now_s() + 180), key)).await;
    }
    // Within the 3-minute skew after exp.
    expect_jwt_ok(
        &emu,
        &jwt_with(
            &header,
            &claims("https://login.salesforce.com", now_s() - 60),
            key,
        ),
    )
    .await;

    let pkcs1 = key
        .to_public_key()
        .to_pkcs1_pem(LineEnding::LF)
        .expect("pkcs1 pem");
    let emu = jwt_emu(pkcs1).await;
    expect_jwt_ok(
        &emu,
        &jwt_with(
            &header,
            &claims("https://login.salesforce.com", now_s() + 120),
            key,
        ),
    )
    .await;

    let emu = jwt_emu(certificate_pem(key)).await;
    expect_jwt_ok(
        &emu,
        &jwt_with(
            &header,
            &claims("https://test.salesforce.com", now_s() + 120),
            key,
        ),
    )
    .await;
}

#[tokio::test]
async fn jwt_bearer_errors() {
    let key = private_key();
    let header = json!({"alg": "RS256"});
    let emu = jwt_emu(spki_pem()).await;
    let login = "https://login.salesforce.com";
    let check = |assertion: String, error: &'static str, description: &'static str| {
        let emu = &emu;
        async move {
            emu.expect_error(
                &[("grant_type", JWT), ("assertion", &assertion)],
                error,
                description,
            )
            .await
        }
    };
    check(
        jwt_with(
            &header,
            &claims("https://evil.example.com", now_s() + 120),
            key,
        ),
        "invalid_grant",
        "Audience validation failed",
    )
    .await;
    check(
        jwt_with(&header, &claims(login, now_s() - 600), key),
        "invalid_grant",
        "expired authorization code",
    )
    .await;
    // exp in milliseconds (a common mistake) is refused.
    check(
        jwt_with(&header, &claims(login, START_MS + 180_000), key),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
    // No exp at all.
    check(
        jwt_with(
            &header,
            &json!({"iss": KEY, "sub": "user@example.com", "aud": login}),
            key,
        ),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
    let mut bad_iss = claims(login, now_s() + 120);
    bad_iss["iss"] = json!("other-app");
    check(
        jwt_with(&header, &bad_iss, key),
        "invalid_client_id",
        "client identifier invalid",
    )
    .await;
    let mut bad_sub = claims(login, now_s() + 120);
    bad_sub["sub"] = json!("ghost@example.com");
    check(
        jwt_with(&header, &bad_sub, key),
        "invalid_grant",
        "user hasn't approved this consumer",
    )
    .await;
    // Wrong signature: signed by another key.
    let other = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("key");
    check(
        jwt_with(&header, &claims(login, now_s() + 120), &other),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
    // Tampered claims with the original signature.
    let good = jwt_with(&header, &claims(login, now_s() + 120), key);
    let parts: Vec<&str> = good.split('.').collect();
    let mut tampered_claims = claims(login, now_s() + 120);
    tampered_claims["sub"] = json!("admin@example.com");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered_claims.to_string()),
        parts[2]
    );
    check(tampered, "invalid_grant", "invalid assertion").await;
    // Any other algorithm, and alg none.
    check(
        jwt_with(&json!({"alg": "RS512"}), &claims(login, now_s() + 120), key),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg":"none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(login, now_s() + 120).to_string())
    );
    check(none, "invalid_grant", "invalid assertion").await;
    check(
        "not-a-jwt".to_string(),
        "invalid_grant",
        "invalid assertion",
    )
    .await;
    check(String::new(), "invalid_grant", "invalid assertion").await;

    // No key configured: the grant cannot succeed.
    let emu2 = default_emu().await;
    emu2.expect_error(
        &[
            ("grant_type", JWT),
            (
                "assertion",
                &jwt_with(&header, &claims(login, now_s() + 120), key),
            ),
        ],
        "invalid_grant",
        "invalid assertion",
    )
    .await;
}

// A minimal DER writer, enough for a synthetic X.509 certificate around the test key.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn certificate_pem(key: &RsaPrivateKey) -> String {
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .expect("spki der")
        .as_bytes()
        .to_vec();
    let sha256_rsa = der(
        0x30,
        &[
            der(
                0x06,
                &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b],
            ),
            der(0x05, &[]),
        ]
        .concat(),
    );
    let name = der(
        0x30,
        &der(
            0x31,
            &der(
                0x30,
                &[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, b"sfemu test")].concat(),
            ),
        ),
    );
    let validity = der(
        0x30,
        &[der(0x17, b"240101000000Z"), der(0x17, b"340101000000Z")].concat(),
    );
    let tbs = der(
        0x30,
        &[
            der(0xa0, &der(0x02, &[2])),
            der(0x02, &[0x01, 0x23]),
            sha256_rsa.clone(),
            name.clone(),
            validity,
            name,
            spki,
        ]
        .concat(),
    );
    let cert = der(0x30, &[tbs, sha256_rsa, der(0x03, &[0, 1, 2, 3])].concat());
    let b64 = STANDARD.encode(cert);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or(""))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}
