//! A pool of reused instances: each serves one request at a time, many requests in its life.
//!
//! The component keeps only caches in its static state (the parsed configuration, the JWKS, the
//! verified tokens), so a reused instance verifies a session token with no JWKS call and no
//! instantiation. An instance is dropped after any failure (trap, error code, timeout, a
//! response it never set or never finished) and retired after
//! [`PoolOptions::max_requests_per_instance`]; a new one takes its place on demand.
//! [`PoolOptions::size`] bounds the instances, so the requests in flight; further requests wait
//! for one up to [`PoolOptions::queue_timeout`]. The environment is fixed per pool.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Body;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::timeout;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::logpipe::LogPipe;
use crate::{Component, Handled, RequestState};

#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Instances at most, so requests in flight at most (with the pooling allocator, at most
    /// [`crate::EngineOptions::pooling`]).
    pub size: usize,
    /// An instance is retired after this many requests (bounds whatever a long-lived guest
    /// might accumulate).
    pub max_requests_per_instance: u64,
    /// How long a request waits for a free instance before [`FailureKind::Busy`].
    pub queue_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            size: 16,
            max_requests_per_instance: 10_000,
            queue_timeout: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No instance freed up within the queue timeout: 503.
    Busy,
    /// The guest did not finish within the request timeout: 504.
    Timeout,
    /// The guest trapped, answered with an error code, never answered, or could not be
    /// instantiated: 502.
    Failed,
}

/// A request the pool could not serve; the instance involved (if any) was dropped.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub error: anyhow::Error,
    /// What the guest wrote to stderr before it failed.
    pub stderr: String,
    pub instance: Option<u64>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {:#}", self.kind, self.error)
    }
}

impl std::error::Error for Failure {}

#[derive(Debug)]
pub struct Served {
    pub handled: Handled,
    pub instance: InstanceReport,
}

/// Which instance served a request, and its state afterwards.
#[derive(Debug, Clone, Copy)]
pub struct InstanceReport {
    /// Unique per pool, from 1.
    pub id: u64,
    /// Requests this instance has served, this one included.
    pub uses: u64,
    pub fresh: bool,
    /// Entries left in the resource table (constant over the instance's life, or it leaks).
    pub table_entries: usize,
    /// Bytes of linear memory the instance has grown to.
    pub memory_bytes: usize,
}

/// Counters since the pool was created, and the instances idle now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub created: u64,
    /// Dropped after a failure.
    pub discarded: u64,
    /// Dropped after `max_requests_per_instance` requests.
    pub retired: u64,
    pub served: u64,
    pub failed: u64,
    pub busy: u64,
    pub idle: usize,
}

struct Instance {
    id: u64,
    uses: u64,
    store: Store<RequestState>,
    proxy: Proxy,
    stdout: LogPipe,
    stderr: LogPipe,
    /// The pooling-allocator slot the instance occupies.
    _slot: Option<OwnedSemaphorePermit>,
}

/// See the module documentation. Cheap to clone; clones share the instances.
#[derive(Clone)]
pub struct InstancePool {
    inner: Arc<Inner>,
}

struct Inner {
    component: Component,
    env: Vec<(String, String)>,
    options: PoolOptions,
    /// Last in, first out: under light load the same few instances (warm caches) serve.
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
    next_id: AtomicU64,
    stats: [AtomicU64; 6],
}

// Indexes into `Inner::stats`.
const CREATED: usize = 0;
const DISCARDED: usize = 1;
const RETIRED: usize = 2;
const SERVED: usize = 3;
const FAILED: usize = 4;
const BUSY: usize = 5;

impl std::fmt::Debug for InstancePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePool")
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl InstancePool {
    /// Instances of `component` with environment exactly `env`, none created before
    /// [`InstancePool::prewarm`] or the first request.
    pub fn new(
        component: Component,
        env: Vec<(String, String)>,
        options: PoolOptions,
    ) -> anyhow::Result<InstancePool> {
        anyhow::ensure!(options.size > 0, "the pool needs at least one instance");
        if let Some(slots) = component.options().pooling {
            anyhow::ensure!(
                options.size <= slots as usize,
                "{} pooled instances need at least as many pooling-allocator slots (have {slots})",
                options.size
            );
        }
        Ok(InstancePool {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(options.size)),
                component,
                env,
                options,
                idle: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                stats: Default::default(),
            }),
        })
    }

    pub fn options(&self) -> &PoolOptions {
        &self.inner.options
    }

    pub fn component(&self) -> &Component {
        &self.inner.component
    }

    pub fn stats(&self) -> PoolStats {
        let n = |i: usize| self.inner.stats[i].load(Relaxed);
        PoolStats {
            created: n(CREATED),
            discarded: n(DISCARDED),
            retired: n(RETIRED),
            served: n(SERVED),
            failed: n(FAILED),
            busy: n(BUSY),
            idle: self.idle().len(),
        }
    }

    /// Creates instances until `n` are idle (at most the pool size): the first requests pay no
    /// instantiation.
    pub async fn prewarm(&self, n: usize) -> anyhow::Result<()> {
        while self.idle().len() < n.min(self.inner.options.size) {
            let instance = self.instantiate().await?;
            self.idle().push(instance);
        }
        Ok(())
    }

    fn idle(&self) -> MutexGuard<'_, Vec<Instance>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, stat: usize) {
        self.inner.stats[stat].fetch_add(1, Relaxed);
    }

    async fn instantiate(&self) -> anyhow::Result<Instance> {
        let component = &self.inner.component;
        let slot = match &component.slots {
            Some(slots) => Some(slots.clone().acquire_owned().await?),
            None => None,
        };
        let max_log = component.options.max_log_bytes;
        let (stdout, stderr) = (LogPipe::new(max_log), LogPipe::new(max_log));
        let mut store = component.new_store(&self.inner.env, &stdout, &stderr);
        component.arm_deadline(&mut store);
        let proxy = component
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the component")?;
        self.count(CREATED);
        Ok(Instance {
            id: self.inner.next_id.fetch_add(1, Relaxed),
            uses: 0,
            store,
            proxy,
            stdout,
            stderr,
            _slot: slot,
        })
    }

    /// Serves `req` in an idle instance (a new one if none is idle). The request needs an
    /// absolute URI or a `host` header; the guest sees it as plain `http`.
    pub async fn handle<B>(&self, req: http::Request<B>) -> Result<Served, Failure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let fail = |kind, error, stderr, instance| {
            self.count(FAILED);
            let elapsed = started.elapsed();
            Err(Failure {
                kind,
                error,
                stderr,
                instance,
                elapsed,
            })
        };
        let queue = self.inner.options.queue_timeout;
        let permit = match timeout(queue, self.inner.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return fail(
                    FailureKind::Failed,
                    anyhow!("pool closed"),
                    String::new(),
                    None,
                );
            }
            Err(_) => {
                self.count(BUSY);
                let size = self.inner.options.size;
                let error = anyhow!("all {size} instances stayed busy for {queue:?}");
                return fail(FailureKind::Busy, error, String::new(), None);
            }
        };

        let request_timeout = self.inner.component.options.request_timeout;
        let popped = self.idle().pop();
        let fresh = popped.is_none();
        let mut instance = match popped {
            Some(instance) => instance,
            None => match timeout(request_timeout, self.instantiate()).await {
                Ok(Ok(instance)) => instance,
                Ok(Err(e)) => return fail(FailureKind::Failed, e, String::new(), None),
                Err(_) => {
                    let error = anyhow!("instantiation did not finish within {request_timeout:?}");
                    return fail(FailureKind::Timeout, error, String::new(), None);
                }
            },
        };
        // Whatever a previous request left unread (nothing, normally) is not this request's.
        let _ = (instance.stderr.take(), instance.stdout.take());

        let (id, stderr) = (instance.id, instance.stderr.clone());
        let max_body = self.inner.component.options.max_response_bytes;
        let response = match timeout(request_timeout, self.run(&mut instance, req, max_body)).await
        {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                self.count(DISCARDED);
                return fail(FailureKind::Failed, e, stderr.take(), Some(id));
            }
            Err(_) => {
                self.count(DISCARDED);
                let error = anyhow!("guest did not finish within {request_timeout:?}");
                return fail(FailureKind::Timeout, error, stderr.take(), Some(id));
            }
        };

        instance.uses += 1;
        let report = InstanceReport {
            id,
            uses: instance.uses,
            fresh,
            table_entries: instance.store.data_mut().table.iter_mut().count(),
            memory_bytes: instance.store.data().limits.memory_bytes,
        };
        let handled = Handled {
            response,
            stderr: stderr.take(),
            stdout: instance.stdout.take(),
            elapsed: started.elapsed(),
        };
        if instance.uses < self.inner.options.max_requests_per_instance {
            self.idle().push(instance);
        } else {
            self.count(RETIRED);
        }
        drop(permit);
        self.count(SERVED);
        Ok(Served {
            handled,
            instance: report,
        })
    }

    /// One request in `instance`: the guest runs until it answers, then keeps running while its
    /// body is read. Dropping the future (the timeout) abandons the instance mid-call.
    async fn run<B>(
        &self,
        instance: &mut Instance,
        req: http::Request<B>,
        max_body: usize,
    ) -> anyhow::Result<http::Response<Bytes>>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        self.inner.component.arm_deadline(&mut instance.store);
        let (sender, mut receiver) = tokio::sync::oneshot::channel();
        let mut http = instance.store.data_mut().http();
        let incoming = http.new_incoming_request(Scheme::Http, req)?;
        let outparam = http.new_response_outparam(sender)?;
        let call = instance.proxy.wasi_http_incoming_handler().call_handle(
            &mut instance.store,
            incoming,
            outparam,
        );
        let mut call = std::pin::pin!(call);
        let trapped = |e: wasmtime::Error| anyhow::Error::from(e).context("guest trapped");
        // A guest that returns without setting the response may still hold the outparam (the
        // instance lives on): its return ends the wait too.
        let mut returned = None;
        let answer = tokio::select! {
            biased;
            answer = &mut receiver => answer.ok(),
            result = &mut call => {
                returned = Some(result);
                receiver.try_recv().ok()
            }
        };
        let response = match answer {
            Some(Ok(response)) => response,
            Some(Err(code)) => {
                let result = match returned {
                    Some(result) => result,
                    None => call.await,
                };
                let error = anyhow!("guest answered with error code {code:?}");
                return Err(match result {
                    Err(e) => trapped(e).context(error),
                    Ok(()) => error,
                });
            }
            None => {
                match returned {
                    Some(result) => result,
                    None => call.await,
                }
                .map_err(trapped)?;
                bail!("guest returned without setting a response");
            }
        };
        let (parts, body) = response.into_parts();
        let read = async {
            let collected = Limited::new(body, max_body).collect().await;
            collected.map_err(|e| anyhow!("reading the guest's response body: {e}"))
        };
        let (result, body) = match returned {
            Some(result) => (result, read.await),
            None => tokio::join!(call, read),
        };
        result.map_err(trapped)?;
        Ok(http::Response::from_parts(parts, body?.to_bytes()))
    }
}
