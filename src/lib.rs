//! wacht-admin: `GET /admin/users` behind Wacht auth, as one WASI HTTP component.
//!
//! Everything but `wasi_adapter` is a pure core: no wasi, no HTTP client, the clock passed in.
//! - `request`: routing and query validation; `cors`: CORS for browser dashboards
//! - `credentials`: which credential a request carries
//! - `jwks`, `jwt`, `claims`: where the session JWT is checked; `json`: the strict object reader
//! - `signature`: the signature primitive, from the host (wacht:admin/verifier) or jwt-simple
//! - `token_cache`: verified tokens, so each is verified once
//! - `protect`: the permission rules of `auth.protect`
//! - `gateway`: API keys / OAuth tokens checked through the Wacht gateway
//! - `backend`: the users call to the Wacht backend API
//! - `handler`: the request flow, over an `Upstream` trait
//! - `error`: every error mapped to a response, in one place; `reply`: the response type
//! - `trace`: request ids and W3C trace context; `access_log`: the access line

pub mod access_log;
pub mod backend;
pub mod base_url;
pub mod claims;
pub mod config;
pub mod cors;
pub mod credentials;
pub mod error;
pub mod gateway;
pub mod handler;
pub mod json;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
pub mod protect;
pub mod reply;
pub mod request;
pub mod signature;
pub mod token_cache;
pub mod trace;
pub mod upstream;

#[cfg(target_arch = "wasm32")]
mod wasi_adapter;
