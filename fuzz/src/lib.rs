//! Fuzz drivers of the sfstream core. The same file is compiled into `../tests/fuzz_corpus.rs`
//! (with `#[path]`), so the stored corpus runs on stable in `cargo test`.
pub mod drivers;
