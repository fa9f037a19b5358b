//! OAuth exports: the token request (built and checked by [`crate::auth`], sent here with
//! `fetch`) and the JWT helpers the TypeScript `JwtBearerAuthenticator` signs with WebCrypto.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::{js_error, message_of};
use super::js as g;
use crate::auth::{self, AuthError, Grant, TokenFields};

fn field(obj: &JsValue, key: &str) -> Option<String> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .and_then(|v| v.as_string())
}

fn required(obj: &JsValue, key: &'static str) -> Result<String, JsValue> {
    field(obj, key)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| js_error("TypeError", &format!("{key} must be a non-empty string")))
}

fn set(obj: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// How long a token request may take (ms).
const TOKEN_REQUEST_TIMEOUT_MS: f64 = 30_000.0;

fn auth_error(e: &AuthError, status: Option<u16>) -> JsValue {
    let err = js_error("AuthenticationError", &e.to_string());
    if let AuthError::OAuth { error, description } = e {
        set(&err, "error", &JsValue::from_str(error));
        set(
            &err,
            "errorDescription",
            &description
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
    }
    if let Some(s) = status {
        set(&err, "status", &JsValue::from_f64(f64::from(s)));
    }
    err
}

fn grant_from(js: &JsValue) -> Result<Grant, JsValue> {
    let kind = required(js, "grantType")?;
    Ok(match kind.as_str() {
        "password" => Grant::Password {
            client_id: required(js, "clientId")?,
            client_secret: required(js, "clientSecret")?,
            username: required(js, "username")?,
            password: required(js, "password")?,
        },
        "refresh_token" => Grant::RefreshToken {
            client_id: required(js, "clientId")?,
            client_secret: field(js, "clientSecret").filter(|s| !s.is_empty()),
            refresh_token: required(js, "refreshToken")?,
        },
        "client_credentials" => Grant::ClientCredentials {
            client_id: required(js, "clientId")?,
            client_secret: required(js, "clientSecret")?,
        },
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => Grant::JwtBearer {
            assertion: required(js, "assertion")?,
        },
        _ => {
            return Err(js_error(
                "TypeError",
                "grantType is not a supported OAuth grant",
            ))
        }
    })
}

/// POST the grant to `{loginUrl}/services/oauth2/token` and return the validated result as
/// `{ accessToken, instanceUrl, id, tokenType, issuedAt, signature, scope, refreshToken }`.
/// Rejects with an `AuthenticationError` carrying Salesforce's `error` and `error_description`.
///
/// `signal` (an `AbortSignal`, or undefined) aborts the request: the client passes one that aborts
/// when it is closed during a login, or the login outlives `connectionTimeout`.
#[wasm_bindgen(js_name = oauthToken)]
pub fn oauth_token(
    login_url: String,
    grant: JsValue,
    allow_insecure_http: bool,
    signal: JsValue,
) -> Promise {
    g::later(move || {
        let grant = grant_from(&grant)?;
        let url =
            auth::token_url(&login_url, allow_insecure_http).map_err(|e| auth_error(&e, None))?;
        // Bounded: a token endpoint that never answers must not hold the client (or a relay)
        // for ever; the failure counts as "unreachable" and is retried with back-off.
        let signal = g::sf_timeout_or(TOKEN_REQUEST_TIMEOUT_MS, &signal).ok();
        let init = g::post_init(
            &grant.form_body(),
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            signal.as_ref(),
        );
        // Never follow a redirect: a 307/308 would send the credentials in the body to wherever
        // it points, past the checks `token_url` made on loginUrl.
        set(&init, "redirect", &JsValue::from_str("manual"));
        set(&init, "repeatable", &JsValue::TRUE);
        Ok(g::settle(&g::global_fetch(&url, &init), read_token_response).into())
    })
}

/// The token endpoint's response (or the fetch's failure) turned into the token, or the error.
fn read_token_response(fetched: g::Step) -> g::Step {
    let resp = fetched.map_err(|e| unreachable(&e))?;
    if !resp.is_object() {
        return Err(js_error(
            "AuthenticationError",
            "fetch returned no Response",
        ));
    }
    let kind = field(&resp, "type");
    let resp: g::FetchResponse = resp.unchecked_into();
    let status = resp.status_code();
    if (300..400).contains(&status) || kind.as_deref() == Some("opaqueredirect") {
        return Err(auth_error(
            &AuthError::InvalidField {
                name: "loginUrl",
                reason: format!(
                    "the token endpoint answered with a redirect (HTTP {status}); credentials are \
                     never sent on: use the URL it redirects to as loginUrl"
                ),
            },
            Some(status),
        ));
    }
    match resp.json() {
        Ok(p) => Ok(g::settle(&p, move |body| match body {
            // fetch resolves once the headers are in: a body cut off or timed out while it is
            // read is a network failure (retried), not an answer without JSON.
            Err(e) if !e.is_instance_of::<js_sys::SyntaxError>() => Err(unreachable(&e)),
            body => token_from_body(status, body.ok()),
        })
        .into()),
        Err(_) => token_from_body(status, None),
    }
}

/// The error of a login that could not reach the token endpoint (`cause`: why): a network
/// failure, not a rejection, which the client retries with back-off.
fn unreachable(cause: &JsValue) -> JsValue {
    // The cause's message says why (refused, unknown host, timed out); it never holds the
    // credentials, which travel in the request body.
    let err = js_error(
        "AuthenticationError",
        &format!("could not reach the token endpoint: {}", message_of(cause)),
    );
    set(&err, "cause", cause);
    set(&err, "unreachable", &JsValue::TRUE);
    err
}

/// A token endpoint status worth retrying: the server is overloaded or down for a while (429,
/// 5xx), not rejecting the credentials.
fn is_transient(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Validate the token endpoint's JSON `body` (None: not JSON) answered with HTTP `status`.
fn token_from_body(status: u16, body: Option<JsValue>) -> g::Step {
    let Some(body) = body.filter(|b| b.is_object()) else {
        let err = auth_error(
            &AuthError::InvalidField {
                name: "body",
                reason: format!("HTTP {status} without a JSON object"),
            },
            Some(status),
        );
        if is_transient(status) {
            // A maintenance page or an overloaded proxy: try again later, as for a network failure.
            set(&err, "unreachable", &JsValue::TRUE);
        }
        return Err(err);
    };
    if !(200..300).contains(&status) {
        let error = field(&body, "error").unwrap_or_else(|| format!("http_{status}"));
        let description = field(&body, "error_description");
        let err = auth_error(
            &AuthError::from_error_response(&error, description.as_deref()),
            Some(status),
        );
        if is_transient(status) {
            set(&err, "unreachable", &JsValue::TRUE);
        }
        return Err(err);
    }
    let strings: Vec<Option<String>> = [
        "access_token",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
        "signature",
        "scope",
        "refresh_token",
    ]
    .iter()
    .map(|k| field(&body, k))
    .collect();
    let f = |i: usize| strings.get(i).and_then(|s| s.as_deref());
    let fields = TokenFields {
        access_token: f(0),
        instance_url: f(1),
        id: f(2),
        token_type: f(3),
        issued_at: f(4),
        signature: f(5),
        scope: f(6),
        refresh_token: f(7),
    };
    let t = auth::validate_token_response(&fields).map_err(|e| auth_error(&e, Some(status)))?;
    let out: JsValue = Object::new().into();
    set(&out, "accessToken", &JsValue::from_str(&t.access_token));
    set(&out, "instanceUrl", &JsValue::from_str(&t.instance_url));
    let opt = |s: &str| {
        if s.is_empty() {
            JsValue::NULL
        } else {
            JsValue::from_str(s)
        }
    };
    set(&out, "id", &opt(&t.id));
    set(&out, "tokenType", &JsValue::from_str(&t.token_type));
    set(&out, "issuedAt", &opt(&t.issued_at));
    set(&out, "signature", &opt(&t.signature));
    set(&out, "scope", &opt(&t.scope));
    set(
        &out,
        "refreshToken",
        &t.refresh_token
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str),
    );
    Ok(out)
}

/// `base64url(header) "." base64url(claims)` of an RS256 JWT bearer assertion (exp in seconds).
#[wasm_bindgen(js_name = jwtSigningInput)]
pub fn jwt_signing_input(
    client_id: &str,
    username: &str,
    audience: &str,
    now_secs: f64,
    lifetime_secs: f64,
) -> String {
    let now = if now_secs.is_finite() && now_secs > 0.0 {
        now_secs as u64
    } else {
        0
    };
    let life = if lifetime_secs.is_finite() && lifetime_secs > 0.0 {
        lifetime_secs as u64
    } else {
        180
    };
    auth::jwt_signing_input(client_id, username, audience, now, life)
}

/// The complete assertion: signing input + "." + base64url(signature).
#[wasm_bindgen(js_name = jwtAssertion)]
pub fn jwt_assertion(signing_input: &str, signature: &[u8]) -> String {
    auth::jwt_assertion(signing_input, signature)
}

/// Validate a URL option: http(s), no credentials, and plain `http://` only to loopback hosts
/// unless `allowInsecureHttp`. Throws a `TypeError` naming the option.
#[wasm_bindgen(js_name = checkUrl)]
pub fn check_url(url: &str, option: &str, allow_insecure_http: bool) -> Result<(), JsValue> {
    auth::require_secure(url, "url", allow_insecure_http).map_err(|e| {
        let reason = match e {
            AuthError::InsecureUrl { .. } => {
                "must use https (plain http only to loopback hosts, unless allowInsecureHttp: true)"
                    .to_owned()
            }
            AuthError::InvalidUrl { reason, .. } => reason,
            other => other.to_string(),
        };
        js_error("TypeError", &format!("{option} {reason}"))
    })
}
