//! `--admin-listen`: the operations endpoints, on an address of their own so that they are never
//! exposed where `/admin/users` is.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 once the component is loaded and, when session tokens are configured,
//!   a JWKS answer younger than its TTL is in the shared cache (fetched now if not: the probe
//!   itself keeps it fresh); else 503 with the reason.
//! - `GET /metrics`: the Prometheus text format ([`crate::metrics`]).
//!
//! Connections are capped as the API listener's are ([`CappedListener`]), at [`MAX_CONNECTIONS`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::jwks::Held;
use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::server::{CappedListener, json_error, reply};
use crate::verifier::Ring;
use crate::{JwksCache, Outbound, WasiBody};

/// A readiness probe waits this long for the JWKS before answering 503.
const JWKS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections at most, as the API listener's `--max-connections` but fixed: probes and
/// scrapers use a few, and no one should need to tune it. Idle ones close after the 10 s header
/// timeout, so a stuck client holds a slot no longer than that.
const MAX_CONNECTIONS: usize = 16;

pub(crate) struct Admin {
    pub metrics: Arc<Metrics>,
    pub jwks_cache: Arc<JwksCache>,
    /// Where the component fetches its keys, when session tokens are configured (and no inline
    /// JWKS makes the fetch unneeded).
    pub jwks_url: Option<String>,
    pub outbound: Arc<dyn Outbound>,
}

impl Admin {
    /// The JWKS URL the component will fetch for this environment, if any.
    pub fn jwks_url(env: &[(String, String)]) -> Option<String> {
        let config = wacht_admin::config::Config::from_vars(env.iter().cloned(), &Ring).ok()?;
        if config.inline_jwks.is_some() {
            return None;
        }
        let frontend = config.frontend_api().ok()?;
        Some(format!(
            "{}{}{}",
            frontend.origin(),
            frontend.path,
            wacht_admin::handler::JWKS_PATH
        ))
    }

    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        logger: crate::log::Logger,
    ) -> anyhow::Result<()> {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .max_header_size(16 * 1024);
        let listener = CappedListener::new(listener, MAX_CONNECTIONS, "admin listener");
        loop {
            let (stream, _, slot) = listener.accept(&logger).await?;
            let admin = self.clone();
            let service = hyper::service::service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(admin.respond(req).await) }
            });
            CappedListener::spawn(slot, http.serve_connection(TokioIo::new(stream), service));
        }
    }

    async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Only GET is served here.",
            );
        }
        match req.uri().path() {
            "/healthz" => reply(
                StatusCode::OK,
                "application/json",
                r#"{"status":"ok"}"#.into(),
            ),
            "/readyz" => match self.ready().await {
                Ok(()) => reply(
                    StatusCode::OK,
                    "application/json",
                    r#"{"status":"ready"}"#.into(),
                ),
                Err(reason) => json_error(StatusCode::SERVICE_UNAVAILABLE, "not_ready", &reason),
            },
            "/metrics" => reply(StatusCode::OK, CONTENT_TYPE, self.metrics.encode()),
            _ => json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                "Try /healthz, /readyz or /metrics.",
            ),
        }
    }

    /// The component is loaded (the server would not run otherwise); the JWKS is checked here.
    async fn ready(&self) -> Result<(), String> {
        let Some(url) = &self.jwks_url else {
            return Ok(());
        };
        if self.jwks_cache.is_fresh(url).await {
            return Ok(());
        }
        let fetched = tokio::time::timeout(JWKS_PROBE_TIMEOUT, self.fetch_jwks(url))
            .await
            .map_err(|_| format!("the JWKS did not answer within {JWKS_PROBE_TIMEOUT:?}"))?;
        match fetched {
            Ok(StatusCode::OK) => Ok(()),
            Ok(status) => Err(format!("the JWKS answered {status}")),
            Err(e) => Err(format!("the JWKS could not be fetched: {e:#}")),
        }
    }

    async fn fetch_jwks(&self, url: &str) -> anyhow::Result<StatusCode> {
        let body: WasiBody = Empty::new().map_err(|never| match never {}).boxed_unsync();
        let request = Request::get(url)
            .header(header::USER_AGENT, wacht_admin::handler::USER_AGENT)
            .header(header::ACCEPT, "application/json")
            .body(body)
            .context("the JWKS URL")?;
        let outbound = self.outbound.clone();
        let (response, _) = self
            .jwks_cache
            .clone()
            .fetch(request, None, Held::default(), move |request, options| {
                outbound.send(request, options)
            })
            .await?;
        Ok(response.status())
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::log::Logger;
    use crate::settings::{LogFormat, LogSink};

    /// `GET /healthz` on `stream`; the status line of the answer, whenever it comes.
    async fn healthz(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: ops.test\r\n\r\n")
            .await
            .unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before an answer");
            head.extend_from_slice(&buf[..n]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        head.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_until_one_closes() {
        let metrics = Metrics::new();
        let outbound = Arc::new(metrics.counted(None));
        let admin = Arc::new(Admin {
            metrics: Arc::new(metrics),
            jwks_cache: Arc::new(JwksCache::default()),
            jwks_url: None,
            outbound,
        });
        let (sink, _) = LogSink::memory();
        let logger = Logger::new(LogFormat::Text, sink.clone(), sink);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = tokio::spawn(admin.serve(listener, logger));

        // MAX_CONNECTIONS clients, each served and kept open (keep-alive).
        let mut open = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut client = TcpStream::connect(addr).await.unwrap();
            assert_eq!(healthz(&mut client).await, "HTTP/1.1 200 OK");
            open.push(client);
        }
        // One more: the kernel takes the connection, but nothing reads its request.
        let mut waiting = TcpStream::connect(addr).await.unwrap();
        let answer = tokio::spawn(async move {
            let status = healthz(&mut waiting).await;
            (status, waiting)
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !answer.is_finished(),
            "a connection past the cap was served"
        );

        // One closes: the waiting one is served, and the listener goes on serving.
        drop(open.pop());
        let (status, waiting) = tokio::time::timeout(Duration::from_secs(5), answer)
            .await
            .expect("the waiting connection was not served after one closed")
            .unwrap();
        assert_eq!(status, "HTTP/1.1 200 OK");
        drop(waiting);
        for _ in 0..3 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let status = tokio::time::timeout(Duration::from_secs(5), healthz(&mut client))
                .await
                .expect("a new connection was not served after the cap was reached");
            assert_eq!(status, "HTTP/1.1 200 OK");
        }
        assert!(!serving.is_finished());
        serving.abort();
    }
}
