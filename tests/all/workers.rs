//! The Cloudflare Worker (worker/dist/, the exact `wrangler deploy --dry-run` upload) served by
//! real workerd, against the loopback stand-in Wacht: the contract through HTTP, faults, the
//! instance pool, the outbound policy, no secret in any answer or log, and 500 requests with
//! 20 in flight.
//!
//! Needs `make worker-build` first (`make test-worker` does both); a missing or stale
//! worker/dist/ fails the test with that hint, it is never skipped.
use crate::client;
mod cors;
mod native;
mod tsworker;
use crate::vectors;
mod verifier;
pub mod workerd;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use serde_json::{Value, json};
use wacht_standin::tokens::{TestKey, b64url, session_claims};
use wacht_standin::{Credential, Endpoint, FOREIGN_DEPLOYMENT_ID, Fault, StandIn, StandInConfig};

use client::Response;
use native::NativeHost;
use workerd::{ColdStart, ModuleWorker, Service, Workerd};

const TIMEOUT: Duration = Duration::from_secs(15);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn standin() -> StandIn {
    StandIn::start(
        StandInConfig::default()
            .with_keys(vec![TestKey::es256(1)])
            .with_hang_for(Duration::from_secs(5)),
    )
    .expect("starting the stand-in")
}

/// The Worker's bindings, every Wacht URL pointing at `s`.
fn bindings(s: &StandIn, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut b = s.component_env();
    for (k, v) in extra {
        b.retain(|(n, _)| n != k);
        b.push((k.to_string(), v.to_string()));
    }
    b
}

fn session_token(s: &StandIn) -> String {
    s.key().unwrap().token(&session_claims(&s.url(), now()))
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
    client::send(addr, "GET", target, headers, TIMEOUT)
}

/// Asserts `{"error": code, "message": …, "request_id": …}` with this status (and `WWW-Authenticate: Bearer…` on 401).
fn expect_error(r: &Response, status: u16, code: &str) -> anyhow::Result<String> {
    let (got, message) = error_body(r, status)?;
    ensure!(
        got == code,
        "expected code {code}, got {got}:\n{}",
        r.dump()
    );
    Ok(message)
}

/// Asserts the error shape with this status; returns (code, message).
fn error_body(r: &Response, status: u16) -> anyhow::Result<(String, String)> {
    ensure!(r.status == status, "expected {status}, got:\n{}", r.dump());
    safe_headers(r)?;
    ensure!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "not JSON:\n{}",
        r.dump()
    );
    let v: Value = serde_json::from_slice(&r.body).context("error body is not JSON")?;
    let obj = v.as_object().context("error body is not an object")?;
    ensure!(obj.len() == 3, "error body has extra fields: {v}");
    let id = obj.get("request_id").and_then(Value::as_str);
    ensure!(
        id.is_some() && id == r.header("x-request-id"),
        "the body's request_id is not the X-Request-Id header:\n{}",
        r.dump()
    );
    let code = obj.get("error").and_then(Value::as_str).unwrap_or("");
    ensure!(!code.is_empty(), "no error code: {v}");
    let message = obj.get("message").and_then(Value::as_str).unwrap_or("");
    ensure!(!message.is_empty(), "empty message: {v}");
    if status == 401 {
        ensure!(
            r.header("www-authenticate")
                .is_some_and(|w| w.starts_with("Bearer")),
            "401 without WWW-Authenticate: Bearer:\n{}",
            r.dump()
        );
    }
    Ok((code.to_string(), message.to_string()))
}

/// Every answer, the shim's own included: `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`.
fn safe_headers(r: &Response) -> anyhow::Result<()> {
    ensure!(
        r.header("cache-control") == Some("no-store")
            && r.header("x-content-type-options") == Some("nosniff"),
        "{} without the safe headers:\n{}",
        r.status,
        r.dump()
    );
    Ok(())
}

/// Asserts a 200 whose body is byte-for-byte the page the stand-in's backend answered last.
fn expect_users(r: &Response, s: &StandIn) -> anyhow::Result<()> {
    ensure!(r.status == 200, "expected 200, got:\n{}", r.dump());
    safe_headers(r)?;
    ensure!(
        r.header("content-type") == Some("application/json"),
        "content-type {:?}",
        r.header("content-type")
    );
    let upstream = s
        .last_request(Endpoint::Users)
        .context("the backend was not called")?;
    ensure!(
        upstream.response_body.as_deref() == Some(r.body.as_slice()),
        "body differs from the backend's:\n ours:     {}\n upstream: {:?}",
        r.text(),
        upstream.response_body
    );
    Ok(())
}

fn assert_no_secrets(what: &str, text: &str, secrets: &[&str]) -> anyhow::Result<()> {
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        ensure!(
            !text.contains(secret),
            "a secret ({}…) appears in {what}:\n{text}",
            &secret[..8]
        );
    }
    Ok(())
}

/// Runs every case, reports all failures together.
struct Cases {
    failures: Vec<String>,
    passed: usize,
}

impl Cases {
    fn new() -> Cases {
        Cases {
            failures: Vec::new(),
            passed: 0,
        }
    }

    fn run(&mut self, name: &str, f: impl FnOnce() -> anyhow::Result<()>) {
        let started = Instant::now();
        match f() {
            Ok(()) => {
                self.passed += 1;
                eprintln!("  ok   {name} ({:?})", started.elapsed());
            }
            Err(e) => {
                eprintln!("  FAIL {name}: {e:#}");
                self.failures.push(format!("{name}: {e:#}"));
            }
        }
    }

    fn finish(self, logs: &str) {
        eprintln!(
            "{} cases passed, {} failed",
            self.passed,
            self.failures.len()
        );
        if !self.failures.is_empty() {
            panic!(
                "{} case(s) failed:\n{}\n--- workerd output (tail) ---\n{}",
                self.failures.len(),
                self.failures.join("\n"),
                tail(logs, 40)
            );
        }
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn worker_serves_the_contract_in_workerd() {
    let s = standin();
    let api_key = "wk_live_".to_string() + &b64url(&[7u8; 32]);
    let denied_key = "wk_live_".to_string() + &b64url(&[8u8; 32]);
    let limited_key = "wk_live_".to_string() + &b64url(&[9u8; 32]);
    let oauth = "oat_".to_string() + &b64url(&[10u8; 32]);
    s.add_credential(&api_key, Credential::api_key(&["user:read"]));
    s.add_credential(&denied_key, Credential::api_key(&[]));
    s.add_credential(
        &limited_key,
        Credential::api_key(&["user:read"]).rate_limited(2500),
    );
    s.add_credential(&oauth, Credential::oauth_access_token(&["user:read"]));
    // Another tenant's key: the shared gateway allows it, for its own deployment.
    let foreign_key = "wk_live_".to_string() + &b64url(&[11u8; 32]);
    s.add_credential(
        &foreign_key,
        Credential::api_key(&["user:read"]).in_deployment(FOREIGN_DEPLOYMENT_ID),
    );
    let nameless_key = "wk_live_".to_string() + &b64url(&[12u8; 32]);
    s.add_credential(
        &nameless_key,
        Credential::api_key(&["user:read"]).without_identity(),
    );

    let w = Workerd::start(
        "contract",
        &[
            Service::new(
                "main",
                bindings(&s, &[("WACHT_UPSTREAM_TIMEOUT_MS", "500")]),
            ),
            // No WACHT_API_KEY: the guest must say which variable is missing.
            Service::new(
                "unconfigured",
                bindings(&s, &[])
                    .into_iter()
                    .filter(|(k, _)| k != "WACHT_API_KEY")
                    .collect(),
            ),
            Service {
                broken_core: true,
                ..Service::new("broken", bindings(&s, &[]))
            },
            Service::new(
                "capped",
                bindings(
                    &s,
                    &[
                        ("WACHT_MAX_INSTANCES", "2"),
                        // Long enough that all four requests surely overlap.
                        ("WACHT_UPSTREAM_TIMEOUT_MS", "1500"),
                    ],
                ),
            ),
        ],
    )
    .unwrap();
    let addr = w.addr("main");
    let token = session_token(&s);
    let mut tokens_used = vec![token.clone()];
    let mut responses: Vec<Response> = Vec::new();
    let mut c = Cases::new();
    let bearer = |t: &str| format!("Bearer {t}");

    c.run(
        "200 session token: the backend's page, byte for byte",
        || {
            let r = get(addr, "/admin/users", &[("authorization", &bearer(&token))])?;
            expect_users(&r, &s)?;
            let backend = s.last_request(Endpoint::Users).unwrap();
            ensure!(
                backend.query.as_deref() == Some("limit=20"),
                "query {:?}",
                backend.query
            );
            responses.push(r);
            Ok(())
        },
    );

    c.run(
        "200 API key (x-api-key), cf-connecting-ip and user-agent reach the gateway",
        || {
            let r = get(
                addr,
                "/admin/users?limit=5&sort_key=email",
                &[
                    ("x-api-key", &api_key),
                    ("cf-connecting-ip", "203.0.113.7"),
                    ("user-agent", "wacht-test/1.0"),
                ],
            )?;
            expect_users(&r, &s)?;
            let check = s
                .last_request(Endpoint::AuthzCheck)
                .context("no gateway call")?;
            let body = check.json.context("gateway body not JSON")?;
            ensure!(body["principal"]["type"] == "api_key", "{body}");
            ensure!(
                body["client_ip"] == "203.0.113.7",
                "client_ip not forwarded: {body}"
            );
            ensure!(
                body["user_agent"] == "wacht-test/1.0",
                "user_agent not forwarded: {body}"
            );
            let backend = s.last_request(Endpoint::Users).unwrap();
            ensure!(
                backend.query.as_deref() == Some("limit=5&sort_key=email"),
                "query {:?}",
                backend.query
            );
            responses.push(r);
            Ok(())
        },
    );

    c.run(
        "request ids: the caller's kept and sent upstream with its trace, a bad one replaced",
        || {
            let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let r = get(
                addr,
                "/admin/users",
                &[
                    ("authorization", &bearer(&token)),
                    ("x-request-id", "dash-7"),
                    ("traceparent", parent),
                ],
            )?;
            expect_users(&r, &s)?;
            ensure!(r.header("x-request-id") == Some("dash-7"), "{}", r.dump());
            let backend = s.last_request(Endpoint::Users).context("no users call")?;
            ensure!(backend.header("x-request-id") == Some("dash-7"));
            let sent = backend.header("traceparent").unwrap_or("");
            ensure!(
                sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && sent != parent,
                "{sent}"
            );
            responses.push(r);
            let r = get(addr, "/admin/users", &[("x-request-id", "bad id")])?;
            expect_error(&r, 401, "missing_credentials")?;
            let id = r.header("x-request-id").unwrap_or("");
            ensure!(id.len() == 32 && id != "bad id", "{id}");
            responses.push(r);
            Ok(())
        },
    );

    c.run("200 OAuth access token as bearer", || {
        let r = get(addr, "/admin/users", &[("authorization", &bearer(&oauth))])?;
        expect_users(&r, &s)?;
        responses.push(r);
        Ok(())
    });

    c.run(
        "401 for another deployment's key or an answer naming no deployment; no backend call",
        || {
            for key in [&foreign_key, &nameless_key] {
                let before = s.count(Endpoint::Users);
                let r = get(addr, "/admin/users", &[("x-api-key", key)])?;
                expect_error(&r, 401, "invalid_credentials")?;
                ensure!(s.count(Endpoint::Users) == before, "our users were fetched");
                responses.push(r);
            }
            Ok(())
        },
    );

    c.run(
        "401 for a dotted bearer value, never sent to the gateway",
        || {
            let before = s.count(Endpoint::AuthzCheck);
            for value in [format!("{token}="), format!("{token}."), "a.b".to_string()] {
                let r = get(addr, "/admin/users", &[("authorization", &bearer(&value))])?;
                expect_error(&r, 401, "invalid_token")?;
                responses.push(r);
            }
            ensure!(
                s.count(Endpoint::AuthzCheck) == before,
                "a session token reached the gateway"
            );
            Ok(())
        },
    );

    c.run("401 without a credential", || {
        let r = get(addr, "/admin/users", &[])?;
        expect_error(&r, 401, "missing_credentials")?;
        responses.push(r);
        Ok(())
    });

    let key = s.key().unwrap();
    let claims = session_claims(&s.url(), now());
    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 300);
    expired["exp"] = json!(now() - 200);
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("https://evil.example");
    let unsigned = format!(
        "{}.{}.",
        b64url(br#"{"alg":"none","typ":"JWT"}"#),
        b64url(claims.to_string().as_bytes())
    );
    let attacks = [
        (
            "bad signature (another key)",
            TestKey::es256(2).token(&claims),
        ),
        ("alg none", unsigned),
        ("expired", key.token(&expired)),
        ("wrong iss", key.token(&wrong_iss)),
    ];
    for (what, t) in &attacks {
        tokens_used.push(t.clone());
        c.run(&format!("401 session token: {what}"), || {
            let before = s.count(Endpoint::Users);
            let r = get(addr, "/admin/users", &[("authorization", &bearer(t))])?;
            error_body(&r, 401)?;
            ensure!(s.count(Endpoint::Users) == before, "the backend was called");
            responses.push(r);
            Ok(())
        });
    }

    c.run("403 session without the required permission", || {
        let mut other = session_claims(&s.url(), now());
        other["permissions"] = json!({"organization": ["billing:read"], "workspace": null});
        let t = key.token(&other);
        let r = get(addr, "/admin/users", &[("authorization", &bearer(&t))])?;
        expect_error(&r, 403, "forbidden")?;
        responses.push(r);
        Ok(())
    });

    c.run("403 gateway permission_denied", || {
        let r = get(addr, "/admin/users", &[("x-api-key", &denied_key)])?;
        expect_error(&r, 403, "forbidden")?;
        responses.push(r);
        Ok(())
    });

    c.run("429 gateway rate_limited, with Retry-After", || {
        let r = get(addr, "/admin/users", &[("x-api-key", &limited_key)])?;
        expect_error(&r, 429, "rate_limited")?;
        let ra: u64 = r
            .header("retry-after")
            .context("no Retry-After")?
            .parse()
            .context("Retry-After is not whole seconds")?;
        ensure!(
            (1..=5).contains(&ra),
            "Retry-After {ra} for retry_after 2500 ms"
        );
        responses.push(r);
        Ok(())
    });

    c.run("404 unknown path", || {
        let r = get(addr, "/admin/other", &[("authorization", &bearer(&token))])?;
        expect_error(&r, 404, "not_found")?;
        responses.push(r);
        Ok(())
    });

    c.run("405 POST, with Allow: GET", || {
        let r = client::send(
            addr,
            "POST",
            "/admin/users",
            &[("authorization", &bearer(&token))],
            TIMEOUT,
        )?;
        expect_error(&r, 405, "method_not_allowed")?;
        ensure!(
            r.header("allow") == Some("GET"),
            "Allow {:?}",
            r.header("allow")
        );
        responses.push(r);
        Ok(())
    });

    c.run(
        "405 POST with a 256 KiB body (never buffered for the guest)",
        || {
            let body = vec![b'x'; 256 * 1024];
            let r = client::send_body(
                addr,
                "POST",
                "/admin/users",
                &[("content-type", "application/octet-stream")],
                &body,
                TIMEOUT,
            )?;
            expect_error(&r, 405, "method_not_allowed")?;
            responses.push(r);
            Ok(())
        },
    );

    c.run("400 bad query", || {
        let r = get(
            addr,
            "/admin/users?limit=abc",
            &[("authorization", &bearer(&token))],
        )?;
        expect_error(&r, 400, "invalid_query")?;
        responses.push(r);
        Ok(())
    });

    let faults = [
        (Endpoint::Users, Fault::Status(500), 502, "upstream_error"),
        (
            Endpoint::Users,
            Fault::Status(401),
            502,
            "upstream_auth_failed",
        ),
        (Endpoint::Users, Fault::BadJson, 502, "upstream_error"),
        (Endpoint::Users, Fault::Close, 502, "upstream_error"),
        (
            Endpoint::Users,
            Fault::RateLimited,
            503,
            "upstream_rate_limited",
        ),
        (Endpoint::Users, Fault::Hang, 504, "upstream_timeout"),
        (
            Endpoint::AuthzCheck,
            Fault::Status(500),
            502,
            "upstream_error",
        ),
        (Endpoint::AuthzCheck, Fault::Hang, 504, "upstream_timeout"),
    ];
    for (endpoint, fault, status, code) in faults {
        c.run(
            &format!("{status} {code} when {endpoint:?} answers {fault:?}"),
            || {
                s.set_fault(endpoint, fault);
                let started = Instant::now();
                let r = get(addr, "/admin/users", &[("x-api-key", &api_key)]);
                s.set_fault(endpoint, Fault::Normal);
                let r = r?;
                expect_error(&r, status, code)?;
                if fault == Fault::Hang {
                    // WACHT_UPSTREAM_TIMEOUT_MS=500
                    ensure!(
                        started.elapsed() < Duration::from_secs(3),
                        "took {:?}",
                        started.elapsed()
                    );
                }
                responses.push(r);
                Ok(())
            },
        );
    }

    c.run("after the faults the same Worker serves 200 again", || {
        let r = get(addr, "/admin/users", &[("authorization", &bearer(&token))])?;
        expect_users(&r, &s)?;
        responses.push(r);
        Ok(())
    });

    c.run(
        "500 configuration_error naming WACHT_API_KEY when it is not bound",
        || {
            let r = get(
                w.addr("unconfigured"),
                "/admin/users",
                &[("authorization", &bearer(&token))],
            )?;
            let message = expect_error(&r, 500, "configuration_error")?;
            ensure!(message.contains("WACHT_API_KEY"), "{message}");
            Ok(())
        },
    );

    c.run(
        "502 internal_error JSON when the component cannot be instantiated",
        || {
            let r = get(
                w.addr("broken"),
                "/admin/users",
                &[("authorization", &bearer(&token))],
            )?;
            expect_error(&r, 502, "internal_error")?;
            responses.push(r);
            Ok(())
        },
    );

    c.run(
        "past WACHT_MAX_INSTANCES requests are shed with 503 + Retry-After, then served again",
        || {
            s.set_fault(Endpoint::Users, Fault::Hang);
            let capped = w.addr("capped");
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let key = api_key.clone();
                    std::thread::spawn(move || get(capped, "/admin/users", &[("x-api-key", &key)]))
                })
                .collect();
            let answers: Vec<anyhow::Result<Response>> = threads
                .into_iter()
                .map(|t| t.join().expect("request thread"))
                .collect();
            s.set_fault(Endpoint::Users, Fault::Normal);
            let mut statuses = Vec::new();
            for r in answers {
                let r = r?;
                match r.status {
                    504 => {
                        expect_error(&r, 504, "upstream_timeout")?;
                    }
                    503 => {
                        expect_error(&r, 503, "overloaded")?;
                        ensure!(r.header("retry-after") == Some("1"), "{}", r.dump());
                    }
                    _ => {}
                }
                statuses.push(r.status);
                responses.push(r);
            }
            statuses.sort();
            ensure!(statuses == [503, 503, 504, 504], "statuses {statuses:?}");
            let r = get(capped, "/admin/users", &[("x-api-key", &api_key)])?;
            expect_users(&r, &s)?;
            responses.push(r);
            Ok(())
        },
    );

    c.run(
        "every answer, the shim's own included, matches openapi.yaml",
        || {
            let doc = crate::http_openapi::openapi();
            // A 404 is another path's: the document describes /admin/users.
            for r in responses.iter().filter(|r| r.status != 404) {
                let header = |name: &str| r.header(name).map(str::to_string);
                crate::http_openapi::check_answer(&doc, "GET", r.status, &header, &r.body)
                    .with_context(|| r.dump())?;
            }
            Ok(())
        },
    );

    // Every credential and token the requests carried, and our own backend key.
    let backend_key = s.api_key();
    let mut secrets: Vec<&str> = vec![
        &api_key,
        &denied_key,
        &limited_key,
        &oauth,
        &foreign_key,
        &nameless_key,
        &backend_key,
    ];
    secrets.extend(tokens_used.iter().map(String::as_str));
    c.run("no credential in any answer", || {
        for r in &responses {
            assert_no_secrets("a response", &r.dump(), &secrets)?;
        }
        ensure!(
            responses.len() >= 20,
            "only {} responses collected",
            responses.len()
        );
        Ok(())
    });

    // Let workerd flush its console output.
    std::thread::sleep(Duration::from_millis(300));
    let logs = w.logs();
    c.run(
        "no credential in workerd's stdout/stderr; one access-log line per request",
        || {
            assert_no_secrets("workerd's output", &logs, &secrets)?;
            // The readiness probes aside, one guest line per request that reached a guest:
            // the responses collected, less the shed ones, less the broken service's (its
            // guest never ran), plus the unconfigured service's one (not collected).
            let lines = logs
                .lines()
                .filter(|l| l.starts_with("wacht-admin v=1 ") && !l.contains("/__ready"))
                .count();
            let shed = responses
                .iter()
                .filter(|r| r.status == 503 && r.text().contains("overloaded"))
                .count();
            let expected = responses.len() - shed;
            ensure!(
                lines == expected,
                "{lines} access-log lines for {expected} requests:\n{}",
                tail(&logs, 40)
            );
            ensure!(
                logs.contains("wacht-admin worker: instantiation failed"),
                "the shim did not log the broken instantiation"
            );
            Ok(())
        },
    );
    c.finish(&logs);
}

#[test]
fn pool_reuses_instances_and_survives_500_requests_20_in_flight() {
    let s = standin();
    let w = Workerd::start(
        "pool",
        &[
            Service::new("pooled", bindings(&s, &[])),
            Service::new("unpooled", bindings(&s, &[("WACHT_POOL_SIZE", "0")])),
        ],
    )
    .unwrap();
    let token = session_token(&s);
    let auth = format!("Bearer {token}");
    let mut c = Cases::new();

    // Each instance keeps its JWKS cache: the JWKS fetch count tells instances apart.
    for (service, fetches, name) in [
        (
            "pooled",
            1,
            "pooled: 5 sequential requests share one instance (one JWKS fetch)",
        ),
        (
            "unpooled",
            5,
            "WACHT_POOL_SIZE=0: a fresh instance per request (one JWKS fetch each)",
        ),
    ] {
        c.run(name, || {
            s.reset();
            for _ in 0..5 {
                let h = get(w.addr(service), "/admin/users", &[("authorization", &auth)])?;
                expect_users(&h, &s)?;
            }
            let seen = s.count(Endpoint::Jwks);
            ensure!(
                seen == fetches,
                "JWKS fetched {seen} times, expected {fetches}"
            );
            Ok(())
        });
    }

    for (service, total) in [("pooled", 500), ("unpooled", 100)] {
        c.run(&format!("{service}: {total} requests, 20 in flight, all 200"), || {
            s.reset();
            let (ok, failures, elapsed) = load(w.addr(service), total, 20, &auth);
            eprintln!(
                "       {service}: {ok}/{total} ok in {elapsed:?} ({:.0} req/s), JWKS fetches {}",
                total as f64 / elapsed.as_secs_f64(),
                s.count(Endpoint::Jwks)
            );
            ensure!(failures.is_empty(), "{} failures, first: {}", failures.len(), failures[0]);
            ensure!(ok == total, "{ok} of {total}");
            ensure!(s.count(Endpoint::Users) == total, "backend saw {}", s.count(Endpoint::Users));
            Ok(())
        });
    }

    std::thread::sleep(Duration::from_millis(300));
    let logs = w.logs();
    c.run("no credential in workerd's output", || {
        assert_no_secrets("workerd's output", &logs, &[&token, &s.api_key()])
    });
    c.finish(&logs);
}

/// `total` GETs over `in_flight` threads; returns (200s, failure descriptions, wall time).
fn load(
    addr: SocketAddr,
    total: usize,
    in_flight: usize,
    auth: &str,
) -> (usize, Vec<String>, Duration) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..in_flight)
        .map(|_| {
            let next = next.clone();
            let auth = auth.to_string();
            std::thread::spawn(move || {
                let (mut ok, mut failures) = (0, Vec::new());
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    match get(addr, "/admin/users", &[("authorization", &auth)]) {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failures.push(r.dump()),
                        Err(e) => failures.push(format!("{e:#}")),
                    }
                }
                (ok, failures)
            })
        })
        .collect();
    let mut ok = 0;
    let mut failures = Vec::new();
    for h in handles {
        let (o, f) = h.join().expect("a load thread panicked");
        ok += o;
        failures.extend(f);
    }
    (ok, failures, started.elapsed())
}

/// A loopback server that answers every request with `reply` and counts connections.
struct RawServer {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl RawServer {
    fn start(reply: String) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        // Lives until the test process exits; it only ever answers loopback connections.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut stream = stream;
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        RawServer { addr, hits }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

#[test]
fn the_guest_cannot_be_redirected_off_the_allowlist() {
    let s = standin();
    // Off the allowlist: a server that would hand back a perfectly good users page.
    let page = r#"{"data":[],"has_more":false,"limit":20,"offset":0}"#;
    let outsider = RawServer::start(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
        page.len()
    ));
    // The (allowlisted) backend answers with a redirect to it.
    let redirector = RawServer::start(format!(
        "HTTP/1.1 302 Found\r\nlocation: {}/users?limit=20\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        outsider.url()
    ));
    let w = Workerd::start(
        "redirect",
        &[Service::new(
            "main",
            bindings(&s, &[("WACHT_BACKEND_API_URL", &redirector.url())]),
        )],
    )
    .unwrap();
    let token = session_token(&s);
    let mut c = Cases::new();
    c.run(
        "a backend redirect is not followed: 502, the outsider never contacted",
        || {
            let r = get(
                w.addr("main"),
                "/admin/users",
                &[("authorization", &format!("Bearer {token}"))],
            )?;
            ensure!(
                redirector.hits.load(Ordering::SeqCst) == 1,
                "the backend was not called"
            );
            ensure!(
                outsider.hits.load(Ordering::SeqCst) == 0,
                "the redirect was followed to a host off the allowlist (answer {})",
                r.status
            );
            expect_error(&r, 502, "upstream_error")?;
            Ok(())
        },
    );
    c.finish(&w.logs());
}

#[test]
fn an_upstream_body_over_the_cap_is_refused_not_buffered() {
    let s = standin();
    // Announces 100 MiB and closes after a few bytes: refused on the length, before any read.
    let declared = RawServer::start(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 104857600\r\n\
         connection: close\r\n\r\n[[[["
            .to_string(),
    );
    // No length: 9 MiB in chunks, cut at the shim's cap while it is read.
    let mib = "x".repeat(1 << 20);
    let mut chunked = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\
         connection: close\r\n\r\n",
    );
    for _ in 0..9 {
        chunked.push_str(&format!("{:x}\r\n{mib}\r\n", mib.len()));
    }
    chunked.push_str("0\r\n\r\n");
    let chunked = RawServer::start(chunked);
    let w = Workerd::start(
        "over-cap",
        &[
            Service::new(
                "declared",
                bindings(&s, &[("WACHT_BACKEND_API_URL", &declared.url())]),
            ),
            Service::new(
                "chunked",
                bindings(&s, &[("WACHT_BACKEND_API_URL", &chunked.url())]),
            ),
        ],
    )
    .unwrap();
    let token = session_token(&s);
    let mut c = Cases::new();
    for (service, server) in [("declared", &declared), ("chunked", &chunked)] {
        c.run(
            &format!("{service}: 502 upstream_error, promptly, and the Worker serves on"),
            || {
                let started = Instant::now();
                let r = get(
                    w.addr(service),
                    "/admin/users",
                    &[("authorization", &format!("Bearer {token}"))],
                )?;
                ensure!(
                    server.hits.load(Ordering::SeqCst) >= 1,
                    "the backend was not called"
                );
                expect_error(&r, 502, "upstream_error")?;
                ensure!(
                    started.elapsed() < Duration::from_secs(5),
                    "took {:?}",
                    started.elapsed()
                );
                // The Worker answers the next request as usual.
                let again = get(
                    w.addr(service),
                    "/admin/users",
                    &[("accept", "application/json")],
                )?;
                expect_error(&again, 401, "missing_credentials")?;
                Ok(())
            },
        );
    }
    c.finish(&w.logs());
}

/// The benchmarks run one at a time, whatever `--test-threads` says: two at once would share
/// the cores and spoil each other's figures.
static BENCH_LOCK: Mutex<()> = Mutex::new(());

fn bench_lock() -> MutexGuard<'static, ()> {
    BENCH_LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Requests/s and workerd CPU per request, one instance per request (`WACHT_POOL_SIZE=0`) vs the
/// pool, keep-alive connections like wrk, against the loopback stand-in. Not part of `make test`:
///
///   make worker-build && cargo test --test all workers::bench -- --ignored --nocapture
///
/// WACHT_BENCH_SECS (default 5) and WACHT_BENCH_CONNECTIONS (default 4) tune it.
#[test]
#[ignore = "benchmark: run it explicitly"]
fn bench_pool_vs_instance_per_request() {
    let _one_at_a_time = bench_lock();
    let secs = env_num("WACHT_BENCH_SECS", 5);
    let conns = env_num("WACHT_BENCH_CONNECTIONS", 4) as usize;
    let s = standin();
    let api_key = "wk_live_".to_string() + &b64url(&[7u8; 32]);
    s.add_credential(&api_key, Credential::api_key(&["user:read"]));
    let users = UsersCheck::new(&s).unwrap();
    let w = Workerd::start(
        "bench",
        &[
            Service::new("pool", bindings(&s, &[])),
            Service::new("per_request", bindings(&s, &[("WACHT_POOL_SIZE", "0")])),
        ],
    )
    .unwrap();
    let mut claims = session_claims(&s.url(), now());
    claims["exp"] = json!(now() + 3600);
    let session = format!("Bearer {}", s.key().unwrap().token(&claims));
    eprintln!(
        "{conns} keep-alive connections, {secs} s per run (after 1 s warm-up); CPU = workerd process, user+system"
    );
    eprintln!(
        "{:<12} {:<12} {:>8} {:>12} {:>9} {:>9} {:>7} {:>9}",
        "mode", "credential", "req/s", "CPU ms/req", "p50 ms", "p99 ms", "errors", "RSS MiB"
    );
    let is_401 = |r: &Response| r.status == 401;
    let is_users = |r: &Response| users.matches(r);
    for service in ["pool", "per_request"] {
        // "none" is a 401 without any upstream call: the cost of workerd, the shim and the glue.
        let rows: [(&str, &str, &str, &Check<'_>); 3] = [
            ("session JWT", "authorization", session.as_str(), &is_users),
            ("API key", "x-api-key", api_key.as_str(), &is_users),
            ("none (401)", "accept", "application/json", &is_401),
        ];
        for (kind, name, value, check) in rows {
            let addr = w.addr(service);
            let values = [value.to_string()];
            let next = AtomicUsize::new(0);
            let _ = drive(
                addr,
                conns,
                Duration::from_secs(1),
                name,
                &values,
                &next,
                check,
            );
            let cpu0 = w.cpu_time().unwrap_or_default();
            let d = drive(
                addr,
                conns,
                Duration::from_secs(secs),
                name,
                &values,
                &next,
                check,
            );
            let cpu = w.cpu_time().unwrap_or_default().saturating_sub(cpu0);
            // RSS after each run: a pool that leaks per request grows row by row.
            eprintln!(
                "{service:<12} {kind:<12} {:>8.0} {:>12.2} {:>9.1} {:>9.1} {:>7} {:>9.1}",
                d.rps(),
                cpu.as_secs_f64() * 1e3 / d.ok.max(1) as f64,
                d.percentile_ms(0.5),
                d.percentile_ms(0.99),
                d.errors,
                w.rss_kib().unwrap_or(0) as f64 / 1024.0,
            );
        }
    }
}

/// How many distinct session tokens the "many tokens" rows cycle through.
const DISTINCT_TOKENS: usize = 20_000;

/// One server of the side-by-side table, started for its two rows and killed right after.
enum Server {
    Workerd(Workerd, &'static str),
    Host(NativeHost),
}

impl Server {
    fn addr(&self) -> SocketAddr {
        match self {
            Server::Workerd(w, service) => w.addr(service),
            Server::Host(h) => h.addr(),
        }
    }

    /// User + system CPU of the server's process(es) so far.
    fn cpu_time(&self) -> Option<Duration> {
        match self {
            Server::Workerd(w, _) => w.cpu_time(),
            Server::Host(h) => h.cpu_time(),
        }
    }

    fn rss_kib(&self) -> Option<u64> {
        match self {
            Server::Workerd(w, _) => w.rss_kib(),
            Server::Host(h) => h.rss_kib(),
        }
    }

    fn logs(&self) -> String {
        match self {
            Server::Workerd(w, _) => w.logs(),
            Server::Host(h) => h.logs(),
        }
    }
}

/// One row of the side-by-side table.
struct Row {
    server: &'static str,
    tokens: &'static str,
    rps: f64,
    cpu_ms: Option<f64>,
    p50: f64,
    p99: f64,
    ok: usize,
    errors: usize,
    rss_mib: Option<f64>,
}

/// The side-by-side table `make bench` prints: the guide's TypeScript worker (the baseline) and
/// our Worker, each in plain workerd, and `make serve` (the native host binary), against the same
/// loopback stand-in Wacht, with one session token repeated and with 20,000 distinct ones
/// (ES256, signed by the stand-in's key, minted before any timed run). Not part of `make test`:
///
///   make build worker-build && cargo build --profile host -p wacht-admin-host &&
///   cargo test --test all workers::bench_side_by_side -- --ignored --nocapture
///
/// WACHT_BENCH_SECS (default 5) and WACHT_BENCH_CONNECTIONS (default 4) tune it. Without the
/// TypeScript worker's seed (`../shared/seed/ts-worker`) it says so and prints our rows alone.
#[test]
#[ignore = "benchmark: run it explicitly"]
fn bench_side_by_side() {
    let _one_at_a_time = bench_lock();
    let bench_started = Instant::now();
    let secs = env_num("WACHT_BENCH_SECS", 5);
    let conns = env_num("WACHT_BENCH_CONNECTIONS", 4) as usize;
    let s = standin();
    let users = UsersCheck::new(&s).unwrap();
    let mut notes: Vec<String> = Vec::new();

    // The baseline first: building it takes a few seconds (npm ci only when its lock changed).
    let ts = match tsworker::build() {
        Ok(Some(ts)) => Some(ts),
        Ok(None) => {
            notes.push(format!(
                "TypeScript worker: {} is absent, so the baseline is left out (our rows only)",
                tsworker::seed_dir().display()
            ));
            None
        }
        Err(e) => {
            let first = format!("{e:#}").lines().next().unwrap_or("").to_string();
            notes.push(format!(
                "TypeScript worker: could not be built, so the baseline is left out: {first}"
            ));
            None
        }
    };

    // Every token before any timed run: one repeated, and DISTINCT_TOKENS distinct ones.
    let minting = Instant::now();
    let (single, distinct) = mint_session_tokens(&s, DISTINCT_TOKENS);
    let mut forged_claims = session_claims(&s.url(), now());
    forged_claims["exp"] = json!(now() + 3600);
    let forged = format!("Bearer {}", TestKey::es256(2).token(&forged_claims));
    eprintln!(
        "minted {} ES256 session tokens in {:.1} s",
        distinct.len() + 1,
        minting.elapsed().as_secs_f64()
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut cold: Vec<(&'static str, ColdStart)> = Vec::new();
    let floor_js =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/all/workers/floor.js");
    let floor_date = workerd::compatibility_date().unwrap();
    let labels = [
        "TypeScript worker",
        FLOOR,
        "our Worker",
        "make serve (host)",
    ];
    for label in labels {
        let started = match label {
            FLOOR => {
                let worker = ModuleWorker {
                    name: "floor",
                    main: &floor_js,
                    compatibility_date: &floor_date,
                    bindings: vec![
                        ("WACHT_API_KEY".to_string(), s.api_key()),
                        ("WACHT_BACKEND_API_URL".to_string(), s.url()),
                    ],
                };
                Workerd::start_module("bench-floor", &worker).map(|w| Server::Workerd(w, "floor"))
            }
            "TypeScript worker" => {
                let Some(ts) = &ts else { continue };
                let worker = ModuleWorker {
                    name: "ts",
                    main: &ts.index_js,
                    compatibility_date: &ts.compatibility_date,
                    bindings: vec![
                        ("WACHT_API_KEY".to_string(), s.api_key()),
                        ("WACHT_PUBLISHABLE_KEY".to_string(), s.publishable_key()),
                        ("WACHT_BACKEND_API_URL".to_string(), s.url()),
                    ],
                };
                Workerd::start_module("bench-ts", &worker).map(|w| Server::Workerd(w, "ts"))
            }
            "our Worker" => {
                Workerd::start("bench-ours", &[Service::new("ours", bindings(&s, &[]))])
                    .map(|w| Server::Workerd(w, "ours"))
            }
            _ => NativeHost::start(&bindings(&s, &[])).map(Server::Host),
        };
        let server = match started {
            Ok(server) => server,
            Err(e) if label == "TypeScript worker" => {
                let first = format!("{e:#}").lines().next().unwrap_or("").to_string();
                notes.push(format!(
                    "TypeScript worker: did not start, left out: {first}"
                ));
                continue;
            }
            Err(e) => panic!("{label}: {e:#}"),
        };
        if let Server::Workerd(w, _) = &server
            && let Some(c) = w.cold_start
            && label != FLOOR
        {
            cold.push((label, c));
        }
        // Two requests first: a stand-in session token must get 200 with the users page (or
        // the rows would be all errors), and the same claims signed by another key must not
        // (or the server would not be verifying anything).
        let probe = get(server.addr(), "/admin/users", &[("authorization", &single)]);
        let forged_probe = get(server.addr(), "/admin/users", &[("authorization", &forged)]);
        let problem = match (&probe, &forged_probe) {
            (Ok(r), _) if !users.matches(r) => Some(format!(
                "a stand-in session token did not get 200 with the users JSON:\n{}",
                r.dump().chars().take(600).collect::<String>()
            )),
            (Err(e), _) => Some(format!("a stand-in session token got no answer: {e:#}")),
            (_, Ok(r)) if r.status == 200 && label != FLOOR => Some(format!(
                "a token signed by another key got 200:\n{}",
                r.dump().chars().take(600).collect::<String>()
            )),
            (_, Err(e)) => Some(format!("a forged session token got no answer: {e:#}")),
            _ => None,
        };
        if let Some(problem) = problem {
            let message = format!(
                "{label}: {problem}\n--- its output (tail) ---\n{}",
                tail(&server.logs(), 20)
            );
            if label == "TypeScript worker" {
                eprintln!("{message}");
                notes.push(message.lines().take(2).collect::<Vec<_>>().join(" "));
                continue;
            }
            panic!("{message}");
        }
        let singles = [single.clone()];
        let no_credential = ["-".to_string()];
        // The TypeScript worker has no 401 row: without a credential it throws (a 500).
        let runs: &[(&str, &str, &[String])] = match label {
            FLOOR => &[
                (UNCHECKED, "authorization", &singles[..]),
                (NO_CREDENTIAL, "x-bench", &no_credential[..]),
            ],
            "TypeScript worker" => &[
                ("1 repeated", "authorization", &singles[..]),
                ("20,000 distinct", "authorization", &distinct[..]),
            ],
            _ => &[
                ("1 repeated", "authorization", &singles[..]),
                ("20,000 distinct", "authorization", &distinct[..]),
                (NO_CREDENTIAL, "x-bench", &no_credential[..]),
            ],
        };
        for &(tokens, header, values) in runs {
            let next = AtomicUsize::new(0);
            let check = |r: &Response| {
                if tokens == NO_CREDENTIAL {
                    r.status == 401
                        && serde_json::from_slice::<Value>(&r.body)
                            .is_ok_and(|v| v["error"] == "missing_credentials")
                } else {
                    users.matches(r)
                }
            };
            let _ = drive(
                server.addr(),
                conns,
                Duration::from_secs(1),
                header,
                values,
                &next,
                &check,
            );
            let warm = next.load(Ordering::SeqCst);
            let cpu0 = server.cpu_time();
            let d = drive(
                server.addr(),
                conns,
                Duration::from_secs(secs),
                header,
                values,
                &next,
                &check,
            );
            let cpu1 = server.cpu_time();
            let sent = next.load(Ordering::SeqCst);
            let cpu_ms = match (cpu0, cpu1) {
                (Some(a), Some(b)) if d.ok > 0 => {
                    Some(b.saturating_sub(a).as_secs_f64() * 1e3 / d.ok as f64)
                }
                _ => None,
            };
            if values.len() > 1 && sent > values.len() {
                notes.push(format!(
                    "{label}, {tokens}: {sent} requests (warm-up {warm}) went round the {} tokens, \
                     so some tokens were sent twice",
                    values.len()
                ));
            }
            if let Some(first) = &d.first_error {
                notes.push(format!(
                    "{label}, {tokens}: {} errors, the first: {first}",
                    d.errors
                ));
            }
            let row = Row {
                server: label,
                tokens,
                rps: d.rps(),
                cpu_ms,
                p50: d.percentile_ms(0.5),
                p99: d.percentile_ms(0.99),
                ok: d.ok,
                errors: d.errors,
                rss_mib: server.rss_kib().map(|k| k as f64 / 1024.0),
            };
            eprintln!(
                "  {:<18} {:<16} {:>8.0} req/s, {} CPU ms/req, {} errors",
                row.server,
                row.tokens,
                row.rps,
                row.cpu_ms.map_or("n/a".to_string(), |c| format!("{c:.3}")),
                row.errors
            );
            rows.push(row);
        }
        // The server is killed here (by its PID) before the next one starts.
        drop(server);
    }
    println!(
        "{}",
        side_by_side_table(&rows, &notes, secs, conns, bench_started.elapsed())
    );
    println!("{}", cold_start_table(&cold));
}

/// The side-by-side row that checks no credential (tests/all/workers/floor.js): what one users
/// fetch costs a Worker in workerd, the floor under every authenticated row.
const FLOOR: &str = "fetch floor (JS)";
/// The floor's token column: it lets any Authorization header in.
const UNCHECKED: &str = "(none checked)";
/// The rows without a credential: a 401 JSON answer, no upstream call.
const NO_CREDENTIAL: &str = "no credential";

/// Start-up of each workerd in the side-by-side run: spawn to listening (workerd itself, the
/// Worker's compile and global scope), then its first request (for our Worker the instantiation of
/// a component instance) beside an identical second one. The request is `GET /__ready` (no
/// credential: no upstream call).
fn cold_start_table(cold: &[(&'static str, ColdStart)]) -> String {
    use std::fmt::Write as _;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut out = String::from(
        "== Cold start: workerd spawned, listening, first and second GET /__ready ==\n\
         CPU = the whole workerd process, all threads (/proc/<pid>/task/*/schedstat)\n",
    );
    let _ = writeln!(
        out,
        "{:<18} {:>14} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "server", "listening ms", "CPU ms", "1st req ms", "1st CPU ms", "2nd req ms", "2nd CPU ms"
    );
    for (label, c) in cold {
        let _ = writeln!(
            out,
            "{label:<18} {:>14.1} {:>12.1} {:>12.2} {:>12.2} {:>12.2} {:>12.2}",
            ms(c.listening_after),
            ms(c.listening_cpu),
            ms(c.first_latency),
            ms(c.first_cpu),
            ms(c.second_latency),
            ms(c.second_cpu),
        );
    }
    out
}

/// `Bearer` values: one token, and `n` distinct ones (each its own `sid` and `iat`), all valid
/// for an hour, signed with the stand-in's key; minted on every core.
fn mint_session_tokens(s: &StandIn, n: usize) -> (String, Vec<String>) {
    let key = s.key().unwrap();
    let (issuer, t) = (s.url(), now());
    let mint = |sid: String, iat: u64| {
        let mut claims = session_claims(&issuer, iat);
        claims["sid"] = json!(sid);
        claims["exp"] = json!(t + 3600);
        format!("Bearer {}", key.token(&claims))
    };
    let single = mint("sess_bench_single".into(), t);
    let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
    let chunk = n.div_ceil(threads);
    let distinct: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                let mint = &mint;
                scope.spawn(move || {
                    (k * chunk..((k + 1) * chunk).min(n))
                        .map(|i| mint(format!("sess_bench_{i:05}"), t - (i as u64 % 60)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a minting thread panicked"))
            .collect()
    });
    let unique: std::collections::HashSet<&String> = distinct.iter().collect();
    assert_eq!(unique.len(), n, "the minted tokens are not all distinct");
    (single, distinct)
}

/// The table, as one block: TypeScript worker rows first, ratios against its row with the same
/// tokens (req/s: higher is faster; CPU: lower is cheaper).
fn side_by_side_table(
    rows: &[Row],
    notes: &[String],
    secs: u64,
    conns: usize,
    took: Duration,
) -> String {
    use std::fmt::Write as _;
    let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n== Side by side: the guide's TypeScript worker vs our Worker vs make serve, over a fetch floor =="
    );
    let _ = writeln!(
        out,
        "GET /admin/users with an ES256 session JWT, same loopback stand-in Wacht; {conns} keep-alive \
         connections, 1 s warm-up then {secs} s per row; {cores} cores shared by the server, the \
         stand-in and the load generator.\n\
         CPU = user+system of the server's own process(es) over the timed run (/proc/<pid>/stat) / \
         200s with the users JSON; anything else is an error. Ratios are vs the TypeScript worker \
         with the same tokens."
    );
    let _ = writeln!(
        out,
        "TypeScript worker = ../shared/seed/ts-worker bundled by `wrangler deploy --dry-run` \
         (target/ts-worker/dist/index.js) in plain workerd; our Worker = worker/dist \
         (make worker-build) in plain workerd, instance pool; make serve = \
         target/host/wacht-admin-host with target/host-verifier/.../wacht_admin.wasm; fetch floor = \
         tests/all/workers/floor.js in plain workerd, one users fetch passed on and no credential \
         checked (the least any Worker does; its ratios are vs the TypeScript worker's repeated \
         token). no credential = the same GET without one: a 401 JSON answer, no upstream call (the \
         TypeScript worker throws there, so it has no such row). CPU - floor = a row's CPU ms/req \
         minus the floor's with a credential, or without one for the no-credential rows."
    );
    let _ = writeln!(
        out,
        "{:<18} {:<16} {:>8} {:>11} {:>8} {:>8} {:>7} {:>8} {:>11} {:>10} {:>11} {:>8}",
        "server",
        "session tokens",
        "req/s",
        "CPU ms/req",
        "p50 ms",
        "p99 ms",
        "errors",
        "200s",
        "req/s vs TS",
        "CPU vs TS",
        "CPU - floor",
        "RSS MiB"
    );
    // The floor row of the same kind: with a credential, or without one.
    let floor = |tokens: &str| {
        rows.iter()
            .find(|f| f.server == FLOOR && (f.tokens == NO_CREDENTIAL) == (tokens == NO_CREDENTIAL))
            .and_then(|f| f.cpu_ms)
    };
    for r in rows {
        // The floor checks no token: it is set beside the TypeScript worker's repeated-token row.
        let tokens = if r.tokens == UNCHECKED {
            "1 repeated"
        } else {
            r.tokens
        };
        let base = rows
            .iter()
            .find(|b| b.server == "TypeScript worker" && b.tokens == tokens);
        let rps_ratio = base
            .filter(|b| b.rps > 0.0)
            .map_or("n/a".to_string(), |b| format!("{:.2}x", r.rps / b.rps));
        let cpu_ratio = match (base.and_then(|b| b.cpu_ms), r.cpu_ms) {
            (Some(b), Some(c)) if b > 0.0 => format!("{:.2}x", c / b),
            _ => "n/a".to_string(),
        };
        let over_floor = match (floor(r.tokens), r.cpu_ms) {
            (Some(f), Some(c)) => format!("{:+.3}", c - f),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<18} {:<16} {:>8.0} {:>11} {:>8.2} {:>8.2} {:>7} {:>8} {:>11} {:>10} {:>11} {:>8}",
            r.server,
            r.tokens,
            r.rps,
            r.cpu_ms.map_or("n/a".to_string(), |c| format!("{c:.3}")),
            r.p50,
            r.p99,
            r.errors,
            r.ok,
            rps_ratio,
            cpu_ratio,
            over_floor,
            r.rss_mib.map_or("n/a".to_string(), |m| format!("{m:.0}")),
        );
    }
    for note in notes {
        let _ = writeln!(out, "note: {note}");
    }
    let _ = write!(
        out,
        "(the whole comparison took {:.0} s)",
        took.as_secs_f64()
    );
    out
}

/// "200 with the users JSON": the page the stand-in's backend serves (`GET /users?limit=20`),
/// compared as JSON (a server may re-serialise it); bodies already seen to match are then
/// compared byte for byte.
struct UsersCheck {
    expected: Value,
    seen: RwLock<Vec<Vec<u8>>>,
}

impl UsersCheck {
    fn new(s: &StandIn) -> anyhow::Result<UsersCheck> {
        let auth = format!("Bearer {}", s.api_key());
        let r = get(s.addr(), "/users?limit=20", &[("authorization", &auth)])?;
        ensure!(r.status == 200, "the stand-in's /users:\n{}", r.dump());
        let expected: Value = serde_json::from_slice(&r.body)?;
        ensure!(
            expected["data"].as_array().is_some_and(|d| !d.is_empty()),
            "no users in {expected}"
        );
        Ok(UsersCheck {
            expected,
            seen: RwLock::new(vec![r.body]),
        })
    }

    fn matches(&self, r: &Response) -> bool {
        if r.status != 200
            || !r
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json"))
        {
            return false;
        }
        let seen = self.seen.read().unwrap_or_else(PoisonError::into_inner);
        if seen.contains(&r.body) {
            return true;
        }
        drop(seen);
        let same = serde_json::from_slice::<Value>(&r.body).is_ok_and(|v| v == self.expected);
        if same {
            let mut seen = self.seen.write().unwrap_or_else(PoisonError::into_inner);
            if seen.len() < 16 {
                seen.push(r.body.clone());
            }
        }
        same
    }
}

/// Whether an answer counts as a success.
type Check<'a> = dyn Fn(&Response) -> bool + Sync + 'a;

/// What one [`drive`] run saw.
struct Driven {
    /// Answers that passed the check.
    ok: usize,
    /// Other answers, transport errors and failed connects.
    errors: usize,
    /// The first error, described.
    first_error: Option<String>,
    /// Of the answers that passed, sorted.
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Driven {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let l = &self.latencies;
        l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// Keep-alive GETs of /admin/users on `conns` connections for `run` (wrk-like: each connection
/// sends its next request as soon as the answer is in). Request k carries header `name` with
/// `values[k % len]`, k counted by `next` across connections (and across calls that share it);
/// an answer counts as ok when `check` says so. Bounded: no request starts after `run`, and
/// each waits at most [`TIMEOUT`].
fn drive(
    addr: SocketAddr,
    conns: usize,
    run: Duration,
    name: &str,
    values: &[String],
    next: &AtomicUsize,
    check: &Check<'_>,
) -> Driven {
    let started = Instant::now();
    let deadline = started + run;
    let per_conn: Vec<Driven> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                scope.spawn(move || {
                    let mut d = Driven {
                        ok: 0,
                        errors: 0,
                        first_error: None,
                        latencies: Vec::new(),
                        elapsed: Duration::ZERO,
                    };
                    let fail = |d: &mut Driven, what: String| {
                        d.errors += 1;
                        d.first_error.get_or_insert(what);
                    };
                    let mut conn = None;
                    while Instant::now() < deadline {
                        if conn.is_none() {
                            match client::Conn::open(addr, TIMEOUT) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    fail(&mut d, format!("connect: {e:#}"));
                                    std::thread::sleep(Duration::from_millis(10));
                                    continue;
                                }
                            }
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        let value = &values[next.fetch_add(1, Ordering::Relaxed) % values.len()];
                        let t = Instant::now();
                        match c.get("/admin/users", &[(name, value)]) {
                            Ok(r) if check(&r) => {
                                d.ok += 1;
                                d.latencies.push(t.elapsed());
                            }
                            Ok(r) => {
                                let body: String = r.text().chars().take(200).collect();
                                fail(&mut d, format!("HTTP {} {body}", r.status));
                                if r.header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    conn = None;
                                }
                            }
                            Err(e) => {
                                fail(&mut d, format!("{e:#}"));
                                conn = None;
                            }
                        }
                    }
                    d
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a bench thread panicked"))
            .collect()
    });
    let mut all = Driven {
        ok: 0,
        errors: 0,
        first_error: None,
        latencies: Vec::new(),
        elapsed: started.elapsed(),
    };
    for d in per_conn {
        all.ok += d.ok;
        all.errors += d.errors;
        all.latencies.extend(d.latencies);
        if all.first_error.is_none() {
            all.first_error = d.first_error;
        }
    }
    all.latencies.sort();
    all
}
