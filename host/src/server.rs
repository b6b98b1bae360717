//! The HTTP front of `wacht-admin-host`: hyper (HTTP/1.1, keep-alive) in front of an
//! [`InstancePool`], with bounded requests and connections, JSON answers for host-side failures,
//! one access-log line per request, the guest's stderr forwarded line by line, and a graceful
//! shutdown.

use std::convert::Infallible;
use std::fmt::Write as _;
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
use tokio::net::TcpListener;

use crate::admin::Admin;
use crate::demo::Demo;
use crate::log::{Access, ComponentLine, Logger};
use crate::metrics::Metrics;
use crate::outbound::KeepAlive;
use crate::settings::Settings;
use crate::{Component, EngineOptions, FailureKind, InstancePool, JwksCache, PoolOptions};

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
    admin_addr: Option<SocketAddr>,
    admin_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("demo", &self.demo)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the component (through the compiled-code cache), starts the stand-in in demo mode,
    /// instantiates `settings.prewarm` instances, binds and starts serving.
    pub async fn start(settings: Settings) -> anyhow::Result<Server> {
        let (demo, mut env, ignored) = if settings.is_demo() {
            let demo = tokio::task::spawn_blocking(Demo::start).await??;
            let (env, ignored) = demo.env(&settings.wacht_env);
            (Some(demo), env, ignored)
        } else {
            (None, settings.wacht_env.clone(), Vec::new())
        };
        // This server replaces `x-forwarded-for` with the peer address (unless
        // --trust-forwarded), so the component may take the caller's address from it.
        if !env.iter().any(|(k, _)| k == "WACHT_CLIENT_IP_HEADER") {
            env.push(("WACHT_CLIENT_IP_HEADER".into(), "x-forwarded-for".into()));
        }
        let logger = Logger::new(
            settings.log_format,
            settings.access_log.clone(),
            settings.guest_log.clone(),
        );
        let jwks_cache = Arc::new(JwksCache::default());
        let mut metrics = Metrics::new();
        let keep_alive = settings
            .keep_alive
            .then(|| Arc::new(KeepAlive::new(Duration::from_secs(10))) as Arc<dyn crate::Outbound>);
        let outbound: Arc<dyn crate::Outbound> = Arc::new(metrics.counted(keep_alive));
        let engine = EngineOptions {
            cache_dir: settings.cache_dir.clone(),
            pooling: Some(u32::try_from(settings.instances).context("too many instances")?),
            request_timeout: settings.request_timeout,
            max_memory_bytes: settings.max_memory_bytes,
            jwks_cache: Some(jwks_cache.clone()),
            outbound: Some(outbound.clone()),
            ..EngineOptions::default()
        };
        let jwks_url = Admin::jwks_url(&env);
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
        let pool = InstancePool::new(
            component,
            env,
            PoolOptions {
                size: settings.instances,
                max_requests_per_instance: settings.max_requests_per_instance,
                queue_timeout: settings.queue_timeout,
            },
        )?;
        metrics.watch(pool.clone(), jwks_cache.clone());
        let metrics = Arc::new(metrics);
        pool.prewarm(settings.prewarm).await?;

        let (admin_addr, admin_task) = match settings.admin_listen {
            Some(listen) => {
                let listener = TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen} (--admin-listen)"))?;
                let addr = listener.local_addr()?;
                let admin = Arc::new(Admin {
                    metrics: metrics.clone(),
                    jwks_cache: jwks_cache.clone(),
                    jwks_url,
                    outbound,
                });
                (
                    Some(addr),
                    Some(tokio::spawn(admin.serve(listener, logger.clone()))),
                )
            }
            None => (None, None),
        };

        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let front = Arc::new(Front {
            pool: pool.clone(),
            local: addr,
            max_body_bytes: settings.max_body_bytes,
            trust_forwarded: settings.trust_forwarded,
            logger,
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
        let task = tokio::spawn(accept_loop(
            listener,
            front,
            http,
            settings.max_connections,
            settings.shutdown_grace,
            shutdown_rx,
        ));
        Ok(Server {
            addr,
            pool,
            jwks_cache,
            demo,
            ignored,
            settings,
            load_time,
            metrics,
            admin_addr,
            admin_task,
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

    /// How long compiling (or loading from the cache) and linking the component took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// What the binary prints at start-up: the mode, where it listens, and in demo mode the
    /// curl lines to try and how to point it at a real deployment.
    pub fn banner(&self) -> String {
        let url = self.url();
        let s = &self.settings;
        let mut out = String::new();
        let cache = match &s.cache_dir {
            Some(dir) => format!("compiled-code cache {}", dir.display()),
            None => "no compiled-code cache".to_string(),
        };
        let _ = writeln!(
            out,
            "wacht-admin-host: {} loaded in {} ms ({cache}); {} reused instances, request timeout {} s",
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
                    .find(|(k, _)| k == "WACHT_BACKEND_API_URL")
                    .map_or("https://api.wacht.dev (default)", |(_, v)| v.as_str());
                let _ = writeln!(
                    out,
                    "Serving {url}/admin/users for the Wacht deployment of WACHT_PUBLISHABLE_KEY; backend API {backend}."
                );
            }
        }
        if let Some(admin) = self.admin_addr {
            let admin = url_of(admin);
            let _ = writeln!(
                out,
                "\nOperations on {admin} (--admin-listen):\n\n  curl -s {admin}/metrics\n  curl -s {admin}/readyz    # and /healthz\n"
            );
        }
        out
    }

    /// Stops accepting, lets in-flight requests finish (up to the shutdown grace), and returns
    /// once every connection is closed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Resolves when the accept loop ends on its own (a fatal error).
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
    }
}

/// `http://ip:port` to reach `addr` from this machine (loopback for a wildcard bind).
fn url_of(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        match addr {
            SocketAddr::V4(_) => "127.0.0.1".to_string(),
            SocketAddr::V6(_) => "[::1]".to_string(),
        }
    } else {
        match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    format!("http://{ip}:{}", addr.port())
}

async fn accept_loop(
    listener: TcpListener,
    front: Arc<Front>,
    http: hyper::server::conn::http1::Builder,
    max_connections: usize,
    grace: Duration,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        // At the connection limit, stop accepting: further clients wait in the kernel backlog.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit?,
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    front.logger.failure(0, &format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service_front = front.clone();
        let service = hyper::service::service_fn(move |req| {
            let front = service_front.clone();
            async move { Ok::<_, Infallible>(front.respond(req, peer).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
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

/// What the access log and the metrics learn about a request besides its reply.
#[derive(Default)]
struct Note {
    component: ComponentLine,
    instance: Option<u64>,
    uses: Option<u64>,
    error: Option<&'static str>,
}

impl Note {
    fn error(code: &'static str) -> Note {
        Note {
            error: Some(code),
            ..Note::default()
        }
    }
}

type Reply = Response<Full<Bytes>>;

impl Front {
    async fn respond(&self, req: Request<Incoming>, peer: SocketAddr) -> Reply {
        let started = Instant::now();
        let id = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let method = printable(req.method().as_str(), 16);
        let path = printable(req.uri().path(), 128);
        let (reply, note) = self.dispatch(req, peer, id).await;
        let elapsed = started.elapsed();
        let status = reply.status().as_u16();
        self.metrics.request(status, note.component, elapsed);
        self.logger.access(&Access {
            id,
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

    /// The reply, and what the access log adds about it.
    async fn dispatch(&self, req: Request<Incoming>, peer: SocketAddr, id: u64) -> (Reply, Note) {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let limit = self.max_body_bytes;
        if declared.is_some_and(|n| n > limit as u64) {
            return too_large(limit);
        }
        let (mut parts, body) = req.into_parts();
        let body = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(limit),
            Err(_) => {
                return (
                    json_error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "The request body could not be read.",
                    ),
                    Note::error("bad_request"),
                );
            }
        };

        // wasi-http needs an absolute URI: the authority the client used, else our address.
        let authority = parts
            .uri
            .authority()
            .cloned()
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.parse::<http::uri::Authority>().ok())
            })
            .or_else(|| self.local.to_string().parse().ok());
        let path_and_query = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        let mut uri = http::Uri::builder()
            .scheme("http")
            .path_and_query(path_and_query);
        if let Some(authority) = authority {
            uri = uri.authority(authority);
        }
        parts.uri = match uri.build() {
            Ok(uri) => uri,
            Err(_) => {
                return (
                    json_error(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "The request target is not valid.",
                    ),
                    Note::error("bad_request"),
                );
            }
        };
        // The component reads the caller's address from these headers: only we know it.
        if !self.trust_forwarded {
            parts.headers.remove("cf-connecting-ip");
            parts.headers.remove("x-forwarded-for");
            if let Ok(ip) = HeaderValue::from_str(&peer.ip().to_string()) {
                parts.headers.insert("x-forwarded-for", ip);
            }
        }

        match self
            .pool
            .handle(Request::from_parts(parts, Full::new(body)))
            .await
        {
            Ok(served) => {
                self.forward_guest_output(id, &served.handled.stderr, &served.handled.stdout);
                let note = Note {
                    component: ComponentLine::find(&served.handled.stderr),
                    instance: Some(served.instance.id),
                    uses: Some(served.instance.uses),
                    error: None,
                };
                let (head, body) = served.handled.response.into_parts();
                (Response::from_parts(head, Full::new(body)), note)
            }
            Err(failure) => {
                self.forward_guest_output(id, &failure.stderr, "");
                self.logger.failure(
                    id,
                    &format!(
                        "failed: {}",
                        one_line(&format!("{:#}", failure.error), 2048)
                    ),
                );
                let (status, code, message) = match failure.kind {
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
                };
                let mut reply = json_error(status, code, &message);
                if failure.kind == FailureKind::Busy {
                    reply
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                }
                let note = Note {
                    instance: failure.instance,
                    ..Note::error(code)
                };
                (reply, note)
            }
        }
    }

    fn forward_guest_output(&self, id: u64, stderr: &str, stdout: &str) {
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            self.logger.guest(id, &printable(line, 2048));
        }
        for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
            self.logger
                .guest(id, &format!("stdout: {}", printable(line, 2048)));
        }
    }
}

fn too_large(limit: usize) -> (Reply, Note) {
    (
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            &format!("The request body is larger than {limit} bytes."),
        ),
        Note::error("request_too_large"),
    )
}

/// `{"error": code, "message": text}`, as the component answers its own errors.
pub(crate) fn json_error(status: StatusCode, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({ "error": code, "message": message }).to_string();
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // As the component's own answers: never cached, never sniffed.
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
    s.chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}
