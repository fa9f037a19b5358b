//! OAuth 2.0 helpers for Salesforce (pure functions, no I/O): grant request bodies, token and
//! CometD URLs, JWT bearer signing input, token-response validation and OAuth error mapping.
//!
//! Secrets (passwords, client secrets, tokens, assertions) never appear in `Debug` or `Display`
//! output of any type of this module.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use core::fmt;

use crate::proto::push_json_str;

/// Lowest CometD API version Salesforce still serves (durable streaming needs ≥ 37.0).
pub const MIN_API_VERSION: u32 = 37;

/// Errors of the authentication helpers and of the token endpoint.
#[non_exhaustive]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AuthError {
    /// A URL could not be parsed or has an unsupported shape.
    InvalidUrl {
        /// Which URL (`"login_url"`, `"instance_url"`).
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A plain-http URL to a non-loopback host, and `allow_insecure` was not given.
    InsecureUrl {
        /// Which URL.
        name: &'static str,
    },
    /// The token response lacks a required field.
    MissingField(&'static str),
    /// A field of the token response has an invalid value.
    InvalidField {
        /// The field.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The API version is malformed or older than [`MIN_API_VERSION`].
    InvalidApiVersion(String),
    /// The token endpoint answered with an OAuth error (`{"error":..,"error_description":..}`).
    OAuth {
        /// `error`, e.g. `invalid_grant`.
        error: String,
        /// `error_description`, e.g. `authentication failure`.
        description: Option<String>,
    },
}

impl AuthError {
    /// Map a Salesforce OAuth error response.
    pub fn from_error_response(error: &str, description: Option<&str>) -> AuthError {
        AuthError::OAuth {
            error: error.to_string(),
            description: description.map(str::to_string),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::InvalidUrl { name, reason } => write!(f, "invalid {name}: {reason}"),
            AuthError::InsecureUrl { name } => {
                write!(
                    f,
                    "{name} must use https (plain http is only allowed for loopback hosts)"
                )
            }
            AuthError::MissingField(name) => write!(f, "token response lacks the '{name}' field"),
            AuthError::InvalidField { name, reason } => {
                write!(f, "token response field '{name}' is invalid: {reason}")
            }
            AuthError::InvalidApiVersion(v) => {
                write!(
                    f,
                    "invalid API version '{v}': expected NN.0 with NN >= {MIN_API_VERSION}"
                )
            }
            AuthError::OAuth {
                error,
                description: Some(d),
            } => write!(f, "{error}: {d}"),
            AuthError::OAuth {
                error,
                description: None,
            } => f.write_str(error),
        }
    }
}

impl std::error::Error for AuthError {}

/// An OAuth 2.0 grant for the Salesforce token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum Grant {
    /// Username-password flow (being retired by Salesforce in 2027).
    Password {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: String,
        /// Username.
        username: String,
        /// Password (+ security token when required).
        password: String,
    },
    /// Refresh-token flow.
    RefreshToken {
        /// Consumer key.
        client_id: String,
        /// Consumer secret, when the app requires it.
        client_secret: Option<String>,
        /// The refresh token.
        refresh_token: String,
    },
    /// JWT bearer flow with an already signed assertion (see [`jwt_signing_input`], [`jwt_assertion`]).
    JwtBearer {
        /// The signed JWT.
        assertion: String,
    },
    /// Client-credentials flow (My Domain hosts only).
    ClientCredentials {
        /// Consumer key.
        client_id: String,
        /// Consumer secret.
        client_secret: String,
    },
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const R: &str = "<redacted>";
        match self {
            Grant::Password {
                client_id,
                username,
                ..
            } => f
                .debug_struct("Password")
                .field("client_id", client_id)
                .field("client_secret", &R)
                .field("username", username)
                .field("password", &R)
                .finish(),
            Grant::RefreshToken {
                client_id,
                client_secret,
                ..
            } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .field("client_secret", &client_secret.as_ref().map(|_| R))
                .field("refresh_token", &R)
                .finish(),
            Grant::JwtBearer { .. } => f.debug_struct("JwtBearer").field("assertion", &R).finish(),
            Grant::ClientCredentials { client_id, .. } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("client_secret", &R)
                .finish(),
        }
    }
}

impl Grant {
    /// The `grant_type` value.
    pub fn grant_type(&self) -> &'static str {
        match self {
            Grant::Password { .. } => "password",
            Grant::RefreshToken { .. } => "refresh_token",
            Grant::JwtBearer { .. } => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            Grant::ClientCredentials { .. } => "client_credentials",
        }
    }

    /// The `application/x-www-form-urlencoded` request body.
    pub fn form_body(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![("grant_type", self.grant_type())];
        match self {
            Grant::Password {
                client_id,
                client_secret,
                username,
                password,
            } => {
                pairs.push(("client_id", client_id));
                pairs.push(("client_secret", client_secret));
                pairs.push(("username", username));
                pairs.push(("password", password));
            }
            Grant::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => {
                pairs.push(("refresh_token", refresh_token));
                pairs.push(("client_id", client_id));
                if let Some(s) = client_secret {
                    pairs.push(("client_secret", s));
                }
            }
            Grant::JwtBearer { assertion } => pairs.push(("assertion", assertion)),
            Grant::ClientCredentials {
                client_id,
                client_secret,
            } => {
                pairs.push(("client_id", client_id));
                pairs.push(("client_secret", client_secret));
            }
        }
        let mut out = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            form_encode_into(&mut out, k);
            out.push('=');
            form_encode_into(&mut out, v);
        }
        out
    }
}

/// Percent-encode `s` for `application/x-www-form-urlencoded` (space → `+`; only `A-Z a-z 0-9 - . _ ~`
/// left as is).
pub fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    form_encode_into(&mut out, s);
    out
}

fn form_encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 15) as usize] as char);
            }
        }
    }
}

/// base64url without padding (RFC 4648 §5).
pub fn base64url(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b0 = chunk[0] as u32;
        let b1 = chunk.get(1).copied().unwrap_or(0) as u32;
        let b2 = chunk.get(2).copied().unwrap_or(0) as u32;
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        if chunk.len() > 1 {
            out.push(A[(n >> 6) as usize & 63] as char);
        }
        if chunk.len() > 2 {
            out.push(A[n as usize & 63] as char);
        }
    }
    out
}

/// The JWT signing input `base64url(header) "." base64url(claims)` for the JWT bearer flow:
/// header `{"alg":"RS256"}`, claims `iss` (consumer key), `sub` (username), `aud` (login URL),
/// `exp` = `now_secs + lifetime_secs` in **seconds**.
pub fn jwt_signing_input(
    client_id: &str,
    username: &str,
    audience: &str,
    now_secs: u64,
    lifetime_secs: u64,
) -> String {
    let mut claims = String::from("{\"iss\":");
    push_json_str(&mut claims, client_id);
    claims.push_str(",\"sub\":");
    push_json_str(&mut claims, username);
    claims.push_str(",\"aud\":");
    push_json_str(&mut claims, audience);
    claims.push_str(",\"exp\":");
    claims.push_str(&now_secs.saturating_add(lifetime_secs).to_string());
    claims.push('}');
    let mut out = base64url(br#"{"alg":"RS256"}"#);
    out.push('.');
    out.push_str(&base64url(claims.as_bytes()));
    out
}

/// The complete JWT: `signing_input "." base64url(signature)`.
pub fn jwt_assertion(signing_input: &str, signature: &[u8]) -> String {
    let mut out = String::from(signing_input);
    out.push('.');
    out.push_str(&base64url(signature));
    out
}

/// `scheme://host[:port]` of an absolute URL, as written (the whole text if it has no path).
pub fn origin(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    match url[rest..].find('/') {
        Some(j) => &url[..rest + j],
        None => url,
    }
}

struct ParsedUrl<'a> {
    https: bool,
    host: &'a str,
}

fn parse_url<'a>(name: &'static str, url: &'a str) -> Result<ParsedUrl<'a>, AuthError> {
    let bad = |reason: &str| AuthError::InvalidUrl {
        name,
        reason: reason.to_string(),
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let (https, rest) = if let Some(r) = strip_prefix_ci(url, "https://") {
        (true, r)
    } else if let Some(r) = strip_prefix_ci(url, "http://") {
        (false, r)
    } else {
        return Err(bad(
            "must start with https:// (or http:// for loopback hosts)",
        ));
    };
    if rest.contains('?') || rest.contains('#') {
        return Err(bad("must not contain a query or fragment"));
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    if authority.contains('@') {
        return Err(bad("must not contain credentials"));
    }
    let host = if authority.starts_with('[') {
        match authority.find(']') {
            Some(i) => &authority[..=i],
            None => return Err(bad("has an unterminated IPv6 address")),
        }
    } else {
        authority.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let after_host = &authority[host.len()..];
    if !after_host.is_empty() {
        let port = after_host.strip_prefix(':').unwrap_or("x");
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.len() > 5 {
            return Err(bad("has an invalid port"));
        }
    }
    Ok(ParsedUrl { https, host })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    if s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
    {
        Some(&s[prefix.len()..])
    } else {
        None
    }
}

/// True for `localhost`, `127.0.0.0/8` and `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "[::1]" {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts[0] == "127"
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u8>().is_ok())
}

/// `{login_url}/services/oauth2/token`. Trailing slashes are removed; only https, or http on a
/// loopback host, unless `allow_insecure`.
pub fn token_url(login_url: &str, allow_insecure: bool) -> Result<String, AuthError> {
    let base = login_url.trim().trim_end_matches('/');
    let u = parse_url("login_url", base)?;
    if !u.https && !allow_insecure && !is_loopback_host(u.host) {
        return Err(AuthError::InsecureUrl { name: "login_url" });
    }
    Ok(format!("{base}/services/oauth2/token"))
}

/// Refuse a plain `http://` URL to a host other than loopback unless `allow_insecure`: tokens must
/// not cross a network in clear. `name` says which URL (`"instance_url"`, ...) in the error.
pub fn require_secure(
    url: &str,
    name: &'static str,
    allow_insecure: bool,
) -> Result<(), AuthError> {
    let u = parse_url(name, url.trim().trim_end_matches('/'))?;
    if !u.https && !allow_insecure && !is_loopback_host(u.host) {
        return Err(AuthError::InsecureUrl { name });
    }
    Ok(())
}

/// `{instance_url}/cometd/{api_version}`; `api_version` like `"62.0"` (a leading `v` is accepted),
/// at least [`MIN_API_VERSION`]. The instance URL must be http(s).
pub fn cometd_url(instance_url: &str, api_version: &str) -> Result<String, AuthError> {
    let base = instance_url.trim().trim_end_matches('/');
    parse_url("instance_url", base)?;
    let v = api_version.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let bad = || AuthError::InvalidApiVersion(api_version.to_string());
    let (major, minor) = v.split_once('.').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return Err(bad());
    }
    let m: u32 = major.parse().map_err(|_| bad())?;
    if m < MIN_API_VERSION {
        return Err(bad());
    }
    Ok(format!("{base}/cometd/{v}"))
}

/// A validated token response. Absent optional fields are empty strings (`refresh_token`: `None`).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The access token (secret).
    pub access_token: String,
    /// Base URL of the org (REST and `/cometd`).
    pub instance_url: String,
    /// Identity URL.
    pub id: String,
    /// Token type, `Bearer` when absent.
    pub token_type: String,
    /// Issue time, epoch ms as a string.
    pub issued_at: String,
    /// HMAC signature of `id + issued_at`.
    pub signature: String,
    /// Granted scopes.
    pub scope: String,
    /// Refresh token (secret), when issued.
    pub refresh_token: Option<String>,
}

impl TokenResponse {
    /// The `Authorization` header value: `"{token_type} {access_token}"`.
    pub fn authorization_header(&self) -> String {
        format!("{} {}", self.token_type, self.access_token)
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"<redacted>")
            .field("instance_url", &self.instance_url)
            .field("id", &self.id)
            .field("token_type", &self.token_type)
            .field("issued_at", &self.issued_at)
            .field("signature", &"<redacted>")
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The string fields the shell read from a token response (`None` when absent or not a string).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFields<'a> {
    /// `access_token`.
    pub access_token: Option<&'a str>,
    /// `instance_url`.
    pub instance_url: Option<&'a str>,
    /// `id`.
    pub id: Option<&'a str>,
    /// `token_type`.
    pub token_type: Option<&'a str>,
    /// `issued_at`.
    pub issued_at: Option<&'a str>,
    /// `signature`.
    pub signature: Option<&'a str>,
    /// `scope`.
    pub scope: Option<&'a str>,
    /// `refresh_token`.
    pub refresh_token: Option<&'a str>,
}

impl fmt::Debug for TokenFields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFields")
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .field("instance_url", &self.instance_url)
            .field("refresh_token", &self.refresh_token.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Validate a token response: `access_token` and `instance_url` are required (the error names the
/// missing field); `instance_url` must be an http(s) URL; `token_type` defaults to `Bearer`.
pub fn validate_token_response(fields: &TokenFields<'_>) -> Result<TokenResponse, AuthError> {
    let access_token = fields
        .access_token
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingField("access_token"))?;
    if access_token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AuthError::InvalidField {
            name: "access_token",
            reason: "contains spaces or control characters".into(),
        });
    }
    let instance_url = fields
        .instance_url
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::MissingField("instance_url"))?;
    let instance_url = instance_url.trim_end_matches('/');
    parse_url("instance_url", instance_url).map_err(|e| AuthError::InvalidField {
        name: "instance_url",
        reason: e.to_string(),
    })?;
    let token_type = match fields.token_type.filter(|s| !s.is_empty()) {
        Some(t) if t.bytes().all(|b| b.is_ascii_alphanumeric()) => t.to_string(),
        Some(_) => {
            return Err(AuthError::InvalidField {
                name: "token_type",
                reason: "not a token type".into(),
            })
        }
        None => "Bearer".to_string(),
    };
    let s = |o: Option<&str>| o.unwrap_or("").to_string();
    Ok(TokenResponse {
        access_token: access_token.to_string(),
        instance_url: instance_url.to_string(),
        id: s(fields.id),
        token_type,
        issued_at: s(fields.issued_at),
        signature: s(fields.signature),
        scope: s(fields.scope),
        refresh_token: fields
            .refresh_token
            .filter(|r| !r.is_empty())
            .map(str::to_string),
    })
}

/// The storage namespace of an identity: `<orgId>/<userId>` from the identity URL of a token
/// response (`https://login.salesforce.com/id/00D.../005...`), so that markers of two orgs or users
/// never mix. Without a usable identity URL (a bare access token), the instance host stands in for
/// the org and `-` for the user.
pub fn identity_namespace(id_url: Option<&str>, instance_url: &str) -> String {
    let clean = |s: &str| -> String {
        let t: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            .take(64)
            .collect();
        if t.chars().any(|c| c.is_ascii_alphanumeric()) {
            t
        } else {
            String::new()
        }
    };
    if let Some(id) = id_url {
        let mut parts = id.trim_end_matches('/').rsplit('/');
        if let (Some(user), Some(org), Some("id")) = (parts.next(), parts.next(), parts.next()) {
            let (org, user) = (clean(org), clean(user));
            if !org.is_empty() && !user.is_empty() {
                return format!("{org}/{user}");
            }
        }
    }
    let host = instance_url
        .split("://")
        .nth(1)
        .unwrap_or(instance_url)
        .split('/')
        .next()
        .unwrap_or("");
    let host = clean(host.split(':').next().unwrap_or(""));
    format!(
        "{}/-",
        if host.is_empty() {
            "unknown".to_owned()
        } else {
            host
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin("https://na1.salesforce.com/cometd/62.0"),
            "https://na1.salesforce.com"
        );
        assert_eq!(
            origin("http://127.0.0.1:8090/cometd/62.0"),
            "http://127.0.0.1:8090"
        );
        assert_eq!(
            origin("https://x.my.salesforce.com"),
            "https://x.my.salesforce.com"
        );
        assert_ne!(
            origin("http://127.0.0.1:1/cometd/62.0"),
            origin("http://127.0.0.1:2/cometd/62.0")
        );
    }

    fn b64d(s: &str) -> Vec<u8> {
        let a = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::new();
        for c in s.bytes() {
            let v = a.iter().position(|x| *x == c).unwrap() as u32;
            bits = (bits << 6) | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n) as u8);
                bits &= (1 << n) - 1;
            }
        }
        out
    }

    #[test]
    fn base64url_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
        assert_eq!(base64url(br#"{"alg":"RS256"}"#), "eyJhbGciOiJSUzI1NiJ9");
    }

    #[test]
    fn form_bodies() {
        let g = Grant::Password {
            client_id: "3MVG9 id".into(),
            client_secret: "s&c=r+t".into(),
            username: "user@example.com".into(),
            password: "p@ss wörd!tok".into(),
        };
        assert_eq!(
            g.form_body(),
            "grant_type=password&client_id=3MVG9+id&client_secret=s%26c%3Dr%2Bt&username=user%40example.com&password=p%40ss+w%C3%B6rd%21tok"
        );
        let g = Grant::RefreshToken {
            client_id: "cid".into(),
            client_secret: None,
            refresh_token: "5Aep8/x==".into(),
        };
        assert_eq!(
            g.form_body(),
            "grant_type=refresh_token&refresh_token=5Aep8%2Fx%3D%3D&client_id=cid"
        );
        let g = Grant::RefreshToken {
            client_id: "cid".into(),
            client_secret: Some("s".into()),
            refresh_token: "r".into(),
        };
        assert_eq!(
            g.form_body(),
            "grant_type=refresh_token&refresh_token=r&client_id=cid&client_secret=s"
        );
        let g = Grant::JwtBearer {
            assertion: "a.b.c".into(),
        };
        assert_eq!(
            g.form_body(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b.c"
        );
        let g = Grant::ClientCredentials {
            client_id: "c".into(),
            client_secret: "s".into(),
        };
        assert_eq!(
            g.form_body(),
            "grant_type=client_credentials&client_id=c&client_secret=s"
        );
    }

    #[test]
    fn debug_redacts_secrets() {
        let grants = [
            Grant::Password {
                client_id: "cid".into(),
                client_secret: "SECRET1".into(),
                username: "u".into(),
                password: "SECRET2".into(),
            },
            Grant::RefreshToken {
                client_id: "cid".into(),
                client_secret: Some("SECRET1".into()),
                refresh_token: "SECRET2".into(),
            },
            Grant::JwtBearer {
                assertion: "SECRET1".into(),
            },
            Grant::ClientCredentials {
                client_id: "cid".into(),
                client_secret: "SECRET1".into(),
            },
        ];
        for g in &grants {
            let d = format!("{g:?}");
            assert!(!d.contains("SECRET"), "{d}");
        }
        let t = validate_token_response(&TokenFields {
            access_token: Some("SECRETTOKEN"),
            instance_url: Some("https://x.my.salesforce.com"),
            signature: Some("SECRETSIG"),
            refresh_token: Some("SECRETREFRESH"),
            ..Default::default()
        })
        .unwrap();
        let d = format!("{t:?}");
        assert!(
            !d.contains("SECRET") && d.contains("x.my.salesforce.com"),
            "{d}"
        );
        let f = TokenFields {
            access_token: Some("SECRETTOKEN"),
            ..Default::default()
        };
        assert!(!format!("{f:?}").contains("SECRET"));
    }

    #[test]
    fn jwt_input_and_assertion() {
        let si = jwt_signing_input(
            "3MVG9",
            "user@example.com",
            "https://login.salesforce.com",
            1_700_000_000,
            180,
        );
        let (h, c) = si.split_once('.').unwrap();
        assert_eq!(b64d(h), br#"{"alg":"RS256"}"#);
        let claims = String::from_utf8(b64d(c)).unwrap();
        assert_eq!(
            claims,
            r#"{"iss":"3MVG9","sub":"user@example.com","aud":"https://login.salesforce.com","exp":1700000180}"#
        );
        assert!(!si.contains('=') && !si.contains('+') && !si.contains('/'));
        let a = jwt_assertion(&si, &[1, 2, 3, 0xff]);
        assert_eq!(a, format!("{si}.AQID_w"));
        let si = jwt_signing_input("a\"b", "u", "aud", 0, 1);
        let claims = String::from_utf8(b64d(si.split('.').nth(1).unwrap())).unwrap();
        assert!(claims.starts_with(r#"{"iss":"a\"b""#));
    }

    #[test]
    fn token_urls() {
        assert_eq!(
            token_url("https://login.salesforce.com", false).unwrap(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            token_url("https://test.salesforce.com///", false).unwrap(),
            "https://test.salesforce.com/services/oauth2/token"
        );
        assert_eq!(
            token_url("https://acme.my.site.com/portal/", false).unwrap(),
            "https://acme.my.site.com/portal/services/oauth2/token"
        );
        assert_eq!(
            token_url("http://127.0.0.1:8080", false).unwrap(),
            "http://127.0.0.1:8080/services/oauth2/token"
        );
        assert_eq!(
            token_url("http://localhost:3000/", false).unwrap(),
            "http://localhost:3000/services/oauth2/token"
        );
        assert_eq!(
            token_url("http://[::1]:9/", false).unwrap(),
            "http://[::1]:9/services/oauth2/token"
        );
        assert_eq!(
            token_url("http://example.com", false),
            Err(AuthError::InsecureUrl { name: "login_url" })
        );
        assert_eq!(
            token_url("http://127.0.0.1.evil.com", false),
            Err(AuthError::InsecureUrl { name: "login_url" })
        );
        assert_eq!(
            token_url("http://example.com", true).unwrap(),
            "http://example.com/services/oauth2/token"
        );
        for bad in [
            "",
            "login.salesforce.com",
            "ftp://x",
            "https://",
            "https://u:p@x.com",
            "https://x.com?a=1",
            "https://x.com:abc",
            "https://x .com",
        ] {
            assert!(
                matches!(token_url(bad, true), Err(AuthError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn cometd_urls() {
        assert_eq!(
            cometd_url("https://x.my.salesforce.com/", "62.0").unwrap(),
            "https://x.my.salesforce.com/cometd/62.0"
        );
        assert_eq!(
            cometd_url("http://127.0.0.1:7000", "v37.0").unwrap(),
            "http://127.0.0.1:7000/cometd/37.0"
        );
        for v in ["36.0", "62", "abc", "", "62.x", "1e2.0"] {
            assert_eq!(
                cometd_url("https://x.com", v),
                Err(AuthError::InvalidApiVersion(v.to_string())),
                "{v}"
            );
        }
        assert!(matches!(
            cometd_url("x.com", "62.0"),
            Err(AuthError::InvalidUrl {
                name: "instance_url",
                ..
            })
        ));
    }

    #[test]
    fn token_response_validation() {
        let ok = TokenFields {
            access_token: Some("00Dxx!AR8"),
            instance_url: Some("https://x.my.salesforce.com/"),
            id: Some("https://login.salesforce.com/id/00D/005"),
            issued_at: Some("1699999999999"),
            ..Default::default()
        };
        let t = validate_token_response(&ok).unwrap();
        assert_eq!(t.instance_url, "https://x.my.salesforce.com");
        assert_eq!(t.token_type, "Bearer");
        assert_eq!(t.authorization_header(), "Bearer 00Dxx!AR8");
        assert_eq!(t.refresh_token, None);
        assert_eq!(t.issued_at, "1699999999999");
        assert_eq!(
            validate_token_response(&TokenFields {
                access_token: None,
                ..ok
            }),
            Err(AuthError::MissingField("access_token"))
        );
        assert_eq!(
            validate_token_response(&TokenFields {
                instance_url: None,
                ..ok
            }),
            Err(AuthError::MissingField("instance_url"))
        );
        assert_eq!(
            validate_token_response(&TokenFields {
                access_token: Some(""),
                ..ok
            }),
            Err(AuthError::MissingField("access_token"))
        );
        assert!(matches!(
            validate_token_response(&TokenFields {
                instance_url: Some("javascript:alert(1)"),
                ..ok
            }),
            Err(AuthError::InvalidField {
                name: "instance_url",
                ..
            })
        ));
        assert!(matches!(
            validate_token_response(&TokenFields {
                token_type: Some("Bearer x"),
                ..ok
            }),
            Err(AuthError::InvalidField {
                name: "token_type",
                ..
            })
        ));
    }

    #[test]
    fn oauth_errors() {
        let e = AuthError::from_error_response("invalid_grant", Some("authentication failure"));
        assert_eq!(
            e,
            AuthError::OAuth {
                error: "invalid_grant".into(),
                description: Some("authentication failure".into())
            }
        );
        assert_eq!(e.to_string(), "invalid_grant: authentication failure");
        assert_eq!(
            AuthError::from_error_response("invalid_client_id", None).to_string(),
            "invalid_client_id"
        );
    }

    #[test]
    fn identity_namespace_from_id_url_or_instance() {
        assert_eq!(
            identity_namespace(
                Some("https://login.salesforce.com/id/00Dxx0000000123EAA/005xx000001SwiUAAS"),
                "https://x.my.salesforce.com"
            ),
            "00Dxx0000000123EAA/005xx000001SwiUAAS"
        );
        assert_eq!(
            identity_namespace(None, "https://acme.my.salesforce.com"),
            "acme.my.salesforce.com/-"
        );
        assert_eq!(
            identity_namespace(Some("garbage"), "http://127.0.0.1:8090"),
            "127.0.0.1/-"
        );
        assert_eq!(
            identity_namespace(Some("https://h/id/../.."), "https://a.b"),
            "a.b/-"
        );
        assert_eq!(identity_namespace(None, ""), "unknown/-");
    }

    #[test]
    fn require_secure_refuses_plain_http_to_remote_hosts() {
        assert_eq!(
            require_secure("http://example.com", "instance_url", false),
            Err(AuthError::InsecureUrl {
                name: "instance_url"
            })
        );
        assert_eq!(
            require_secure("http://example.com", "instance_url", true),
            Ok(())
        );
        assert_eq!(
            require_secure("http://127.0.0.1:8090", "instance_url", false),
            Ok(())
        );
        assert_eq!(
            require_secure("https://x.my.salesforce.com", "instance_url", false),
            Ok(())
        );
        assert!(require_secure("ftp://x", "instance_url", true).is_err());
    }
}
