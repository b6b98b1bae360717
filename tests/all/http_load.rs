//! Load: 2,000 session-authenticated requests, 16 in flight, each in a fresh instance making two
//! loopback calls (JWKS, users). Every one must succeed: a flaky outgoing-HTTP path shows here.

use std::sync::Arc;
use std::time::Instant;

use crate::common::*;
use anyhow::ensure;
use tokio::sync::Semaphore;

const REQUESTS: usize = 2_000;
const IN_FLIGHT: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_requests_sixteen_in_flight() -> anyhow::Result<()> {
    let s = standin();
    // Valid for the whole run, however slow the machine.
    let mut c = claims(&s);
    c["exp"] = serde_json::json!(now() + 900);
    let token = token_with(&s, &c);
    let env = Arc::new(env_for(&s));
    let component = component()?;
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));

    let started = Instant::now();
    let mut tasks = Vec::with_capacity(REQUESTS);
    for i in 0..REQUESTS {
        let permit = gate.clone().acquire_owned().await?;
        let env = env.clone();
        let req = request("GET", "/admin/users", &[bearer(&token)]);
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let outcome = component.handle(req, &env).await;
            (i, outcome)
        }));
    }
    let mut failures = Vec::new();
    let mut latencies = Vec::with_capacity(REQUESTS);
    for task in tasks {
        let (i, outcome) = task.await?;
        match outcome {
            Ok(h) if h.response.status() == 200 => latencies.push(h.elapsed),
            Ok(h) => failures.push(format!(
                "#{i}: {} {} | {}",
                h.response.status(),
                String::from_utf8_lossy(h.response.body()),
                h.stderr.trim()
            )),
            Err(e) => failures.push(format!("#{i}: host error {e:#}")),
        }
    }
    let took = started.elapsed();
    latencies.sort_unstable();
    let pct = |p: usize| {
        latencies
            .get(latencies.len().saturating_sub(1) * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{REQUESTS} requests, {IN_FLIGHT} in flight: {took:?} ({:.0} req/s); p50 {:?} p99 {:?} max {:?}",
        REQUESTS as f64 / took.as_secs_f64(),
        pct(50),
        pct(99),
        pct(100)
    );
    ensure!(
        failures.is_empty(),
        "{} of {REQUESTS} failed; first: {:#?}",
        failures.len(),
        failures.iter().take(5).collect::<Vec<_>>()
    );
    ensure!(
        s.count(Endpoint::Users) == REQUESTS,
        "backend saw {} users calls",
        s.count(Endpoint::Users)
    );
    ensure!(s.count(Endpoint::Jwks) >= 1);
    ensure!(s.count(Endpoint::Other) == 0 && s.count(Endpoint::AuthzCheck) == 0);
    Ok(())
}
