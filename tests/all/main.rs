//! Every integration test in one binary (as wasmtime's `tests/all`): each test file used to link
//! wasmtime, the component's host and the stand-in into a binary of its own; one link instead
//! of thirteen, and the component is compiled once for all of them.
//!
//! - `http_*`: the real `.wasm` in an embedded wasmtime, against a loopback stand-in Wacht;
//! - `imports`, `spin_manifest`: what the components import, and the Spin manifest;
//! - `wycheproof`: the public vectors through the policy layer natively;
//! - `workers`: the Worker bundle in real workerd (and the benchmarks `make bench` runs);
//! - `wasmtime_cli`: the portable component under the real `wasmtime serve` CLI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod client;
mod common;
mod process;
mod vectors;

mod http_config;
mod http_host;
mod http_load;
mod http_machine;
mod http_openapi;
mod http_serve;
mod http_session;
mod http_token_cache;
mod http_trace;
mod http_upstream;
mod http_verifiers;
mod imports;
mod schemathesis;
mod spin_manifest;
mod structure;
mod wasmtime_cli;
mod workers;
mod wycheproof;
