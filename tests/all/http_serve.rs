//! `wacht-admin-host`'s server, in-process, over real sockets: demo mode answers the curl lines it
//! prints, the JWKS stays out of the per-request path, a guest trap or timeout becomes a JSON
//! 502/504 and the server keeps serving, request limits, a graceful shutdown, JSON logs, and
//! `--admin-listen`'s health, readiness and Prometheus endpoints.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use anyhow::{Context as _, ensure};
use serde_json::Value;
use wacht_admin_host::settings::LogSink;
use wacht_admin_host::{Server, Settings};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) struct Logs {
    access: Arc<Mutex<Vec<String>>>,
    guest: Arc<Mutex<Vec<String>>>,
    banner: Arc<Mutex<Vec<String>>>,
}

impl Logs {
    fn access(&self) -> Vec<String> {
        self.access.lock().unwrap().clone()
    }
    fn guest(&self) -> Vec<String> {
        self.guest.lock().unwrap().clone()
    }
    fn banner(&self) -> Vec<String> {
        self.banner.lock().unwrap().clone()
    }
}

/// Loopback, ephemeral port, the test build's component and cache, logs kept in memory.
pub(crate) fn settings(wacht_env: Vec<(String, String)>) -> anyhow::Result<(Settings, Logs)> {
    let (access_log, access) = LogSink::memory();
    let (guest_log, guest) = LogSink::memory();
    let (banner_log, banner) = LogSink::memory();
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        wasm: wasm_path()?,
        cache_dir: engine_options().cache_dir,
        instances: 4,
        access_log,
        guest_log,
        banner_log,
        wacht_env,
        ..Settings::default()
    };
    Ok((
        settings,
        Logs {
            access,
            guest,
            banner,
        },
    ))
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {:?}", self.body))
    }

    /// `{"error": code, "message": …, "request_id": …}` with this status.
    fn expect_error(&self, status: u16, code: &str) -> anyhow::Result<()> {
        ensure!(
            self.status == status,
            "expected {status}, got {} {}",
            self.status,
            self.body
        );
        ensure!(self.header("content-type") == Some("application/json"));
        let v = self.json()?;
        ensure!(v["error"] == code, "{v}");
        ensure!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        // The operations listener's answers are not the API's: no request id, not in openapi.yaml.
        if self.header("x-request-id").is_none() && matches!(code, "not_ready" | "not_found") {
            ensure!(v.as_object().map(|o| o.len()) == Some(2), "{v}");
            return Ok(());
        }
        // The component's answers and the host's own: the request id in the body and header.
        ensure!(v.as_object().map(|o| o.len()) == Some(3), "{v}");
        ensure!(
            v["request_id"].as_str().is_some()
                && v["request_id"].as_str() == self.header("x-request-id"),
            "the body's request_id is not the X-Request-Id header: {v}"
        );
        // And the answer is one openapi.yaml describes (any host's codes are there); a 404 is
        // another path's.
        if self.status == 404 {
            return Ok(());
        }
        let header = |name: &str| self.header(name).map(str::to_string);
        crate::http_openapi::check_answer(
            &crate::http_openapi::openapi(),
            "GET",
            self.status,
            &header,
            self.body.as_bytes(),
        )?;
        Ok(())
    }

    /// A 200 with the backend's user list.
    fn expect_users(&self) -> anyhow::Result<usize> {
        ensure!(
            self.status == 200,
            "expected 200, got {} {}",
            self.status,
            self.body
        );
        let v = self.json()?;
        let n = v["data"]
            .as_array()
            .map(Vec::len)
            .context("no data array")?;
        ensure!(n > 0, "empty user list");
        Ok(n)
    }
}

/// One request on a fresh connection, through the tests' hyper client.
fn send(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> anyhow::Result<Reply> {
    let r = crate::client::send_body(addr, "GET", path, headers, body, Duration::from_secs(20))?;
    Ok(Reply {
        status: r.status,
        body: r.text(),
        headers: r.headers,
    })
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Reply> {
    send(addr, path, headers, b"")
}

/// `curl -s URL -H 'Name: value'` → (URL, (name, value)).
fn parse_curl(line: &str) -> anyhow::Result<(String, (String, String))> {
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("no URL")?
        .to_string();
    let quoted = line.split('\'').nth(1).context("no quoted header")?;
    let (name, value) = quoted.split_once(": ").context("header without ': '")?;
    Ok((url, (name.to_string(), value.to_string())))
}

fn curl_available() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn demo_mode_answers_the_printed_curl_lines() -> anyhow::Result<()> {
    let rt = runtime();
    let (settings, logs) = settings(vec![])?;
    ensure!(settings.is_demo());
    let server = rt.block_on(Server::start(settings))?;
    let banner = server.banner();
    ensure!(banner.contains("DEMO MODE"), "{banner}");
    ensure!(
        banner.contains("WACHT_API_KEY="),
        "no hint at a real deployment: {banner}"
    );
    ensure!(
        banner.contains("60 min"),
        "the token lifetime is not said: {banner}"
    );
    let curls: Vec<&str> = banner
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("curl "))
        .collect();
    ensure!(curls.len() == 2, "expected two curl lines: {banner}");
    let demo = server.demo().context("no demo")?;
    let users = demo.standin().users().len().min(20);

    let mut requests = 0;
    for line in &curls {
        let (url, (name, value)) = parse_curl(line)?;
        let path = url
            .strip_prefix(&server.url())
            .context("curl URL is not the server's")?;
        let reply = get(server.addr(), path, &[(name.as_str(), value.as_str())])?;
        ensure!(reply.expect_users()? == users);
        requests += 1;
        // The line itself, as a user pastes it.
        if curl_available() {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(line)
                .output()?;
            ensure!(out.status.success(), "{line}: {out:?}");
            let v: Value = serde_json::from_slice(&out.stdout)
                .with_context(|| String::from_utf8_lossy(&out.stdout).into_owned())?;
            ensure!(v["data"].as_array().map(Vec::len) == Some(users), "{v}");
            requests += 1;
        }
    }
    let standin = demo.standin();
    ensure!(standin.count(Endpoint::Users) == requests);
    ensure!(
        standin.count(Endpoint::AuthzCheck) == requests / 2,
        "one gateway check per API-key request"
    );
    ensure!(
        standin.count(Endpoint::Jwks) == 1,
        "JWKS calls: {}",
        standin.count(Endpoint::Jwks)
    );

    // One access line per request; the guest's own lines forwarded, tagged with the request.
    let access = logs.access();
    ensure!(access.len() == requests, "{access:#?}");
    ensure!(
        access
            .iter()
            .all(|l| l.contains("status=200") && l.contains("path=/admin/users")),
        "{access:#?}"
    );
    let guest = logs.guest();
    ensure!(
        guest
            .iter()
            .filter(|l| l.contains("wacht-admin v=1 ") && l.contains(" method=GET "))
            .count()
            == requests,
        "{guest:#?}"
    );
    ensure!(
        guest
            .iter()
            .all(|l| l.contains(" guest: ") && l.contains("req=")),
        "{guest:#?}"
    );

    // Another tenant's key, which the shared gateway allows for its own deployment: not ours.
    let foreign = wacht_standin::random_secret("wk_test");
    standin.add_credential(
        foreign.clone(),
        wacht_standin::Credential::api_key(&["user:read"])
            .in_deployment(wacht_standin::FOREIGN_DEPLOYMENT_ID),
    );
    get(server.addr(), "/admin/users", &[("x-api-key", &foreign)])?
        .expect_error(401, "invalid_credentials")?;
    ensure!(
        standin.count(Endpoint::Users) == requests,
        "our users went out"
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}

#[test]
fn the_jwks_is_fetched_once_across_requests_and_instances() -> anyhow::Result<()> {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 15;
    let rt = runtime();
    let s = standin();
    let (mut settings, logs) = settings(env_for(&s))?;
    // Retire instances quickly: every new instance starts with an empty JWKS cache of its own,
    // and still no second JWKS call may reach the upstream.
    settings.max_requests_per_instance = 5;
    let server = rt.block_on(Server::start(settings))?;
    let mut c = claims(&s);
    c["exp"] = serde_json::json!(now() + 900);
    let token = token_with(&s, &c);
    let addr = server.addr();
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let auth = format!("Bearer {token}");
            std::thread::spawn(move || -> anyhow::Result<()> {
                for _ in 0..PER_THREAD {
                    get(addr, "/admin/users", &[("authorization", &auth)])?.expect_users()?;
                }
                Ok(())
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap()?;
    }
    let n = THREADS * PER_THREAD;
    ensure!(
        s.count(Endpoint::Users) == n,
        "users calls: {}",
        s.count(Endpoint::Users)
    );
    ensure!(
        s.count(Endpoint::Jwks) == 1,
        "JWKS calls: {}",
        s.count(Endpoint::Jwks)
    );
    let stats = server.pool().stats();
    ensure!(stats.created >= (n / 5) as u64, "{stats:?}");
    ensure!(stats.retired >= (n / 5 - THREADS) as u64, "{stats:?}");
    let cache = server.jwks_cache();
    ensure!(cache.upstream_fetches() == 1, "{cache:?}");
    ensure!(
        cache.hits() + 1 == stats.created,
        "each other instance's first fetch is a hit: {cache:?} {stats:?}"
    );
    ensure!(logs.access().len() == n);
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// 20 users of ~150 KB each: a 3 MB answer, under the component's 4 MiB limit.
fn huge_users() -> Vec<wacht_standin::User> {
    let mut users = wacht_standin::sample_users();
    let template = users[0].clone();
    users = (0..20)
        .map(|i| {
            let mut u = template.clone();
            u.id = format!("{}", 1000 + i);
            u.first_name = "x".repeat(150_000);
            u
        })
        .collect();
    users
}

#[test]
fn a_guest_trap_is_a_502_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let (mut settings, logs) = settings(env_for(&s))?;
    // Too little memory for a 3 MB answer: the guest's allocation fails and it aborts (a trap).
    settings.max_memory_bytes = 3 << 20;
    let server = rt.block_on(Server::start(settings))?;
    let auth = format!("Bearer {}", session_token(&s));
    let h = [("authorization", auth.as_str())];
    get(server.addr(), "/admin/users", &h)?.expect_users()?;

    s.set_users(huge_users());
    let reply = get(server.addr(), "/admin/users", &h)?;
    reply.expect_error(502, "component_error")?;
    let guest = logs.guest().join("\n");
    ensure!(
        guest.contains("failed:") && guest.contains("trap"),
        "{guest}"
    );

    s.set_users(wacht_standin::sample_users());
    for _ in 0..3 {
        get(server.addr(), "/admin/users", &h)?.expect_users()?;
    }
    let stats = server.pool().stats();
    ensure!(stats.discarded == 1 && stats.failed == 1, "{stats:?}");
    let access = logs.access();
    ensure!(access.len() == 5, "{access:#?}");
    ensure!(
        access[1].contains("status=502") && access[1].contains("error=component_error"),
        "{access:#?}"
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}

#[test]
fn a_guest_timeout_is_a_504_and_the_server_keeps_serving() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let (mut settings, logs) = settings(env_for(&s))?;
    settings.request_timeout = Duration::from_millis(700);
    let server = rt.block_on(Server::start(settings))?;
    let auth = format!("Bearer {}", session_token(&s));
    let h = [("authorization", auth.as_str())];
    get(server.addr(), "/admin/users", &h)?.expect_users()?;
    s.set_fault(Endpoint::Users, Fault::Hang);
    let started = Instant::now();
    get(server.addr(), "/admin/users", &h)?.expect_error(504, "component_timeout")?;
    ensure!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    s.set_fault(Endpoint::Users, Fault::Normal);
    get(server.addr(), "/admin/users", &h)?.expect_users()?;
    ensure!(server.pool().stats().discarded == 1);
    ensure!(
        logs.access()
            .iter()
            .filter(|l| l.contains("status=504"))
            .count()
            == 1
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}

#[test]
fn oversized_requests_are_refused_before_the_guest() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let (mut settings, logs) = settings(env_for(&s))?;
    settings.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let (max_body, max_header) = (settings.max_body_bytes, settings.max_header_bytes);
    let server = rt.block_on(Server::start(settings))?;
    let addr = server.addr();
    let admin = server.admin_addr().context("no admin address")?;
    let body = vec![b'x'; max_body + 1];
    send(addr, "/admin/users", &[], &body)?.expect_error(413, "request_too_large")?;
    // The host's own answer keeps the caller's request id, as the component would, and logs it.
    let refused = send(addr, "/admin/users", &[("x-request-id", "big-1")], &body)?;
    refused.expect_error(413, "request_too_large")?;
    ensure!(refused.header("x-request-id") == Some("big-1"));
    ensure!(
        logs.access().iter().any(|l| l.contains("big-1")),
        "{:?}",
        logs.access()
    );
    // And the component sees the id the host decided: the same in its answer and its line.
    let answered = get(addr, "/admin/users", &[("x-request-id", "small-1")])?;
    answered.expect_error(401, "missing_credentials")?;
    ensure!(answered.header("x-request-id") == Some("small-1"));
    let big = "a".repeat(max_header + 1);
    let reply = get(addr, "/admin/users", &[("x-padding", &big)])?;
    ensure!(reply.status == 431, "{}", reply.status);
    ensure!(
        s.count(Endpoint::Users) + s.count(Endpoint::AuthzCheck) == 0,
        "the guest must not have run"
    );
    // Both are counted, the 431 too, which hyper answers before a request reaches us.
    let samples = scrape(admin)?;
    let requests = "wacht_admin_requests_total";
    ensure!(sample(&samples, requests, &[("status", "413")]) == 2.0);
    ensure!(
        sample(
            &samples,
            requests,
            &[("status", "413"), ("error", "request_too_large")]
        ) == 2.0
    );
    ensure!(
        sample(
            &samples,
            requests,
            &[("status", "431"), ("credential", "none")]
        ) == 1.0
    );
    // A client cannot choose the address the component sees.
    let reply = get(
        addr,
        "/admin/users",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-api-key", "wk_unknown"),
        ],
    )?;
    ensure!(reply.status == 401, "{} {}", reply.status, reply.body);
    let check = s
        .last_request(Endpoint::AuthzCheck)
        .context("no gateway check")?;
    let sent = check.json.context("gateway body")?;
    ensure!(sent["client_ip"] == "127.0.0.1", "{sent}");
    ensure!(
        logs.access().len() == 4,
        "the 431 never reached the service: {:#?}",
        logs.access()
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// wasi-http takes the request's authority from its Host header: an HTTP/1.0 request without
/// one, or a Host that is not an authority, still reaches the component (which answers 401 here),
/// and no instance is lost to it.
#[test]
fn requests_without_a_usable_host_reach_the_component() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let (settings, _logs) = settings(env_for(&s))?;
    let server = rt.block_on(Server::start(settings))?;
    for raw in [
        &b"GET /admin/users HTTP/1.0\r\n\r\n"[..],
        b"GET /admin/users HTTP/1.1\r\nHost: not an authority\r\nConnection: close\r\n\r\n",
        b"GET /admin/users HTTP/1.1\r\nHost: caf\xe9\r\nConnection: close\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(server.addr())?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(raw)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer);
        let status = answer.split_whitespace().nth(1);
        ensure!(
            status == Some("401"),
            "{:?}: {answer}",
            String::from_utf8_lossy(raw)
        );
        ensure!(
            answer.contains("\"error\":\"missing_credentials\""),
            "{answer}"
        );
    }
    let stats = server.pool().stats();
    ensure!(stats.served == 3 && stats.discarded == 0, "{stats:?}");
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// A backend that answers every request after `delay`, and reports when one arrived.
fn slow_backend(delay: Duration) -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (arrived, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = arrived.send(());
                std::thread::sleep(delay);
                let body = r#"{"data":[{"id":"1","created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z","first_name":"Slow","last_name":"Backend","username":null,"profile_picture_url":"","primary_email_address":null,"primary_phone_number":null}],"has_more":false,"limit":20,"offset":0}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (url, rx)
}

#[test]
fn shutdown_finishes_in_flight_requests_and_refuses_new_ones() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let (backend, arrived) = slow_backend(Duration::from_millis(1500));
    let (settings, logs) = settings(with(env_for(&s), "WACHT_BACKEND_API_URL", &backend))?;
    let server = rt.block_on(Server::start(settings))?;
    let addr = server.addr();
    let auth = format!("Bearer {}", session_token(&s));
    let in_flight =
        std::thread::spawn(move || get(addr, "/admin/users", &[("authorization", &auth)]));
    arrived.recv_timeout(Duration::from_secs(10))?;

    let shutdown = rt.spawn(server.shutdown());
    // While the request is in flight, the listener is already closed.
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        TcpStream::connect(addr).is_err()
    });
    ensure!(refused, "still accepting during shutdown");
    ensure!(
        !in_flight.is_finished(),
        "the slow request ended before the check"
    );
    let reply = in_flight.join().unwrap()?;
    ensure!(reply.expect_users()? == 1);
    rt.block_on(shutdown)??;
    ensure!(logs.access().len() == 1);
    Ok(())
}
#[test]
fn a_reused_instance_does_not_grow() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let pool = wacht_admin_host::InstancePool::new(
        component()?.clone(),
        env_for(&s),
        wacht_admin_host::PoolOptions {
            size: 1,
            ..Default::default()
        },
    )?;
    let token = session_token(&s);
    let mut reports = Vec::new();
    for _ in 0..200 {
        let served = rt
            .block_on(pool.handle(request("GET", "/admin/users", &[bearer(&token)])))
            .map_err(|f| anyhow::anyhow!("{f}"))?;
        expect_users(&served.handled, &s)?;
        assert_one_log_line(&served.handled, "GET", "/admin/users")?;
        reports.push(served.instance);
    }
    let first = reports[0];
    ensure!(first.fresh && reports[1..].iter().all(|r| !r.fresh && r.id == first.id));
    ensure!(reports.last().map(|r| r.uses) == Some(200));
    // No resource left behind per request, and no memory growth once warm.
    let tables: Vec<usize> = reports.iter().map(|r| r.table_entries).collect();
    ensure!(
        tables.iter().all(|t| *t == tables[0]),
        "table entries {tables:?}"
    );
    let warm = reports[10].memory_bytes;
    ensure!(
        reports[10..].iter().all(|r| r.memory_bytes == warm),
        "memory grew: {:?}",
        reports.iter().map(|r| r.memory_bytes).collect::<Vec<_>>()
    );
    eprintln!("table entries {}, memory {} KiB", tables[0], warm / 1024);
    ensure!(s.count(Endpoint::Jwks) == 1, "one instance, one JWKS fetch");
    Ok(())
}

/// The Prometheus samples of `/metrics`, read with a Prometheus text parser.
fn scrape(addr: SocketAddr) -> anyhow::Result<Vec<prometheus_parse::Sample>> {
    let reply = get(addr, "/metrics", &[])?;
    ensure!(reply.status == 200, "{} {}", reply.status, reply.body);
    ensure!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        reply.header("content-type")
    );
    let lines = reply.body.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines)?;
    ensure!(!parsed.samples.is_empty(), "{}", reply.body);
    Ok(parsed.samples)
}

/// The value of `metric` with exactly these labels among `labels`' names (0 when absent).
fn sample(samples: &[prometheus_parse::Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[test]
fn the_admin_listener_serves_health_readiness_and_metrics_that_move() -> anyhow::Result<()> {
    let rt = runtime();
    let (mut settings, logs) = settings(vec![])?;
    settings.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.log_format = wacht_admin_host::settings::LogFormat::Json;
    let server = rt.block_on(Server::start(settings))?;
    let admin = server.admin_addr().context("no admin address")?;
    ensure!(admin != server.addr());
    let banner = server.banner();
    ensure!(
        banner.contains(&format!("http://{admin}/metrics")),
        "the banner does not say how to reach /metrics: {banner}"
    );
    let demo = server.demo().context("demo mode")?;
    let standin = demo.standin();

    ensure!(get(admin, "/healthz", &[])?.status == 200);
    // The operations endpoints are not served on the API's address, nor the API on theirs.
    get(server.addr(), "/metrics", &[])?.expect_error(404, "not_found")?;
    get(admin, "/admin/users", &[])?.expect_error(404, "not_found")?;
    // Ready once the background check has loaded the JWKS (one call), which later requests
    // use through the shared cache.
    wait_ready(admin, Duration::from_secs(5))?;
    ensure!(standin.count(Endpoint::Jwks) == 1);

    let before = scrape(admin)?;
    let session = [("authorization", format!("Bearer {}", demo.session_token()))];
    let session: Vec<(&str, &str)> = session.iter().map(|(n, v)| (*n, v.as_str())).collect();
    get(server.addr(), "/admin/users", &session)?.expect_users()?;
    get(server.addr(), "/admin/users", &session)?.expect_users()?;
    get(
        server.addr(),
        "/admin/users",
        &[("x-api-key", demo.api_key())],
    )?
    .expect_users()?;
    get(server.addr(), "/admin/users", &[])?.expect_error(401, "missing_credentials")?;
    let after = scrape(admin)?;
    let moved = |metric: &str, labels: &[(&str, &str)]| {
        sample(&after, metric, labels) - sample(&before, metric, labels)
    };
    let requests = "wacht_admin_requests_total";
    ensure!(moved(requests, &[("status", "200"), ("credential", "session")]) == 2.0);
    ensure!(moved(requests, &[("status", "200"), ("credential", "api_key")]) == 1.0);
    ensure!(moved(requests, &[("status", "401"), ("credential", "none")]) == 1.0);
    // The error code the component wrote in its access line labels the count.
    ensure!(
        moved(
            requests,
            &[("status", "401"), ("error", "missing_credentials")]
        ) == 1.0
    );
    ensure!(moved(requests, &[("status", "200"), ("error", "none")]) == 3.0);
    ensure!(moved("wacht_admin_request_duration_seconds_count", &[]) == 4.0);
    let upstream = "wacht_admin_upstream_requests_total";
    ensure!(moved(upstream, &[("service", "backend"), ("outcome", "2xx")]) == 3.0);
    ensure!(moved(upstream, &[("service", "gateway"), ("outcome", "2xx")]) == 1.0);
    // The instance's JWKS request was answered by the shared cache the probe filled.
    ensure!(moved(upstream, &[("service", "jwks")]) == 0.0);
    ensure!(
        moved(
            "wacht_admin_jwks_fetches_total",
            &[("source", "shared_cache")]
        ) == 1.0
    );
    ensure!(
        sample(
            &after,
            "wacht_admin_jwks_fetches_total",
            &[("source", "upstream")]
        ) == 1.0
    );
    let lookups = "wacht_admin_token_cache_lookups_total";
    ensure!(moved(lookups, &[("result", "miss")]) == 1.0);
    ensure!(moved(lookups, &[("result", "hit")]) == 1.0);
    ensure!(sample(&after, "wacht_admin_instances", &[("state", "busy")]) == 0.0);
    ensure!(sample(&after, "wacht_admin_instances", &[("state", "idle")]) >= 1.0);
    ensure!(sample(&after, "wacht_admin_instance_capacity", &[]) == 4.0);
    // Upstream latency by service, measured where the calls leave the host.
    let upstream_latency = "wacht_admin_upstream_request_duration_seconds_count";
    ensure!(moved(upstream_latency, &[("service", "backend")]) == 3.0);
    ensure!(moved(upstream_latency, &[("service", "gateway")]) == 1.0);
    ensure!(sample(&after, upstream_latency, &[("service", "jwks")]) == 1.0);
    ensure!(
        sample(
            &after,
            "wacht_admin_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ) == 1.0
    );
    let unix_now = now() as f64;
    let loaded = sample(
        &after,
        "wacht_admin_jwks_last_success_timestamp_seconds",
        &[],
    );
    ensure!(
        loaded <= unix_now && loaded > unix_now - 60.0,
        "{loaded} {unix_now}"
    );
    ensure!(sample(&after, "process_cpu_seconds_total", &[]) > 0.0);
    ensure!(sample(&after, "process_resident_memory_bytes", &[]) > 1e6);
    ensure!(sample(&after, "process_threads", &[]) >= 2.0);

    // --log-format json: every access line is a JSON object with the request's fields (and
    // `null` for what it does not have).
    let access = logs.access();
    let last: Value = serde_json::from_str(access.last().context("no access line")?)?;
    ensure!(
        last["status"] == 401 && last["path"] == "/admin/users",
        "{last}"
    );
    ensure!(
        last["credential"].is_null() && last["token_cache"].is_null(),
        "{last}"
    );
    let access: Vec<Value> = access
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    let sessions: Vec<&Value> = access
        .iter()
        .filter(|v| v["credential"] == "session")
        .collect();
    ensure!(sessions.len() == 2, "{access:#?}");
    ensure!(sessions[0]["token_cache"] == "miss", "{access:#?}");
    ensure!(sessions[1]["token_cache"] == "hit", "{access:#?}");
    for line in logs.guest() {
        let v: Value = serde_json::from_str(&line).with_context(|| line.clone())?;
        ensure!(v["req"].is_u64(), "{v}");
    }
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// `GET /readyz` until it answers 200, at most `limit`; each probe must answer within 1 s.
fn wait_ready(admin: SocketAddr, limit: Duration) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let probed = Instant::now();
        let reply = get(admin, "/readyz", &[])?;
        ensure!(
            probed.elapsed() < Duration::from_secs(1),
            "{:?}",
            probed.elapsed()
        );
        if reply.status == 200 {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < limit,
            "not ready within {limit:?}: {}",
            reply.body
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// JWKS timings short enough for a test: the retry (cooldown) 1 s, the TTL 2 s, the stale bound
/// 5 s.
fn short_jwks() -> wacht_admin_host::jwks::JwksTiming {
    wacht_admin_host::jwks::JwksTiming {
        ttl: Duration::from_secs(2),
        retry: Duration::from_secs(1),
        max_stale: Duration::from_secs(5),
    }
}

#[test]
fn readyz_is_503_before_the_first_jwks_and_200_within_the_cooldown_of_its_recovery()
-> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    s.set_fault(Endpoint::Jwks, Fault::Status(503));
    let (mut with_session, _logs) = settings(env_for(&s))?;
    with_session.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    with_session.jwks = short_jwks();
    let server = rt.block_on(Server::start(with_session))?;
    let admin = server.admin_addr().context("no admin address")?;
    std::thread::sleep(Duration::from_millis(1500));
    let reply = get(admin, "/readyz", &[])?;
    reply.expect_error(503, "not_ready")?;
    ensure!(reply.body.contains("503"), "{}", reply.body);
    ensure!(get(admin, "/healthz", &[])?.status == 200);
    // One call at start, one per 1 s cooldown since, however the probes came.
    let failed = s.count(Endpoint::Jwks);
    ensure!((1..=3).contains(&failed), "{failed} JWKS calls in 1.5 s");

    s.set_fault(Endpoint::Jwks, Fault::Normal);
    let took = wait_ready(admin, Duration::from_secs(3))?;
    eprintln!("ready {took:?} after the JWKS recovered (cooldown 1 s)");
    ensure!(took < Duration::from_millis(1500), "{took:?}");

    // Without session configuration (no publishable key) nothing is fetched: ready at once.
    let env: Vec<(String, String)> = env_for(&s)
        .into_iter()
        .filter(|(k, _)| k != "WACHT_PUBLISHABLE_KEY")
        .collect();
    let (mut machine_settings, _logs) = settings(env)?;
    machine_settings.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let machine_only = rt.block_on(Server::start(machine_settings))?;
    let jwks_calls = s.count(Endpoint::Jwks);
    ensure!(get(machine_only.admin_addr().context("admin")?, "/readyz", &[])?.status == 200);
    std::thread::sleep(Duration::from_millis(200));
    ensure!(s.count(Endpoint::Jwks) == jwks_calls);
    rt.block_on(server.shutdown())?;
    rt.block_on(machine_only.shutdown())?;
    Ok(())
}

/// While the JWKS hangs: every probe answers within 1 s, ready while the last usable set is
/// within the stale bound, and at most one upstream call per TTL however often it is probed.
#[test]
fn readyz_during_a_jwks_outage_answers_at_once_and_calls_once_per_ttl() -> anyhow::Result<()> {
    let rt = runtime();
    let s = standin();
    let env = with(env_for(&s), "WACHT_UPSTREAM_TIMEOUT_MS", "800");
    let (mut settings, _logs) = settings(env)?;
    settings.admin_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    settings.jwks = short_jwks();
    let server = rt.block_on(Server::start(settings))?;
    let admin = server.admin_addr().context("no admin address")?;
    wait_ready(admin, Duration::from_secs(5))?;
    s.set_fault(Endpoint::Jwks, Fault::Hang);
    let outage = Instant::now();
    let before = s.count(Endpoint::Jwks);
    let (mut probes, mut slowest) = (0, Duration::ZERO);
    let mut ready_until = None;
    let mut calls_within_bound = 0;
    // The set came at most 2 s ago (the TTL): it serves until 3-5 s from now.
    while outage.elapsed() < Duration::from_secs(6) {
        let probed = Instant::now();
        let reply = get(admin, "/readyz", &[])?;
        slowest = slowest.max(probed.elapsed());
        probes += 1;
        match reply.status {
            200 => ensure!(ready_until.is_none(), "ready again during the outage"),
            503 => {
                if ready_until.is_none() {
                    ready_until = Some(outage.elapsed());
                    calls_within_bound = s.count(Endpoint::Jwks) - before;
                }
                ensure!(reply.body.contains("past the"), "{}", reply.body);
            }
            other => anyhow::bail!("{other} {}", reply.body),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ready_until = ready_until.context("still ready 6 s into the outage")?;
    eprintln!(
        "outage: {probes} probes, slowest {slowest:?}, ready for {ready_until:?}, {calls_within_bound} \
         JWKS calls within the stale bound, {} in all",
        s.count(Endpoint::Jwks) - before
    );
    ensure!(slowest < Duration::from_secs(1), "a probe took {slowest:?}");
    ensure!(
        ready_until >= Duration::from_millis(2500) && ready_until <= Duration::from_millis(5500),
        "{ready_until:?}"
    );
    // Within the bound: one call per 2 s TTL at most (ready for at most 5 s: 3 calls).
    ensure!(
        calls_within_bound <= 3,
        "{calls_within_bound} calls for {probes} probes"
    );
    ensure!(get(admin, "/healthz", &[])?.status == 200);
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// A configuration the component would refuse stops the start, naming the variable and not
/// its value; an unknown WACHT_* name is a warning with the nearest known one.
#[test]
fn a_refused_configuration_stops_the_start_and_unknown_names_are_warned_about() -> anyhow::Result<()>
{
    let rt = runtime();
    let s = standin();
    let (bad, _logs) = settings(with(env_for(&s), "WACHT_CLOCK_SKEW_SECS", "abc-value"))?;
    let err = rt
        .block_on(Server::start(bad))
        .err()
        .context("started with WACHT_CLOCK_SKEW_SECS=abc-value")?;
    ensure!(
        err.downcast_ref::<wacht_admin_host::environment::ConfigRefused>()
            .is_some(),
        "{err:#}"
    );
    let message = format!("{err:#}");
    ensure!(message.contains("WACHT_CLOCK_SKEW_SECS"), "{message}");
    ensure!(!message.contains("abc-value"), "{message}");
    ensure!(s.total_count() == 0, "nothing was fetched");

    let (mut typo, logs) = settings(env_for(&s))?;
    typo.env_notes = wacht_admin_host::environment::check_names(
        ["WACHT_CORS_ORIGIN", "WACHT_POOL_SIZE", "WACHT_API_KEY"],
        &[],
    );
    let server = rt.block_on(Server::start(typo))?;
    let guest = logs.guest().join("\n");
    ensure!(
        guest.contains("WARN") && guest.contains("did you mean WACHT_CORS_ORIGINS?"),
        "{guest}"
    );
    ensure!(
        guest.contains("WACHT_POOL_SIZE is a setting of the Cloudflare Workers shim"),
        "{guest}"
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}

/// Demo mode with --log-format json: every line of every sink is one JSON object with
/// timestamp, level and message; the banner is one event with the curl lines; the access event
/// and the component's merged access line have typed fields.
#[test]
fn demo_mode_logs_only_json_objects() -> anyhow::Result<()> {
    let rt = runtime();
    let (mut settings, logs) = settings(vec![])?;
    settings.log_format = wacht_admin_host::settings::LogFormat::Json;
    let server = rt.block_on(Server::start(settings))?;
    server.announce();
    server
        .logger()
        .info("SIGTERM: finishing in-flight requests");
    let banner = logs.banner();
    ensure!(banner.len() == 1, "{banner:#?}");
    let banner: Value = serde_json::from_str(&banner[0])?;
    ensure!(
        banner["message"]
            .as_str()
            .is_some_and(|m| m.contains("DEMO MODE")),
        "{banner}"
    );
    let curl = banner["curl_session"].as_str().context("no curl_session")?;
    let (url, (name, value)) = parse_curl(curl)?;
    let path = url
        .strip_prefix(&server.url())
        .context("not the server's URL")?;
    get(server.addr(), path, &[(name.as_str(), value.as_str())])?.expect_users()?;
    get(server.addr(), "/admin/users", &[])?.expect_error(401, "missing_credentials")?;
    get(server.addr(), "/nope", &[])?.expect_error(404, "not_found")?;
    rt.block_on(server.shutdown())?;

    let mut all = Vec::new();
    for (sink, lines) in [
        ("access", logs.access()),
        ("guest", logs.guest()),
        ("banner", logs.banner()),
    ] {
        for line in lines {
            let v: Value =
                serde_json::from_str(&line).with_context(|| format!("{sink}: {line}"))?;
            ensure!(v.is_object(), "{sink}: {line}");
            for field in ["timestamp", "level", "message"] {
                ensure!(v[field].is_string(), "{sink} without {field}: {line}");
            }
            all.push(v);
        }
    }
    let access: Vec<&Value> = all.iter().filter(|v| v["target"] == "access").collect();
    let statuses: Vec<u64> = access.iter().filter_map(|v| v["status"].as_u64()).collect();
    ensure!(statuses == [200, 401, 404], "{access:#?} {all:#?}");
    ensure!(
        access[1]["credential"].is_null() && access[1]["ms"].is_number(),
        "{}",
        access[1]
    );
    // The component's own access line, merged: typed fields, no escaped JSON in the message.
    let component: Vec<&Value> = all
        .iter()
        .filter(|v| v["target"] == "guest" && v["message"] == "wacht-admin")
        .collect();
    let statuses: Vec<u64> = component
        .iter()
        .filter_map(|v| v["status"].as_u64())
        .collect();
    ensure!(statuses == [200, 401, 404], "{component:#?}");
    ensure!(component[0]["credential"] == "session", "{}", component[0]);
    ensure!(component[1]["credential"].is_null(), "{}", component[1]);
    ensure!(
        component
            .iter()
            .all(|v| v["duration_ms"].is_number() && v["req"].is_u64())
    );
    ensure!(
        all.iter()
            .all(|v| !v["message"].as_str().unwrap_or("").contains("\"msg\"")),
        "an escaped component line"
    );
    Ok(())
}
