//! Rust errors turned into JavaScript `Error` objects.
//!
//! The shell creates a plain `Error` whose `name` is the class the TypeScript wrapper must
//! present (`ServerError`, `TransportTimeoutError`, ...) plus the structured fields; the wrapper
//! (`js/errors.ts`, `fromWasmError`) turns it into an instance of that subclass, keeping it as
//! `cause`. Messages never carry a token, secret or password: none of the inputs contain one.

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::proto::{ProtoError, ServerError, TransportFailure};

fn set(obj: &JsValue, key: &str, value: &JsValue) {
    // Setting a property on a fresh plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

/// A JS `Error` with `name` set.
pub fn js_error(name: &str, message: &str) -> JsValue {
    let err = js_sys::Error::new(message);
    err.set_name(name);
    err.into()
}

/// `"<name>: <message>"` of a thrown value (an `Error`), the string itself, or "unknown error".
pub fn message_of(err: &JsValue) -> String {
    if let Some(e) = err.dyn_ref::<js_sys::Error>() {
        let name: String = e.name().into();
        let msg: String = e.message().into();
        if msg.is_empty() {
            name
        } else {
            format!("{name}: {msg}")
        }
    } else {
        err.as_string()
            .unwrap_or_else(|| "unknown error".to_owned())
    }
}

fn opt_str(v: Option<&str>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_str)
}

/// The reply message a `ServerError` describes, rebuilt as a plain object.
fn server_response(e: &ServerError) -> JsValue {
    let obj: JsValue = Object::new().into();
    set(&obj, "channel", &JsValue::from_str(&e.channel));
    set(&obj, "successful", &JsValue::FALSE);
    if let Some(err) = &e.error {
        set(&obj, "error", &JsValue::from_str(err));
    }
    if let Some(reason) = &e.failure_reason {
        let sfdc: JsValue = Object::new().into();
        set(&sfdc, "failureReason", &JsValue::from_str(reason));
        let ext: JsValue = Object::new().into();
        set(&ext, "sfdc", &sfdc);
        set(&obj, "ext", &ext);
    }
    obj
}

/// Convert a core error into the JS error the wrapper exposes.
pub fn to_js(err: &ProtoError) -> JsValue {
    match err {
        ProtoError::InvalidOperation(what) => js_error("ClientInvalidOperation", what),
        ProtoError::InvalidArgument { name, reason } => {
            let e = js_error("TypeError", &format!("invalid {name}: {reason}"));
            set(&e, "option", &JsValue::from_str(name));
            e
        }
        ProtoError::Server(se) => {
            let text = se
                .failure_reason
                .as_deref()
                .map(|r| {
                    format!(
                        "{} ({})",
                        se.error.as_deref().unwrap_or("request failed"),
                        r
                    )
                })
                .unwrap_or_else(|| {
                    se.error
                        .clone()
                        .unwrap_or_else(|| format!("{} failed", se.channel))
                });
            let e = js_error("ServerError", &text);
            set(&e, "error", &opt_str(se.error.as_deref()));
            set(
                &e,
                "errorCode",
                &se.code
                    .map_or(JsValue::NULL, |c| JsValue::from_f64(f64::from(c))),
            );
            let args = Array::new();
            for a in &se.args {
                args.push(&JsValue::from_str(a));
            }
            set(&e, "errorArgs", &args);
            set(&e, "errorMessage", &JsValue::from_str(&se.message));
            set(&e, "response", &server_response(se));
            e
        }
        // A request that timed out, where retrying did not help (or a publish, never retried).
        ProtoError::Transport(f @ TransportFailure::Timeout) => {
            js_error("TransportTimeoutError", &f.to_string())
        }
        ProtoError::Timeout => js_error(
            "TransportTimeoutError",
            "could not (re-)establish the connection with the server within connectionTimeout; \
             the server has not answered",
        ),
        ProtoError::TimeoutRefused(se) => {
            let e = js_error(
                "TransportTimeoutError",
                &format!(
                    "could not (re-)establish the connection with the server within \
                     connectionTimeout; the server's last answer: {se}"
                ),
            );
            set(&e, "cause", &to_js(&ProtoError::Server(se.clone())));
            e
        }
        ProtoError::TimeoutFailed(f) => {
            let e = js_error(
                "TransportTimeoutError",
                &format!(
                    "could not (re-)establish the connection with the server within \
                     connectionTimeout; the last failure: {f}"
                ),
            );
            set(&e, "cause", &to_js(&ProtoError::Transport(f.clone())));
            e
        }
        ProtoError::Transport(f) => js_error("TransportError", &f.to_string()),
        ProtoError::Authentication(m) => js_error("AuthenticationError", m),
        ProtoError::UnsupportedConnectionType => js_error(
            "ClientError",
            "the server offers no supported connection type (long-polling)",
        ),
        #[allow(unreachable_patterns)]
        _ => js_error("ClientError", "unexpected client error"),
    }
}
