//! `make serve` for the benchmark: the native host binary (`target/host/wacht-admin-host`, built
//! with `cargo build --profile host -p wacht-admin-host`) serving the host-verifier
//! component (`target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm`, from `make build`)
//! on a 127.0.0.1 port, with the compiled-code cache `make serve` uses. The process is ours and
//! is killed by its PID when the guard drops, on failure too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail, ensure};

use super::client;
use super::workerd::{proc_cpu_time, proc_rss_kib, repo_root};

const BUILD_HINT: &str = "run `make build` and `cargo build --profile host -p wacht-admin-host` first (`make bench` does both)";

pub struct NativeHost {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl NativeHost {
    /// Starts the host with exactly `env` as its environment and waits until it answers HTTP.
    pub fn start(env: &[(String, String)]) -> anyhow::Result<NativeHost> {
        let root = repo_root();
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let bin = target.join("host/wacht-admin-host");
        // The Makefile builds the component with an explicit --target-dir under ./target.
        let wasm = root.join("target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm");
        ensure!(bin.is_file(), "{} is missing: {BUILD_HINT}", bin.display());
        ensure!(
            wasm.is_file(),
            "{} is missing: {BUILD_HINT}",
            wasm.display()
        );
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::env::temp_dir().join(format!(
            "wacht-bench-host-{}-{}.log",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let stdout = std::fs::File::create(&log)?;
        let stderr = stdout.try_clone()?;
        let child = Command::new(&bin)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--wasm")
            .arg(&wasm)
            .arg("--cache-dir")
            .arg(root.join("target/wasmtime-cache"))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut host = NativeHost { child, addr, log };
        host.wait_ready(Duration::from_secs(60))?;
        Ok(host)
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the host exited ({status}) before serving:\n{}",
                    self.logs()
                );
            }
            // Any HTTP answer means the component is loaded (an unknown path is its 404).
            if client::send(self.addr, "GET", "/__ready", &[], Duration::from_secs(5)).is_ok() {
                eprintln!("wacht-admin-host ready in {:?}", started.elapsed());
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "the host did not answer on {} within {limit:?}:\n{}",
                    self.addr,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The host's CPU time so far (user + system, all threads), from /proc (Linux only).
    pub fn cpu_time(&self) -> Option<Duration> {
        proc_cpu_time(self.child.id())
    }

    /// The host's resident memory in KiB (Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_rss_kib(self.child.id())
    }

    /// Everything the host printed so far (stdout and stderr, interleaved).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NativeHost {
    fn drop(&mut self) {
        // Our own child, by PID: never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
