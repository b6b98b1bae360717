//! wacht-admin: `GET /admin/users` behind Wacht auth, as one WASI HTTP component.
//!
//! Everything but `wasi_adapter` is a pure core: no wasi, no HTTP client, the clock passed in.
//! - `request`: routing and query validation
//! - `credentials`: which credential a request carries
//! - `jwks`, `jwt`, `claims`: where the session JWT is checked
//! - `crypto`: verify-only ECDSA P-256/P-384 and RSA PKCS#1 v1.5 (our own, for size)
//! - `protect`: the permission rules of `auth.protect`
//! - `json`: the strict JSON reader and writer the others use
//! - `gateway`: API keys / OAuth tokens checked through the Wacht gateway
//! - `backend`: the users call to the Wacht backend API
//! - `handler`: the request flow, over an `Upstream` trait
//! - `error`: every error mapped to a response, in one place

pub mod backend;
pub mod claims;
pub mod config;
pub mod credentials;
mod crypto;
pub mod error;
pub mod gateway;
pub mod handler;
pub mod json;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
pub mod protect;
pub mod request;
pub mod upstream;

#[cfg(target_arch = "wasm32")]
mod wasi_adapter;
