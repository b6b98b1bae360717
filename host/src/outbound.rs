//! Outgoing HTTP over kept-alive connections, shared by every instance.
//!
//! wasmtime-wasi-http's default `send_request` opens a new TCP connection (and for `https`, a
//! new TLS session with a freshly built root store) for every call the guest makes. On loopback
//! that costs tens of microseconds; against `https://api.wacht.dev` it is a TCP and a TLS
//! handshake per request. [`KeepAlive`] sends through one hyper connection pool instead
//! (HTTP/1.1, rustls with the Mozilla roots, as wasmtime's default does).
//!
//! Timeouts: the connect timeout is the [`KeepAlive::new`] argument; the rest of the exchange is
//! bounded by the guest's own deadline (it drops the call) and the host's request timeout.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use wasmtime_wasi_http::Error;

use crate::{Outbound, OutboundFuture, RequestOptions, WasiBody};

/// See the module documentation. Put it in [`crate::EngineOptions::outbound`].
#[derive(Clone)]
pub struct KeepAlive {
    client: Client<Connector, WasiBody>,
}

impl std::fmt::Debug for KeepAlive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeepAlive").finish_non_exhaustive()
    }
}

impl KeepAlive {
    /// Idle connections are closed after 60 s; at most 32 idle per host.
    pub fn new(connect_timeout: Duration) -> KeepAlive {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
        let tls = match tls {
            Ok(config) => Some(tokio_rustls::TlsConnector::from(Arc::new(config))),
            // Only if ring offered no protocol version: https calls then fail, http works.
            Err(_) => None,
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(Connector { http, tls });
        KeepAlive { client }
    }
}

impl Outbound for KeepAlive {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
    ) -> OutboundFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let response = client.request(request).await.map_err(client_error)?;
            let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
            // The pool drives the connection: no I/O task to hand back.
            Ok((
                response,
                Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

fn client_error(e: hyper_util::client::legacy::Error) -> Error {
    use std::error::Error as _;
    let mut causes: Vec<&(dyn std::error::Error + 'static)> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        causes.push(s);
        source = s.source();
    }
    if e.is_connect() {
        let refused = causes.iter().any(|s| {
            s.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        });
        let timed_out = causes.iter().any(|s| s.to_string().contains("timed out"));
        return if refused {
            Error::ConnectionRefused
        } else if timed_out {
            Error::ConnectionTimeout
        } else {
            Error::DestinationUnavailable
        };
    }
    for s in causes {
        if let Some(hyper) = s.downcast_ref::<hyper::Error>() {
            if hyper.is_incomplete_message() || hyper.is_closed() {
                return Error::ConnectionTerminated;
            }
            if hyper.is_parse() {
                return Error::HttpProtocolError;
            }
        }
    }
    Error::InternalError(Some(format!("{e}")))
}

/// Plain TCP for `http`, rustls over TCP for `https`.
#[derive(Clone)]
struct Connector {
    http: HttpConnector,
    tls: Option<tokio_rustls::TlsConnector>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let host = uri.host().unwrap_or_default().to_string();
        let tls = self.tls.clone();
        let connecting = self.http.call(uri);
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(Stream::Plain(tcp));
            }
            let tls = tls.ok_or("TLS is not available")?;
            // `[::1]` → `::1`: an IP address is a valid server name too.
            let name = rustls::pki_types::ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )?;
            let stream = tls.connect(name, tcp.into_inner()).await?;
            Ok(Stream::Tls(Box::new(TokioIo::new(stream))))
        })
    }
}

enum Stream {
    Plain(TokioIo<TcpStream>),
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for Stream {
    fn connected(&self) -> Connected {
        match self {
            Stream::Plain(tcp) => tcp.connected(),
            Stream::Tls(_) => Connected::new(),
        }
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
