//! `--admin-listen`'s `/metrics`: prometheus-client counters the server moves as it serves, and
//! the pool's and JWKS cache's own counts read at scrape time.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::log::ComponentLine;
use crate::{InstancePool, JwksCache, Outbound, OutboundFuture, RequestOptions, WasiBody};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    status: u16,
    /// The component's word (`session`, `api_key`, `oauth_access_token`), or `none`.
    credential: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    /// `jwks`, `gateway`, `backend` or `other`, from the request path.
    service: &'static str,
    /// `2xx`...`5xx`, or `error` (no answer: refused, timed out, reset).
    outcome: &'static str,
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
        let mut registry = Registry::with_prefix("wacht_admin");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by status and by the credential the component saw",
            requests.clone(),
        );
        // 0.25 ms to about 4 s.
        let latency = Histogram::new(exponential_buckets(0.000_25, 2.0, 15));
        registry.register(
            "request_duration_seconds",
            "Time from the request's headers to its answer",
            latency.clone(),
        );
        let upstream = Family::<UpstreamLabels, Counter>::default();
        registry.register(
            "upstream_requests",
            "Calls the component made to Wacht that left the host (JWKS answered from the shared cache excluded)",
            upstream.clone(),
        );
        let token_cache = Family::<CacheLabels, Counter>::default();
        registry.register(
            "token_cache_lookups",
            "Session tokens looked up in the component's verified-token cache, by result",
            token_cache.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            upstream,
            token_cache,
        }
    }

    /// Reads the pool's busy/idle instances and the JWKS cache's fetches at every scrape.
    pub fn watch(&mut self, pool: InstancePool, jwks: Arc<JwksCache>) {
        self.registry
            .register_collector(Box::new(Live { pool, jwks }));
    }

    /// What counts the guest's outgoing calls (before the pool, which needs it, exists).
    pub(crate) fn counted(&self, inner: Option<Arc<dyn Outbound>>) -> Counted {
        Counted {
            inner,
            upstream: self.upstream.clone(),
        }
    }

    pub(crate) fn request(&self, status: u16, component: ComponentLine, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                status,
                credential: component.credential.unwrap_or("none"),
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
        let upstream = self.upstream.clone();
        Box::pin(async move {
            let result = sent.await;
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

/// What the pool and the JWKS cache count themselves, read at every scrape.
struct Live {
    pool: InstancePool,
    jwks: Arc<JwksCache>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_told_by_path() {
        assert_eq!(service_of("/.well-known/jwks.json"), "jwks");
        assert_eq!(service_of("/prefix/v1/authz/check"), "gateway");
        assert_eq!(service_of("/users"), "backend");
        assert_eq!(service_of("/elsewhere"), "other");
    }
}
