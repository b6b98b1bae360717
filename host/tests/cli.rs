//! The `wacht-admin-host` binary as a process, on 127.0.0.1, against a loopback stand-in
//! Wacht: what only a process shows (exit statuses, what it writes on stdout and stderr,
//! signals, where it finds its component, environment variables read by clap).
//!
//! Needs the host-verifier component (`make build`). Every process here is our own child,
//! signalled and killed by its PID.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wacht_standin::{Endpoint, Fault, StandIn, StandInConfig};

const BIN: &str = env!("CARGO_BIN_EXE_wacht-admin-host");

fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

fn wasm() -> PathBuf {
    let path = target_dir().join(wacht_admin_host::WASM_IN_TARGET_DIR);
    assert!(
        path.is_file(),
        "{} is missing: run `make build` first",
        path.display()
    );
    path
}

fn standin() -> StandIn {
    StandIn::start(StandInConfig::default().with_hang_for(Duration::from_secs(20))).unwrap()
}

/// A directory of its own under cargo's temporary directory for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One `wacht-admin-host` process: its output in files, killed by its PID when dropped.
struct Host {
    child: Child,
    addr: SocketAddr,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Host {
    /// Starts `exe` with exactly `env` (and PATH) and `args`, listening on a free port, in
    /// `cwd`.
    fn spawn_in(exe: &Path, cwd: &Path, env: &[(String, String)], args: &[&str]) -> Host {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let dir = scratch(&format!("out-{}", addr.port()));
        let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
        let child = Command::new(exe)
            .current_dir(cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg(format!("--listen={addr}"))
            .arg("--instances=2")
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Host {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// The test build's binary and component, with the shared compiled-code cache.
    fn spawn(env: &[(String, String)], args: &[&str]) -> Host {
        let wasm = format!("--wasm={}", wasm().display());
        let cache = format!(
            "--cache-dir={}",
            target_dir().join("wasmtime-cache").display()
        );
        let mut all = vec![wasm.as_str(), cache.as_str()];
        all.extend_from_slice(args);
        Host::spawn_in(
            Path::new(BIN),
            Path::new(env!("CARGO_MANIFEST_DIR")),
            env,
            &all,
        )
    }

    /// Waits until it accepts connections; panics with its output if it exits first.
    fn listening(self) -> Host {
        let started = Instant::now();
        let mut host = self;
        loop {
            if let Some(status) = host.child.try_wait().unwrap() {
                panic!(
                    "exited ({status}) before listening:\n{}\n{}",
                    host.stdout(),
                    host.stderr()
                );
            }
            if TcpStream::connect(host.addr).is_ok() {
                return host;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not listening: {}",
                host.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// `kill -s NAME <our child's pid>`.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// GET `path` with `headers` on a connection of its own: the status and the body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        get(self.addr, path, headers)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Every line of `text` as a JSON object with timestamp, level and message.
fn json_lines(stream: &str, text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{stream}: {e}: {line}"));
            assert!(v.is_object(), "{stream}: {line}");
            for field in ["timestamp", "level", "message"] {
                assert!(v[field].is_string(), "{stream} without {field}: {line}");
            }
            v
        })
        .collect()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn a_configuration_the_component_refuses_is_exit_78_naming_the_variable_not_its_value() {
    let s = standin();
    let mut env = s.component_env();
    env.push(("WACHT_CLOCK_SKEW_SECS".into(), "abc-value".into()));
    env.push(("WACHT_CORS_ORIGIN".into(), "https://admin.example".into()));
    env.push(("WACHT_POOL_SIZE".into(), "4".into()));
    let mut host = Host::spawn(&env, &["--log-format=json"]);
    let status = host
        .exit_within(Duration::from_secs(30))
        .expect("it kept running");
    assert_eq!(status.code(), Some(78), "{}", host.stderr());
    let stderr = host.stderr();
    assert!(!stderr.contains("abc-value"), "{stderr}");
    let lines = json_lines("stderr", &stderr);
    let error = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("no error line");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("WACHT_CLOCK_SKEW_SECS"), "{message}");
    // The misspelt name is a warning with the nearest known one; the Worker's is a note.
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("did you mean WACHT_CORS_ORIGINS?")),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .unwrap()
            .contains("WACHT_POOL_SIZE is a setting of the Cloudflare Workers shim")),
        "{stderr}"
    );
    assert_eq!(host.stdout(), "", "nothing served, no banner");
    assert_eq!(s.total_count(), 0);
}

#[test]
fn with_log_format_json_every_line_is_a_json_object() {
    let s = standin();
    let token = s.session_token(600).unwrap();
    let mut host = Host::spawn(&s.component_env(), &["--log-format", "json"]).listening();
    assert_eq!(
        host.get("/admin/users", &[("authorization", &bearer(&token))])
            .0,
        200
    );
    assert_eq!(host.get("/admin/users", &[]).0, 401);
    assert_eq!(host.get("/nope", &[]).0, 404);
    host.signal("TERM");
    let status = host
        .exit_within(Duration::from_secs(10))
        .expect("no exit after SIGTERM");
    assert!(status.success(), "{status} {}", host.stderr());

    let stdout = json_lines("stdout", &host.stdout());
    let stderr = json_lines("stderr", &host.stderr());
    assert!(
        stdout[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("serving http://"),
        "{stdout:?}"
    );
    let access: Vec<&Value> = stdout.iter().filter(|v| v["target"] == "access").collect();
    let statuses: Vec<u64> = access.iter().filter_map(|v| v["status"].as_u64()).collect();
    assert_eq!(statuses, [200, 401, 404]);
    assert!(
        access[2]["credential"].is_null() && access[2]["ms"].is_f64(),
        "{}",
        access[2]
    );
    // The component's line, merged with its types.
    let component: Vec<&Value> = stderr
        .iter()
        .filter(|v| v["message"] == "wacht-admin")
        .collect();
    let statuses: Vec<u64> = component
        .iter()
        .filter_map(|v| v["status"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 401, 404], "{stderr:?}");
    assert_eq!(component[0]["upstream_status"], 200);
    assert!(component[1]["upstream_status"].is_null());
    let messages: Vec<&str> = stderr
        .iter()
        .filter_map(|v| v["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("SIGTERM: finishing in-flight requests")),
        "{messages:?}"
    );
    assert!(messages.contains(&"stopped"), "{messages:?}");
}

#[test]
fn a_second_signal_forces_the_exit() {
    let s = standin();
    s.set_fault(Endpoint::Users, Fault::Hang);
    let token = s.session_token(600).unwrap();
    let mut host = Host::spawn(&s.component_env(), &[]).listening();
    let addr = host.addr;
    let auth = bearer(&token);
    let in_flight =
        std::thread::spawn(move || get(addr, "/admin/users", &[("authorization", &auth)]));
    let started = Instant::now();
    while s.count(Endpoint::Users) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the request never reached the backend"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    host.signal("TERM");
    // Draining: the hung request holds it (up to the 30 s request timeout).
    assert!(
        host.exit_within(Duration::from_millis(700)).is_none(),
        "exited on the first signal"
    );
    host.signal("INT");
    let forced = Instant::now();
    let status = host
        .exit_within(Duration::from_secs(5))
        .expect("still running after the second signal");
    assert_eq!(status.code(), Some(130), "{}", host.stderr());
    assert!(
        forced.elapsed() < Duration::from_secs(2),
        "{:?}",
        forced.elapsed()
    );
    let stderr = host.stderr();
    assert!(
        stderr.contains("SIGTERM: finishing in-flight requests"),
        "{stderr}"
    );
    assert!(
        stderr.contains("SIGINT again: exiting without waiting"),
        "{stderr}"
    );
    drop(in_flight);
}

#[test]
fn boolean_variables_take_boolish_words_and_the_command_line_wins() {
    let s = standin();
    let token = s.session_token(600).unwrap();
    let auth = bearer(&token);
    let mut quiet = s.component_env();
    quiet.push(("WACHT_ADMIN_QUIET".into(), "YES".into()));
    // A cache directory from the environment and --no-cache on the command line: no conflict,
    // no cache.
    let unused = scratch("no-cache").join("never-created");
    quiet.push(("WACHT_ADMIN_CACHE_DIR".into(), unused.display().to_string()));
    let host = Host::spawn_in(
        Path::new(BIN),
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &quiet,
        &[&format!("--wasm={}", wasm().display()), "--no-cache"],
    )
    .listening();
    assert_eq!(host.get("/admin/users", &[("authorization", &auth)]).0, 200);
    let stdout = host.stdout();
    assert!(stdout.contains("no compiled-code cache"), "{stdout}");
    assert!(
        !stdout.contains(" access: "),
        "WACHT_ADMIN_QUIET=YES still logged: {stdout}"
    );
    assert!(!unused.exists());
    drop(host);

    // --quiet=off on the command line beats WACHT_ADMIN_QUIET=YES.
    let host = Host::spawn(&quiet, &["--quiet=off"]).listening();
    assert_eq!(host.get("/admin/users", &[("authorization", &auth)]).0, 200);
    let started = Instant::now();
    while !host.stdout().contains(" access: ") {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no access line: {}",
            host.stdout()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(host);

    // A word that is no boolean is refused like a bad flag.
    let mut bad = s.component_env();
    bad.push(("WACHT_ADMIN_TRUST_FORWARDED".into(), "maybe".into()));
    let mut host = Host::spawn(&bad, &[]);
    let status = host
        .exit_within(Duration::from_secs(10))
        .expect("started with a bad boolean");
    assert_eq!(status.code(), Some(2), "{}", host.stderr());
}

/// `--wasm` defaults to the build beside the binary (`<target>/host/` next to
/// `<target>/host-verifier/`), whatever the current directory; without one, start-up fails
/// naming the flag.
#[test]
fn the_default_component_is_the_one_beside_the_binary() {
    let s = standin();
    let root = scratch("beside");
    let exe = root.join("target/host/wacht-admin-host");
    let built = root
        .join("target")
        .join(wacht_admin_host::WASM_IN_TARGET_DIR);
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    // A hard link is this binary under another path (current_exe reports the link's).
    std::fs::hard_link(BIN, &exe)
        .or_else(|_| std::fs::copy(BIN, &exe).map(drop))
        .unwrap();
    let elsewhere = root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let cache = format!(
        "--cache-dir={}",
        target_dir().join("wasmtime-cache").display()
    );

    let mut missing = Host::spawn_in(&exe, &elsewhere, &s.component_env(), &[&cache]);
    let status = missing
        .exit_within(Duration::from_secs(10))
        .expect("started without a component");
    assert_eq!(status.code(), Some(2));
    let stderr = missing.stderr();
    assert!(
        stderr.contains("--wasm") && stderr.contains(&built.display().to_string()),
        "{stderr}"
    );

    std::fs::hard_link(wasm(), &built)
        .or_else(|_| std::fs::copy(wasm(), &built).map(drop))
        .unwrap();
    let host = Host::spawn_in(&exe, &elsewhere, &s.component_env(), &[&cache]).listening();
    assert_eq!(host.get("/admin/users", &[]).0, 401);
    assert!(
        host.stdout().contains(&built.display().to_string()),
        "{}",
        host.stdout()
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&root);
}

/// Demo mode with --log-format json (the build `make serve` runs): the banner is one event
/// whose curl line works, and every line is a JSON object.
#[cfg(feature = "demo")]
#[test]
fn demo_mode_with_json_logs() {
    let mut host = Host::spawn(&[], &["--log-format=json"]).listening();
    let started = Instant::now();
    let banner = loop {
        if let Some(line) = host.stdout().lines().next() {
            break serde_json::from_str::<Value>(line).unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no banner");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        banner["message"].as_str().unwrap().contains("DEMO MODE"),
        "{banner}"
    );
    let curl = banner["curl_api_key"].as_str().unwrap();
    let key = curl
        .split('\'')
        .nth(1)
        .unwrap()
        .split_once(": ")
        .unwrap()
        .1
        .to_string();
    assert_eq!(host.get("/admin/users", &[("x-api-key", &key)]).0, 200);
    assert_eq!(host.get("/admin/users", &[]).0, 401);
    assert_eq!(host.get("/nope", &[]).0, 404);
    host.signal("INT");
    assert!(
        host.exit_within(Duration::from_secs(10))
            .expect("no exit")
            .success()
    );
    let stdout = json_lines("stdout", &host.stdout());
    json_lines("stderr", &host.stderr());
    let statuses: Vec<u64> = stdout
        .iter()
        .filter(|v| v["target"] == "access")
        .filter_map(|v| v["status"].as_u64())
        .collect();
    assert_eq!(statuses, [200, 401, 404]);
}
