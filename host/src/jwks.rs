//! A host-side cache of JWKS answers, shared by every instance of the component.
//!
//! The component caches the parsed JWKS in its own memory ([`DEFAULT_TTL`], with an
//! unknown-`kid` refetch at most every [`DEFAULT_REFETCH_INTERVAL`]), so an instance that
//! serves many requests fetches it rarely. But a server runs several instances and replaces them now and then, and each new instance starts
//! with an empty cache: without this layer, the upstream would see one JWKS call per instance
//! per 10 minutes, plus one per replacement. Here, all instances share one upstream answer:
//!
//! - an instance's **first** JWKS request, or one made after the instance's own cache expired
//!   (the answer it holds is at least a TTL old), is answered from the shared entry while that
//!   entry is younger than the TTL;
//! - a **repeated** request from the same instance within the TTL can only mean the component
//!   saw an unknown `kid` (a rotation) or a failed fetch: it goes upstream, unless the shared
//!   entry is younger than the refetch interval (someone just refreshed it; default
//!   [`DEFAULT_REFETCH_INTERVAL`]);
//! - only `200` answers that are a usable key set (parsed as the component parses them) are
//!   stored; fetches are single-flight (concurrent misses wait for the one upstream call);
//! - ages are HTTP's `Age` (RFC 9111 §4.2.3's corrected age): an entry is as old as the time
//!   since its upstream fetch plus the `Age` the upstream sent, every TTL decision here counts
//!   that, and an answer from a stored entry carries it as `Age`. The component counts its own
//!   TTL from the answer's `Age`, so a new instance handed a 9-minute-old entry refetches in a
//!   minute, not in ten: a key removed upstream stops verifying within the TTL on every
//!   instance. An upstream answer the component would refuse for its `Age` is not stored.
//!
//! The result: one upstream JWKS call per TTL window under steady load, and a rotation is
//! picked up as fast as the component alone would (≤ 30 s).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, header};
use http_body_util::{BodyExt as _, Full, Limited};
use wacht_admin::jwks::KeySet;
use wacht_admin::jwks_cache::Age;

use crate::verifier::Ring;
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

/// How long a JWKS answer counts: the component's own bounds. The shared cache and `/readyz`
/// use them; only tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksTiming {
    /// An answer is fresh this long after the upstream made it.
    pub ttl: Duration,
    /// Least time between two upstream calls after a failure or for a rotation.
    pub retry: Duration,
    /// An answer older than this no longer serves, fetches failing or not.
    pub max_stale: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        JwksTiming {
            ttl: DEFAULT_TTL,
            retry: DEFAULT_REFETCH_INTERVAL,
            max_stale: Duration::from_secs(wacht_admin::jwks_cache::MAX_STALE_SECS),
        }
    }
}

struct Entry {
    parts: http::response::Parts,
    body: Bytes,
    fetched: Instant,
    /// The `Age` the upstream sent: how old the answer already was when we fetched it.
    upstream_age: Duration,
}

impl Entry {
    /// The corrected age: since our fetch, plus the upstream's own `Age`.
    fn age(&self) -> Duration {
        self.fetched.elapsed().saturating_add(self.upstream_age)
    }
}

/// What one instance holds from the cache: when it last asked, and how old the answer it got
/// was then (its own TTL counts from the answer's `Age`). The fetch that answers fills it in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Option<(Instant, Duration)>>>);

impl Held {
    /// How old the instance's answer is now; `None` before its first request.
    fn age(&self) -> Option<Duration> {
        let held = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.map(|(asked, age)| asked.elapsed().saturating_add(age))
    }

    fn set(&self, asked: Instant, age: Duration) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((asked, age));
    }
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

    /// Whether an answer for `url` younger than the TTL (its upstream `Age` counted) is stored.
    pub async fn is_fresh(&self, url: &str) -> bool {
        self.entries
            .lock()
            .await
            .get(url)
            .is_some_and(|entry| entry.age() < self.ttl)
    }

    /// Whether `request` is a JWKS fetch this cache handles.
    pub(crate) fn applies_to(request: &http::Request<WasiBody>) -> bool {
        request.method() == http::Method::GET
            && request.uri().query().is_none()
            && request.uri().path().ends_with(JWKS_PATH_SUFFIX)
    }

    /// Answers a JWKS request of the instance that holds `held` (a fresh `Held`: a probe, or
    /// an instance that never asked).
    pub(crate) fn fetch(
        self: Arc<Self>,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        held: Held,
        next: impl FnOnce(http::Request<WasiBody>, Option<RequestOptions>) -> OutboundFuture
        + Send
        + 'static,
    ) -> OutboundFuture {
        Box::pin(async move {
            let key = request.uri().to_string();
            let asked = Instant::now();
            // A repeat within the instance's own TTL: the component wants fresh keys.
            let wants_fresh = held
                .age()
                .is_some_and(|age| age.saturating_add(TTL_SLACK) < self.ttl);
            // Until an answer says otherwise (a failure, a refused answer): what it holds is
            // as fresh as this request.
            held.set(asked, Duration::ZERO);
            let mut entries = self.entries.lock().await;
            if let Some(entry) = entries.get(&key) {
                let age = entry.age();
                let limit = if wants_fresh {
                    self.refetch_interval
                } else {
                    self.ttl
                };
                if age < limit {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    held.set(asked, age);
                    let mut parts = entry.parts.clone();
                    parts
                        .headers
                        .insert(header::AGE, HeaderValue::from(age.as_secs()));
                    return Ok(answer(parts, entry.body.clone()));
                }
            }
            self.upstream.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
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
            // Parsed as the component parses it: an answer it refuses (for its Age, or as a key
            // set) is not kept for others, who would be refused it until the TTL ends.
            let upstream_age =
                Age::from_field(parts.headers.get(header::AGE).map(HeaderValue::as_bytes));
            let usable = parts.status == http::StatusCode::OK && usable_key_set(&body);
            if let (true, Ok(upstream_age)) = (usable, upstream_age) {
                let upstream_age = Duration::from_secs(upstream_age.secs());
                held.set(asked, upstream_age);
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
                        // From the request: RFC 9111's corrected age counts the response delay.
                        fetched: sent,
                        upstream_age,
                    },
                );
            }
            Ok(answer(parts, body))
        })
    }
}

/// Whether `body` is a key set the component can verify with (at least one usable key).
pub(crate) fn usable_key_set(body: &[u8]) -> bool {
    KeySet::parse(body, &Ring).is_ok()
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

    impl Held {
        /// An instance that asked just now and got an answer `age` old.
        fn holding(age: Duration) -> Held {
            let held = Held::default();
            held.set(Instant::now(), age);
            held
        }
    }

    /// A usable key set whose `call` member names the upstream call that made it.
    fn key_set(call: usize) -> String {
        let key = wacht_standin::tokens::TestKey::es256(1);
        let mut doc = wacht_standin::tokens::jwks(&[&key]);
        doc["call"] = call.into();
        doc.to_string()
    }

    /// The upstream call that made `body`.
    fn call(body: &str) -> u64 {
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        doc["call"].as_u64().unwrap()
    }

    /// What an upstream answers: a status, and an `Age` header if any.
    #[derive(Clone, Copy)]
    struct Upstream {
        status: u16,
        age: Option<&'static str>,
        delay: Duration,
    }

    const OK: Upstream = Upstream {
        status: 200,
        age: None,
        delay: Duration::ZERO,
    };

    /// An upstream that counts calls and answers `with` and a body naming the call.
    fn upstream(
        calls: &Arc<AtomicUsize>,
        with: Upstream,
    ) -> impl FnOnce(http::Request<WasiBody>, Option<RequestOptions>) -> OutboundFuture + Send + 'static
    {
        let calls = calls.clone();
        move |_, _| {
            Box::pin(async move {
                let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(with.delay).await;
                let mut response = http::Response::new(());
                *response.status_mut() = http::StatusCode::from_u16(with.status).unwrap();
                if let Some(age) = with.age {
                    response
                        .headers_mut()
                        .insert(header::AGE, HeaderValue::from_static(age));
                }
                Ok(answer(response.into_parts().0, Bytes::from(key_set(n))))
            })
        }
    }

    /// What the instance gets: status, body, and the `Age` header.
    #[derive(Debug, PartialEq)]
    struct Got {
        status: u16,
        body: String,
        age: Option<String>,
    }

    async fn fetch(
        cache: &Arc<JwksCache>,
        calls: &Arc<AtomicUsize>,
        held: &Held,
        with: Upstream,
    ) -> Got {
        let (response, _io) = cache
            .clone()
            .fetch(
                request("GET", URL),
                None,
                held.clone(),
                upstream(calls, with),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let age = response
            .headers()
            .get(header::AGE)
            .map(|v| v.to_str().unwrap().to_string());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Got {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            age,
        }
    }

    /// A first request, by an instance that holds nothing yet.
    async fn first(cache: &Arc<JwksCache>, calls: &Arc<AtomicUsize>, with: Upstream) -> Got {
        fetch(cache, calls, &Held::default(), with).await
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
        for _ in 0..3 {
            assert_eq!(call(&first(&cache, &calls, OK).await.body), 1);
        }
        // An instance whose own cache expired (it holds an answer a TTL old): still shared.
        let expired = Held::holding(DEFAULT_TTL + Duration::from_secs(1));
        fetch(&cache, &calls, &expired, OK).await;
        // A repeat within the instance's TTL (unknown kid): the entry is seconds old, younger
        // than the refetch interval, so it is answered from the cache too.
        fetch(&cache, &calls, &Held::holding(Duration::ZERO), OK).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!((cache.upstream_fetches(), cache.hits()), (1, 4));
    }

    #[tokio::test]
    async fn a_repeat_within_the_ttl_refetches_after_the_interval() {
        let cache = Arc::new(JwksCache::new(DEFAULT_TTL, Duration::from_millis(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        let held = Held::default();
        fetch(&cache, &calls, &held, OK).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        // First fetch of another instance: shared. A repeat (rotation): upstream.
        assert!(first(&cache, &calls, OK).await.body.contains("\"call\":1"));
        assert!(
            fetch(&cache, &calls, &held, OK)
                .await
                .body
                .contains("\"call\":2")
        );
        // Which refreshed the entry for everyone.
        assert!(first(&cache, &calls, OK).await.body.contains("\"call\":2"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_instance_whose_aged_answer_expired_is_not_a_rotation() {
        let cache = Arc::new(JwksCache::new(DEFAULT_TTL, Duration::from_millis(30)));
        let calls = Arc::new(AtomicUsize::new(0));
        first(&cache, &calls, OK).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
        // It asked a moment ago, but was handed an answer already 595 s old: its own TTL is
        // over, so this is its expiry, answered from the (fresh) shared entry.
        let handed_old = Held::holding(DEFAULT_TTL - Duration::from_secs(5));
        assert!(
            fetch(&cache, &calls, &handed_old, OK)
                .await
                .body
                .contains("\"call\":1")
        );
        // What it holds now is the entry's age, not the 595 s: a repeat is a rotation.
        let age = handed_old.age().unwrap();
        assert!(age < Duration::from_secs(1), "{age:?}");
        assert!(
            fetch(&cache, &calls, &handed_old, OK)
                .await
                .body
                .contains("\"call\":2")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_upstreams_age_counts_and_a_stored_answer_carries_the_corrected_age() {
        let calls = Arc::new(AtomicUsize::new(0));
        let aged = |age| Upstream {
            age: Some(age),
            ..OK
        };
        // An answer the upstream kept 5 s; one it kept 599 s, 1 s from expiry.
        let young = Arc::new(JwksCache::default());
        let old = Arc::new(JwksCache::default());
        let got = first(&young, &calls, aged("5")).await;
        assert_eq!(
            (got.status, got.age.as_deref()),
            (200, Some("5")),
            "passed on as sent"
        );
        let held = Held::default();
        fetch(&old, &calls, &held, aged("599")).await;
        let age = held.age().unwrap();
        assert!(
            age >= Duration::from_secs(599),
            "the instance holds a 599 s answer: {age:?}"
        );
        let got = first(&old, &calls, aged("599")).await;
        assert_eq!(
            got.age.as_deref(),
            Some("599"),
            "from the entry, a moment later"
        );
        assert!(old.is_fresh(URL).await);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        tokio::time::sleep(Duration::from_millis(1100)).await;
        // Our second of storage plus the upstream's 5: RFC 9111's corrected age.
        let got = first(&young, &calls, aged("5")).await;
        assert_eq!((call(&got.body), got.age.as_deref()), (1, Some("6")));
        // 600 s old by now: expired for the probe and for a new instance.
        assert!(!old.is_fresh(URL).await);
        let got = first(&old, &calls, aged("599")).await;
        assert_eq!(call(&got.body), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_answer_the_component_would_refuse_for_its_age_is_not_stored() {
        for age in ["3600", "-1", "soon"] {
            let cache = Arc::new(JwksCache::default());
            let calls = Arc::new(AtomicUsize::new(0));
            let with = Upstream {
                age: Some(age),
                ..OK
            };
            let got = first(&cache, &calls, with).await;
            assert_eq!(
                (got.status, got.age.as_deref()),
                (200, Some(age)),
                "passed on as sent"
            );
            first(&cache, &calls, with).await;
            assert_eq!(calls.load(Ordering::SeqCst), 2, "Age {age:?} was stored");
            assert!(!cache.is_fresh(URL).await);
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_no_usable_key_set_is_not_stored() {
        let cache = Arc::new(JwksCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        for body in [
            r#"{"keys":[]}"#,
            "not json",
            r#"{"keys":[{"kty":"oct","k":"AA"}]}"#,
        ] {
            let calls_before = calls.load(Ordering::SeqCst);
            let garbage = move |_, _| -> OutboundFuture {
                Box::pin(async move {
                    let parts = http::Response::new(()).into_parts().0;
                    Ok(answer(parts, Bytes::from(body)))
                })
            };
            for _ in 0..2 {
                let (response, _) = cache
                    .clone()
                    .fetch(request("GET", URL), None, Held::default(), garbage)
                    .await
                    .unwrap();
                let got = response.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(got, body.as_bytes(), "passed on as sent");
            }
            assert!(!cache.is_fresh(URL).await, "{body} was stored");
            assert_eq!(calls.load(Ordering::SeqCst), calls_before);
        }
        assert_eq!(cache.upstream_fetches(), 6);
        // A usable one is stored.
        first(&cache, &calls, OK).await;
        assert!(cache.is_fresh(URL).await);
    }

    #[tokio::test]
    async fn entries_expire_and_failures_are_not_stored() {
        let cache = Arc::new(JwksCache::new(Duration::from_millis(30), Duration::ZERO));
        let calls = Arc::new(AtomicUsize::new(0));
        let unavailable = Upstream { status: 503, ..OK };
        assert_eq!(first(&cache, &calls, unavailable).await.status, 503);
        assert_eq!(first(&cache, &calls, OK).await.status, 200);
        assert_eq!(calls.load(Ordering::SeqCst), 2, "a 503 is not cached");
        let got = first(&cache, &calls, OK).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            got.age.as_deref(),
            Some("0"),
            "an answer from the entry says its age"
        );
        tokio::time::sleep(Duration::from_millis(40)).await;
        first(&cache, &calls, OK).await;
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
                    let slow = Upstream {
                        delay: Duration::from_millis(50),
                        ..OK
                    };
                    let next = upstream(&calls, slow);
                    let (response, _) = cache
                        .fetch(request("GET", URL), None, Held::default(), next)
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
