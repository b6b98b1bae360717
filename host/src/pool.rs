//! A pool of reused instances: each serves one request at a time, many requests in its life.
//!
//! The component is written for this (its static state is only caches: the parsed
//! configuration and the JWKS), so a reused instance verifies a session token with no JWKS call
//! and no instantiation. An instance is dropped after any failure (trap, error code, timeout, a
//! response it never set or never finished) and retired after
//! [`PoolOptions::max_requests_per_instance`] requests; a new one takes its place on demand.
//! [`PoolOptions::size`] bounds how many instances exist, and so how many requests run at once;
//! further requests wait for a free instance up to [`PoolOptions::queue_timeout`].
//!
//! The environment is fixed per pool (the component reads it once per instance).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use hyper::body::Body;
use wasmtime::Store;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::Proxy;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use crate::{AbortOnDrop, Component, Handled, LogPipe, RequestState, read_guest_body};

/// How an [`InstancePool`] sizes and recycles its instances.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Instances at most, so requests in flight at most. With the pooling allocator, at most
    /// [`crate::EngineOptions::pooling`].
    pub size: usize,
    /// An instance is retired after this many requests (bounds whatever a long-lived guest
    /// might accumulate); the next request gets a fresh one.
    pub max_requests_per_instance: u64,
    /// How long a request waits for a free instance before it is refused ([`FailureKind::Busy`]).
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

/// What happened to a request the pool could not serve.
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
    /// The instance that failed (None: none was assigned).
    pub instance: Option<u64>,
    pub elapsed: Duration,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {:#}", self.kind, self.error)
    }
}

impl std::error::Error for Failure {}

/// A request the pool served.
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
    /// Whether the instance was created for this request.
    pub fresh: bool,
    /// Entries left in the instance's resource table after the request (should stay constant
    /// over the instance's life: a growing number is a leak).
    pub table_entries: usize,
    /// Bytes of linear memory the instance has grown to.
    pub memory_bytes: usize,
}

/// Counters since the pool was created.
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
    /// Instances waiting for a request right now.
    pub idle: usize,
}

struct Instance {
    id: u64,
    uses: u64,
    store: Store<RequestState>,
    proxy: Proxy,
    stdout: LogPipe,
    stderr: LogPipe,
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
    permits: Arc<tokio::sync::Semaphore>,
    next_id: AtomicU64,
    created: AtomicU64,
    discarded: AtomicU64,
    retired: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    busy: AtomicU64,
}

impl std::fmt::Debug for InstancePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstancePool")
            .field("options", &self.inner.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl InstancePool {
    /// A pool of instances of `component`, each with environment exactly `env`. No instance is
    /// created before [`InstancePool::prewarm`] or the first request.
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
                permits: Arc::new(tokio::sync::Semaphore::new(options.size)),
                component,
                env,
                options,
                idle: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                created: AtomicU64::new(0),
                discarded: AtomicU64::new(0),
                retired: AtomicU64::new(0),
                served: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                busy: AtomicU64::new(0),
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
        let i = &self.inner;
        PoolStats {
            created: i.created.load(Ordering::Relaxed),
            discarded: i.discarded.load(Ordering::Relaxed),
            retired: i.retired.load(Ordering::Relaxed),
            served: i.served.load(Ordering::Relaxed),
            failed: i.failed.load(Ordering::Relaxed),
            busy: i.busy.load(Ordering::Relaxed),
            idle: self.idle().len(),
        }
    }

    /// Creates instances until `n` are idle (at most the pool size), so that the first requests
    /// pay no instantiation.
    pub async fn prewarm(&self, n: usize) -> anyhow::Result<()> {
        let n = n.min(self.inner.options.size);
        while self.idle().len() < n {
            let instance = self.instantiate().await?;
            self.idle().push(instance);
        }
        Ok(())
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Instance>> {
        self.inner
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn instantiate(&self) -> anyhow::Result<Instance> {
        let component = &self.inner.component;
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
        self.inner.created.fetch_add(1, Ordering::Relaxed);
        Ok(Instance {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            uses: 0,
            store,
            proxy,
            stdout,
            stderr,
        })
    }

    /// Serves `req` in an idle instance (a new one if none is idle). Same request rules as
    /// [`Component::handle`]; the environment is the pool's.
    pub async fn handle<B>(&self, req: http::Request<B>) -> Result<Served, Failure>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let started = Instant::now();
        let inner = &self.inner;
        let fail = |kind, error, stderr, instance| {
            inner.failed.fetch_add(1, Ordering::Relaxed);
            Failure {
                kind,
                error,
                stderr,
                instance,
                elapsed: started.elapsed(),
            }
        };
        let permit = match tokio::time::timeout(
            inner.options.queue_timeout,
            inner.permits.clone().acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(fail(
                    FailureKind::Failed,
                    anyhow!("instance pool closed"),
                    String::new(),
                    None,
                ));
            }
            Err(_) => {
                inner.busy.fetch_add(1, Ordering::Relaxed);
                return Err(fail(
                    FailureKind::Busy,
                    anyhow!(
                        "all {} instances stayed busy for {:?}",
                        inner.options.size,
                        inner.options.queue_timeout
                    ),
                    String::new(),
                    None,
                ));
            }
        };

        let popped = self.idle().pop();
        let fresh = popped.is_none();
        let mut instance = match popped {
            Some(instance) => instance,
            None => match tokio::time::timeout(
                inner.component.options.request_timeout,
                self.instantiate(),
            )
            .await
            {
                Ok(Ok(instance)) => instance,
                Ok(Err(e)) => return Err(fail(FailureKind::Failed, e, String::new(), None)),
                Err(_) => {
                    return Err(fail(
                        FailureKind::Timeout,
                        anyhow!("instantiation did not finish within the request timeout"),
                        String::new(),
                        None,
                    ));
                }
            },
        };
        let id = instance.id;
        let stderr = instance.stderr.clone();
        let stdout = instance.stdout.clone();
        // Whatever a previous request left unread (nothing, normally) is not this request's.
        let _ = (stderr.take(), stdout.take());

        let (sender, receiver) = tokio::sync::oneshot::channel();
        let prepared = (|| {
            inner.component.arm_deadline(&mut instance.store);
            let http = &mut instance.store.data_mut().http();
            let incoming = http.new_incoming_request(Scheme::Http, req)?;
            let outparam = http.new_response_outparam(sender)?;
            anyhow::Ok((incoming, outparam))
        })();
        let (incoming, outparam) = match prepared {
            Ok(handles) => handles,
            Err(e) => {
                inner.discarded.fetch_add(1, Ordering::Relaxed);
                return Err(fail(FailureKind::Failed, e, stderr.take(), Some(id)));
            }
        };

        // The guest runs in its own task: it writes the response body while we read it. The
        // task gives the instance back only if the call returned normally.
        let ticker = inner.component.ticker.clone();
        let guest = AbortOnDrop(tokio::spawn(async move {
            let _ticker = ticker;
            let result = instance
                .proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut instance.store, incoming, outparam)
                .await;
            match result {
                Ok(()) => Ok(instance),
                Err(e) => Err(anyhow::Error::from(e).context("guest trapped")),
            }
        }));

        let max_body = inner.component.options.max_response_bytes;
        let served = async move {
            let mut guest = guest;
            let mut receiver = receiver;
            let mut finished = None;
            // The guest sets the response, or returns (or traps) first. A guest that returns
            // without setting it may still hold the outparam (the instance lives on), so its
            // return has to be watched too.
            let answer = tokio::select! {
                biased;
                answer = &mut receiver => answer.ok(),
                outcome = &mut guest.0 => {
                    finished = Some(outcome);
                    receiver.try_recv().ok()
                }
            };
            let response = match answer {
                Some(Ok(response)) => response,
                Some(Err(code)) => {
                    let outcome = match finished {
                        Some(outcome) => outcome,
                        None => (&mut guest.0).await,
                    };
                    return Err(match outcome {
                        Ok(Err(e)) => e.context(format!("guest answered with error code {code:?}")),
                        _ => anyhow!("guest answered with error code {code:?}"),
                    });
                }
                None => {
                    let outcome = match finished {
                        Some(outcome) => outcome,
                        None => (&mut guest.0).await,
                    };
                    return Err(match outcome {
                        Ok(Err(e)) => e,
                        Err(join) => anyhow!("guest task failed: {join}"),
                        Ok(Ok(_)) => anyhow!("guest returned without setting a response"),
                    });
                }
            };
            let (parts, body) = response.into_parts();
            let body = read_guest_body(body, max_body).await?;
            let outcome = match finished {
                Some(outcome) => outcome,
                None => (&mut guest.0).await,
            };
            let instance = match outcome {
                Ok(result) => result?,
                Err(join) => return Err(anyhow!("guest task failed: {join}")),
            };
            anyhow::Ok((http::Response::from_parts(parts, body), instance))
        };
        let timeout = inner.component.options.request_timeout;
        let (response, mut instance) = match tokio::time::timeout(timeout, served).await {
            Ok(Ok(done)) => done,
            Ok(Err(e)) => {
                inner.discarded.fetch_add(1, Ordering::Relaxed);
                return Err(fail(FailureKind::Failed, e, stderr.take(), Some(id)));
            }
            Err(_) => {
                // Dropping `served` aborted the guest task, and the instance with it.
                inner.discarded.fetch_add(1, Ordering::Relaxed);
                return Err(fail(
                    FailureKind::Timeout,
                    anyhow!("guest did not finish within {timeout:?}"),
                    stderr.take(),
                    Some(id),
                ));
            }
        };

        instance.uses += 1;
        let report = InstanceReport {
            id,
            uses: instance.uses,
            fresh,
            table_entries: instance.store.data_mut().table.iter_mut().count(),
            memory_bytes: instance.store.data().limits_peak(),
        };
        if instance.uses < inner.options.max_requests_per_instance {
            self.idle().push(instance);
        } else {
            inner.retired.fetch_add(1, Ordering::Relaxed);
            drop(instance);
        }
        drop(permit);
        inner.served.fetch_add(1, Ordering::Relaxed);
        Ok(Served {
            handled: Handled {
                response,
                stderr: stderr.take(),
                stdout: stdout.take(),
                elapsed: started.elapsed(),
            },
            instance: report,
        })
    }
}
