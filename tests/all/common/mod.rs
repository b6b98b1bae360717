//! Shared by the host tests: finds the built component (and refuses a stale one), compiles it
//! once for the test binary, points it at a stand-in Wacht, and checks the answers' shape.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use http_body_util::Full;
use serde_json::Value;
use wacht_admin_host::{Component, EngineOptions, Handled};
use wacht_standin::StandIn;
use wacht_standin::tokens::{TestKey, session_claims};

pub use wacht_standin::{Credential, Endpoint, Fault};

const BUILD_HINT: &str = "run `make build` first";

/// The repository root (this package's manifest directory).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_relative() {
                repo_root().join(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The two builds `make build` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `--features host-verifier`: signatures verified by the host (ring here). What `make serve`
    /// runs, so what most tests run.
    HostVerifier,
    /// The default features: jwt-simple inside the component, imports only `wasi:*`.
    Portable,
}

impl Build {
    fn relative_path(self) -> &'static str {
        match self {
            Build::HostVerifier => "host-verifier/wasm32-wasip2/release/wacht_admin.wasm",
            Build::Portable => "wasm32-wasip2/release/wacht_admin.wasm",
        }
    }
}

/// The host-verifier build (what `make serve` runs); see [`wasm_path_of`].
pub fn wasm_path() -> anyhow::Result<PathBuf> {
    wasm_path_of(Build::HostVerifier)
}

/// `WACHT_ADMIN_WASM` (host-verifier) / `WACHT_ADMIN_PORTABLE_WASM`, else where `make build`
/// writes the component. Errors (with the build hint) when it is missing or older than the
/// sources it is built from.
pub fn wasm_path_of(build: Build) -> anyhow::Result<PathBuf> {
    let override_var = match build {
        Build::HostVerifier => "WACHT_ADMIN_WASM",
        Build::Portable => "WACHT_ADMIN_PORTABLE_WASM",
    };
    if let Some(path) = std::env::var_os(override_var) {
        // An explicit artifact (e.g. from another build) is taken as it is: only its existence
        // is checked.
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "{override_var}={} does not exist: {BUILD_HINT}",
            path.display()
        );
        return Ok(path);
    }
    let path = target_dir().join(build.relative_path());
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|_| anyhow!("{} is missing: {BUILD_HINT}", path.display()))?;
    if let Some((newer, _)) = source_files(&path)
        .into_iter()
        .filter_map(|f| Some((f.clone(), std::fs::metadata(&f).ok()?.modified().ok()?)))
        .find(|(_, modified)| *modified > built)
    {
        bail!(
            "{} is older than {}: {BUILD_HINT}",
            path.display(),
            newer.display()
        );
    }
    Ok(path)
}

/// The files under src/ and wit/ the component was built from: those cargo's dep-info lists
/// (so a change to a native-only test module does not count), or every file there without it.
fn source_files(wasm: &Path) -> Vec<PathBuf> {
    let root = repo_root();
    let watched = [root.join("src"), root.join("wit")];
    let in_watched = |p: &Path| watched.iter().any(|w| p.starts_with(w));
    if let Ok(dep_info) = std::fs::read_to_string(wasm.with_extension("d")) {
        let listed: Vec<PathBuf> = dep_info
            .lines()
            .filter_map(|line| line.split_once(": ").map(|(_, deps)| deps))
            .flat_map(str::split_whitespace)
            .map(PathBuf::from)
            .filter(|p| in_watched(p))
            .collect();
        if !listed.is_empty() {
            return listed;
        }
    }
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = watched.to_vec();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// The host-verifier component, compiled once per test binary through the on-disk cache.
pub fn component() -> anyhow::Result<&'static Component> {
    component_of(Build::HostVerifier)
}

/// Either build, compiled once per test binary through the on-disk cache.
pub fn component_of(build: Build) -> anyhow::Result<&'static Component> {
    static HOST_VERIFIER: OnceLock<Result<Component, String>> = OnceLock::new();
    static PORTABLE: OnceLock<Result<Component, String>> = OnceLock::new();
    let cell = match build {
        Build::HostVerifier => &HOST_VERIFIER,
        Build::Portable => &PORTABLE,
    };
    cell.get_or_init(|| {
        let path = wasm_path_of(build).map_err(|e| format!("{e:#}"))?;
        let started = std::time::Instant::now();
        let c = Component::load(&path, &engine_options()).map_err(|e| format!("{e:#}"))?;
        eprintln!("loaded {} in {:?}", path.display(), started.elapsed());
        Ok(c)
    })
    .as_ref()
    .map_err(|e| anyhow!("{e}"))
}

pub fn engine_options() -> EngineOptions {
    EngineOptions {
        cache_dir: Some(target_dir().join("wasmtime-cache")),
        ..EngineOptions::default()
    }
}

/// A stand-in Wacht with a fixed ES256 key (no `kid`, like the real issuer).
pub fn standin() -> StandIn {
    StandIn::start(
        wacht_standin::StandInConfig::default()
            .with_keys(vec![TestKey::es256(1)])
            .with_hang_for(std::time::Duration::from_secs(20)),
    )
    .expect("starting the stand-in")
}

/// The configuration env of the component, every Wacht URL pointing at the stand-in.
pub fn env_for(s: &StandIn) -> Vec<(String, String)> {
    s.component_env()
}

/// `env` with `name` set to `value` (replacing any previous value).
pub fn with(mut env: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    env.retain(|(n, _)| n != name);
    env.push((name.to_string(), value.to_string()));
    env
}

/// `env` without `name`.
pub fn without(mut env: Vec<(String, String)>, name: &str) -> Vec<(String, String)> {
    env.retain(|(n, _)| n != name);
    env
}

/// `http://127.0.0.1:PORT` where nothing listens (bound, then released).
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Session claims as the newest issuer sends them, for this stand-in's frontend API.
pub fn claims(s: &StandIn) -> Value {
    session_claims(&s.url(), now())
}

/// A valid session token (organization permission `deployment:read`), signed by the stand-in.
pub fn session_token(s: &StandIn) -> String {
    token_with(s, &claims(s))
}

/// `claims` signed by the stand-in's first key.
pub fn token_with(s: &StandIn, claims: &Value) -> String {
    s.key().expect("the stand-in has a key").token(claims)
}

/// Request headers, as (name, value).
pub type Headers = Vec<(String, String)>;

pub fn bearer(token: &str) -> (String, String) {
    ("authorization".to_string(), format!("Bearer {token}"))
}

/// A request as a client would send it through a host.
pub fn request(
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder()
        .method(method)
        .uri(format!("http://wacht-admin.test{target}"))
        .header("host", "wacht-admin.test");
    for (n, v) in headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    builder
        .body(Full::new(Bytes::new()))
        .expect("a valid test request")
}

pub async fn send(
    method: &str,
    target: &str,
    headers: &[(String, String)],
    env: &[(String, String)],
) -> anyhow::Result<Handled> {
    component()?
        .handle(request(method, target, headers), env)
        .await
}

pub async fn get(
    target: &str,
    headers: &[(String, String)],
    env: &[(String, String)],
) -> anyhow::Result<Handled> {
    send("GET", target, headers, env).await
}

pub fn header<'a>(resp: &'a http::Response<Bytes>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Asserts the contract's error shape: `content-type: application/json` and a body of exactly
/// `{"error": code, "message": text, "request_id": id}`, the id the `X-Request-Id` header
/// carries. Returns (status, code, message).
pub fn json_error(resp: &http::Response<Bytes>) -> anyhow::Result<(u16, String, String)> {
    safe_headers(resp)?;
    let ct = header(resp, "content-type").unwrap_or("");
    ensure!(
        ct.starts_with("application/json"),
        "error content-type is {ct:?}, body {:?}",
        String::from_utf8_lossy(resp.body())
    );
    let v: Value = serde_json::from_slice(resp.body()).with_context(|| {
        format!(
            "error body is not JSON: {:?}",
            String::from_utf8_lossy(resp.body())
        )
    })?;
    let obj = v.as_object().context("error body is not an object")?;
    ensure!(
        obj.len() == 3,
        "error body has fields other than error/message/request_id: {v}"
    );
    let id = obj.get("request_id").and_then(Value::as_str);
    ensure!(
        id.is_some() && id == header(resp, "x-request-id"),
        "the body's request_id is not the X-Request-Id header: {v}, {:?}",
        header(resp, "x-request-id")
    );
    let code = obj
        .get("error")
        .and_then(Value::as_str)
        .context("no string `error`")?;
    let message = obj
        .get("message")
        .and_then(Value::as_str)
        .context("no string `message`")?;
    ensure!(!message.is_empty(), "empty message");
    Ok((
        resp.status().as_u16(),
        code.to_string(),
        message.to_string(),
    ))
}

/// Every answer, 200 or error, from the component or the host: `Cache-Control: no-store` and
/// `X-Content-Type-Options: nosniff`.
pub fn safe_headers(resp: &http::Response<Bytes>) -> anyhow::Result<()> {
    ensure!(
        header(resp, "cache-control") == Some("no-store"),
        "{} without Cache-Control: no-store: {:?}",
        resp.status(),
        resp.headers()
    );
    ensure!(
        header(resp, "x-content-type-options") == Some("nosniff"),
        "{} without X-Content-Type-Options: nosniff",
        resp.status()
    );
    Ok(())
}

/// Asserts an error answer with this status and code, and returns its message.
pub fn expect_error(h: &Handled, status: u16, code: &str) -> anyhow::Result<String> {
    let (s, c, m) = json_error(&h.response)?;
    ensure!(
        (s, c.as_str()) == (status, code),
        "expected {status} {code}, got {s} {c}: {m}\nstderr: {}",
        h.stderr
    );
    if status == 401 {
        let www = header(&h.response, "www-authenticate").unwrap_or("");
        ensure!(
            www.starts_with("Bearer"),
            "401 without `WWW-Authenticate: Bearer`: {www:?}"
        );
    }
    Ok(m)
}

/// Asserts no secret appears in the response (status line aside) or in the guest's output.
pub fn assert_no_secrets(h: &Handled, secrets: &[&str]) -> anyhow::Result<()> {
    let body = String::from_utf8_lossy(h.response.body());
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        ensure!(
            !body.contains(secret),
            "a secret is in the response body: {body}"
        );
        for (name, value) in h.response.headers() {
            let value = String::from_utf8_lossy(value.as_bytes());
            ensure!(
                !value.contains(secret),
                "a secret is in response header {name}"
            );
        }
        ensure!(
            !h.stderr.contains(secret),
            "a secret is in stderr: {}",
            h.stderr
        );
        ensure!(
            !h.stdout.contains(secret),
            "a secret is in stdout: {}",
            h.stdout
        );
    }
    Ok(())
}

/// Asserts exactly one log line on stderr that names the method, the path and the status.
pub fn assert_one_log_line(h: &Handled, method: &str, path: &str) -> anyhow::Result<()> {
    let lines: Vec<&str> = h.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(lines.len() == 1, "expected one log line, got {lines:?}");
    let line = lines.first().copied().unwrap_or("");
    let status = h.response.status().as_u16().to_string();
    for part in [method, path, status.as_str()] {
        ensure!(line.contains(part), "log line {line:?} lacks {part:?}");
    }
    Ok(())
}

/// Asserts a 200 whose body is byte-for-byte what the stand-in's backend answered last, with
/// `content-type: application/json`.
pub fn expect_users(h: &Handled, s: &StandIn) -> anyhow::Result<()> {
    ensure!(
        h.response.status() == 200,
        "expected 200, got {} {:?}\nstderr: {}",
        h.response.status(),
        String::from_utf8_lossy(h.response.body()),
        h.stderr
    );
    ensure!(
        header(&h.response, "content-type") == Some("application/json"),
        "content-type {:?}",
        header(&h.response, "content-type")
    );
    safe_headers(&h.response)?;
    let upstream = s
        .last_request(Endpoint::Users)
        .context("the backend was not called")?;
    ensure!(
        upstream.response_body.as_ref() == Some(h.response.body()),
        "body differs from the backend's:\n ours:     {:?}\n upstream: {:?}",
        String::from_utf8_lossy(h.response.body()),
        upstream.response_body
    );
    Ok(())
}
