//! Request ids and W3C trace context through the real component in wasmtime: reused when the
//! caller's are usable, replaced when not, and carried to every upstream call.

use crate::common::*;
use anyhow::{Context as _, ensure};

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn h(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

#[tokio::test]
async fn the_callers_ids_reach_the_answer_the_log_and_every_upstream() -> anyhow::Result<()> {
    let s = standin();
    let headers = vec![
        bearer(&session_token(&s)),
        h("x-request-id", "dash-42"),
        h("traceparent", PARENT),
        h("tracestate", "vendor=1"),
    ];
    let resp = get("/admin/users", &headers, &env_for(&s)).await?;
    expect_users(&resp, &s)?;
    ensure!(header(&resp.response, "x-request-id") == Some("dash-42"));
    ensure!(
        resp.stderr
            .contains("request_id=dash-42 trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
        "{}",
        resp.stderr
    );
    let calls =
        [Endpoint::Jwks, Endpoint::Users].map(|e| s.last_request(e).context("upstream not called"));
    for call in calls {
        let call = call?;
        ensure!(
            call.header("x-request-id") == Some("dash-42"),
            "{:?}",
            call.endpoint
        );
        let parent = call.header("traceparent").context("no traceparent")?;
        ensure!(
            parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
                && parent.ends_with("-01")
                && !parent.contains("00f067aa0ba902b7"),
            "the caller's trace with our own span: {parent}"
        );
        ensure!(call.header("tracestate") == Some("vendor=1"));
    }
    Ok(())
}

#[tokio::test]
async fn unusable_ids_are_replaced_by_fresh_ones() -> anyhow::Result<()> {
    let s = standin();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let headers = vec![
            h("x-request-id", "not a valid id"),
            h(
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            h("tracestate", "vendor=1"),
        ];
        let resp = get("/admin/users", &headers, &env_for(&s)).await?;
        expect_error(&resp, 401, "missing_credentials")?;
        let id = header(&resp.response, "x-request-id")
            .context("no X-Request-Id")?
            .to_string();
        ensure!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{id}"
        );
        ensure!(resp.stderr.contains(&format!("request_id={id} ")));
        ids.push(id);
    }
    ensure!(ids[0] != ids[1], "each request gets an id of its own");
    // A fresh trace for the upstream calls, without the caller's tracestate.
    let resp = get(
        "/admin/users",
        &[bearer(&session_token(&s)), h("tracestate", "vendor=1")],
        &env_for(&s),
    )
    .await?;
    expect_users(&resp, &s)?;
    let call = s.last_request(Endpoint::Users).context("no users call")?;
    let parent = call.header("traceparent").context("no traceparent")?;
    ensure!(parent.len() == 55 && parent.ends_with("-00"), "{parent}");
    ensure!(call.header("tracestate").is_none());
    ensure!(call.header("x-request-id") == header(&resp.response, "x-request-id"));
    Ok(())
}
