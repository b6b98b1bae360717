//! `/readyz`'s JWKS check: "can serve session tokens" means a usable key set has been loaded
//! and is still within the stale bound, the bound the component itself serves a set for.
//!
//! A probe only reads what a background task found, so it answers at once whatever the upstream
//! does. That task fetches through the shared JWKS cache (so it keeps the instances' first
//! fetches warm rather than adding calls), one fetch at a time:
//! - while it holds a usable set, when that set's TTL ends (its `Age` counted), or after a
//!   failure one TTL after the failed attempt (sooner if the set would go stale first): at most
//!   one upstream call per TTL, however often `/readyz` is probed;
//! - while it holds none, every retry interval (the component's 30 s), so readiness follows a
//!   recovered JWKS within about that.
//!
//! "Usable" is what the component accepts: a 200 whose body parses as a key set with at least
//! one usable key, and whose `Age` is valid and below the stale bound.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use wacht_admin::jwks_cache::Age;

use crate::jwks::{Held, JwksTiming, usable_key_set};
use crate::{JwksCache, Outbound, WasiBody};

/// More than the component reads (it refuses larger sets itself).
const MAX_BODY_BYTES: usize = 4 * wacht_admin::jwks::MAX_JWKS_BYTES;

pub(crate) struct JwksReadiness {
    url: String,
    cache: Arc<JwksCache>,
    outbound: Arc<dyn Outbound>,
    timing: JwksTiming,
    /// One fetch's limit, connect to last byte (the component's upstream timeout).
    fetch_timeout: Duration,
    state: Mutex<State>,
}

impl std::fmt::Debug for JwksReadiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksReadiness")
            .field("url", &self.url)
            .field("timing", &self.timing)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct State {
    /// The newest usable set's age, as of when it was fetched.
    loaded: Option<Loaded>,
    last_attempt: Option<Instant>,
    /// Why the last attempt failed; `None` after a success.
    last_error: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Loaded {
    /// When we asked for it (RFC 9111's corrected age counts the response delay).
    asked: Instant,
    /// Its `Age` then.
    age: Duration,
    /// When the upstream made it, in Unix seconds: the metric.
    made_unix: u64,
}

impl Loaded {
    fn age(&self) -> Duration {
        self.asked.elapsed().saturating_add(self.age)
    }
}

impl JwksReadiness {
    pub(crate) fn new(
        url: String,
        cache: Arc<JwksCache>,
        outbound: Arc<dyn Outbound>,
        timing: JwksTiming,
        fetch_timeout: Duration,
    ) -> JwksReadiness {
        JwksReadiness {
            url,
            cache,
            outbound,
            timing,
            fetch_timeout,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ready, or why not. Reads only: never waits on a fetch.
    pub(crate) fn check(&self) -> Result<(), String> {
        let state = self.state();
        let last_error = state
            .last_error
            .as_deref()
            .map(|e| format!(" (last attempt: {e})"))
            .unwrap_or_default();
        match state.loaded {
            Some(loaded) if loaded.age() < self.timing.max_stale => Ok(()),
            Some(loaded) => Err(format!(
                "the last usable JWKS is {} s old, past the {} s a key set may serve{last_error}",
                loaded.age().as_secs(),
                self.timing.max_stale.as_secs()
            )),
            None => Err(format!("no usable JWKS has been loaded yet{last_error}")),
        }
    }

    /// When the upstream made the newest usable set, in Unix seconds.
    pub(crate) fn last_success_unix(&self) -> Option<u64> {
        self.state().loaded.map(|l| l.made_unix)
    }

    /// Fetches now, then whenever the next fetch is due; runs until the task is aborted.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            let wait = self.next_in();
            if wait.is_zero() {
                self.attempt().await;
            } else {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// How long until the next fetch is due (see the module documentation).
    fn next_in(&self) -> Duration {
        let state = self.state();
        let Some(last) = state.last_attempt else {
            return Duration::ZERO;
        };
        let since = last.elapsed();
        let retry = self.timing.retry.saturating_sub(since);
        let usable = state.loaded.filter(|l| l.age() < self.timing.max_stale);
        match (usable, &state.last_error) {
            // Its TTL's end (never sooner than the retry interval: an upstream whose answers
            // always arrive old is not asked in a loop).
            (Some(loaded), None) => self.timing.ttl.saturating_sub(loaded.age()).max(retry),
            // A failure while a set still serves: again a TTL later, or when it would go stale.
            (Some(loaded), Some(_)) => self
                .timing
                .ttl
                .saturating_sub(since)
                .min(self.timing.max_stale.saturating_sub(loaded.age()))
                .max(retry),
            (None, _) => retry,
        }
    }

    async fn attempt(&self) {
        let asked = Instant::now();
        self.state().last_attempt = Some(asked);
        let result = match tokio::time::timeout(self.fetch_timeout, self.fetch()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the JWKS did not answer within {} ms",
                self.fetch_timeout.as_millis()
            )),
        };
        let mut state = self.state();
        match result {
            Ok(age) => {
                let made = SystemTime::now()
                    .checked_sub(age)
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                state.loaded = Some(Loaded {
                    asked,
                    age,
                    made_unix: made,
                });
                state.last_error = None;
            }
            Err(e) => state.last_error = Some(e),
        }
    }

    /// One fetch through the shared cache: the answer's `Age` when it is usable, else why not.
    async fn fetch(&self) -> Result<Duration, String> {
        let body: WasiBody = Empty::new().map_err(|never| match never {}).boxed_unsync();
        let request = Request::get(&self.url)
            .header(header::USER_AGENT, wacht_admin::handler::USER_AGENT)
            .header(header::ACCEPT, "application/json")
            .body(body)
            .context("the JWKS URL")
            .map_err(|e| format!("{e:#}"))?;
        let outbound = self.outbound.clone();
        let (response, io) = self
            .cache
            .clone()
            .fetch(request, None, Held::default(), move |request, options| {
                outbound.send(request, options)
            })
            .await
            .map_err(|e| format!("the JWKS could not be fetched: {e}"))?;
        // The connection task must run while the body is read.
        let io = tokio::spawn(std::pin::Pin::from(io));
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES).collect().await;
        let _ = io.await;
        let body = body
            .map_err(|e| format!("the JWKS answer could not be read: {e}"))?
            .to_bytes();
        if parts.status != StatusCode::OK {
            return Err(format!("the JWKS answered {}", parts.status));
        }
        let age = Age::from_field(parts.headers.get(header::AGE).map(HeaderValue::as_bytes))
            .map_err(|e| format!("the JWKS answer could not be used: {e}"))?;
        if !usable_key_set(&body) {
            return Err("the JWKS answer is not a key set with a usable key".to_string());
        }
        Ok(Duration::from_secs(age.secs()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::Full;

    use super::*;
    use crate::{OutboundFuture, RequestOptions};

    /// An upstream that counts calls and answers as `mode` says at the time of the call.
    struct Upstream {
        calls: AtomicUsize,
        mode: Mutex<Mode>,
    }

    #[derive(Clone, Copy)]
    enum Mode {
        Keys,
        Status(u16),
        Garbage,
        Hang,
    }

    impl Outbound for Upstream {
        fn send(&self, _: http::Request<WasiBody>, _: Option<RequestOptions>) -> OutboundFuture {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mode = *self.mode.lock().unwrap();
            Box::pin(async move {
                let (status, body) = match mode {
                    Mode::Keys => {
                        let key = wacht_standin::tokens::TestKey::es256(1);
                        (200, wacht_standin::tokens::jwks(&[&key]).to_string())
                    }
                    Mode::Status(status) => (status, String::new()),
                    Mode::Garbage => (200, r#"{"keys":[]}"#.to_string()),
                    Mode::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        (504, String::new())
                    }
                };
                let mut response = http::Response::new(
                    Full::new(Bytes::from(body))
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                let io: Box<dyn std::future::Future<Output = _> + Send> =
                    Box::new(async { Ok(()) });
                Ok((response, io))
            })
        }
    }

    fn setup(mode: Mode, timing: JwksTiming) -> (Arc<JwksReadiness>, Arc<Upstream>) {
        let upstream = Arc::new(Upstream {
            calls: AtomicUsize::new(0),
            mode: Mutex::new(mode),
        });
        let cache = Arc::new(JwksCache::new(timing.ttl, timing.retry));
        let readiness = Arc::new(JwksReadiness::new(
            "http://frontend.test/.well-known/jwks.json".to_string(),
            cache,
            upstream.clone(),
            timing,
            Duration::from_millis(200),
        ));
        (readiness, upstream)
    }

    fn timing(ttl_ms: u64, retry_ms: u64, stale_ms: u64) -> JwksTiming {
        JwksTiming {
            ttl: Duration::from_millis(ttl_ms),
            retry: Duration::from_millis(retry_ms),
            max_stale: Duration::from_millis(stale_ms),
        }
    }

    /// Probes `readiness` every 5 ms for `for_ms`; each answer must come at once.
    async fn probe(readiness: &JwksReadiness, for_ms: u64) -> (usize, usize) {
        let (mut ready, mut probes) = (0, 0);
        let until = Instant::now() + Duration::from_millis(for_ms);
        while Instant::now() < until {
            let started = Instant::now();
            ready += usize::from(readiness.check().is_ok());
            probes += 1;
            assert!(started.elapsed() < Duration::from_millis(50));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (ready, probes)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unready_until_a_usable_set_then_one_retry_per_interval() {
        let (readiness, upstream) = setup(Mode::Status(503), timing(60_000, 300, 3_600_000));
        let task = tokio::spawn(readiness.clone().run());
        let (ready, probes) = probe(&readiness, 700).await;
        assert_eq!(ready, 0);
        assert!(probes > 50, "{probes}");
        // At 0, 300 and 600 ms: one call per retry interval, however many probes.
        assert_eq!(upstream.calls.load(Ordering::SeqCst), 3);
        let why = readiness.check().unwrap_err();
        assert!(
            why.contains("no usable JWKS") && why.contains("503"),
            "{why}"
        );
        assert_eq!(readiness.last_success_unix(), None);

        // A 200 that is no usable key set is no better.
        *upstream.mode.lock().unwrap() = Mode::Garbage;
        tokio::time::sleep(Duration::from_millis(350)).await;
        let why = readiness.check().unwrap_err();
        assert!(why.contains("usable key"), "{why}");

        // Recovered: ready within about the retry interval.
        *upstream.mode.lock().unwrap() = Mode::Keys;
        let recovered = Instant::now();
        while readiness.check().is_err() {
            assert!(recovered.elapsed() < Duration::from_millis(1000));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let made = readiness.last_success_unix().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(made <= now && made + 5 >= now, "{made} {now}");
        task.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn during_an_outage_ready_within_the_stale_bound_one_call_per_ttl() {
        // TTL 400 ms, stale bound 1.5 s, retry 100 ms.
        let (readiness, upstream) = setup(Mode::Keys, timing(400, 100, 1_500));
        let task = tokio::spawn(readiness.clone().run());
        let started = Instant::now();
        while readiness.check().is_err() {
            assert!(started.elapsed() < Duration::from_secs(1));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Steady state: one call per TTL at most (fewer when the shared cache answers: its `Age`
        // is whole seconds, so a sub-second TTL can look unexpired to it).
        let at_ready = upstream.calls.load(Ordering::SeqCst);
        let (ready, _) = probe(&readiness, 1_000).await;
        assert!(ready > 50);
        let steady = upstream.calls.load(Ordering::SeqCst) - at_ready;
        assert!(
            (1..=3).contains(&steady),
            "{steady} calls in 1 s at a 400 ms TTL"
        );

        // The upstream hangs: probes still answer at once, ready until the set goes stale
        // (1.1-1.5 s from now, up to a second more for an `Age` rounded down), and until then the hung fetches (each cut at 200 ms) come one
        // TTL apart.
        *upstream.mode.lock().unwrap() = Mode::Hang;
        let outage = Instant::now();
        let before = upstream.calls.load(Ordering::SeqCst);
        let mut within_bound = None;
        let mut stale_at = None;
        while outage.elapsed() < Duration::from_millis(2_600) {
            let probed = Instant::now();
            let ready = readiness.check().is_ok();
            assert!(probed.elapsed() < Duration::from_millis(50));
            if !ready && stale_at.is_none() {
                stale_at = Some(outage.elapsed());
            }
            if within_bound.is_none() && outage.elapsed() >= Duration::from_millis(1_050) {
                within_bound = Some(upstream.calls.load(Ordering::SeqCst) - before);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stale_at = stale_at.expect("still ready past the stale bound");
        assert!(
            stale_at > Duration::from_millis(1_000) && stale_at < Duration::from_millis(2_000),
            "unready after {stale_at:?}"
        );
        let within_bound = within_bound.unwrap_or_default();
        assert!(
            (1..=3).contains(&within_bound),
            "{within_bound} calls in 1.05 s"
        );
        // Past the bound: one per retry interval (here the 200 ms fetch limit is longer).
        let after = upstream.calls.load(Ordering::SeqCst) - before - within_bound;
        assert!((1..=9).contains(&after), "{after} calls after the bound");
        assert!(readiness.check().unwrap_err().contains("past the"));
        task.abort();
    }
}
