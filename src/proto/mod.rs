//! The sans-IO protocol core: a Bayeux/CometD long-polling session with Salesforce's rules.
//!
//! # Contract
//!
//! [`Session`] never performs I/O and never reads a clock. Time is passed in as `now`
//! ([`Millis`] on a monotonic clock); wall-clock time, where needed, as `wall_ms` (epoch ms).
//!
//! * **Inputs**: application commands (`open`, `subscribe`, `unsubscribe`, `publish`, `close`,
//!   `handle_consumed`, `handle_authenticated`, `handle_auth_failed`) and I/O results
//!   (`handle_response`, `handle_failure`, `handle_timeout`).
//! * **Outputs**, to drain after *every* input, in this order: `take_deliveries` (right after
//!   `handle_response`), `poll_transmit` until `None`, `poll_event` until `None`, then re-arm
//!   one timer at `poll_timeout()` and call `handle_timeout` + drain again when it passes.
//!
//! At most one long-poll (`RequestKind::Connect`) and one control request (everything else) are
//! handed out at a time. Responses for request ids the core no longer tracks are ignored.
//!
//! # Projection rules for the shell
//!
//! * A message with `data` on a non-`/meta/` channel is `Msg::Event`.
//! * A `/meta/*` message is `Msg::Meta`. So is any other message without `data` that has a
//!   `successful` or `error` field (this is how a publish acknowledgement is recognised).
//! * Everything else is `Msg::Other`.
//!
//! # Notes / additions to the original API brief
//!
//! * Added: [`BatchBuf`] + [`Session::handle_response_buf`] (owned, reusable batch), the
//!   [`BatchSource`] trait, [`MetaBuf`]/[`MsgBuf`], `as_str()` helpers on the enums,
//!   [`Session::config`], [`CookieJar::get`]/`len`/`clear`, [`Backoff`], [`NEW_EVENTS`]/[`ALL_EVENTS`].
//! * `Advice`, `MetaView`, `Msg`, `Batch` are `Copy`.
//! * `Stats::last_connect_at` is `0` when no connect succeeded yet.
//! * `Failed(..)` and `OpenFailed(..)` are always followed by `Closed`.
//! * `AbortAll` means: abort the in-flight long-poll (connect) request; the core has forgotten it.
//! * `PersistMarker::channel` is the replay key (channel without `?filter`), see [`replay_key`].
//! * A publish is not retried after a transport failure (not idempotent); subscribe/unsubscribe are.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `ProtoError::Server` carries the parsed reply by value, as the API specifies; errors are rare.
#![allow(clippy::result_large_err)]

mod backoff;
mod cookies;
mod error;
mod message;
mod replay;
mod session;
#[cfg(test)]
mod testjson;
#[cfg(test)]
mod tests;

pub use backoff::Backoff;
pub use cookies::{CookieJar, MAX_COOKIES, MAX_COOKIE_LEN};
pub use error::{is_redirect, ProtoError, ServerError, TransportFailure, REDIRECT_HIDDEN};
pub use message::{
    json_str, push_json_str, validate_channel, Advice, Batch, BatchBuf, BatchSource, MetaBuf,
    MetaView, Millis, Msg, MsgBuf, OpId, Reconnect, Request, RequestId, RequestKind,
    MAX_CHANNEL_LEN,
};
pub use replay::{
    is_replay_error, replay_key, retention_ms, FallbackReason, ReplayMarker, ALL_EVENTS, NEW_EVENTS,
};
pub use session::{
    Config, Event, ReconnectReason, Session, State, Stats, DEFAULT_ADVICE_TIMEOUT,
    DISCONNECT_TIMEOUT, GAP_SKEW_MS, MAX_AUTH_ROUNDS, MIN_LONG_POLL_TIMEOUT,
};
