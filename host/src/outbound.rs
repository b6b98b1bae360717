//! Outgoing HTTP over kept-alive connections, shared by every instance.
//!
//! wasmtime-wasi-http's default `send_request` opens a new TCP connection (and for `https` a new
//! TLS session, with a freshly built root store) for every call the guest makes: a handshake per
//! request against `https://api.wacht.dev`. [`KeepAlive`] sends through one hyper-util pool
//! instead, over hyper-rustls with the Mozilla roots (as wasmtime's default does).
//!
//! The connect timeout is [`KeepAlive::new`]'s argument; the rest of the exchange is bounded by
//! the guest's own deadline (it drops the call) and the host's request timeout.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt as _;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::Error;

use crate::{Outbound, OutboundFuture, RequestOptions, WasiBody};

/// See the module documentation. Put it in [`crate::EngineOptions::outbound`].
#[derive(Clone, Debug)]
pub struct KeepAlive {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl KeepAlive {
    /// Idle connections are closed after 60 s; at most 32 idle per host.
    pub fn new(connect_timeout: Duration) -> anyhow::Result<KeepAlive> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let ring = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(ring)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(connector);
        Ok(KeepAlive { client })
    }
}

impl Outbound for KeepAlive {
    fn send(&self, request: http::Request<WasiBody>, _: Option<RequestOptions>) -> OutboundFuture {
        let client = self.client.clone();
        Box::pin(async move {
            let response = client.request(request).await.map_err(client_error)?;
            let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
            // The pool drives the connection: no I/O task to hand back.
            let io: Box<dyn std::future::Future<Output = _> + Send> = Box::new(async { Ok(()) });
            Ok((response, io))
        })
    }
}

/// The client's error as the `wasi:http` error code the guest maps to 502/504.
fn client_error(e: hyper_util::client::legacy::Error) -> Error {
    let causes = std::iter::successors(std::error::Error::source(&e), |s| s.source());
    if e.is_connect() {
        let mut causes = causes;
        return match causes.find_map(|s| s.downcast_ref::<std::io::Error>()) {
            Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                Error::ConnectionRefused
            }
            Some(io) if io.kind() == std::io::ErrorKind::TimedOut => Error::ConnectionTimeout,
            _ => Error::DestinationUnavailable,
        };
    }
    for hyper in causes.filter_map(|s| s.downcast_ref::<hyper::Error>()) {
        if hyper.is_incomplete_message() || hyper.is_closed() {
            return Error::ConnectionTerminated;
        }
        if hyper.is_parse() {
            return Error::HttpProtocolError;
        }
    }
    Error::InternalError(Some(e.to_string()))
}
