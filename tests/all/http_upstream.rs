//! Backend API failures (contract §5): each maps to its own gateway-class status, with the
//! contract's JSON error, and nothing of the upstream's body or our key leaks.

use std::time::{Duration, Instant};

use crate::common::*;
use anyhow::ensure;

#[tokio::test]
async fn backend_errors_map_to_502_upstream_error() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for fault in [
        Fault::Status(500),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Status(400),
        Fault::Status(404),
        Fault::BadJson,
    ] {
        s.set_fault(Endpoint::Users, fault);
        let h = get("/admin/users", &[bearer(&token)], &env_for(&s)).await?;
        let msg =
            expect_error(&h, 502, "upstream_error").map_err(|e| e.context(format!("{fault:?}")))?;
        // The upstream's own text is not relayed.
        ensure!(
            !msg.contains("Service Unavailable") && !msg.contains("1900000000000000001"),
            "{fault:?}: {msg}"
        );
        assert_no_secrets(&h, &[&token, &s.api_key()])?;
        assert_one_log_line(&h, "GET", "/admin/users")?;
    }
    Ok(())
}

#[tokio::test]
async fn a_rejected_api_key_is_502_upstream_auth_failed() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let wrong = wacht_standin::random_secret("sk_test");
    let env = with(env_for(&s), "WACHT_API_KEY", &wrong);
    let h = get("/admin/users", &[bearer(&token)], &env).await?;
    expect_error(&h, 502, "upstream_auth_failed")?;
    ensure!(s.count(Endpoint::Users) == 1);
    assert_no_secrets(&h, &[&token, &wrong, &s.api_key()])?;
    Ok(())
}

#[tokio::test]
async fn backend_rate_limit_is_503_with_retry_after() -> anyhow::Result<()> {
    let s = standin();
    s.set_fault(Endpoint::Users, Fault::RateLimited);
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env_for(&s)).await?;
    expect_error(&h, 503, "upstream_rate_limited")?;
    let retry = header(&h.response, "retry-after").unwrap_or("");
    ensure!(
        retry.parse::<u64>().is_ok_and(|n| n >= 1),
        "Retry-After {retry:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hung_backend_is_504_after_the_upstream_timeout() -> anyhow::Result<()> {
    let s = standin();
    s.set_fault(Endpoint::Users, Fault::Hang);
    let env = with(env_for(&s), "WACHT_UPSTREAM_TIMEOUT_MS", "300");
    let started = Instant::now();
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env).await?;
    let took = started.elapsed();
    expect_error(&h, 504, "upstream_timeout")?;
    ensure!(
        took >= Duration::from_millis(250),
        "answered before the timeout: {took:?}"
    );
    ensure!(
        took < Duration::from_secs(3),
        "timeout not enforced: {took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unreachable_backend_is_503_upstream_unavailable() -> anyhow::Result<()> {
    let s = standin();
    let env = with(env_for(&s), "WACHT_BACKEND_API_URL", &closed_port_url());
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env).await?;
    expect_error(&h, 503, "upstream_unavailable")?;
    assert_one_log_line(&h, "GET", "/admin/users")?;
    Ok(())
}

#[tokio::test]
async fn a_dropped_backend_connection_is_never_200() -> anyhow::Result<()> {
    let s = standin();
    s.set_fault(Endpoint::Users, Fault::Close);
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env_for(&s)).await?;
    let (status, code, _) = json_error(&h.response)?;
    ensure!(status == 502 || status == 503, "{status} {code}");
    Ok(())
}

#[tokio::test]
async fn the_backend_url_may_carry_a_path_prefix() -> anyhow::Result<()> {
    // `WACHT_BACKEND_API_URL=http://host/v2` → `GET /v2/users`: the stand-in answers 404 there,
    // which proves the prefix is kept (and that a 404 is an upstream error, not a pass-through).
    let s = standin();
    let env = with(
        env_for(&s),
        "WACHT_BACKEND_API_URL",
        &format!("{}/v2/", s.url()),
    );
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env).await?;
    expect_error(&h, 502, "upstream_error")?;
    let other = s.requests(Endpoint::Other);
    ensure!(
        other.len() == 1 && other[0].path == "/v2/users",
        "expected one call to /v2/users, got {:?}",
        other.iter().map(|r| r.path.clone()).collect::<Vec<_>>()
    );
    Ok(())
}
