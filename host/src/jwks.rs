//! A host-side cache of JWKS answers, shared by every instance of the component.
//!
//! The component caches the parsed JWKS in its own memory ([`DEFAULT_TTL`], with an
//! unknown-`kid` refetch at most every [`DEFAULT_REFETCH_INTERVAL`]), so an instance that
//! serves many requests fetches it rarely. But a server runs several instances and replaces them now and then, and each new instance starts
//! with an empty cache: without this layer, the upstream would see one JWKS call per instance
//! per 10 minutes, plus one per replacement. Here, all instances share one upstream answer:
//!
//! - an instance's **first** JWKS request, or one made after the instance's own cache expired
//!   (its previous fetch is at least a TTL old), is answered from the shared entry while that
//!   entry is younger than the TTL;
//! - a **repeated** request from the same instance within the TTL can only mean the component
//!   saw an unknown `kid` (a rotation) or a failed fetch: it goes upstream, unless the shared
//!   entry is younger than the refetch interval (someone just refreshed it; default
//!   [`DEFAULT_REFETCH_INTERVAL`]);
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
pub const JWKS_PATH_SUFFIX: &str = wacht_admin::handler::JWKS_PATH;

/// The component's own JWKS cache lifetime: an instance asks again only after it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(wacht_admin::jwks_cache::TTL_SECS);
/// The component's unknown-`kid` refetch limit.
pub const DEFAULT_REFETCH_INTERVAL: Duration =
    Duration::from_secs(wacht_admin::jwks_cache::REFETCH_INTERVAL_SECS);
/// Above the component's own limit, so that the component, not the host, refuses an oversized
/// set (with its own error); the host only bounds what it buffers.
const MAX_JWKS_BYTES: usize = 4 * wacht_admin::jwks::MAX_JWKS_BYTES;
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

    /// JWKS requests passed upstream (successful or not).
    pub fn upstream_fetches(&self) -> u64 {
        self.upstream.load(Ordering::Relaxed)
    }

    /// JWKS requests answered from the shared entry.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Whether an answer for `url` younger than the TTL is stored.
    pub async fn is_fresh(&self, url: &str) -> bool {
        self.entries
            .lock()
            .await
            .get(url)
            .is_some_and(|entry| entry.fetched.elapsed() < self.ttl)
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
            let wants_fresh =
                previous.is_some_and(|t| t.elapsed().saturating_add(TTL_SLACK) < self.ttl);
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use http_body_util::Empty;

    use super::*;

    const URL: &str = "http://frontend.test/.well-known/jwks.json";

    fn request(method: &str, url: &str) -> http::Request<WasiBody> {
        http::Request::builder()
            .method(method)
            .uri(url)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    /// An upstream that counts calls and answers `status` with a body naming the call.
    fn upstream(
        calls: &Arc<AtomicUsize>,
        status: u16,
        delay: Duration,
    ) -> impl FnOnce(http::Request<WasiBody>, Option<RequestOptions>) -> OutboundFuture + Send + 'static
    {
        let calls = calls.clone();
        move |_, _| {
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(delay).await;
                let mut response = http::Response::new(());
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                Ok(answer(
                    response.into_parts().0,
                    Bytes::from(format!("{{\"keys\":[],\"call\":{n}}}")),
                ))
            })
        }
    }

    async fn fetch(
        cache: &Arc<JwksCache>,
        calls: &Arc<AtomicUsize>,
        previous: Option<Instant>,
        status: u16,
    ) -> (u16, String) {
        let (response, _io) = cache
            .clone()
            .fetch(
                request("GET", URL),
                None,
                previous,
                upstream(calls, status, Duration::ZERO),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[test]
    fn only_jwks_gets_are_cached() {
        assert!(JwksCache::applies_to(&request("GET", URL)));
        assert!(JwksCache::applies_to(&request(
            "GET",
            "https://f.test/prefix/.well-known/jwks.json"
        )));
        assert!(!JwksCache::applies_to(&request("POST", URL)));
        assert!(!JwksCache::applies_to(&request(
            "GET",
            &format!("{URL}?x=1")
        )));
        assert!(!JwksCache::applies_to(&request(
            "GET",
            "http://f.test/users"
        )));
    }

    #[tokio::test]
    async fn instances_share_one_upstream_answer() {
        let cache = Arc::new(JwksCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        // Instance A's first fetch goes upstream; B's and C's first fetches do not.
        assert_eq!(
            fetch(&cache, &calls, None, 200).await.1,
            r#"{"keys":[],"call":1}"#
        );
        assert_eq!(
            fetch(&cache, &calls, None, 200).await.1,
            r#"{"keys":[],"call":1}"#
        );
        assert_eq!(
            fetch(&cache, &calls, None, 200).await.1,
            r#"{"keys":[],"call":1}"#
        );
        // A instance whose own cache expired (its last fetch is a TTL old): still shared.
        let long_ago = Instant::now().checked_sub(DEFAULT_TTL + Duration::from_secs(1));
        if long_ago.is_some() {
            fetch(&cache, &calls, long_ago, 200).await;
        }
        // A repeat within the instance's TTL (unknown kid): the entry is seconds old, younger
        // than the refetch interval, so it is answered from the cache too.
        fetch(&cache, &calls, Some(Instant::now()), 200).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            (cache.upstream_fetches(), cache.hits()),
            (1, 3 + u64::from(long_ago.is_some()))
        );
    }

    #[tokio::test]
    async fn a_repeat_within_the_ttl_refetches_after_the_interval() {
        let cache = Arc::new(JwksCache::new(DEFAULT_TTL, Duration::from_millis(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        fetch(&cache, &calls, None, 200).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        // First fetch of another instance: shared. A repeat (rotation): upstream.
        assert!(
            fetch(&cache, &calls, None, 200)
                .await
                .1
                .contains("\"call\":1")
        );
        assert!(
            fetch(&cache, &calls, Some(Instant::now()), 200)
                .await
                .1
                .contains("\"call\":2")
        );
        // Which refreshed the entry for everyone.
        assert!(
            fetch(&cache, &calls, None, 200)
                .await
                .1
                .contains("\"call\":2")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn entries_expire_and_failures_are_not_stored() {
        let cache = Arc::new(JwksCache::new(Duration::from_millis(30), Duration::ZERO));
        let calls = Arc::new(AtomicUsize::new(0));
        assert_eq!(fetch(&cache, &calls, None, 503).await.0, 503);
        assert_eq!(fetch(&cache, &calls, None, 200).await.0, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a 503 is not cached");
        fetch(&cache, &calls, None, 200).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(40)).await;
        fetch(&cache, &calls, None, 200).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "expired after the TTL");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_make_one_upstream_call() {
        let cache = Arc::new(JwksCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, calls) = (cache.clone(), calls.clone());
                tokio::spawn(async move {
                    let next = upstream(&calls, 200, Duration::from_millis(50));
                    let (response, _) = cache
                        .fetch(request("GET", URL), None, None, next)
                        .await
                        .unwrap();
                    response.status().as_u16()
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
