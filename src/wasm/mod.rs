//! The wasm shell: performs the I/O the protocol core asks for (fetch, timers, cookies, replay
//! storage through the host) and translates Rust errors into JavaScript ones.

mod auth;
pub mod client;
mod error;
pub mod js;
mod store;
mod vecmap;
