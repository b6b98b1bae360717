//! Embeds the wacht-admin component in wasmtime, as a library: the host tests drive it directly,
//! and the `wacht-admin-host` binary (`make serve`) puts [`server`] (hyper) in front.
//!
//! - [`Component`]: compiled once (through an on-disk cache) and pre-linked once.
//! - [`InstancePool`]: reused instances, each one request at a time ([`pool`]).
//! - [`JwksCache`]: one upstream JWKS answer shared by every instance; [`outbound`]: kept-alive
//!   upstream connections; [`verifier`]: `wacht:admin/verifier` with ring.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use hyper::body::Body;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{
    Cache, CacheConfig, Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// The embedder's crates, re-exported so that users need no direct dependency (and no version
/// skew).
pub use wasmtime;
pub use wasmtime_wasi_http;
pub use wasmtime_wasi_http::{RequestOptions, WasiBody};

pub use jwks::JwksCache;
pub use pool::{Failure, FailureKind, InstancePool, InstanceReport, PoolOptions, PoolStats};
pub use server::Server;
pub use settings::{LogSink, Settings};

mod admin;
pub mod demo;
pub mod environment;
pub mod jwks;
pub mod log;
mod logpipe;
pub mod metrics;
pub mod outbound;
pub mod pool;
mod readiness;
pub mod server;
pub mod settings;
pub mod verifier;

/// Where `make build` writes the component, relative to the workspace root.
pub const DEFAULT_WASM_PATH: &str = "target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm";
/// The same, relative to the target directory (the binary's default looks there first).
pub const WASM_IN_TARGET_DIR: &str = "host-verifier/wasm32-wasip2/release/wacht_admin.wasm";

/// How often the epoch ticks: the resolution of the CPU deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// What [`Component::load`] builds and every request obeys.
#[derive(Clone)]
pub struct EngineOptions {
    /// Compiled-code cache; `None` compiles on every load (~3 s on 2 cores, ~30 ms cached).
    pub cache_dir: Option<PathBuf>,
    /// `Some(n)`: the pooling allocator, `n` instances at most (faster instantiation; reserves
    /// virtual memory up front). `None`: on-demand allocation.
    pub pooling: Option<u32>,
    /// Wall-clock limit for one request, guest CPU and outgoing calls together.
    pub request_timeout: Duration,
    /// Response bodies larger than this are an error (they are buffered whole).
    pub max_response_bytes: usize,
    /// stderr (and stdout) kept per request; past it the guest sees a closed stream.
    pub max_log_bytes: usize,
    pub max_memory_bytes: usize,
    /// Where outgoing HTTP goes; `None`: the network ([`send_direct`]).
    pub outbound: Option<Arc<dyn Outbound>>,
    /// JWKS fetches answered from one shared upstream answer (before `outbound`).
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
            .finish_non_exhaustive()
    }
}

/// A response to an outgoing request, with the task that keeps its body flowing.
pub type OutboundResponse = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
);

pub type OutboundFuture =
    Pin<Box<dyn Future<Output = Result<OutboundResponse, wasmtime_wasi_http::Error>> + Send>>;

/// The hook for every outgoing request of the guest: cache, allow or deny
/// (`wasmtime_wasi_http::Error::HttpRequestDenied`), count, then pass on to [`send_direct`].
pub trait Outbound: Send + Sync + 'static {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutboundFuture;
}

/// Sends over the network, as wasmtime-wasi-http does by default.
pub fn send_direct(
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> OutboundFuture {
    Box::pin(async move {
        let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
        let io: Box<dyn Future<Output = _> + Send> = Box::new(io);
        Ok((response.map(http_body_util::BodyExt::boxed_unsync), io))
    })
}

/// One request's outcome.
#[derive(Debug)]
pub struct Handled {
    /// The guest's response, body buffered.
    pub response: http::Response<Bytes>,
    /// What the guest wrote to stderr (lossy UTF-8).
    pub stderr: String,
    /// What the guest wrote to stdout; the component should write nothing there.
    pub stdout: String,
    pub elapsed: Duration,
}

/// The compiled and pre-linked component. Cheap to clone; clones share the engine.
#[derive(Clone)]
pub struct Component {
    pre: ProxyPre<RequestState>,
    options: EngineOptions,
    /// One permit per pooling-allocator slot: instantiating past them would fail.
    slots: Option<Arc<tokio::sync::Semaphore>>,
    _ticker: Arc<EpochTicker>,
}

impl fmt::Debug for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Component")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Component {
    /// Compiles (or loads from the cache) the component and links it against WASI 0.2,
    /// wasi-http and `wacht:admin/verifier`. Fails if it needs an import the host lacks.
    pub fn load(wasm_path: impl AsRef<Path>, options: &EngineOptions) -> anyhow::Result<Component> {
        let path = wasm_path.as_ref();
        let wasm = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Component::from_binary(&wasm, options)
            .with_context(|| format!("loading {}", path.display()))
    }

    pub fn from_binary(wasm: &[u8], options: &EngineOptions) -> anyhow::Result<Component> {
        let engine = build_engine(options)?;
        let component = wasmtime::component::Component::from_binary(&engine, wasm)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        let mut linker = Linker::<RequestState>::new(&engine);
        // All of WASI 0.2 (Rust std imports wasi:cli beyond the proxy world); each store grants
        // no files, sockets or inherited stdio.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        fix_request_options_leak(&mut linker)?;
        verifier::add_to_linker(&mut linker, |state| verifier::VerifierView {
            table: &mut state.table,
        })?;
        let pre = ProxyPre::new(linker.instantiate_pre(&component)?)
            .map_err(anyhow::Error::from)
            .context("the component does not export wasi:http/incoming-handler")?;
        Ok(Component {
            pre,
            options: options.clone(),
            slots: options
                .pooling
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n as usize))),
            _ticker: Arc::new(EpochTicker::start(engine)?),
        })
    }

    pub fn engine(&self) -> &Engine {
        self.pre.engine()
    }

    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Serves `req` in a fresh instance whose environment is exactly `env` (a pool of one that
    /// serves once). The request needs an absolute URI or a `host` header.
    pub async fn handle<B>(
        &self,
        req: http::Request<B>,
        env: &[(String, String)],
    ) -> anyhow::Result<Handled>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let once = PoolOptions {
            size: 1,
            max_requests_per_instance: 1,
            queue_timeout: self.options.request_timeout,
        };
        let pool = InstancePool::new(self.clone(), env.to_vec(), once)?;
        match pool.handle(req).await {
            Ok(served) => Ok(served.handled),
            Err(failure) => Err(failure.error),
        }
    }

    /// A store for one instance: environment exactly `env`, stdout/stderr into the pipes, no
    /// preopens, no inherited stdio, no sockets: the guest reaches the network only through
    /// wasi:http (and so through the JWKS cache and `EngineOptions::outbound`).
    fn new_store(
        &self,
        env: &[(String, String)],
        stdout: &logpipe::LogPipe,
        stderr: &logpipe::LogPipe,
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
                jwks_held: jwks::Held::default(),
            },
            deadline: Instant::now(),
            limits: Limits {
                max_memory: self.options.max_memory_bytes,
                memory_bytes: 0,
            },
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        // Every tick a computing guest yields to the executor (a spinning guest cannot hold a
        // runtime thread, and an abandoned one is dropped at once); past its deadline it traps.
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

/// wasmtime-wasi-http 48's `outgoing-handler.handle` takes the guest's `request-options` (an
/// owned handle) but never deletes it from the resource table: a reused instance would leak one
/// entry per outgoing call (host/README.md). This shadows `handle` with the same call plus the
/// delete.
fn fix_request_options_leak(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as _;
    use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
    use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};

    type Handled = Result<Resource<HostFutureIncomingResponse>, ErrorCode>;
    linker.allow_shadowing(true);
    linker
        .instance("wasi:http/outgoing-handler@0.2.12")?
        .func_wrap(
            "handle",
            |mut store: wasmtime::StoreContextMut<'_, RequestState>,
             (request, options): (
                Resource<HostOutgoingRequest>,
                Option<Resource<RequestOptions>>,
            )|
             -> wasmtime::Result<(Handled,)> {
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

fn build_engine(options: &EngineOptions) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    // Interrupts a guest that computes past its deadline; waits are bounded by tokio timeouts.
    config.epoch_interruption(true);
    if let Some(dir) = &options.cache_dir {
        let dir = std::path::absolute(dir)?; // wasmtime wants an absolute path
        std::fs::create_dir_all(&dir)
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

/// Per-instance store data.
struct RequestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: Hooks,
    /// When the current request's guest time is up (see `arm_deadline`).
    deadline: Instant,
    limits: Limits,
}

/// The memory limit, and how far the instance has grown (what the pool watches for leaks).
struct Limits {
    max_memory: usize,
    memory_bytes: usize,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Ok(false);
        }
        self.memory_bytes = self
            .memory_bytes
            .saturating_add(desired.saturating_sub(current));
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
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
    /// What this instance last got from the JWKS cache: the cache tells a first fetch, or one
    /// after the instance's own TTL, from a rotation refetch by it.
    jwks_held: jwks::Held,
}

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _body_errors: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = Result<OutboundResponse, wasmtime_wasi_http::Error>> + Send> {
        let outbound = self.outbound.clone();
        let next = move |request, options| match outbound {
            Some(outbound) => outbound.send(request, options),
            None => send_direct(request, options),
        };
        match &self.jwks_cache {
            Some(cache) if JwksCache::applies_to(&request) => Box::new(cache.clone().fetch(
                request,
                options,
                self.jwks_held.clone(),
                next,
            )),
            _ => Box::new(next(request, options)),
        }
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

#[cfg(test)]
mod tests;
