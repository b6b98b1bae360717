//! The HTTP front of `wacht-admin-host`: hyper (HTTP/1.1, keep-alive) in front of an
//! [`InstancePool`], with bounded requests and connections, JSON answers for host-side failures,
//! one access event per request, the guest's stderr forwarded line by line, and a graceful
//! shutdown.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::{Body as _, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::admin::Admin;
use crate::demo::Demo;
use crate::environment;
use crate::log::{Access, ComponentLine, Logger};
use crate::metrics::Metrics;
use crate::outbound::KeepAlive;
use crate::readiness::JwksReadiness;
use crate::settings::Settings;
use crate::{
    Component, EngineOptions, FailureKind, InstancePool, JwksCache, Outbound, PoolOptions,
};

/// A running server. Dropping it stops accepting at once; [`Server::shutdown`] drains first.
pub struct Server {
    addr: SocketAddr,
    pool: InstancePool,
    jwks_cache: Arc<JwksCache>,
    demo: Option<Demo>,
    /// The user's settings demo mode replaced.
    ignored: Vec<String>,
    settings: Settings,
    load_time: Duration,
    metrics: Arc<Metrics>,
    logger: Logger,
    admin_addr: Option<SocketAddr>,
    admin_task: Option<JoinHandle<anyhow::Result<()>>>,
    /// Keeps `/readyz`'s JWKS check current (only with `--admin-listen`).
    readiness_task: Option<JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Checks the environment (unknown `WACHT_*` names are logged; a configuration the
    /// component would refuse is an [`environment::ConfigRefused`] error), loads the component
    /// (through the compiled-code cache), starts the stand-in in demo mode, instantiates
    /// `settings.prewarm` instances, binds and starts serving.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        let logger = Logger::new(
            settings.log_format,
            settings.access_log.clone(),
            settings.guest_log.clone(),
            settings.banner_log.clone(),
        );
        for note in &settings.env_notes {
            if note.is_warning() {
                logger.warn(&note.to_string());
            } else {
                logger.info(&note.to_string());
            }
        }
        let (demo, mut env, ignored) = if settings.is_demo() {
            let demo = tokio::task::spawn_blocking(Demo::start).await??;
            let (env, ignored) = demo.env(&settings.wacht_env);
            (Some(demo), env, ignored)
        } else {
            (None, settings.wacht_env.clone(), Vec::new())
        };
        // The front replaces `x-forwarded-for` with the peer address (unless
        // --trust-forwarded), so the component may take the caller's address from it.
        if !env.iter().any(|(k, _)| k == "WACHT_CLIENT_IP_HEADER") {
            env.push(("WACHT_CLIENT_IP_HEADER".into(), "x-forwarded-for".into()));
        }
        // The component's line in the host's format, unless its variable says otherwise: a
        // JSON host then merges it into its own line.
        if !env.iter().any(|(k, _)| k == "WACHT_LOG_FORMAT") {
            let format = match settings.log_format {
                crate::settings::LogFormat::Text => "text",
                crate::settings::LogFormat::Json => "json",
            };
            env.push(("WACHT_LOG_FORMAT".into(), format.into()));
        }
        // Exactly what every instance will parse: refused here, the server never starts
        // (rather than answering every request 500).
        let config = environment::check_config(&env)?;
        let jwks_cache = Arc::new(JwksCache::new(settings.jwks.ttl, settings.jwks.retry));
        let mut metrics = Metrics::new();
        let keep_alive = match settings.keep_alive {
            true => Some(Arc::new(KeepAlive::new(Duration::from_secs(10))?) as Arc<dyn Outbound>),
            false => None,
        };
        let outbound: Arc<dyn Outbound> = Arc::new(metrics.counted(keep_alive));
        let engine = EngineOptions {
            cache_dir: settings.cache_dir.clone(),
            pooling: Some(u32::try_from(settings.instances).context("too many instances")?),
            request_timeout: settings.request_timeout,
            max_memory_bytes: settings.max_memory_bytes,
            jwks_cache: Some(jwks_cache.clone()),
            outbound: Some(outbound.clone()),
            ..EngineOptions::default()
        };
        let wasm = settings.wasm.clone();
        let started = Instant::now();
        let component = tokio::task::spawn_blocking(move || {
            Component::load(&wasm, &engine).context(
                "cannot load the component (build it with `make build`, or point --wasm / \
                 WACHT_ADMIN_WASM at it)",
            )
        })
        .await??;
        let load_time = started.elapsed();
        let pool_options = PoolOptions {
            size: settings.instances,
            max_requests_per_instance: settings.max_requests_per_instance,
            queue_timeout: settings.queue_timeout,
        };
        let pool = InstancePool::new(component, env, pool_options)?;
        // Only `/readyz` reads it, so only with --admin-listen.
        let readiness = match (settings.admin_listen, jwks_url(&config)) {
            (Some(_), Some(url)) => Some(Arc::new(JwksReadiness::new(
                url,
                jwks_cache.clone(),
                outbound.clone(),
                settings.jwks,
                Duration::from_millis(config.upstream_timeout_ms),
            ))),
            _ => None,
        };
        metrics.watch(pool.clone(), jwks_cache.clone(), readiness.clone());
        let metrics = Arc::new(metrics);
        pool.prewarm(settings.prewarm).await?;

        let (mut admin_addr, mut admin_task) = (None, None);
        if let Some(listen) = settings.admin_listen {
            let listener = TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen} (--admin-listen)"))?;
            admin_addr = Some(listener.local_addr()?);
            let admin = Admin {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
            };
            admin_task = Some(tokio::spawn(
                Arc::new(admin).serve(listener, logger.clone()),
            ));
        }
        let readiness_task = readiness.map(|r| tokio::spawn(r.run()));

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let front = Arc::new(Front {
            pool: pool.clone(),
            local: addr,
            max_body_bytes: settings.max_body_bytes,
            trust_forwarded: settings.trust_forwarded,
            logger: logger.clone(),
            metrics: metrics.clone(),
            request_timeout: settings.request_timeout,
            seq: AtomicU64::new(0),
        });
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(settings.header_read_timeout)
            .max_header_size(settings.max_header_bytes)
            .keep_alive(true);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let limits = (settings.max_connections, settings.shutdown_grace);
        let task = tokio::spawn(accept_loop(listener, front, http, limits, shutdown_rx));
        Ok(Server {
            addr,
            pool,
            jwks_cache,
            demo,
            ignored,
            settings,
            load_time,
            metrics,
            logger,
            admin_addr,
            admin_task,
            readiness_task,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ip:port` to reach the server from this machine (loopback for a wildcard bind).
    pub fn url(&self) -> String {
        url_of(self.addr)
    }

    pub fn demo(&self) -> Option<&Demo> {
        self.demo.as_ref()
    }

    pub fn pool(&self) -> &InstancePool {
        &self.pool
    }

    pub fn jwks_cache(&self) -> &JwksCache {
        &self.jwks_cache
    }

    /// Where `--admin-listen` serves `/healthz`, `/readyz` and `/metrics`.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// What the binary prints at start-up: the mode, where it listens, and in demo mode the
    /// curl lines to try and how to point it at a real deployment.
    pub fn banner(&self) -> String {
        let (url, s) = (self.url(), &self.settings);
        let cache = match &s.cache_dir {
            Some(dir) => format!("compiled-code cache {}", dir.display()),
            None => "no compiled-code cache".to_string(),
        };
        let mut out = format!(
            "wacht-admin-host: {} loaded in {} ms ({cache}); {} reused instances, request timeout {} s\n",
            s.wasm.display(),
            self.load_time.as_millis(),
            s.instances,
            s.request_timeout.as_secs()
        );
        match &self.demo {
            Some(demo) => out.push_str(&demo.banner(&url, self.addr.ip(), &self.ignored)),
            None => {
                let backend = s
                    .wacht_env
                    .iter()
                    .find(|(k, _)| k == "WACHT_BACKEND_API_URL");
                let backend = backend.map_or("https://api.wacht.dev (default)", |(_, v)| v);
                let _ = writeln!(
                    out,
                    "Serving {url}/admin/users for the Wacht deployment of WACHT_PUBLISHABLE_KEY; backend API {backend}."
                );
            }
        }
        if let Some(admin) = self.admin_addr.map(url_of) {
            let _ = writeln!(
                out,
                "\nOperations on {admin} (--admin-listen):\n\n  curl -s {admin}/metrics\n  curl -s {admin}/readyz    # and /healthz\n"
            );
        }
        out
    }

    /// The banner as one log event: its message and fields (the same facts as
    /// [`Server::banner`], the curl lines among them).
    pub fn banner_event(&self) -> (String, serde_json::Value) {
        let (url, s) = (self.url(), &self.settings);
        let mut fields = serde_json::json!({
            "url": format!("{url}/admin/users"),
            "wasm": s.wasm.display().to_string(),
            "load_ms": self.load_time.as_millis() as u64,
            "cache_dir": s.cache_dir.as_ref().map(|d| d.display().to_string()),
            "instances": s.instances,
            "request_timeout_secs": s.request_timeout.as_secs(),
        });
        let message = match &self.demo {
            Some(demo) => {
                crate::demo::banner_fields(demo, &url, &self.ignored, &mut fields);
                format!(
                    "DEMO MODE: serving {url}/admin/users against a stand-in Wacht \
                     (WACHT_API_KEY is not set); try the curl_session and curl_api_key lines"
                )
            }
            None => {
                let backend = s
                    .wacht_env
                    .iter()
                    .find(|(k, _)| k == "WACHT_BACKEND_API_URL")
                    .map(|(_, v)| v.as_str());
                fields["backend_api_url"] = backend
                    .unwrap_or(wacht_admin::config::DEFAULT_BACKEND_API_URL)
                    .into();
                format!("serving {url}/admin/users")
            }
        };
        if let Some(admin) = self.admin_addr.map(url_of) {
            fields["admin_url"] = admin.clone().into();
            fields["curl_metrics"] = format!("curl -s {admin}/metrics").into();
            fields["curl_readyz"] = format!("curl -s {admin}/readyz").into();
        }
        (message, fields)
    }

    /// Writes the banner: [`Server::banner`] in the text format, [`Server::banner_event`] in
    /// JSON.
    pub fn announce(&self) {
        let (message, fields) = self.banner_event();
        self.logger.banner(&self.banner(), &message, &fields);
    }

    /// The server's log: for the binary's own messages (signals, shutdown).
    pub fn logger(&self) -> &Logger {
        &self.logger
    }

    /// Stops accepting, lets in-flight requests finish (up to the shutdown grace), and returns
    /// once every connection is closed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.stopped().await
    }

    /// Resolves when the accept loop ends (after [`Server::shutdown`], or a fatal error).
    pub async fn stopped(&mut self) -> anyhow::Result<()> {
        match self.task.as_mut() {
            Some(task) => {
                let result = task.await;
                self.task = None;
                result?
            }
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in [self.task.take(), self.admin_task.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
        if let Some(task) = self.readiness_task.take() {
            task.abort();
        }
    }
}

/// `http://ip:port` to reach `addr` from this machine (loopback for a wildcard bind).
pub(crate) fn url_of(addr: SocketAddr) -> String {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    format!("http://{addr}")
}

/// Where the component fetches its keys for this configuration: none when session tokens are
/// not configured (no publishable key) or an inline JWKS needs no fetch.
fn jwks_url(config: &wacht_admin::config::Config) -> Option<String> {
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

/// A listener that keeps at most `max_connections` of its connections open: at the cap it stops
/// accepting, and further clients wait in the kernel backlog until one closes. The API listener
/// and the operations listener (`--admin-listen`) both accept through it.
pub(crate) struct CappedListener {
    listener: TcpListener,
    open: Arc<tokio::sync::Semaphore>,
    /// Names the listener in a failure line.
    name: &'static str,
}

impl CappedListener {
    pub(crate) fn new(listener: TcpListener, max_connections: usize, name: &'static str) -> Self {
        CappedListener {
            listener,
            open: Arc::new(tokio::sync::Semaphore::new(max_connections)),
            name,
        }
    }

    /// The next connection, once one of the `max_connections` slots is free. Serve it with
    /// [`CappedListener::spawn`], which frees the slot when the connection ends.
    pub(crate) async fn accept(
        &self,
        logger: &Logger,
    ) -> anyhow::Result<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
        let slot = self.open.clone().acquire_owned().await?;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => return Ok((stream, peer, slot)),
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    logger.failure(0, &format!("{}: accept failed: {e}", self.name));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// Runs `connection` on a task of its own; its slot is freed when it ends, and `ended`
    /// sees how.
    pub(crate) fn spawn<F>(
        slot: OwnedSemaphorePermit,
        connection: F,
        ended: impl FnOnce(F::Output) + Send + 'static,
    ) where
        F: Future + Send + 'static,
    {
        tokio::spawn(async move {
            ended(connection.await);
            drop(slot);
        });
    }
}

async fn accept_loop(
    listener: TcpListener,
    front: Arc<Front>,
    http: hyper::server::conn::http1::Builder,
    (max_connections, grace): (usize, Duration),
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let listener = CappedListener::new(listener, max_connections, "API listener");
    loop {
        let (stream, peer, slot) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept(&front.logger) => accepted?,
        };
        let _ = stream.set_nodelay(true);
        let metrics = front.metrics.clone();
        let front = front.clone();
        let service = hyper::service::service_fn(move |req| {
            let front = front.clone();
            async move { Ok::<_, Infallible>(front.respond(req, peer).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        CappedListener::spawn(slot, connection, move |result| {
            // hyper answered 431 itself: the head was over --max-header-bytes, so no request
            // reached `respond`. (Its other "too large", 414 for a URI over 64 KiB, cannot come
            // first: the 32 KiB head limit is checked before the URI's length.)
            if let Err(e) = result
                && e.is_parse_too_large()
            {
                metrics.refused(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.as_u16());
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            front.logger.failure(0, "shutdown grace period over, closing the remaining connections");
        }
    }
    Ok(())
}

/// What every request needs.
struct Front {
    pool: InstancePool,
    local: SocketAddr,
    max_body_bytes: usize,
    trust_forwarded: bool,
    logger: Logger,
    metrics: Arc<Metrics>,
    request_timeout: Duration,
    seq: AtomicU64,
}

/// What the access event and the metrics learn about a request besides its reply.
#[derive(Default)]
struct Note {
    component: ComponentLine,
    instance: Option<u64>,
    uses: Option<u64>,
    error: Option<&'static str>,
}

type Reply = Response<Full<Bytes>>;

impl Front {
    async fn respond(&self, mut req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let started = Instant::now();
        let id = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let method = printable(req.method().as_str(), 16);
        let path = printable(req.uri().path(), 128);
        // Decided here, as the component decides it, and handed to the component in the
        // request: the host's own answers and the component's carry the same id.
        let request_id = request_id(req.headers(), id);
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            req.headers_mut().insert(REQUEST_ID, value);
        }
        let (mut reply, note) = match self.dispatch(req, peer, id).await {
            Ok(served) => served,
            Err((status, code, message)) => {
                let mut reply = api_error(status, code, &message, &request_id);
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    reply
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                (
                    reply,
                    Note {
                        error: Some(code),
                        ..Note::default()
                    },
                )
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            reply.headers_mut().insert(REQUEST_ID, value);
        }
        let elapsed = started.elapsed();
        let status = reply.status().as_u16();
        self.metrics
            .request(status, note.component, note.error, elapsed);
        self.logger.access(&Access {
            id,
            request_id: &request_id,
            peer,
            method: &method,
            path: &path,
            status,
            bytes: reply.body().size_hint().exact().unwrap_or(0),
            ms: elapsed.as_secs_f64() * 1e3,
            component: note.component,
            instance: note.instance,
            uses: note.uses,
            error: note.error,
        });
        reply
    }

    /// The guest's reply, or the host's error answer (status, code, message).
    async fn dispatch(
        &self,
        req: Request<Incoming>,
        peer: SocketAddr,
        id: u64,
    ) -> Result<(Reply, Note), (StatusCode, &'static str, String)> {
        let limit = self.max_body_bytes;
        let too_large = || {
            let message = format!("The request body is larger than {limit} bytes.");
            (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large", message)
        };
        if req.body().size_hint().lower() > limit as u64 {
            return Err(too_large());
        }
        let (mut parts, body) = req.into_parts();
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
            Err(_) => {
                let message = "The request body could not be read.".to_string();
                return Err((StatusCode::BAD_REQUEST, "bad_request", message));
            }
        };
        // wasi-http takes the authority from the URI, else the Host header: without a usable
        // one (HTTP/1.0), the guest sees our address.
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if parts.uri.authority().is_none()
            && host.is_none_or(|h| h.parse::<http::uri::Authority>().is_err())
        {
            let local = HeaderValue::from_str(&self.local.to_string());
            parts
                .headers
                .insert(header::HOST, local.map_err(|_| bad_target())?);
        }
        // The component reads the caller's address from these headers: only we know it.
        if !self.trust_forwarded {
            parts.headers.remove("cf-connecting-ip");
            let ip = HeaderValue::from_str(&peer.ip().to_string()).map_err(|_| bad_target())?;
            parts.headers.insert("x-forwarded-for", ip);
        }

        match self
            .pool
            .handle(Request::from_parts(parts, Full::new(body)))
            .await
        {
            Ok(served) => {
                let handled = served.handled;
                self.forward_guest_output(id, &handled.stderr, &handled.stdout);
                let note = Note {
                    component: ComponentLine::find(&handled.stderr),
                    instance: Some(served.instance.id),
                    uses: Some(served.instance.uses),
                    error: None,
                };
                Ok((handled.response.map(Full::new), note))
            }
            Err(failure) => {
                self.forward_guest_output(id, &failure.stderr, "");
                let error = one_line(&format!("{:#}", failure.error), 2048);
                self.logger.failure(id, &format!("failed: {error}"));
                Err(match failure.kind {
                    FailureKind::Busy => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "Every instance of the component is busy; retry shortly.".to_string(),
                    ),
                    FailureKind::Timeout => (
                        StatusCode::GATEWAY_TIMEOUT,
                        "component_timeout",
                        format!(
                            "The component did not answer within {} s.",
                            self.request_timeout.as_secs()
                        ),
                    ),
                    FailureKind::Failed => (
                        StatusCode::BAD_GATEWAY,
                        "component_error",
                        "The component failed while handling the request.".to_string(),
                    ),
                })
            }
        }
    }

    fn forward_guest_output(&self, id: u64, stderr: &str, stdout: &str) {
        for (prefix, text) in [("", stderr), ("stdout: ", stdout)] {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                self.logger
                    .guest(id, &format!("{prefix}{}", printable(line, 2048)));
            }
        }
    }
}

fn bad_target() -> (StatusCode, &'static str, String) {
    let message = "The request target is not valid.".to_string();
    (StatusCode::BAD_REQUEST, "bad_request", message)
}

/// The request id of a request: the caller's `X-Request-Id` when the component would keep it,
/// else a fresh one (the component's own rule, `wacht_admin::trace`).
fn request_id(headers: &http::HeaderMap, seq: u64) -> String {
    let mut random = [0u8; wacht_admin::trace::RANDOM_BYTES];
    // The request's number first: should the system's randomness fail, ids stay unique within
    // the process.
    for (slot, byte) in random.iter_mut().zip(seq.to_be_bytes()) {
        *slot = byte;
    }
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    wacht_admin::trace::Trace::from_headers(headers, &random).request_id
}

const REQUEST_ID: http::header::HeaderName = http::header::HeaderName::from_static("x-request-id");

/// An error answer of the API, with its request id: `{"error", "message", "request_id"}`, as
/// the component answers its own.
fn api_error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Reply {
    let body = serde_json::json!({ "error": code, "message": message, "request_id": request_id })
        .to_string();
    reply(status, "application/json", body)
}

/// `{"error": code, "message": text}`: the operations endpoints' answers.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    reply(status, "application/json", body)
}

/// Every answer the host writes itself (errors, `--admin-listen`'s endpoints): never cached,
/// never sniffed, as the component's own answers.
pub(crate) fn reply(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

/// A multi-line message (wasmtime's wasm backtraces) on one line: lines joined by " | ".
fn one_line(s: &str, max: usize) -> String {
    let joined: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    printable(&joined.join(" | "), max)
}

/// One line, at most `max` characters, control and non-ASCII characters as `?`.
fn printable(s: &str, max: usize) -> String {
    let printable = |c: char| c.is_ascii_graphic() || c == ' ';
    s.chars()
        .take(max)
        .map(|c| if printable(c) { c } else { '?' })
        .collect()
}
