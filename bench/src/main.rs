//! `make bench`: how fast `wacht-admin-host` serves a verified `GET /admin/users` against a
//! loopback stand-in Wacht. Not a test: it prints figures.
//!
//! 1. cold start of the real binary (process start → first 200), with an empty and a warm
//!    compiled-code cache;
//! 2. the upstream alone (the stand-in's `GET /users`), then the host, at 1 and 16 connections,
//!    with a keep-alive Rust load generator (exact percentiles over every request);
//! 3. `wrk` at 1, 4 (the connections of the side-by-side table that ends `make bench`, where the
//!    guide's TypeScript worker is measured too) and 16 connections, when `wrk` is installed;
//! 4. the ES256 verification (the host's, through the verifier import), in-process: the same request with a wrong
//!    signature (full ECDSA verification, then 401) minus one with a zero signature (rejected
//!    before any curve arithmetic, then 401);
//! 5. the JWKS requests the stand-in saw;
//! 6. the alternatives for keeping the JWKS out of the per-request path, in-process.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use wacht_admin::request::USERS_PATH;
use wacht_admin_host::outbound::KeepAlive;
use wacht_admin_host::{Component, EngineOptions, InstancePool, JwksCache, Outbound, PoolOptions};
use wacht_standin::tokens::{TestKey, b64url, session_claims};
use wacht_standin::{Endpoint, StandIn, StandInConfig};

/// Prints the figures of `make bench` for `wacht-admin-host`.
#[derive(clap::Parser)]
#[command(name = "wacht-admin-bench")]
struct Args {
    /// Seconds per load run
    #[arg(long = "duration", default_value_t = 5, value_name = "SECS")]
    duration_secs: u64,
    /// The component
    #[arg(long, default_value = wacht_admin_host::DEFAULT_WASM_PATH)]
    wasm: PathBuf,
    /// The wacht-admin-host binary [default: next to this one]
    #[arg(long = "host-bin", value_name = "PATH")]
    host_bin_flag: Option<PathBuf>,
    #[arg(skip)]
    host_bin: PathBuf,
    /// Compiled-code cache
    #[arg(long, default_value = "target/wasmtime-cache")]
    cache_dir: PathBuf,
    /// Only the in-process ES256 measurement (to compare component builds)
    #[arg(long)]
    es256_only: bool,
    #[arg(skip)]
    duration: Duration,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = <Args as clap::Parser>::parse();
    args.duration = Duration::from_secs(args.duration_secs);
    args.host_bin = match args.host_bin_flag.take() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("wacht-admin-host"),
    };
    Ok(args)
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    ensure!(
        args.host_bin.is_file(),
        "{} is missing (cargo build --profile host -p wacht-admin-host)",
        args.host_bin.display()
    );
    ensure!(
        args.wasm.is_file(),
        "{} is missing (make build)",
        args.wasm.display()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!("wacht-admin bench: {}", machine());
    println!(
        "component {} ({} KiB); host {}; everything on loopback, sharing the cores\n",
        args.wasm.display(),
        std::fs::metadata(&args.wasm)?.len() / 1024,
        args.host_bin.display()
    );
    let standin = StandIn::start(StandInConfig::default().with_keys(vec![TestKey::es256(7)]))?;
    let key = standin.key().context("stand-in key")?;
    let mut claims = session_claims(&standin.url(), unix_now());
    claims["exp"] = json!(unix_now() + 3600);
    let token = key.token(&claims);
    let env = standin.component_env();
    let session = vec![("authorization".to_string(), format!("Bearer {token}"))];
    if args.es256_only {
        return es256_cost(&args, &standin, &env, &key, &claims).await;
    }

    // ---- 1. cold start ----
    println!("## Cold start: process start -> first 200 (a verified GET /admin/users)");
    let fresh_cache =
        std::env::temp_dir().join(format!("wacht-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh_cache);
    let (cold, child) = start_host(&args, &fresh_cache, &env, &session).await?;
    stop(child)?;
    println!(
        "  empty compiled-code cache (Cranelift compiles): {}",
        ms(cold)
    );
    let mut warm = Vec::new();
    for _ in 0..5 {
        let (t, child) = start_host(&args, &fresh_cache, &env, &session).await?;
        warm.push(t);
        stop(child)?;
    }
    let _ = std::fs::remove_dir_all(&fresh_cache);
    warm.sort_unstable();
    println!(
        "  warm cache, 5 starts: median {}, min {}, max {}",
        ms(warm[2]),
        ms(warm[0]),
        ms(warm[4])
    );

    // The server for the load runs; the stand-in counts from its start.
    standin.reset();
    let (_, mut server) = start_host(&args, &args.cache_dir, &env, &session).await?;
    let result = load_runs(&args, &standin, &server, &session).await;
    let _ = stop_ref(&mut server);
    result?;

    // ---- 4. ES256 verification (the host's, through the component's verifier import) ----
    es256_cost(&args, &standin, &env, &key, &claims).await?;
    mechanisms(&args, &standin, &env, &token).await?;
    Ok(())
}

/// The alternatives for keeping the JWKS out of the per-request path, in-process (no HTTP
/// front), one request at a time, same component, same stand-in, keep-alive upstream calls.
async fn mechanisms(
    args: &Args,
    standin: &StandIn,
    env: &[(String, String)],
    token: &str,
) -> anyhow::Result<()> {
    const N: usize = 2000;
    let outbound = Some(Arc::new(KeepAlive::new(Duration::from_secs(10))?) as Arc<dyn Outbound>);
    let engine = |jwks_cache: Option<Arc<JwksCache>>| EngineOptions {
        cache_dir: Some(args.cache_dir.clone()),
        pooling: Some(4),
        jwks_cache,
        outbound: outbound.clone(),
        ..EngineOptions::default()
    };
    let request = || {
        http::Request::builder()
            .uri("http://bench.local/admin/users")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
    };
    let median = |mut v: Vec<Duration>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    println!(
        "\n## Keeping the JWKS out of the per-request path (in-process, sequential, {N} requests each)"
    );
    println!("  {:<58} {:>9} {:>12}", "", "median", "JWKS calls");

    for (label, cache) in [
        ("fresh instance per request, no JWKS cache", None),
        (
            "fresh instance per request + host JWKS cache",
            Some(Arc::new(JwksCache::default())),
        ),
    ] {
        let component = Component::load(&args.wasm, &engine(cache))?;
        let before = standin.count(Endpoint::Jwks);
        let mut times = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            let h = component.handle(request()?, env).await?;
            ensure!(h.response.status() == 200, "{}", h.response.status());
            times.push(t.elapsed());
        }
        println!(
            "  {label:<58} {:>9} {:>12}",
            ms(median(times)),
            standin.count(Endpoint::Jwks) - before
        );
    }
    let component = Component::load(&args.wasm, &engine(Some(Arc::new(JwksCache::default()))))?;
    let pool = InstancePool::new(
        component,
        env.to_vec(),
        PoolOptions {
            size: 4,
            ..PoolOptions::default()
        },
    )?;
    let before = standin.count(Endpoint::Jwks);
    let mut times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        let served = pool.handle(request()?).await.map_err(|f| anyhow!("{f}"))?;
        ensure!(served.handled.response.status() == 200);
        times.push(t.elapsed());
    }
    println!(
        "  {:<58} {:>9} {:>12}",
        "reused instances (the server's choice) + host JWKS cache",
        ms(median(times)),
        standin.count(Endpoint::Jwks) - before
    );
    Ok(())
}

async fn load_runs(
    args: &Args,
    standin: &StandIn,
    server: &Server,
    session: &[(String, String)],
) -> anyhow::Result<()> {
    let d = args.duration;
    let upstream_headers = vec![(
        "authorization".to_string(),
        format!("Bearer {}", standin.api_key()),
    )];
    let upstream_path = "/users?limit=20";

    println!(
        "\n## Keep-alive load generator (Rust, hyper), {} s per run",
        d.as_secs()
    );
    println!(
        "  {:<44} {:>10} {:>9} {:>9} {:>9}",
        "", "req/s", "p50", "p99", "errors"
    );
    let up1 = load(standin.addr(), upstream_path, &upstream_headers, 1, d, true).await?;
    up1.print("upstream alone, 1 conn (keep-alive)");
    let up1_fresh = load(
        standin.addr(),
        upstream_path,
        &upstream_headers,
        1,
        d,
        false,
    )
    .await?;
    up1_fresh.print("upstream alone, 1 conn (new connection each)");
    let up16 = load(
        standin.addr(),
        upstream_path,
        &upstream_headers,
        16,
        d,
        true,
    )
    .await?;
    up16.print("upstream alone, 16 conns");
    let users_before = standin.count(Endpoint::Users);
    // Verified requests so far: the start-up probe.
    let mut verified = 1;
    let h1 = load(server.addr, USERS_PATH, session, 1, d, true).await?;
    h1.print("wacht-admin-host, 1 conn");
    let h16 = load(server.addr, USERS_PATH, session, 16, d, true).await?;
    h16.print("wacht-admin-host, 16 conns");
    println!(
        "  proxy overhead at 1 conn, p50: {} over the keep-alive upstream (the host keeps its \
         upstream connections alive too)",
        ms_signed(h1.p50, up1.p50)
    );

    // ---- 3. wrk ----
    verified += h1.ok + h16.ok;
    let mut upstream_wrk = None;
    if which("wrk") {
        println!("\n## wrk (2 threads), {} s per run", d.as_secs().max(10));
        let wd = d.max(Duration::from_secs(10));
        for conns in [1usize, 4, 16] {
            let w = wrk(server.addr, USERS_PATH, session, conns, wd)?;
            verified += w.requests;
            // The TypeScript worker is measured, not quoted: the side-by-side table at the end
            // of `make bench` (tests/all/workers.rs, bench_side_by_side) runs it at 4 connections.
            let note = if conns == 4 {
                "  <- 4 conns: vs the guide's TS worker, see the side-by-side table"
            } else {
                ""
            };
            println!(
                "  wacht-admin-host, {conns:>2} conns: {:>8.0} req/s  p50 {:>8}  p99 {:>8}  non-2xx {}{note}",
                w.rps, w.p50, w.p99, w.non_2xx
            );
        }
    }
    // ---- 5. JWKS ----
    let users = standin.count(Endpoint::Users) - users_before;
    let jwks = standin.count(Endpoint::Jwks);
    if which("wrk") {
        let wd = d.max(Duration::from_secs(10));
        upstream_wrk = Some(wrk(
            standin.addr(),
            upstream_path,
            &upstream_headers,
            4,
            wd,
        )?);
    } else {
        println!("\n(wrk is not installed: `make bench` installs it with apt-get; skipped)");
    }
    if let Some(w) = upstream_wrk {
        println!(
            "  upstream alone,   4 conns: {:>8.0} req/s  p50 {:>8}  p99 {:>8}",
            w.rps, w.p50, w.p99
        );
    }
    println!("\n## Upstream calls made by the server process (start-up probe + every run above)");
    println!(
        "  {verified} verified requests answered 200 -> {} backend /users calls, {jwks} JWKS call(s)",
        users + 1
    );
    Ok(())
}

// ---------------------------------------------------------------- the host process

struct Server {
    addr: SocketAddr,
    child: Child,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts the binary against the stand-in; returns the time to its first 200.
async fn start_host(
    args: &Args,
    cache_dir: &Path,
    env: &[(String, String)],
    headers: &[(String, String)],
) -> anyhow::Result<(Duration, Server)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let log = std::env::temp_dir().join(format!("wacht-bench-host-{}.log", std::process::id()));
    let started = Instant::now();
    let child = Command::new(&args.host_bin)
        .args(["--listen", &addr.to_string(), "--wasm"])
        .arg(&args.wasm)
        .arg("--cache-dir")
        .arg(cache_dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log)?))
        .spawn()
        .with_context(|| format!("starting {}", args.host_bin.display()))?;
    let mut server = Server { addr, child };
    loop {
        if let Ok(status) = one_request(addr, USERS_PATH, headers).await {
            if status == 200 {
                return Ok((started.elapsed(), server));
            }
            let _ = stop_ref(&mut server);
            bail!("the host answered {status}; its log: {}", log.display());
        }
        if let Some(exit) = server.child.try_wait()? {
            bail!("the host exited with {exit}; its log: {}", log.display());
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = stop_ref(&mut server);
            bail!("no answer within 60 s; its log: {}", log.display());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn stop(mut server: Server) -> anyhow::Result<()> {
    stop_ref(&mut server)
}

/// SIGTERM (graceful), then wait.
fn stop_ref(server: &mut Server) -> anyhow::Result<()> {
    let pid = server.child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server.child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    server.child.kill()?;
    server.child.wait()?;
    Ok(())
}

// ---------------------------------------------------------------- the load generator

async fn connect(
    addr: SocketAddr,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn build(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> anyhow::Result<http::Request<Empty<Bytes>>> {
    let mut req = http::Request::builder()
        .uri(path)
        .header("host", addr.to_string());
    for (n, v) in headers {
        req = req.header(n.as_str(), v.as_str());
    }
    Ok(req.body(Empty::new())?)
}

async fn one_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
) -> anyhow::Result<u16> {
    let mut sender = connect(addr).await?;
    let resp = sender.send_request(build(addr, path, headers)?).await?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await?;
    Ok(status)
}

struct LoadStats {
    ok: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl LoadStats {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, label: &str) {
        println!(
            "  {label:<44} {:>10.0} {:>9} {:>9} {:>9}",
            self.rps(),
            ms(self.p50),
            ms(self.p99),
            self.errors
        );
    }
}

/// `conns` clients, each sending one request after the other for `duration`.
async fn load(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    conns: usize,
    duration: Duration,
    keep_alive: bool,
) -> anyhow::Result<LoadStats> {
    let headers = Arc::new(headers.to_vec());
    let path = Arc::new(path.to_string());
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (headers, path) = (headers.clone(), path.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0usize;
                let mut sender = None;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let outcome = async {
                        let s = match sender.take() {
                            Some(s) => s,
                            None => connect(addr).await?,
                        };
                        let mut s = s;
                        let resp = s.send_request(build(addr, &path, &headers)?).await?;
                        let status = resp.status();
                        resp.into_body().collect().await?;
                        anyhow::Ok((status, s))
                    }
                    .await;
                    match outcome {
                        Ok((status, s)) => {
                            if status == 200 {
                                latencies.push(t.elapsed());
                            } else {
                                errors += 1;
                            }
                            if keep_alive {
                                sender = Some(s);
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        all.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len().saturating_sub(1)) as f64 * p).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Ok(LoadStats {
        ok: all.len(),
        errors,
        elapsed,
        p50: pct(0.50),
        p99: pct(0.99),
    })
}

// ---------------------------------------------------------------- wrk

fn which(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

struct WrkStats {
    rps: f64,
    requests: usize,
    p50: String,
    p99: String,
    non_2xx: usize,
}

fn wrk(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    conns: usize,
    duration: Duration,
) -> anyhow::Result<WrkStats> {
    let mut cmd = Command::new("wrk");
    cmd.arg(format!("-t{}", conns.min(2)))
        .arg(format!("-c{conns}"))
        .arg(format!("-d{}s", duration.as_secs()))
        .arg("--latency");
    for (n, v) in headers {
        cmd.arg("-H").arg(format!("{n}: {v}"));
    }
    cmd.arg(format!("http://{addr}{path}"));
    let out = cmd.output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "wrk failed: {text}");
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .context("no Requests/sec in wrk's output")?;
    let requests: usize = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let non_2xx: usize = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok(WrkStats {
        rps,
        requests: requests.saturating_sub(non_2xx),
        p50: field("50%").unwrap_or_default(),
        p99: field("99%").unwrap_or_default(),
        non_2xx,
    })
}

// ---------------------------------------------------------------- ES256 verification

/// The same claims signed by the same key, with (a) a wrong signature made of valid scalars
/// and (b) an all-zero signature. Both end in 401 without an upstream call (the JWKS is cached);
/// only (a) runs the ECDSA verification (and the SHA-256 of the signing input).
async fn es256_cost(
    args: &Args,
    standin: &StandIn,
    env: &[(String, String)],
    key: &TestKey,
    claims: &serde_json::Value,
) -> anyhow::Result<()> {
    const ROUNDS: usize = 40;
    const BATCH: usize = 50;
    let valid = key.token(claims);
    let mut other = claims.clone();
    other["sid"] = json!("sess_other");
    let other = key.token(&other);
    let input = valid.rsplit_once('.').map(|(i, _)| i).context("token")?;
    let wrong_sig = other.rsplit_once('.').map(|(_, s)| s).context("token")?;
    let bad = format!("{input}.{wrong_sig}");
    let zero = format!("{input}.{}", b64url(&[0u8; 64]));

    let engine = EngineOptions {
        cache_dir: Some(args.cache_dir.clone()),
        jwks_cache: Some(Arc::new(JwksCache::default())),
        ..EngineOptions::default()
    };
    let component = Component::load(&args.wasm, &engine)?;
    let pool = InstancePool::new(
        component,
        env.to_vec(),
        PoolOptions {
            size: 1,
            ..PoolOptions::default()
        },
    )?;
    let send = |token: String| {
        let pool = pool.clone();
        async move {
            let req = http::Request::builder()
                .uri("http://bench.local/admin/users")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(Bytes::new()))?;
            let t = Instant::now();
            let served = pool.handle(req).await.map_err(|f| anyhow!("{f}"))?;
            let took = t.elapsed();
            anyhow::Ok((served.handled.response.status().as_u16(), took))
        }
    };
    ensure!(
        send(valid.clone()).await?.0 == 200,
        "the valid token must pass"
    );
    ensure!(send(bad.clone()).await?.0 == 401);
    ensure!(send(zero.clone()).await?.0 == 401);
    let jwks_before = standin.count(Endpoint::Jwks);
    let (mut with_verify, mut without) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        for _ in 0..BATCH {
            with_verify.push(send(bad.clone()).await?.1);
        }
        for _ in 0..BATCH {
            without.push(send(zero.clone()).await?.1);
        }
    }
    ensure!(standin.count(Endpoint::Jwks) == jwks_before);
    with_verify.sort_unstable();
    without.sort_unstable();
    let median = |v: &[Duration]| v.get(v.len() / 2).copied().unwrap_or_default();
    let (a, b) = (median(&with_verify), median(&without));
    println!(
        "\n## ES256 verification by the host (ring, through wacht:admin/verifier; in-process, one reused instance, {} requests each)",
        ROUNDS * BATCH
    );
    println!(
        "  wrong signature (SHA-256 + ECDSA verify, 401): median {}",
        ms(a)
    );
    println!(
        "  zero signature (rejected before verifying, 401): median {}",
        ms(b)
    );
    println!(
        "  => ES256 verification costs {} per request (whole request, host included, without it: {})",
        ms_signed(a, b),
        ms(b)
    );
    Ok(())
}

// ---------------------------------------------------------------- formatting

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ms_signed(a: Duration, b: Duration) -> String {
    format!("{:+.2} ms", (a.as_secs_f64() - b.as_secs_f64()) * 1e3)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
