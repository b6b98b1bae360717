//! What the core asks of the network: one blocking request/response exchange per call.
//! The wasi:http adapter implements it; unit tests implement it with canned answers.

pub use http::{Method, StatusCode};

use crate::config::BaseUrl;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Jwks,
    Gateway,
    Backend,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Jwks => "the Wacht frontend API (JWKS)",
            Service::Gateway => "the Wacht gateway",
            Service::Backend => "the Wacht backend API",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OutRequest<'a> {
    pub service: Service,
    pub method: Method,
    pub base: &'a BaseUrl,
    /// Starts with `/`, already includes `base.path`.
    pub path_with_query: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Whole exchange, connect to last body byte.
    pub timeout_ms: u64,
    /// Bodies larger than this are not read to the end.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// The first `Age` field line as sent, for the JWKS answer only: no other call uses it, so
    /// no other call reads the header.
    pub age: Option<Vec<u8>>,
}

#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    #[error("timed out")]
    Timeout,
    #[error("could not be reached")]
    Unreachable,
    #[error("sent a body over the size limit")]
    TooLarge,
    #[error("failed")]
    Failed,
}

pub trait Upstream {
    fn send(&mut self, req: OutRequest<'_>) -> Result<OutResponse, TransportError>;
}
