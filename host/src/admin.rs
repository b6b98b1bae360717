//! `--admin-listen`: the operations endpoints, on an address of their own so that they are never
//! exposed where `/admin/users` is.
//!
//! - `GET /healthz`: 200 while the process serves.
//! - `GET /readyz`: 200 when the server can serve: its configuration was accepted and the
//!   component loaded (it would not run otherwise) and, when session tokens are configured,
//!   a usable key set was loaded and is within the stale bound ([`crate::readiness`]); else 503
//!   with the reason. It never waits on a fetch.
//! - `GET /metrics`: the Prometheus text format ([`crate::metrics`]).
//!
//! Connections are capped as the API listener's are ([`CappedListener`]), at [`MAX_CONNECTIONS`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::metrics::{CONTENT_TYPE, Metrics};
use crate::readiness::JwksReadiness;
use crate::server::{CappedListener, json_error, reply};

/// Open connections at most, as the API listener's `--max-connections` but fixed: probes and
/// scrapers use a few, and no one should need to tune it. Idle ones close after the 10 s header
/// timeout, so a stuck client holds a slot no longer than that.
const MAX_CONNECTIONS: usize = 16;

pub(crate) struct Admin {
    pub metrics: Arc<Metrics>,
    /// The JWKS check, when session tokens are configured (and no inline JWKS makes the fetch
    /// unneeded).
    pub readiness: Option<Arc<JwksReadiness>>,
}

impl Admin {
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
                async move { Ok::<_, Infallible>(admin.respond(req)) }
            });
            CappedListener::spawn(
                slot,
                http.serve_connection(TokioIo::new(stream), service),
                |_| {},
            );
        }
    }

    fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
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
            "/readyz" => match self.ready() {
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

    /// The configuration and the component were checked before the server started; the JWKS
    /// check only reads what its background task found.
    fn ready(&self) -> Result<(), String> {
        match &self.readiness {
            Some(readiness) => readiness.check(),
            None => Ok(()),
        }
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
        let admin = Arc::new(Admin {
            metrics: Arc::new(Metrics::new()),
            readiness: None,
        });
        let (sink, _) = LogSink::memory();
        let logger = Logger::new(LogFormat::Text, sink.clone(), sink.clone(), sink);
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
