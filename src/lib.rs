//! sfstream: a Salesforce Streaming API client.
//!
//! * [`proto`] is the sans-IO protocol core: the Bayeux/CometD session state machine plus the
//!   Salesforce rules (advice, re-handshake, replay bookkeeping, back-off). It never performs I/O
//!   and never reads a clock; it is told the time and the results of I/O.
//! * [`auth`] builds OAuth 2.0 token requests and validates token responses (pure functions).
//! * `wasm` (only on `wasm32`) is the thin I/O shell exported to JavaScript with wasm-bindgen.

pub mod auth;
pub mod proto;

/// The wasm shell. Public only for its own tests (`tests/wasm_shell.rs`); applications use the
/// TypeScript API of the npm package.
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm;

/// The wasm module's allocator: talc, growing the module's memory as it needs. The module is
/// single-threaded (no shared memory, no threads), which talc's wasm allocator requires.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();
