//! What `wacht-admin-host` runs with: the environment (`WACHT_*` for the component, `PORT`,
//! `HOST`, `WACHT_ADMIN_*` for the host itself) and a few command-line flags.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};

use crate::DEFAULT_WASM_PATH;

/// Environment variables with this prefix configure the host, not the component.
pub const HOST_ENV_PREFIX: &str = "WACHT_ADMIN_";

pub const USAGE: &str = "\
wacht-admin-host: serves the wacht-admin component (GET /admin/users) on an embedded wasmtime.

USAGE: wacht-admin-host [OPTIONS]

Without WACHT_API_KEY in the environment it runs in DEMO mode: a stand-in Wacht on loopback,
and ready-to-paste curl lines. With WACHT_API_KEY set, the component talks to the real Wacht.

Environment:
  WACHT_API_KEY, WACHT_PUBLISHABLE_KEY, WACHT_BACKEND_API_URL, WACHT_GATEWAY_URL, WACHT_...
                      passed to the component (see the README); nothing else is
  PORT                port to listen on (default 8080)
  HOST                address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
  WACHT_ADMIN_WASM    the component (default target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm)
  WACHT_ADMIN_CACHE_DIR   compiled-code cache (default $XDG_CACHE_HOME/wacht-admin-host)

Options:
  --listen ADDR:PORT          overrides HOST and PORT
  --wasm PATH                 overrides WACHT_ADMIN_WASM
  --cache-dir DIR             overrides WACHT_ADMIN_CACHE_DIR
  --no-cache                  compile the component on every start
  --instances N               reused instances = requests in flight at most (default 16)
  --max-requests-per-instance N   retire an instance after N requests (default 10000)
  --request-timeout SECS      per request, guest CPU and upstream calls together (default 30)
  --max-memory-mb N           linear memory per instance (default 128)
  --max-connections N         open client connections at most (default 1024)
  --trust-forwarded           keep the client's X-Forwarded-For / CF-Connecting-IP (behind a
                              proxy you trust); by default they are replaced by the peer address
  --no-keep-alive             a new upstream connection per call (default: a shared pool)
  --quiet                     no access log (guest log lines still go to stderr)
  -h, --help                  this text
";

/// Where log lines go.
#[derive(Clone, Default)]
pub enum LogSink {
    #[default]
    Stdout,
    Stderr,
    Off,
    /// Kept in memory (tests).
    Memory(Arc<Mutex<Vec<String>>>),
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogSink::Stdout => "Stdout",
            LogSink::Stderr => "Stderr",
            LogSink::Off => "Off",
            LogSink::Memory(_) => "Memory",
        })
    }
}

impl LogSink {
    pub fn memory() -> (LogSink, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (LogSink::Memory(lines.clone()), lines)
    }

    /// Writes one line (a failed write, e.g. a closed pipe, is ignored: logging never fails
    /// a request).
    pub fn line(&self, line: &str) {
        use std::io::Write as _;
        match self {
            LogSink::Stdout => {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            LogSink::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            LogSink::Off => {}
            LogSink::Memory(lines) => lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(line.to_string()),
        }
    }

    pub fn is_off(&self) -> bool {
        matches!(self, LogSink::Off)
    }
}

/// Everything the server needs; [`Settings::from_env`] for the binary, or built directly.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub wasm: PathBuf,
    pub cache_dir: Option<PathBuf>,
    /// Instances in the pool (requests in flight at most).
    pub instances: usize,
    /// Instances created at start-up (the first requests pay no instantiation).
    pub prewarm: usize,
    pub max_requests_per_instance: u64,
    pub request_timeout: Duration,
    /// Linear memory one instance may grow to; past it the guest fails (502) and is replaced.
    pub max_memory_bytes: usize,
    /// How long a request waits for a free instance before a 503.
    pub queue_timeout: Duration,
    /// Request bodies larger than this are refused (413); the endpoint takes none.
    pub max_body_bytes: usize,
    /// The request line and headers together; larger is a 431.
    pub max_header_bytes: usize,
    pub max_connections: usize,
    /// A client that has not sent its headers by then is disconnected.
    pub header_read_timeout: Duration,
    /// On SIGINT/SIGTERM, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    pub trust_forwarded: bool,
    /// The guest's outgoing calls over a shared keep-alive connection pool
    /// ([`crate::outbound::KeepAlive`]); false: a new connection per call (wasmtime's default).
    pub keep_alive: bool,
    /// One line per request.
    pub access_log: LogSink,
    /// The guest's stderr, line by line.
    pub guest_log: LogSink,
    /// `WACHT_*` for the component (the host's own `WACHT_ADMIN_*` excluded).
    pub wacht_env: Vec<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            wasm: PathBuf::from(DEFAULT_WASM_PATH),
            cache_dir: default_cache_dir(),
            instances: 16,
            prewarm: 1,
            max_requests_per_instance: 10_000,
            request_timeout: Duration::from_secs(30),
            max_memory_bytes: 128 << 20,
            queue_timeout: Duration::from_secs(5),
            max_body_bytes: 64 * 1024,
            max_header_bytes: 32 * 1024,
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            trust_forwarded: false,
            keep_alive: true,
            access_log: LogSink::Stdout,
            guest_log: LogSink::Stderr,
            wacht_env: Vec::new(),
        }
    }
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Settings>),
    Help,
}

impl Settings {
    /// `WACHT_API_KEY` is unset (or blank): demo mode.
    pub fn is_demo(&self) -> bool {
        !self
            .wacht_env
            .iter()
            .any(|(k, v)| k == "WACHT_API_KEY" && !v.trim().is_empty())
    }

    /// From the process environment and command line (without the program name).
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
        args: impl IntoIterator<Item = String>,
    ) -> anyhow::Result<Command> {
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut s = Settings {
            wacht_env: vars
                .iter()
                .filter(|(k, _)| k.starts_with("WACHT_") && !k.starts_with(HOST_ENV_PREFIX))
                .cloned()
                .collect(),
            ..Settings::default()
        };
        if let Some(wasm) = var("WACHT_ADMIN_WASM") {
            s.wasm = PathBuf::from(wasm);
        }
        if let Some(dir) = var("WACHT_ADMIN_CACHE_DIR") {
            s.cache_dir = Some(PathBuf::from(dir));
        }
        let port: u16 = match var("PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| anyhow!("PORT={p:?} is not a port number"))?,
            None => 8080,
        };
        let host = var("HOST").unwrap_or_else(|| "127.0.0.1".to_string());
        let mut listen = format!("{}:{port}", bracket_ipv6(&host));

        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |what: &str| -> anyhow::Result<String> {
                match inline.clone().or_else(|| args.next()) {
                    Some(v) => Ok(v),
                    None => bail!("{flag} needs {what}"),
                }
            };
            match flag.as_str() {
                "-h" | "--help" => return Ok(Command::Help),
                "--listen" => listen = value("ADDR:PORT")?,
                "--wasm" => s.wasm = PathBuf::from(value("a path")?),
                "--cache-dir" => s.cache_dir = Some(PathBuf::from(value("a directory")?)),
                "--no-cache" => s.cache_dir = None,
                "--instances" => s.instances = number(&flag, &value("a number")?, 1, 4096)?,
                "--max-requests-per-instance" => {
                    s.max_requests_per_instance = number(&flag, &value("a number")?, 1, u64::MAX)?
                }
                "--request-timeout" => {
                    s.request_timeout =
                        Duration::from_secs(number(&flag, &value("seconds")?, 1, 3600)?)
                }
                "--max-memory-mb" => {
                    s.max_memory_bytes = number::<usize>(&flag, &value("MiB")?, 2, 4096)? << 20
                }
                "--max-connections" => {
                    s.max_connections = number(&flag, &value("a number")?, 1, 1 << 20)?
                }
                "--trust-forwarded" => s.trust_forwarded = true,
                "--no-keep-alive" => s.keep_alive = false,
                "--quiet" => s.access_log = LogSink::Off,
                other => bail!("unknown argument {other:?} (see --help)"),
            }
        }
        s.listen = resolve(&listen)?;
        s.prewarm = s.prewarm.min(s.instances);
        s.shutdown_grace = s.request_timeout;
        Ok(Command::Serve(Box::new(s)))
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    flag: &str,
    raw: &str,
    min: T,
    max: T,
) -> anyhow::Result<T> {
    raw.parse::<T>()
        .ok()
        .filter(|n| *n >= min && *n <= max)
        .ok_or_else(|| anyhow!("{flag} {raw:?}: expected a number from {min} to {max}"))
}

fn bracket_ipv6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn resolve(listen: &str) -> anyhow::Result<SocketAddr> {
    listen
        .to_socket_addrs()
        .with_context(|| format!("cannot listen on {listen:?} (expected HOST:PORT)"))?
        .next()
        .ok_or_else(|| anyhow!("{listen:?} resolves to no address"))
}

/// `$XDG_CACHE_HOME/wacht-admin-host`, else `$HOME/.cache/wacht-admin-host`.
fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("wacht-admin-host"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Settings> {
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        match Settings::from_env(vars, args.iter().map(|a| a.to_string()))? {
            Command::Serve(s) => Ok(*s),
            Command::Help => bail!("help"),
        }
    }

    #[test]
    fn defaults_and_env() {
        let s = parse(
            &[
                ("PATH", "/bin"),
                ("WACHT_API_KEY", "sk"),
                ("WACHT_ADMIN_WASM", "x.wasm"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.listen, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(
            s.wacht_env,
            vec![("WACHT_API_KEY".to_string(), "sk".to_string())]
        );
        assert_eq!(s.wasm, PathBuf::from("x.wasm"));
        assert!(!s.is_demo());
        let s = parse(&[("PORT", "9000"), ("WACHT_API_KEY", " ")], &[]).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert!(s.is_demo());
        let s = parse(&[("HOST", "::1"), ("PORT", "9001")], &[]).unwrap();
        assert_eq!(s.listen.to_string(), "[::1]:9001");
    }

    #[test]
    fn flags() {
        let s = parse(
            &[("PORT", "9000")],
            &[
                "--listen",
                "127.0.0.1:0",
                "--instances=4",
                "--no-cache",
                "--quiet",
            ],
        )
        .unwrap();
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.instances, 4);
        assert!(s.cache_dir.is_none());
        assert!(s.access_log.is_off());
        assert!(parse(&[], &["--instances", "0"]).is_err());
        assert!(parse(&[], &["--bogus"]).is_err());
        assert!(parse(&[("PORT", "http")], &[]).is_err());
        assert!(parse(&[], &["--listen"]).is_err());
    }
}
