//! Embeds the wacht-admin component in wasmtime, the way `wasmtime serve` does, as a library:
//! the host tests drive it directly, and the `wacht-admin-host` binary (`make serve`) puts a
//! hyper server in front.
//!
//! - [`Component::load`] compiles once (through an on-disk cache) and pre-links once.
//! - [`Component::handle`] serves one request in a fresh `Store`: per-request env vars, stderr
//!   captured in memory, no stdio, no preopens, no sockets; wasi-http does the outgoing calls.
//! - A guest that spins, hangs or traps becomes an `Err`, never a hung caller.
//! - [`InstancePool`] serves many requests per instance instead (what the server uses): the
//!   component keeps its parsed configuration and JWKS between requests.
//! - [`JwksCache`] shares one upstream JWKS answer between all instances.
//! - [`server`] is the HTTP front (`wacht-admin-host`, `make serve`), with a demo mode, and
//!   `--admin-listen`'s health, readiness and [`metrics`] endpoints.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Body;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, Strategy,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The embedder's crates, re-exported so that users need no direct dependency (and no version
/// skew): `wacht_admin_host::wasmtime::component::Component::from_file`, for example.
pub use wasmtime;
pub use wasmtime_wasi_http;
pub use wasmtime_wasi_http::{RequestOptions, WasiBody};

pub use jwks::JwksCache;
pub use pool::{
    Failure, FailureKind, InstancePool, InstanceReport, PoolOptions, PoolStats, Served,
};

mod admin;
pub mod demo;
pub mod jwks;
mod log;
mod logpipe;
pub mod metrics;
pub mod outbound;
pub mod pool;
pub mod server;
pub mod settings;
pub mod verifier;

pub use server::Server;
pub use settings::{LogSink, Settings};

use logpipe::LogPipe;

/// How often the epoch ticks: the resolution of the CPU deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What [`Component::load`] builds and every request obeys.
#[derive(Clone)]
pub struct EngineOptions {
    /// Compiled-code cache directory; `None` compiles on every load (~3 s for this
    /// component on 2 cores; ~20-40 ms from the cache).
    pub cache_dir: Option<PathBuf>,
    /// `Some(n)`: pooling allocator sized for `n` concurrent requests (faster instantiation,
    /// reserves virtual memory up front); further requests wait for a free slot.
    /// `None`: on-demand allocation, no limit.
    pub pooling: Option<u32>,
    /// Wall-clock limit for one request, guest CPU and outgoing calls together. A guest that
    /// spins past it is interrupted (epoch deadline); one that waits past it is dropped.
    /// Waiting for a pool slot is bounded by the same duration, separately.
    pub request_timeout: Duration,
    /// Response bodies larger than this are an error (they are buffered whole).
    pub max_response_bytes: usize,
    /// stderr (and stdout) kept per request. A guest writing more sees a closed stream.
    pub max_log_bytes: usize,
    /// Linear memory a request may grow to.
    pub max_memory_bytes: usize,
    /// Where outgoing HTTP goes; `None` is the real network ([`send_direct`]).
    pub outbound: Option<Arc<dyn Outbound>>,
    /// JWKS fetches answered from one shared upstream answer (before `outbound`); `None`:
    /// every JWKS fetch of the guest goes out.
    pub jwks_cache: Option<Arc<JwksCache>>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            cache_dir: None,
            pooling: None,
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 8 << 20,
            max_log_bytes: 1 << 20,
            max_memory_bytes: 128 << 20,
            outbound: None,
            jwks_cache: None,
        }
    }
}

impl fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineOptions")
            .field("cache_dir", &self.cache_dir)
            .field("pooling", &self.pooling)
            .field("request_timeout", &self.request_timeout)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_log_bytes", &self.max_log_bytes)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .field("outbound", &self.outbound.as_ref().map(|_| "custom"))
            .field("jwks_cache", &self.jwks_cache)
            .finish()
    }
}

/// A response to an outgoing request, with the task that keeps its body flowing.
pub type OutboundResponse = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
);

/// What an [`Outbound`] returns.
pub type OutboundFuture =
    Pin<Box<dyn Future<Output = Result<OutboundResponse, wasmtime_wasi_http::Error>> + Send>>;

/// The hook for every outgoing request of the guest: a server can cache JWKS answers, enforce an
/// allowlist (answer `Err(wasmtime_wasi_http::Error::HttpRequestDenied)`), or count calls, and
/// pass the rest to [`send_direct`].
pub trait Outbound: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutboundFuture;
}

/// Sends over the real network, exactly as wasmtime-wasi-http does by default.
pub fn send_direct(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> OutboundFuture {
    Box::pin(async move {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
        Ok((
            response.map(http_body_util::BodyExt::boxed_unsync),
            Box::new(io) as Box<dyn Future<Output = _> + Send>,
        ))
    })
}

/// One request's outcome.
#[derive(Debug)]
pub struct Handled {
    /// The guest's response, body buffered.
    pub response: http::Response<Bytes>,
    /// What the guest wrote to stderr (lossy UTF-8).
    pub stderr: String,
    /// What the guest wrote to stdout (lossy UTF-8); the component should write nothing there.
    pub stdout: String,
    /// From the start of instantiation to the end of the guest's `handle`.
    pub elapsed: Duration,
}

/// The compiled and pre-linked component. Cheap to clone; clones share the engine.
#[derive(Clone)]
pub struct Component {
    pre: ProxyPre<RequestState>,
    options: EngineOptions,
    /// One permit per pool slot, when pooling: instantiating past the pool would fail.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    /// Also held by every running guest task: a guest outliving the `Component` still yields
    /// and traps on time.
    ticker: Arc<EpochTicker>,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Component {
    /// Compiles (or loads from the cache) the component at `wasm_path` and links it against
    /// WASI 0.2 + wasi-http. Fails if the component needs an import the host does not give.
    pub fn load(wasm_path: impl AsRef<Path>, options: &EngineOptions) -> anyhow::Result<Component> {
        let wasm_path = wasm_path.as_ref();
        let wasm =
            std::fs::read(wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
        Component::from_binary(&wasm, options)
            .with_context(|| format!("loading {}", wasm_path.display()))
    }

    /// [`Component::load`] from the component's bytes.
    pub fn from_binary(wasm: &[u8], options: &EngineOptions) -> anyhow::Result<Component> {
        let engine = build_engine(options)?;
        let component = wasmtime::component::Component::from_binary(&engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let mut linker = Linker::<RequestState>::new(&engine);
        // All of WASI 0.2 (Rust std imports wasi:cli beyond the proxy world); the context
        // built per request grants no files, sockets or inherited stdio.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        fix_request_options_leak(&mut linker)?;
        // Native signature checks for the host-verifier build; unused by the portable one.
        verifier::add_to_linker(&mut linker, |state| verifier::VerifierView {
            table: &mut state.table,
        })?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .context("the component does not export wasi:http/incoming-handler")?;
        let slots = options
            .pooling
            .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize)));
        Ok(Component {
            pre,
            options: options.clone(),
            slots,
            ticker: Arc::new(EpochTicker::start(engine)?),
        })
    }

    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Serves `req` in a fresh instance whose environment is exactly `env`.
    ///
    /// `Err` when the guest traps (before or after answering), answers with an error code, never
    /// answers, exceeds [`EngineOptions::request_timeout`], or sends a body over
    /// [`EngineOptions::max_response_bytes`]. The request needs an absolute URI or a `host`
    /// header; it is presented to the guest as plain `http`.
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        env: &[(String, String)],
    ) -> anyhow::Result<Handled>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let slot = match &self.slots {
            Some(slots) => Some(
                tokio::time::timeout(self.options.request_timeout, slots.clone().acquire_owned())
                    .await
                    .map_err(|_| anyhow!("no instance slot freed up within the request timeout"))?
                    .map_err(|_| anyhow!("instance pool closed"))?,
            ),
            None => None,
        };
        let stderr = LogPipe::new(self.options.max_log_bytes);
        let stdout = LogPipe::new(self.options.max_log_bytes);
        let mut store = self.new_store(env, &stdout, &stderr);
        self.arm_deadline(&mut store);

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(sender)?;

        // The guest runs in its own task: it writes the response body while we read it.
        let pre = self.pre.clone();
        let ticker = self.ticker.clone();
        let guest = AbortOnDrop(tokio::spawn(async move {
            let _ticker = ticker;
            let result = async {
                let proxy = pre
                    .instantiate_async(&mut store)
                    .await
                    .map_err(anyhow::Error::from)
                    .context("instantiating the component")?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await
                    .map_err(anyhow::Error::from)
                    .context("guest trapped")
            }
            .await;
            // Free the instance (and its pool slot) before handing the slot to the next request.
            drop(store);
            drop(slot);
            result
        }));

        let max_body = self.options.max_response_bytes;
        let served = async move {
            let response = match receiver.await {
                Ok(Ok(response)) => response,
                Ok(Err(code)) => {
                    let trapped = guest_outcome(guest).await.err();
                    return Err(match trapped {
                        Some(e) => e.context(format!("guest answered with error code {code:?}")),
                        None => anyhow!("guest answered with error code {code:?}"),
                    });
                }
                // The outparam was dropped unset: the guest returned or trapped without answering.
                Err(_) => {
                    guest_outcome(guest).await?;
                    bail!("guest returned without setting a response");
                }
            };
            let (parts, body) = response.into_parts();
            let body = read_guest_body(body, max_body).await?;
            guest_outcome(guest).await?;
            anyhow::Ok(http::Response::from_parts(parts, body))
        };
        let response = tokio::time::timeout(self.options.request_timeout, served)
            .await
            .map_err(|_| {
                anyhow!(
                    "guest did not finish within {:?}",
                    self.options.request_timeout
                )
            })??;
        Ok(Handled {
            response,
            stderr: stderr.take(),
            stdout: stdout.take(),
            elapsed: started.elapsed(),
        })
    }
}

impl Component {
    /// A store for one instance: environment exactly `env`, stdout/stderr into the pipes, no
    /// preopens, no inherited stdio, no sockets: the guest reaches the network only through
    /// wasi:http (and so through the JWKS cache and `EngineOptions::outbound`).
    fn new_store(
        &self,
        env: &[(String, String)],
        stdout: &LogPipe,
        stderr: &LogPipe,
    ) -> Store<RequestState> {
        let wasi = WasiCtx::builder()
            .envs(env)
            .stderr(stderr.clone())
            .stdout(stdout.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = RequestState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: Hooks {
                outbound: self.options.outbound.clone(),
                jwks_cache: self.options.jwks_cache.clone(),
                jwks_asked: None,
            },
            deadline: Instant::now() + self.options.request_timeout,
            limits: Limits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(self.options.max_memory_bytes)
                    .instances(64)
                    .build(),
                memory_bytes: 0,
            },
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        // Every epoch tick, a computing guest yields to the executor (so that a spinning guest
        // cannot hold a runtime thread, and an abandoned one is dropped at once), and past its
        // deadline it traps.
        store.epoch_deadline_callback(|store| {
            Ok(if Instant::now() >= store.data().deadline {
                wasmtime::UpdateDeadline::Interrupt
            } else {
                wasmtime::UpdateDeadline::Yield(1)
            })
        });
        store
    }

    /// From now, the guest may compute for at most the request timeout.
    fn arm_deadline(&self, store: &mut Store<RequestState>) {
        store.data_mut().deadline = Instant::now() + self.options.request_timeout;
        store.set_epoch_deadline(1);
    }
}

/// wasmtime-wasi-http 48's `outgoing-handler.handle` reads the `request-options` the guest
/// passes (an owned handle: the guest gives it up) but never deletes it from the resource
/// table: one entry leaks per outgoing call. A fresh store per request does not care; a reused
/// instance would grow its table forever. This shadows `handle` with the same call followed by
/// the delete.
fn fix_request_options_leak(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as _;
    use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
    use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};

    linker.allow_shadowing(true);
    let mut instance = linker.instance("wasi:http/outgoing-handler@0.2.12")?;
    instance.func_wrap(
        "handle",
        |mut store: wasmtime::StoreContextMut<'_, RequestState>,
         (request, options): (
            Resource<HostOutgoingRequest>,
            Option<Resource<RequestOptions>>,
        )|
         -> wasmtime::Result<(Result<Resource<HostFutureIncomingResponse>, ErrorCode>,)> {
            let consumed = options.as_ref().map(Resource::rep);
            let mut http = store.data_mut().http();
            let result = http.handle(request, options);
            if let Some(rep) = consumed {
                let _ = http.table.delete(Resource::<RequestOptions>::new_own(rep));
            }
            match result {
                Ok(future) => Ok((Ok(future),)),
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Waits for the guest task; a trap or a panic becomes `Err`.
/// The guest's response body, whole, refused past `max` bytes (both serving paths use this).
async fn read_guest_body<B>(body: B, max: usize) -> anyhow::Result<Bytes>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let collected = Limited::new(body, max)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the guest's response body: {e}"))?;
    Ok(collected.to_bytes())
}

async fn guest_outcome(guest: AbortOnDrop<anyhow::Result<()>>) -> anyhow::Result<()> {
    let mut guest = guest;
    match (&mut guest.0).await {
        Ok(result) => result,
        Err(join) => Err(anyhow!("guest task failed: {join}")),
    }
}

fn build_engine(options: &EngineOptions) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config.strategy(Strategy::Cranelift);
    // Interrupts a guest that computes past its deadline; outgoing waits are bounded by the
    // tokio timeout in `handle` instead.
    config.epoch_interruption(true);
    if let Some(dir) = &options.cache_dir {
        // wasmtime wants an absolute path.
        let dir = &std::path::absolute(dir)
            .with_context(|| format!("resolving the cache directory {}", dir.display()))?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the cache directory {}", dir.display()))?;
        let mut cache = CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(Cache::new(cache)?));
    }
    if let Some(slots) = options.pooling {
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component is a few core instances (main module, adapter shims).
        pool.total_component_instances(slots)
            .total_core_instances(slots.saturating_mul(8))
            .total_memories(slots.saturating_mul(2))
            .total_tables(slots.saturating_mul(8))
            .total_stacks(slots)
            .max_memory_size(options.max_memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("creating the wasmtime engine")
}

/// Per-request store data.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    /// When the current request's guest time is up (see `arm_deadline`).
    deadline: Instant,
    limits: Limits,
}

impl RequestState {
    /// Linear memory of all the instance's memories, in bytes.
    fn limits_peak(&self) -> usize {
        self.limits.memory_bytes
    }
}

/// [`StoreLimits`], plus the memory the instance has grown to (what a pool watches for leaks).
struct Limits {
    inner: StoreLimits,
    memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes = self
                .memory_bytes
                .saturating_add(desired.saturating_sub(current));
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for RequestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Routes outgoing requests through the JWKS cache, then [`EngineOptions::outbound`], else to
/// the network.
struct Hooks {
    outbound: Option<Arc<dyn Outbound>>,
    jwks_cache: Option<Arc<JwksCache>>,
    /// When this instance last asked for the JWKS (what the cache needs to tell a first fetch
    /// from a rotation refetch).
    jwks_asked: Option<Instant>,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _request_body_errors: Box<
            dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send,
        >,
    ) -> Box<dyn Future<Output = Result<OutboundResponse, wasmtime_wasi_http::Error>> + Send> {
        let outbound = self.outbound.clone();
        let next = move |request, options| match outbound {
            Some(outbound) => outbound.send(request, options),
            None => send_direct(request, options),
        };
        match &self.jwks_cache {
            Some(cache) if JwksCache::applies_to(&request) => {
                let previous = self.jwks_asked.replace(Instant::now());
                Box::new(cache.clone().fetch(request, options, previous, next))
            }
            _ => Box::new(next(request, options)),
        }
    }
}

/// Aborts the guest task when the request is abandoned (timeout, caller dropped).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own, until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> anyhow::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wacht-admin-epoch".to_string())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("spawning the epoch thread")?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where `make build` writes the component, relative to the workspace root.
pub const DEFAULT_WASM_PATH: &str = "target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm";

#[cfg(test)]
mod tests;
