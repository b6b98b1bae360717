//! The host embedding with the real component: the outbound hook (what a server uses for an
//! allowlist or a JWKS cache), the shared JWKS cache, the pooling allocator, and the host-side
//! deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use anyhow::ensure;
use wacht_admin_host::{
    Component, EngineOptions, JwksCache, Outbound, OutboundFuture, RequestOptions, WasiBody,
    send_direct,
};
use wacht_standin::tokens::TestKey;

/// Passes requests to the network when their authority is allowed; counts both outcomes.
struct Allowlist {
    allowed: String,
    sent: AtomicUsize,
    denied: AtomicUsize,
}

impl Outbound for Allowlist {
    fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
    ) -> OutboundFuture {
        let authority = request
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        if authority == self.allowed {
            self.sent.fetch_add(1, Ordering::SeqCst);
            send_direct(request, options)
        } else {
            self.denied.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Err(wacht_admin_host::wasmtime_wasi_http::Error::HttpRequestDenied) })
        }
    }
}

fn load_with(options: EngineOptions) -> anyhow::Result<Component> {
    Component::load(wasm_path()?, &options)
}

#[tokio::test]
async fn the_outbound_hook_sees_every_call_and_can_deny() -> anyhow::Result<()> {
    let s = standin();
    let hook = Arc::new(Allowlist {
        allowed: s.addr().to_string(),
        sent: AtomicUsize::new(0),
        denied: AtomicUsize::new(0),
    });
    let c = load_with(EngineOptions {
        outbound: Some(hook.clone()),
        ..engine_options()
    })?;
    let token = session_token(&s);
    let h = c
        .handle(
            request("GET", "/admin/users", &[bearer(&token)]),
            &env_for(&s),
        )
        .await?;
    expect_users(&h, &s)?;
    ensure!(
        hook.sent.load(Ordering::SeqCst) == 2,
        "JWKS + users expected through the hook"
    );

    // The backend moved to a host the allowlist refuses: the guest sees an error, never a 200.
    let other = closed_port_url();
    let env = with(env_for(&s), "WACHT_BACKEND_API_URL", &other);
    let h = c
        .handle(request("GET", "/admin/users", &[bearer(&token)]), &env)
        .await?;
    let (status, code, _) = json_error(&h.response)?;
    ensure!(
        status == 502 || status == 503,
        "denied outbound call: {status} {code}"
    );
    ensure!(hook.denied.load(Ordering::SeqCst) == 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_allocator_serves_concurrent_requests() -> anyhow::Result<()> {
    let s = standin();
    let c = Arc::new(load_with(EngineOptions {
        pooling: Some(8),
        ..engine_options()
    })?);
    let token = session_token(&s);
    let env = Arc::new(env_for(&s));
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, env, token) = (c.clone(), env.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            c.handle(request("GET", "/admin/users", &[bearer(&token)]), &env)
                .await
        }));
    }
    for t in tasks {
        let h = t.await??;
        ensure!(h.response.status() == 200, "{}", h.response.status());
    }
    ensure!(s.count(Endpoint::Users) == 24);
    Ok(())
}

#[tokio::test]
async fn the_host_deadline_bounds_a_slow_guest() -> anyhow::Result<()> {
    // The guest would wait 10 s for the hung backend; the host gives it 300 ms.
    let s = standin();
    s.set_fault(Endpoint::Users, Fault::Hang);
    let c = load_with(EngineOptions {
        request_timeout: Duration::from_millis(300),
        ..engine_options()
    })?;
    let started = std::time::Instant::now();
    let result = c
        .handle(
            request("GET", "/admin/users", &[bearer(&session_token(&s))]),
            &env_for(&s),
        )
        .await;
    ensure!(
        result.is_err(),
        "a guest past the host deadline must be an error"
    );
    ensure!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn env_is_per_request() -> anyhow::Result<()> {
    // The guest sees only the env given with the request: none → a configuration error.
    let s = standin();
    let h = get("/admin/users", &[bearer(&session_token(&s))], &[]).await?;
    let msg = expect_error(&h, 500, "configuration_error")?;
    ensure!(msg.contains("WACHT_"), "{msg}");
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env_for(&s)).await?;
    expect_users(&h, &s)?;
    Ok(())
}

/// A key removed upstream stops verifying within the TTL of its removal, even for a new instance
/// that the host's shared JWKS cache answers. The stand-in answers as a CDN that has kept the
/// JWKS 595 s, so the answer has 5 s of its 10-minute TTL left: the shared entry must expire
/// then too, not 10 minutes after the host fetched it (nor the new instance's own cache).
#[tokio::test]
async fn a_removed_key_stops_verifying_within_the_ttl_for_new_instances() -> anyhow::Result<()> {
    const AGE_SECS: u64 = 595;
    let s = standin();
    s.set_jwks_age(Some(&AGE_SECS.to_string()));
    let cache = Arc::new(JwksCache::default());
    let c = load_with(EngineOptions {
        jwks_cache: Some(cache.clone()),
        ..engine_options()
    })?;
    let env = env_for(&s);
    let removed = session_token(&s);
    let users = |token: &str| request("GET", "/admin/users", &[bearer(token)]);
    // Each `handle` is a new instance: the first fetches upstream, the second gets the entry.
    let started = Instant::now();
    for _ in 0..2 {
        expect_users(&c.handle(users(&removed), &env).await?, &s)?;
    }
    ensure!(
        (s.count(Endpoint::Jwks), cache.hits()) == (1, 1),
        "JWKS calls {}, shared-cache hits {}",
        s.count(Endpoint::Jwks),
        cache.hits()
    );
    ensure!(
        started.elapsed() < Duration::from_secs(600 - AGE_SECS),
        "too slow to test within the TTL: {:?}",
        started.elapsed()
    );

    s.set_keys(vec![TestKey::es256(2)]);
    // Past the answer's TTL (whole seconds, so a little more), measured from before its fetch.
    tokio::time::sleep_until(
        (started + Duration::from_millis((600 - AGE_SECS) * 1000 + 1200)).into(),
    )
    .await;
    let h = c.handle(users(&removed), &env).await?;
    expect_error(&h, 401, "invalid_token")?;
    ensure!(
        s.count(Endpoint::Jwks) == 2,
        "the new instance was answered from an expired shared entry"
    );
    expect_users(&c.handle(users(&session_token(&s)), &env).await?, &s)?;
    Ok(())
}
