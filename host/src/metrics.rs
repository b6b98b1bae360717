//! `--admin-listen`'s `/metrics`: prometheus-client counters the server moves as it serves, the
//! pool's, the JWKS cache's and the readiness check's own counts read at scrape time, and the
//! standard `process_*` metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::log::ComponentLine;
use crate::readiness::JwksReadiness;
use crate::{InstancePool, JwksCache, Outbound, OutboundFuture, RequestOptions, WasiBody};

/// Every metric of ours starts `wacht_admin_`; the `process_*` ones are the standard names.
const PREFIX: &str = "wacht_admin";

/// 0.25 ms to 65.5 s (doubling): past the 30 s request timeout and the 10 s upstream default,
/// so a request that ran into either still lands in a bucket of its own.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 19))
}

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    /// The component's word (`session`, `api_key`, `oauth_access_token`), or `none`.
    credential: &'static str,
    /// The error code ([`wacht_admin::error::CODES`] or the host's own), `none` on a 2xx,
    /// `other` for a word outside the fixed set: a bounded label.
    error: &'static str,
}

/// The codes of the answers the host gives itself (server.rs), and hyper's 431.
pub const HOST_CODES: [&str; 6] = [
    "bad_request",
    "request_too_large",
    "overloaded",
    "component_error",
    "component_timeout",
    "headers_too_large",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    /// `jwks`, `gateway`, `backend` or `other`, from the request path.
    service: &'static str,
    /// `2xx`...`5xx`, or `error` (no answer: refused, timed out, reset).
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    upstream: Family<UpstreamLabels, Counter>,
    upstream_latency: Family<ServiceLabels, Histogram>,
    token_cache: Family<CacheLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The counters the server moves; [`Metrics::watch`] adds what the pool and cache count.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Process));
        let ours = registry.sub_registry_with_prefix(PREFIX);
        ours.register(
            "build",
            "This build of the host (the component's crate has the same version)",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        ours.register(
            "requests",
            "Requests answered, by status, the credential the component saw and the error code (431: refused by the HTTP server before it read a request)",
            requests.clone(),
        );
        let latency = latency_histogram();
        ours.register(
            "request_duration_seconds",
            "Time from the request's headers to its answer",
            latency.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        ours.register(
            "upstream_requests",
            "Calls the component made to Wacht that left the host (JWKS answered from the shared cache excluded)",
            upstream.clone(),
        );
        let upstream_latency = Family::<ServiceLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        ours.register(
            "upstream_request_duration_seconds",
            "Time from sending a call to Wacht to its answer's headers (or its failure), by service",
            upstream_latency.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        ours.register(
            "token_cache_lookups",
            "Session tokens looked up in the component's verified-token cache, by result",
            token_cache.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            upstream,
            upstream_latency,
            token_cache,
        }
    }

    /// Reads the pool's instances, the JWKS cache's fetches and the readiness check's last
    /// success at every scrape.
    pub(crate) fn watch(
        &mut self,
        pool: InstancePool,
        jwks: Arc<JwksCache>,
        readiness: Option<Arc<JwksReadiness>>,
    ) {
        self.registry
            .sub_registry_with_prefix(PREFIX)
            .register_collector(Box::new(Live {
                pool,
                jwks,
                readiness,
            }));
    }

    /// What counts the guest's outgoing calls (before the pool, which needs it, exists).
    pub(crate) fn counted(&self, inner: Option<Arc<dyn Outbound>>) -> Counted {
        Counted {
            inner,
            upstream: self.upstream.clone(),
            latency: self.upstream_latency.clone(),
        }
    }

    /// An answer the HTTP server gave before any request reached us (hyper's 431): counted,
    /// with no latency (there is no request to time) and no credential.
    pub(crate) fn refused(&self, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                status,
                credential: "none",
                error: "headers_too_large",
            })
            .inc();
    }

    /// One answered request. `host_error` is the host's code when the host answered itself.
    pub(crate) fn request(
        &self,
        status: u16,
        component: ComponentLine,
        host_error: Option<&'static str>,
        elapsed: Duration,
    ) {
        let error = match host_error.or(component.error) {
            Some(code)
                if HOST_CODES.contains(&code) || wacht_admin::error::CODES.contains(&code) =>
            {
                code
            }
            Some(_) => "other",
            None if (200..300).contains(&status) => "none",
            // A non-2xx without a code the host could read.
            None => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                status,
                credential: component.credential.unwrap_or("none"),
                error,
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
        if let Some(result) = component.token_cache {
            self.token_cache
                .get_or_create(&CacheLabels { result })
                .inc();
        }
    }

    /// The Prometheus text format (0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts the guest's outgoing calls, then passes them on (to `inner`, else the network).
pub(crate) struct Counted {
    inner: Option<Arc<dyn Outbound>>,
    upstream: Family<UpstreamLabels, Counter>,
    latency: Family<ServiceLabels, Histogram>,
}

impl Outbound for Counted {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutboundFuture {
        let service = service_of(request.uri().path());
        let sent = match &self.inner {
            Some(inner) => inner.send(request, options),
            None => crate::send_direct(request, options),
        };
        let (upstream, latency) = (self.upstream.clone(), self.latency.clone());
        Box::pin(async move {
            let started = Instant::now();
            let result = sent.await;
            latency
                .get_or_create(&ServiceLabels { service })
                .observe(started.elapsed().as_secs_f64());
            let outcome = match &result {
                Ok((response, _)) => match response.status().as_u16() {
                    200..=299 => "2xx",
                    300..=399 => "3xx",
                    400..=499 => "4xx",
                    _ => "5xx",
                },
                Err(_) => "error",
            };
            upstream
                .get_or_create(&UpstreamLabels { service, outcome })
                .inc();
            result
        })
    }
}

fn service_of(path: &str) -> &'static str {
    if path.ends_with(wacht_admin::handler::JWKS_PATH) {
        "jwks"
    } else if path.ends_with(wacht_admin::gateway::CHECK_PATH) {
        "gateway"
    } else if path.ends_with("/users") {
        "backend"
    } else {
        "other"
    }
}

/// What the pool, the JWKS cache and the readiness check count themselves, read at every
/// scrape.
struct Live {
    pool: InstancePool,
    jwks: Arc<JwksCache>,
    readiness: Option<Arc<JwksReadiness>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Live")
    }
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.pool.stats();
        let mut instances = encoder.encode_descriptor(
            "instances",
            "Component instances, by state (busy: serving a request)",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("busy", stats.busy as i64), ("idle", stats.idle as i64)] {
            ConstGauge::new(n).encode(instances.encode_family(&[("state", state)])?)?;
        }
        let capacity = encoder.encode_descriptor(
            "instance_capacity",
            "Instances the pool may hold (--instances): requests in flight at most",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(self.pool.options().size as u64).encode(capacity)?;
        if let Some(readiness) = &self.readiness {
            let last = encoder.encode_descriptor(
                "jwks_last_success_timestamp_seconds",
                "When the upstream made the newest usable JWKS /readyz loaded (its Age counted), as a Unix time; 0 before the first",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(readiness.last_success_unix().unwrap_or(0)).encode(last)?;
        }
        let mut fetches = encoder.encode_descriptor(
            "jwks_fetches",
            "JWKS requests of the instances, by where the answer came from",
            None,
            MetricType::Counter,
        )?;
        for (source, n) in [
            ("upstream", self.jwks.upstream_fetches()),
            ("shared_cache", self.jwks.hits()),
        ] {
            ConstCounter::new(n).encode(fetches.encode_family(&[("source", source)])?)?;
        }
        Ok(())
    }
}

/// The standard process metrics (client_golang's names), from metrics-process's snapshot of
/// this process at every scrape.
struct Process;

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Process")
    }
}

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let now = metrics_process::collector::collect();
        if let Some(cpu) = now.cpu_seconds_total {
            let metric = encoder.encode_descriptor(
                // The encoder adds `_total` to a counter's name.
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(metric)?;
        }
        for (name, help, value) in [
            (
                "process_open_fds",
                "Number of open file descriptors",
                now.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors (0: unlimited)",
                now.max_fds,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                now.virtual_memory_bytes,
            ),
            (
                "process_virtual_memory_max_bytes",
                "Maximum amount of virtual memory available in bytes (0: unlimited)",
                now.virtual_memory_max_bytes,
            ),
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                now.resident_memory_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                now.start_time_seconds,
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                now.threads,
            ),
        ] {
            if let Some(value) = value {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(value).encode(metric)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every family an operator alerts on is in the output before any request, with the
    /// process metrics beside ours.
    #[test]
    fn the_output_has_build_info_process_metrics_and_long_buckets() {
        let metrics = Metrics::new();
        metrics.request(200, ComponentLine::default(), None, Duration::from_secs(45));
        let refused = ComponentLine {
            error: Some("invalid_token"),
            credential: Some("session"),
            ..ComponentLine::default()
        };
        metrics.request(401, refused, None, Duration::from_millis(1));
        metrics.request(
            503,
            ComponentLine::default(),
            Some("overloaded"),
            Duration::ZERO,
        );
        metrics.refused(431);
        let text = metrics.encode();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            text.contains(&format!(
                "wacht_admin_build_info{{version=\"{version}\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(text.contains("\nprocess_start_time_seconds "), "{text}");
        // A 45 s request is below the 65.5 s bucket and above the 32.8 s one (beside the two
        // short ones).
        assert!(
            text.contains("wacht_admin_request_duration_seconds_bucket{le=\"32.768\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("wacht_admin_request_duration_seconds_bucket{le=\"65.536\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "wacht_admin_requests_total{status=\"431\",credential=\"none\",error=\"headers_too_large\"} 1"
            ),
            "{text}"
        );
        for line in [
            "wacht_admin_requests_total{status=\"200\",credential=\"none\",error=\"none\"} 1",
            "wacht_admin_requests_total{status=\"401\",credential=\"session\",error=\"invalid_token\"} 1",
            "wacht_admin_requests_total{status=\"503\",credential=\"none\",error=\"overloaded\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn services_are_told_by_path() {
        assert_eq!(service_of("/.well-known/jwks.json"), "jwks");
        assert_eq!(service_of("/prefix/v1/authz/check"), "gateway");
        assert_eq!(service_of("/users"), "backend");
        assert_eq!(service_of("/elsewhere"), "other");
    }
}
