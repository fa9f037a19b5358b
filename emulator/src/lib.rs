//! sfemu: a Salesforce-faithful emulator of the Streaming API (CometD/Bayeux long-polling) and of
//! the OAuth 2.0 token endpoint, run as a real local HTTP server for tests, benchmarks and demos.

pub mod oauth;
