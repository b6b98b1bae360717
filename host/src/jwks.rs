//! A host-side cache of JWKS answers, shared by every instance of the component.
//!
//! The component caches the parsed JWKS in its own memory (10 min, with an unknown-`kid`
//! refetch at most every 30 s), so an instance that serves many requests fetches it rarely. But
//! a server runs several instances and replaces them now and then, and each new instance starts
//! with an empty cache: without this layer, the upstream would see one JWKS call per instance
//! per 10 minutes, plus one per replacement. Here, all instances share one upstream answer:
//!
//! - an instance's **first** JWKS request, or one made after the instance's own cache expired
//!   (its previous fetch is at least a TTL old), is answered from the shared entry while that
//!   entry is younger than the TTL;
//! - a **repeated** request from the same instance within the TTL can only mean the component
//!   saw an unknown `kid` (a rotation) or a failed fetch: it goes upstream, unless the shared
//!   entry is younger than [`JwksCache::refetch_interval`] (someone just refreshed it);
//! - only `200` answers are stored; fetches are single-flight (concurrent misses wait for the
//!   one upstream call).
//!
//! The result: one upstream JWKS call per TTL window under steady load, and a rotation is
//! picked up as fast as the component alone would (≤ 30 s).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};

use crate::{OutboundFuture, OutboundResponse, RequestOptions, WasiBody};

/// The path the component fetches keys from, under the frontend API.
pub const JWKS_PATH_SUFFIX: &str = "/.well-known/jwks.json";

/// Matches the component's JWKS cache lifetime (`src/jwks_cache.rs`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);
/// Matches the component's unknown-`kid` refetch limit.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// A JWKS answer larger than this is refused (the component refuses 64 KiB already).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Clock slack between the component's whole-second wall clock and our monotonic one: a
/// repeat this close to the TTL counts as the instance's own expiry, not a rotation.
const TTL_SLACK: Duration = Duration::from_secs(10);

struct Entry {
    parts: http::response::Parts,
    body: Bytes,
    fetched: Instant,
}

/// See the module documentation. Put it in [`crate::EngineOptions::jwks_cache`].
pub struct JwksCache {
    ttl: Duration,
    refetch_interval: Duration,
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
    upstream: AtomicU64,
    hits: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("ttl", &self.ttl)
            .field("refetch_interval", &self.refetch_interval)
            .field("upstream_fetches", &self.upstream_fetches())
            .field("hits", &self.hits())
            .finish()
    }
}

impl Default for JwksCache {
    fn default() -> Self {
        JwksCache::new(DEFAULT_TTL, DEFAULT_REFETCH_INTERVAL)
    }
}

impl JwksCache {
    pub fn new(ttl: Duration, refetch_interval: Duration) -> JwksCache {
        JwksCache {
            ttl,
            refetch_interval,
            entries: tokio::sync::Mutex::new(HashMap::new()),
            upstream: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn refetch_interval(&self) -> Duration {
        self.refetch_interval
    }

    /// JWKS requests passed upstream (successful or not).
    pub fn upstream_fetches(&self) -> u64 {
        self.upstream.load(Ordering::Relaxed)
    }

    /// JWKS requests answered from the shared entry.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Whether `request` is a JWKS fetch this cache handles.
    pub(crate) fn applies_to(request: &http::Request<WasiBody>) -> bool {
        request.method() == http::Method::GET
            && request.uri().query().is_none()
            && request.uri().path().ends_with(JWKS_PATH_SUFFIX)
    }

    /// Answers a JWKS request. `previous` is when the same instance last asked (None: never).
    pub(crate) fn fetch(
        self: std::sync::Arc<Self>,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        previous: Option<Instant>,
        next: impl FnOnce(http::Request<WasiBody>, Option<RequestOptions>) -> OutboundFuture
        + Send
        + 'static,
    ) -> OutboundFuture {
        Box::pin(async move {
            let key = request.uri().to_string();
            // A repeat within the instance's own TTL: the component wants fresh keys.
            let wants_fresh = previous.is_some_and(|t| {
                t.elapsed().saturating_add(TTL_SLACK) < self.ttl
            });
            let mut entries = self.entries.lock().await;
            if let Some(entry) = entries.get(&key) {
                let age = entry.fetched.elapsed();
                let limit = if wants_fresh {
                    self.refetch_interval
                } else {
                    self.ttl
                };
                if age < limit {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(answer(entry.parts.clone(), entry.body.clone()));
                }
            }
            self.upstream.fetch_add(1, Ordering::Relaxed);
            let (response, io) = next(request, options).await?;
            // The connection task must run while the body is read.
            let io = tokio::spawn(Pin::from(io));
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_JWKS_BYTES).collect().await;
            let io_result = io.await;
            let body = match body {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    return Err(match e.downcast::<wasmtime_wasi_http::Error>() {
                        Ok(e) => *e,
                        Err(_) => wasmtime_wasi_http::Error::HttpResponseBodySize(None),
                    });
                }
            };
            if let Ok(Err(e)) = io_result {
                return Err(e);
            }
            if parts.status == http::StatusCode::OK {
                // Status and headers only: extensions belong to the connection that brought them.
                let mut stored = http::Response::new(());
                *stored.status_mut() = parts.status;
                *stored.version_mut() = parts.version;
                *stored.headers_mut() = parts.headers.clone();
                entries.insert(
                    key,
                    Entry {
                        parts: stored.into_parts().0,
                        body: body.clone(),
                        fetched: Instant::now(),
                    },
                );
            }
            Ok(answer(parts, body))
        })
    }
}

fn answer(parts: http::response::Parts, body: Bytes) -> OutboundResponse {
    let body: WasiBody = Full::new(body)
        .map_err(|never| match never {})
        .boxed_unsync();
    (
        http::Response::from_parts(parts, body),
        Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
    )
}
