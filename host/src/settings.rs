//! What `wacht-admin-host` runs with: the environment (`WACHT_*` for the component) and the
//! host's own flags ([`Args`], each with an environment fallback: `PORT`, `HOST`, `WACHT_ADMIN_*`).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::Parser;

use crate::DEFAULT_WASM_PATH;

/// Environment variables with this prefix configure the host, not the component.
pub const HOST_ENV_PREFIX: &str = "WACHT_ADMIN_";

/// `wacht-admin-host --help`; every flag that has an environment variable falls back to it.
#[derive(Parser, Debug)]
#[command(
    name = "wacht-admin-host",
    version,
    about = "Serves the wacht-admin component (GET /admin/users) on an embedded wasmtime.",
    long_about = "Serves the wacht-admin component (GET /admin/users) on an embedded wasmtime.\n\n\
        Every WACHT_* environment variable except WACHT_ADMIN_* is passed to the component (see the \
        README); nothing else is. Without WACHT_API_KEY it runs in DEMO mode: a stand-in Wacht on \
        loopback, and ready-to-paste curl lines."
)]
pub struct Args {
    /// Address to listen on, HOST:PORT (overrides --host and --port)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Address to listen on (0.0.0.0 or :: for every interface)
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// The component
    #[arg(long, env = "WACHT_ADMIN_WASM", default_value = DEFAULT_WASM_PATH)]
    pub wasm: PathBuf,
    /// Compiled-code cache [default: $XDG_CACHE_HOME/wacht-admin-host]
    #[arg(long, env = "WACHT_ADMIN_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component on every start
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Reused instances = requests in flight at most
    #[arg(long, env = "WACHT_ADMIN_INSTANCES", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub instances: u32,
    /// Retire an instance after N requests
    #[arg(long, env = "WACHT_ADMIN_MAX_REQUESTS_PER_INSTANCE", default_value_t = 10_000,
          value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_requests_per_instance: u64,
    /// Per request, guest CPU and upstream calls together, in seconds
    #[arg(long, env = "WACHT_ADMIN_REQUEST_TIMEOUT", default_value_t = 30, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Linear memory per instance, in MiB
    #[arg(long, env = "WACHT_ADMIN_MAX_MEMORY_MB", default_value_t = 128, value_name = "MIB",
          value_parser = clap::value_parser!(u64).range(2..=4096))]
    pub max_memory_mb: u64,
    /// Open client connections at most
    #[arg(long, env = "WACHT_ADMIN_MAX_CONNECTIONS", default_value_t = 1024, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    pub max_connections: u32,
    /// Keep the client's X-Forwarded-For / CF-Connecting-IP (behind a proxy you trust); by
    /// default they are replaced by the peer address
    #[arg(long, env = "WACHT_ADMIN_TRUST_FORWARDED")]
    pub trust_forwarded: bool,
    /// A new upstream connection per call (default: a shared keep-alive pool)
    #[arg(long, env = "WACHT_ADMIN_NO_KEEP_ALIVE")]
    pub no_keep_alive: bool,
    /// No access log (the component's lines and failures are still logged)
    #[arg(long, env = "WACHT_ADMIN_QUIET")]
    pub quiet: bool,
    /// Log lines as text or one JSON object per line (also the component's own line)
    #[arg(long, env = "WACHT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text,
          ignore_case = true)]
    pub log_format: LogFormat,
    /// Serve GET /healthz, /readyz and /metrics (Prometheus) on this address (off by default)
    #[arg(long, env = "WACHT_ADMIN_LISTEN", value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,
}

/// How the host writes its log lines (`--log-format`, `WACHT_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `time LEVEL target: message key=value ...`
    #[default]
    Text,
    /// One JSON object per line
    Json,
}

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
    // Not the lines a memory sink holds.
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
    /// The guest's stderr, line by line, and the host's own messages.
    pub guest_log: LogSink,
    pub log_format: LogFormat,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: nowhere.
    pub admin_listen: Option<SocketAddr>,
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
            log_format: LogFormat::Text,
            admin_listen: None,
            wacht_env: Vec::new(),
        }
    }
}

impl Settings {
    /// `WACHT_API_KEY` is unset (or blank): demo mode.
    pub fn is_demo(&self) -> bool {
        !self
            .wacht_env
            .iter()
            .any(|(k, v)| k == "WACHT_API_KEY" && !v.trim().is_empty())
    }

    /// From the parsed command line and the process environment (whose `WACHT_*` variables,
    /// except the host's own `WACHT_ADMIN_*`, go to the component).
    pub fn from_args(
        args: Args,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Settings> {
        let mut wacht_env: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("WACHT_") && !k.starts_with(HOST_ENV_PREFIX))
            .collect();
        // `--log-format` also sets the component's line, unless its variable says otherwise.
        if !wacht_env.iter().any(|(k, _)| k == "WACHT_LOG_FORMAT") {
            let format = match args.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            wacht_env.push(("WACHT_LOG_FORMAT".to_string(), format.to_string()));
        }
        let host = args.host.trim();
        let listen = match args.listen {
            Some(listen) => listen,
            None if host.contains(':') && !host.starts_with('[') => {
                format!("[{host}]:{}", args.port)
            }
            None => format!("{host}:{}", args.port),
        };
        let instances = args.instances as usize;
        let request_timeout = Duration::from_secs(args.request_timeout);
        let defaults = Settings::default();
        Ok(Settings {
            listen: resolve(&listen)?,
            wasm: args.wasm,
            cache_dir: if args.no_cache {
                None
            } else {
                args.cache_dir.or(defaults.cache_dir)
            },
            instances,
            prewarm: defaults.prewarm.min(instances),
            max_requests_per_instance: args.max_requests_per_instance,
            request_timeout,
            max_memory_bytes: usize::try_from(args.max_memory_mb << 20)
                .context("--max-memory-mb is too large")?,
            max_connections: args.max_connections as usize,
            shutdown_grace: request_timeout,
            trust_forwarded: args.trust_forwarded,
            keep_alive: !args.no_keep_alive,
            access_log: if args.quiet {
                LogSink::Off
            } else {
                LogSink::Stdout
            },
            log_format: args.log_format,
            admin_listen: args.admin_listen.as_deref().map(resolve).transpose()?,
            wacht_env,
            ..defaults
        })
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
    use clap::CommandFactory as _;

    use super::*;

    fn parse(vars: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Settings> {
        let args =
            Args::try_parse_from(std::iter::once("wacht-admin-host").chain(args.iter().copied()))?;
        Settings::from_args(
            args,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn defaults_and_the_component_environment() {
        let s = parse(
            &[
                ("PATH", "/bin"),
                ("WACHT_API_KEY", "sk"),
                ("WACHT_ADMIN_WASM", "x.wasm"),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(s.listen.port(), 8080);
        assert!(s.listen.ip().is_loopback());
        // The host's own variables stay with the host; the log format follows --log-format.
        assert_eq!(
            s.wacht_env,
            vec![
                ("WACHT_API_KEY".to_string(), "sk".to_string()),
                ("WACHT_LOG_FORMAT".to_string(), "text".to_string()),
            ]
        );
        assert!(!s.is_demo());
        assert!(s.admin_listen.is_none());
        let s = parse(
            &[("WACHT_API_KEY", " "), ("WACHT_LOG_FORMAT", "json")],
            &["--log-format", "json"],
        )
        .unwrap();
        assert!(s.is_demo());
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.wacht_env
                .iter()
                .filter(|(k, _)| k == "WACHT_LOG_FORMAT")
                .count(),
            1
        );
    }

    #[test]
    fn flags() {
        let s = parse(
            &[],
            &[
                "--listen",
                "127.0.0.1:0",
                "--instances=4",
                "--no-cache",
                "--quiet",
                "--admin-listen",
                "127.0.0.1:9091",
            ],
        )
        .unwrap();
        assert_eq!(s.listen.port(), 0);
        assert_eq!(s.instances, 4);
        assert_eq!(s.prewarm, 1);
        assert!(s.cache_dir.is_none());
        assert!(s.access_log.is_off());
        assert_eq!(
            s.admin_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9091)))
        );
        let s = parse(
            &[],
            &["--host", "::1", "--port", "9001", "--max-memory-mb", "64"],
        )
        .unwrap();
        assert_eq!(s.listen.to_string(), "[::1]:9001");
        assert_eq!(s.max_memory_bytes, 64 << 20);
        for bad in [
            &["--instances", "0"][..],
            &["--bogus"],
            &["--port", "http"],
            &["--listen"],
            &["--request-timeout", "0"],
            &["--log-format", "xml"],
            &["--admin-listen", "nowhere"],
        ] {
            assert!(parse(&[], bad).is_err(), "{bad:?}");
        }
    }

    /// Every setting with a documented variable falls back to it (clap reads the process
    /// environment, which a test must not change).
    #[test]
    fn every_setting_names_its_environment_variable() {
        let command = Args::command();
        let env_of = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .and_then(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned())
        };
        for (id, var) in [
            ("host", "HOST"),
            ("port", "PORT"),
            ("wasm", "WACHT_ADMIN_WASM"),
            ("cache_dir", "WACHT_ADMIN_CACHE_DIR"),
            ("instances", "WACHT_ADMIN_INSTANCES"),
            ("request_timeout", "WACHT_ADMIN_REQUEST_TIMEOUT"),
            ("log_format", "WACHT_LOG_FORMAT"),
            ("admin_listen", "WACHT_ADMIN_LISTEN"),
        ] {
            assert_eq!(env_of(id).as_deref(), Some(var), "{id}");
        }
        command.debug_assert();
    }
}
