//! Runs the exact Worker upload (`worker/dist/`, written by `make worker-build`) in real workerd;
//! [`Workerd::start_module`] runs any other single-module worker (the benchmark's TypeScript
//! baseline) the same way, with its own compatibility date and bindings.
//!
//! Why `workerd serve` and not `wrangler dev`: the dry-run output is what Cloudflare would receive,
//! so serving those files tests the upload itself; wrangler dev would re-bundle from source and
//! add a Node.js proxy in front. The config is generated (one worker service and one loopback
//! socket per configuration), the modules are embedded from copies in a temporary directory,
//! and the process is killed by its PID when the guard drops, on failure too.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow, bail, ensure};

use super::client;

const BUILD_HINT: &str = "run `make worker-build` first (it builds the component, transpiles it \
                          with jco and writes the upload to worker/dist/)";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One Worker configuration: a name and its bindings (all plain-text vars).
pub struct Service {
    pub name: &'static str,
    pub bindings: Vec<(String, String)>,
    /// Fault injection: the component's main core module is replaced by the smallest one, so
    /// instantiation fails (the shim must answer 502 JSON).
    pub broken_core: bool,
}

impl Service {
    pub fn new(name: &'static str, bindings: Vec<(String, String)>) -> Service {
        Service {
            name,
            bindings,
            broken_core: false,
        }
    }
}

pub struct Workerd {
    child: Child,
    dir: PathBuf,
    addrs: Vec<(&'static str, SocketAddr)>,
    /// How the first service came up (see [`ColdStart`]).
    pub cold_start: Option<ColdStart>,
}

/// workerd's start-up, measured on its first service: the process's CPU (all threads, from
/// /proc schedstat, nanosecond resolution) and wall time until its socket accepts, then the first
/// HTTP request (the Worker's first: its instantiation included) and an identical second one.
#[derive(Clone, Copy, Debug)]
pub struct ColdStart {
    pub listening_after: Duration,
    pub listening_cpu: Duration,
    pub first_latency: Duration,
    pub first_cpu: Duration,
    pub second_latency: Duration,
    pub second_cpu: Duration,
}

/// One worker in a generated config: its modules (the first is the main one), compatibility
/// date and plain-text bindings.
struct Spec {
    name: &'static str,
    /// (module name, kind: "esModule" / "wasm", file in the config directory)
    modules: Vec<(String, &'static str, String)>,
    compatibility_date: String,
    bindings: Vec<(String, String)>,
}

/// A worker given as one ES module file (e.g. a bundled `index.js`), for [`Workerd::start_module`].
pub struct ModuleWorker<'a> {
    pub name: &'static str,
    pub main: &'a Path,
    pub compatibility_date: &'a str,
    pub bindings: Vec<(String, String)>,
}

impl Workerd {
    /// Starts one workerd serving every service on its own 127.0.0.1 port, and waits until each
    /// answers HTTP.
    pub fn start(tag: &str, services: &[Service]) -> anyhow::Result<Workerd> {
        let dist = dist_dir()?;
        let compat = compatibility_date()?;
        let dir = config_dir(tag)?;

        // Main module first, then every core module, copied so `embed` can use plain names.
        let mut modules = vec![("index.js".to_string(), "esModule")];
        for entry in std::fs::read_dir(&dist)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".wasm") {
                modules.push((name, "wasm"));
            } else if name.ends_with(".js") && name != "index.js" {
                modules.push((name, "esModule"));
            }
        }
        for (name, _) in &modules {
            std::fs::copy(dist.join(name), dir.join(name))
                .with_context(|| format!("copying worker/dist/{name}"))?;
        }

        // The largest core module is the component's code; the smallest a glue shim.
        let size = |n: &String| std::fs::metadata(dist.join(n)).map_or(0, |m| m.len());
        let wasm: Vec<&String> = modules
            .iter()
            .filter(|(_, k)| *k == "wasm")
            .map(|(n, _)| n)
            .collect();
        let largest = wasm.iter().max_by_key(|n| size(n)).copied().cloned();
        let smallest = wasm.iter().min_by_key(|n| size(n)).copied().cloned();
        let specs = services
            .iter()
            .map(|s| Spec {
                name: s.name,
                modules: modules
                    .iter()
                    .map(|(name, kind)| {
                        let file = match (&largest, &smallest) {
                            (Some(l), Some(small)) if s.broken_core && l == name => small,
                            _ => name,
                        };
                        (name.clone(), *kind, file.clone())
                    })
                    .collect(),
                compatibility_date: compat.clone(),
                bindings: s.bindings.clone(),
            })
            .collect::<Vec<_>>();
        Workerd::launch(dir, &specs)
    }

    /// Starts one workerd serving `worker`, a single-module worker (its file copied as
    /// `index.js`) with its own compatibility date and bindings, on a 127.0.0.1 port.
    pub fn start_module(tag: &str, worker: &ModuleWorker<'_>) -> anyhow::Result<Workerd> {
        let dir = config_dir(tag)?;
        std::fs::copy(worker.main, dir.join("index.js"))
            .with_context(|| format!("copying {}", worker.main.display()))?;
        let spec = Spec {
            name: worker.name,
            modules: vec![("index.js".into(), "esModule", "index.js".into())],
            compatibility_date: worker.compatibility_date.to_string(),
            bindings: worker.bindings.clone(),
        };
        Workerd::launch(dir, &[spec])
    }

    /// Starts workerd for `specs` in `dir` (see [`spawn`]) and waits until it serves.
    fn launch(dir: PathBuf, specs: &[Spec]) -> anyhow::Result<Workerd> {
        let (child, addrs) = match spawn(&dir, specs) {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        // From here on the guard owns the process and the directory, on failure too.
        let spawned = Instant::now();
        let mut workerd = Workerd {
            child,
            dir,
            addrs,
            cold_start: None,
        };
        workerd.cold_start = workerd.measure_cold_start(spawned);
        workerd.wait_ready(Duration::from_secs(30))?;
        Ok(workerd)
    }

    /// The first service's [`ColdStart`], or `None` if it did not come up as expected (then
    /// [`Workerd::wait_ready`] reports why).
    fn measure_cold_start(&mut self, spawned: Instant) -> Option<ColdStart> {
        let (_, addr) = *self.addrs.first()?;
        let pid = self.child.id();
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
            if spawned.elapsed() > Duration::from_secs(30) || self.child.try_wait().ok()?.is_some()
            {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let listening_after = spawned.elapsed();
        let listening_cpu = proc_cpu_ns(pid)?;
        let probe = || {
            let (cpu0, t0) = (proc_cpu_ns(pid)?, Instant::now());
            client::send(addr, "GET", "/__ready", &[], Duration::from_secs(10)).ok()?;
            Some((t0.elapsed(), proc_cpu_ns(pid)?.saturating_sub(cpu0)))
        };
        let (first_latency, first_cpu) = probe()?;
        let (second_latency, second_cpu) = probe()?;
        Some(ColdStart {
            listening_after,
            listening_cpu,
            first_latency,
            first_cpu,
            second_latency,
            second_cpu,
        })
    }

    fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        for (name, addr) in self.addrs.clone() {
            loop {
                if let Some(status) = self.child.try_wait()? {
                    bail!("workerd exited ({status}) before serving:\n{}", self.logs());
                }
                // Any HTTP answer means the Worker is loaded (an unknown path is the guest's 404).
                if client::send(addr, "GET", "/__ready", &[], Duration::from_secs(5)).is_ok() {
                    break;
                }
                if started.elapsed() > limit {
                    bail!(
                        "workerd service {name} did not answer on {addr} within {limit:?}:\n{}",
                        self.logs()
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        eprintln!("workerd ready in {:?}", started.elapsed());
        Ok(())
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// workerd's CPU time so far (user + system, all threads), from /proc (Linux only).
    pub fn cpu_time(&self) -> Option<Duration> {
        proc_cpu_time(self.child.id())
    }

    /// workerd's resident memory in KiB (Linux only).
    pub fn rss_kib(&self) -> Option<u64> {
        proc_rss_kib(self.child.id())
    }

    /// Everything workerd printed so far (stdout, then stderr).
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }
}

impl Drop for Workerd {
    fn drop(&mut self) {
        // Our own child, by PID: never a broad kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("WACHT_WORKERD_KEEP").is_some() {
            eprintln!("workerd config and output kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// User + system CPU time of process `pid` (all its threads) plus that of its live descendant
/// processes, from /proc/<pid>/stat (Linux only; `None` elsewhere or once `pid` is gone).
pub fn proc_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is 0, utime 11, stime 12 (clock ticks).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux that workerd supports.
    let mut total = Duration::from_millis(ticks * 10);
    for child in proc_children(pid) {
        total += proc_cpu_time(child).unwrap_or_default();
    }
    Some(total)
}

/// CPU time of process `pid` so far, all threads, at nanosecond resolution (the first field of
/// each /proc/<pid>/task/<tid>/schedstat; Linux only). Threads that have exited are not counted.
pub fn proc_cpu_ns(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(Duration::from_nanos(total))
}

/// The live child processes of `pid` (every thread's `children` list).
fn proc_children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    children.sort_unstable();
    children.dedup();
    children
}

/// Resident memory of process `pid` in KiB (Linux only).
pub fn proc_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A fresh directory for one workerd's config, modules and output.
fn config_dir(tag: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "wacht-workers-{tag}-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes `dir`/config.capnp for `specs` (one 127.0.0.1 socket each, plus the loopback network
/// service every worker uses as its global outbound) and starts workerd there.
fn spawn(dir: &Path, specs: &[Spec]) -> anyhow::Result<(Child, Vec<(&'static str, SocketAddr)>)> {
    let bin = workerd_binary()?;
    let addrs: Vec<(&'static str, SocketAddr)> = specs
        .iter()
        .map(|s| Ok((s.name, free_port()?)))
        .collect::<anyhow::Result<_>>()?;
    let mut capnp = String::from(
        "using Workerd = import \"/workerd/workerd.capnp\";\n\
         const config :Workerd.Config = (\n  services = [\n    \
         (name = \"loopback\", network = (allow = [\"public\", \"private\", \"local\"])),\n",
    );
    for s in specs {
        let _ = write!(
            capnp,
            "    (name = \"{}\", worker = (\n      modules = [\n",
            s.name
        );
        for (name, kind, file) in &s.modules {
            let _ = writeln!(
                capnp,
                "        (name = \"{}\", {kind} = embed \"{}\"),",
                esc(name),
                esc(file)
            );
        }
        let _ = write!(
            capnp,
            "      ],\n      compatibilityDate = \"{}\",\n      bindings = [\n",
            esc(&s.compatibility_date)
        );
        for (k, v) in &s.bindings {
            let _ = writeln!(
                capnp,
                "        (name = \"{}\", text = \"{}\"),",
                esc(k),
                esc(v)
            );
        }
        capnp.push_str("      ],\n      globalOutbound = \"loopback\",\n    )),\n");
    }
    capnp.push_str("  ],\n  sockets = [\n");
    for (name, addr) in &addrs {
        let _ = writeln!(
            capnp,
            "    (name = \"{name}\", address = \"{addr}\", http = (), service = \"{name}\"),"
        );
    }
    capnp.push_str("  ],\n);\n");
    let config = dir.join("config.capnp");
    std::fs::write(&config, capnp)?;

    let stdout = std::fs::File::create(dir.join("stdout.log"))?;
    let stderr = std::fs::File::create(dir.join("stderr.log"))?;
    let mut command = Command::new(&bin);
    command.arg("serve").arg("config.capnp");
    // A V8 inspector for profiling by hand (scripts/worker-profile.mjs); never in tests or benches.
    if let Some(addr) = std::env::var_os("WACHT_WORKERD_INSPECT") {
        command.arg(format!("--inspector-addr={}", addr.to_string_lossy()));
    }
    let child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    Ok((child, addrs))
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).ok()?.modified().ok()
}

/// worker/dist/, checked to exist and to be newer than the component and the shim.
pub fn dist_dir() -> anyhow::Result<PathBuf> {
    let root = repo_root();
    let dist = root.join("worker/dist");
    let index = dist.join("index.js");
    let built =
        mtime(&index).ok_or_else(|| anyhow!("{} is missing: {BUILD_HINT}", index.display()))?;
    let has_wasm = std::fs::read_dir(&dist)?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".wasm"));
    ensure!(has_wasm, "worker/dist has no .wasm module: {BUILD_HINT}");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    // The component and every file of the shim (worker/src/*.js).
    let mut inputs = vec![target.join("wasm32-wasip2/release/wacht_admin.wasm")];
    for entry in std::fs::read_dir(root.join("worker/src"))?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(".js") {
            inputs.push(entry.path());
        }
    }
    for input in inputs {
        if mtime(&input).is_some_and(|m| m > built) {
            bail!(
                "worker/dist is older than {}: {BUILD_HINT}",
                input.display()
            );
        }
    }
    Ok(dist)
}

/// The workerd binary that `npm ci` installed in worker/node_modules.
fn workerd_binary() -> anyhow::Result<PathBuf> {
    let nm = repo_root().join("worker/node_modules");
    let platform = match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "x86_64") => "linux-64",
        ("linux", "aarch64") => "linux-arm64",
        ("macos", "x86_64") => "darwin-64",
        ("macos", "aarch64") => "darwin-arm64",
        _ => "unsupported",
    };
    [
        nm.join(format!("@cloudflare/workerd-{platform}/bin/workerd")),
        nm.join("workerd/bin/workerd"),
    ]
    .into_iter()
    .find(|p| p.is_file())
    .ok_or_else(|| anyhow!("workerd is not installed in worker/node_modules: {BUILD_HINT}"))
}

/// `compatibility_date` from the root wrangler.toml, so the test runs what deploy would.
pub fn compatibility_date() -> anyhow::Result<String> {
    let toml = std::fs::read_to_string(repo_root().join("wrangler.toml"))?;
    toml.lines()
        .filter_map(|l| l.trim().strip_prefix("compatibility_date"))
        .filter_map(|rest| rest.trim().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .context("no compatibility_date in wrangler.toml")
}
