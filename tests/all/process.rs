//! A server in a process of its own (the native host binary, the `wasmtime serve` CLI), on a
//! 127.0.0.1 port: started, waited for until it answers HTTP, its output kept in a temporary
//! file, and killed by its PID when the guard drops, on failure too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};

use crate::client;
use crate::workers::workerd::{proc_cpu_time, proc_rss_kib};

pub struct ServerProcess {
    name: &'static str,
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` (which must listen on `addr`) and waits up to `limit` until any HTTP
    /// answer comes from `addr` (an unknown path is the component's 404).
    pub fn start(
        name: &'static str,
        mut command: Command,
        addr: SocketAddr,
        limit: Duration,
    ) -> anyhow::Result<ServerProcess> {
        let log = std::env::temp_dir().join(format!(
            "wacht-{name}-{}-{}.log",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        let stdout = std::fs::File::create(&log)?;
        let stderr = stdout.try_clone()?;
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let mut server = ServerProcess {
            name,
            child,
            addr,
            log,
        };
        server.wait_ready(limit)?;
        Ok(server)
    }

    /// A free 127.0.0.1 port to listen on.
    pub fn free_addr() -> anyhow::Result<SocketAddr> {
        Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before serving:\n{}",
                    self.name,
                    self.logs()
                );
            }
            if client::send(self.addr, "GET", "/__ready", &[], Duration::from_secs(5)).is_ok() {
                eprintln!("{} ready in {:?}", self.name, started.elapsed());
                return Ok(());
            }
            if started.elapsed() > limit {
                bail!(
                    "{} did not answer on {} within {limit:?}:\n{}",
                    self.name,
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

    /// The process's CPU time so far (user + system, all threads), from /proc (Linux only).
    pub fn cpu_time(&self) -> Option<Duration> {
        proc_cpu_time(self.child.id())
    }

    /// The process's resident memory in KiB (Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_rss_kib(self.child.id())
    }

    /// Everything the process printed so far (stdout and stderr, interleaved).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Our own child, by PID: never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
