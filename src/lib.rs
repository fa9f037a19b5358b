//! sfstream: a Salesforce Streaming API client.
//!
//! * [`proto`] is the sans-IO protocol core: the Bayeux/CometD session state machine plus the
//!   Salesforce rules (advice, re-handshake, replay bookkeeping, back-off). It never performs I/O
//!   and never reads a clock; it is told the time and the results of I/O.
//! * [`auth`] builds OAuth 2.0 token requests and validates token responses (pure functions).
//! * `wasm` (only on `wasm32`) is the thin I/O shell exported to JavaScript with wasm-bindgen.

pub mod auth;
pub mod proto;

#[cfg(target_arch = "wasm32")]
mod wasm;
