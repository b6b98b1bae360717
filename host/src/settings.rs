//! What `wacht-admin-host` runs with: the environment (`WACHT_*` for the component) and the
//! host's own flags ([`Args`], each with an environment fallback: `PORT`, `HOST`, `WACHT_ADMIN_*`).

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory as _, FromArgMatches as _, Parser};

use crate::environment::{self, NameNote};
use crate::jwks::JwksTiming;
use crate::{DEFAULT_WASM_PATH, WASM_IN_TARGET_DIR};

/// Environment variables with this prefix configure the host, not the component.
pub const HOST_ENV_PREFIX: &str = "WACHT_ADMIN_";

/// Why the settings cannot be used: the binary prints it and exits with status 2, as clap does
/// for a bad flag.
#[derive(thiserror::Error, Debug)]
pub enum SettingsError {
    #[error(transparent)]
    Flags(#[from] clap::Error),
    #[error("cannot listen on {addr:?} ({flag}; expected HOST:PORT): {source}")]
    Listen {
        flag: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr:?} ({flag}) resolves to no address")]
    NoAddress { flag: &'static str, addr: String },
    #[error(
        "no component at {looked}: build it with `make build`, or give its path with --wasm \
         (WACHT_ADMIN_WASM)"
    )]
    NoComponent { looked: String },
    #[error("--cache-dir and --no-cache are both on the command line: choose one")]
    CacheContradiction,
    #[error("--max-memory-mb is too large for this machine")]
    MemoryTooLarge,
}

/// `wacht-admin-host --help`; every flag that has an environment variable falls back to it, and
/// a flag given on the command line wins over its variable. Boolean variables take
/// `1/0/yes/no/on/off/true/false` (any case), and so do their flags (`--quiet=no`).
#[derive(Parser, Debug)]
#[command(
    name = "wacht-admin-host",
    version,
    about = "Serves the wacht-admin component (GET /admin/users) on an embedded wasmtime.",
    long_about = "Serves the wacht-admin component (GET /admin/users) on an embedded wasmtime.\n\n\
        Every WACHT_* environment variable except WACHT_ADMIN_* is passed to the component (see the \
        README); nothing else is. Without WACHT_API_KEY it runs in DEMO mode: a stand-in Wacht on \
        loopback, and ready-to-paste curl lines.\n\n\
        A flag on the command line wins over its variable. Boolean flags and their variables take \
        1/0, yes/no, on/off or true/false in any case: --quiet=no overrides WACHT_ADMIN_QUIET=yes.\n\n\
        Exit status: 2 for a bad flag or setting, 78 for a component configuration the component \
        would refuse (the message names the variable), 130/143 when a second SIGINT/SIGTERM cut \
        the graceful shutdown short."
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
    /// The component [default: <this binary's directory>/../host-verifier/wasm32-wasip2/release/
    /// wacht_admin.wasm if it exists (make serve's build), else
    /// ./target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm]
    #[arg(long, env = "WACHT_ADMIN_WASM", value_name = "PATH")]
    pub wasm: Option<PathBuf>,
    /// Compiled-code cache [default: $XDG_CACHE_HOME/wacht-admin-host]
    #[arg(long, env = "WACHT_ADMIN_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile the component on every start (wins over WACHT_ADMIN_CACHE_DIR)
    #[arg(long)]
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
    #[arg(long, env = "WACHT_ADMIN_TRUST_FORWARDED", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true",
          hide_default_value = true, hide_possible_values = true,
          value_parser = BoolishValueParser::new(),
          action = clap::ArgAction::Set)]
    pub trust_forwarded: bool,
    /// A new upstream connection per call (default: a shared keep-alive pool)
    #[arg(long, env = "WACHT_ADMIN_NO_KEEP_ALIVE", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true",
          hide_default_value = true, hide_possible_values = true,
          value_parser = BoolishValueParser::new(),
          action = clap::ArgAction::Set)]
    pub no_keep_alive: bool,
    /// No access log (the component's lines and failures are still logged)
    #[arg(long, env = "WACHT_ADMIN_QUIET", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", default_missing_value = "true",
          hide_default_value = true, hide_possible_values = true,
          value_parser = BoolishValueParser::new(),
          action = clap::ArgAction::Set)]
    pub quiet: bool,
    /// Log lines as text or one JSON object per line (also the component's own line)
    #[arg(long, env = "WACHT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text,
          ignore_case = true)]
    pub log_format: LogFormat,
    /// Serve GET /healthz, /readyz and /metrics (Prometheus) on this address (off by default)
    #[arg(long, env = "WACHT_ADMIN_LISTEN", value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,
}

impl Args {
    /// The `WACHT_*` variables the host's flags read (`--help` names them).
    pub fn env_names() -> Vec<String> {
        Args::command()
            .get_arguments()
            .filter_map(|a| a.get_env())
            .map(|e| e.to_string_lossy().into_owned())
            .filter(|e| e.starts_with("WACHT_"))
            .collect()
    }
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
    /// The start-up banner (where it listens; in demo mode the curl lines).
    pub banner_log: LogSink,
    pub log_format: LogFormat,
    /// Where `/healthz`, `/readyz` and `/metrics` are served; `None`: nowhere.
    pub admin_listen: Option<SocketAddr>,
    /// `WACHT_*` for the component (the host's own `WACHT_ADMIN_*` excluded).
    pub wacht_env: Vec<(String, String)>,
    /// What the environment's `WACHT_*` names call for (unknown ones, Worker-only ones): logged
    /// at start-up.
    pub env_notes: Vec<NameNote>,
    /// The JWKS TTL, retry interval and stale bound: the component's, shorter only in tests.
    pub jwks: JwksTiming,
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
            banner_log: LogSink::Stdout,
            log_format: LogFormat::Text,
            admin_listen: None,
            wacht_env: Vec::new(),
            env_notes: Vec::new(),
            jwks: JwksTiming::default(),
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

    /// From the parsed command line (clap has read the flags' variables into it, and says where
    /// each value came from) and the process environment, whose `WACHT_*` variables, except the
    /// host's own `WACHT_ADMIN_*`, go to the component. `exe` is this binary, where `--wasm`'s
    /// default is looked for first.
    pub fn from_matches(
        matches: &ArgMatches,
        vars: impl IntoIterator<Item = (String, String)>,
        exe: Option<&Path>,
    ) -> Result<Settings, SettingsError> {
        let args = Args::from_arg_matches(matches)?;
        let from_command_line =
            |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        let env_notes =
            environment::check_names(vars.iter().map(|(k, _)| k.as_str()), &Args::env_names());
        let mut wacht_env: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with("WACHT_") && !k.starts_with(HOST_ENV_PREFIX))
            .collect();
        // `--log-format` on the command line sets the component's line too, over its variable;
        // from the variable, the component reads the same one.
        if from_command_line("log_format") {
            wacht_env.retain(|(k, _)| k != "WACHT_LOG_FORMAT");
        }
        if !wacht_env.iter().any(|(k, _)| k == "WACHT_LOG_FORMAT") {
            let format = match args.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            };
            wacht_env.push(("WACHT_LOG_FORMAT".to_string(), format.to_string()));
        }
        let host = args.host.trim();
        let (listen, flag) = match args.listen {
            Some(listen) => (listen, "--listen"),
            None if host.contains(':') && !host.starts_with('[') => {
                (format!("[{host}]:{}", args.port), "--host/--port")
            }
            None => (format!("{host}:{}", args.port), "--host/--port"),
        };
        // --no-cache is a command-line flag: it wins over WACHT_ADMIN_CACHE_DIR, not over
        // --cache-dir beside it.
        let cache_dir = match (args.no_cache, from_command_line("cache_dir")) {
            (true, true) => return Err(SettingsError::CacheContradiction),
            (true, false) => None,
            (false, _) => args.cache_dir.or_else(default_cache_dir),
        };
        let wasm = match args.wasm {
            Some(path) => path,
            None => find_wasm(&wasm_candidates(exe))?,
        };
        let instances = args.instances as usize;
        let request_timeout = Duration::from_secs(args.request_timeout);
        let defaults = Settings::default();
        Ok(Settings {
            listen: resolve(&listen, flag)?,
            wasm,
            cache_dir,
            instances,
            prewarm: defaults.prewarm.min(instances),
            max_requests_per_instance: args.max_requests_per_instance,
            request_timeout,
            max_memory_bytes: usize::try_from(args.max_memory_mb << 20)
                .map_err(|_| SettingsError::MemoryTooLarge)?,
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
            admin_listen: args
                .admin_listen
                .as_deref()
                .map(|addr| resolve(addr, "--admin-listen"))
                .transpose()?,
            wacht_env,
            env_notes,
            ..defaults
        })
    }
}

/// Where `--wasm`'s default is looked for, in order: beside this binary (`target/serve/`, `target/host/` or
/// `target/debug/` next to `target/host-verifier/`), then the path `make build` writes,
/// relative to the current directory.
pub fn wasm_candidates(exe: Option<&Path>) -> Vec<PathBuf> {
    let beside = exe
        .and_then(Path::parent)
        .and_then(Path::parent)
        .map(|target| target.join(WASM_IN_TARGET_DIR));
    beside
        .into_iter()
        .chain(std::iter::once(PathBuf::from(DEFAULT_WASM_PATH)))
        .collect()
}

/// The first of `candidates` that is a file.
fn find_wasm(candidates: &[PathBuf]) -> Result<PathBuf, SettingsError> {
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| SettingsError::NoComponent {
            looked: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" or "),
        })
}

fn resolve(listen: &str, flag: &'static str) -> Result<SocketAddr, SettingsError> {
    listen
        .to_socket_addrs()
        .map_err(|source| SettingsError::Listen {
            flag,
            addr: listen.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| SettingsError::NoAddress {
            flag,
            addr: listen.to_string(),
        })
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

    /// Settings from these flags (clap reads the process environment, which a test must not
    /// change; `vars` is what goes to the component). `--wasm` is given unless the test does.
    fn parse(vars: &[(&str, &str)], args: &[&str]) -> Result<Settings, SettingsError> {
        let wasm = (!args.iter().any(|a| a.starts_with("--wasm"))).then_some("--wasm=x.wasm");
        let argv = std::iter::once("wacht-admin-host")
            .chain(wasm)
            .chain(args.iter().copied());
        let matches = Args::command().try_get_matches_from(argv)?;
        Settings::from_matches(
            &matches,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            None,
        )
    }

    #[test]
    fn defaults_and_the_component_environment() {
        let s = parse(
            &[
                ("PATH", "/bin"),
                ("WACHT_API_KEY", "sk"),
                ("WACHT_ADMIN_WASM", "x.wasm"),
                ("WACHT_CORS_ORIGIN", "https://a.test"),
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
                (
                    "WACHT_CORS_ORIGIN".to_string(),
                    "https://a.test".to_string()
                ),
                ("WACHT_LOG_FORMAT".to_string(), "text".to_string()),
            ]
        );
        assert!(!s.is_demo());
        assert!(s.admin_listen.is_none());
        // The misspelt name is noted (the host's own WACHT_ADMIN_WASM is known).
        assert_eq!(
            s.env_notes,
            vec![NameNote::Unknown {
                name: "WACHT_CORS_ORIGIN".into(),
                suggestion: Some("WACHT_CORS_ORIGINS".into()),
            }]
        );
        // --log-format on the command line wins over the variable, for the component too.
        for (var, flag) in [("json", "json"), ("text", "json"), ("JSON", "text")] {
            let s = parse(
                &[("WACHT_API_KEY", " "), ("WACHT_LOG_FORMAT", var)],
                &["--log-format", flag],
            )
            .unwrap();
            assert!(s.is_demo());
            let component: Vec<&str> = s
                .wacht_env
                .iter()
                .filter(|(k, _)| k == "WACHT_LOG_FORMAT")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(component, vec![flag], "{var} {flag}");
        }
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
        assert!(!s.access_log.is_off() && s.keep_alive && !s.trust_forwarded);
        for bad in [
            &["--instances", "0"][..],
            &["--bogus"],
            &["--port", "http"],
            &["--listen"],
            &["--request-timeout", "0"],
            &["--log-format", "xml"],
            &["--quiet=maybe"],
            &["--cache-dir", "/tmp/x", "--no-cache"],
        ] {
            assert!(parse(&[], bad).is_err(), "{bad:?}");
        }
        let err = parse(&[], &["--admin-listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--admin-listen"), "{err}");
    }

    /// Every boolean flag with a variable takes the boolish words from it, in any case, and the
    /// same from the command line (`--quiet=no`), where it wins over the variable.
    #[test]
    fn boolean_flags_take_boolish_values() {
        // The flags and their variables share one value parser: what `--quiet=WORD` takes,
        // WACHT_ADMIN_QUIET=WORD does.
        let command = Args::command();
        let booleans: Vec<(String, String)> = command
            .get_arguments()
            .filter(|a| a.get_env().is_some())
            .filter(|a| {
                a.get_value_names()
                    .is_some_and(|n| n == [clap::builder::Str::from("BOOL")])
            })
            .filter_map(|a| Some((a.get_id().to_string(), a.get_long()?.to_string())))
            .collect();
        let ids: Vec<&str> = booleans.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["trust_forwarded", "no_keep_alive", "quiet"]);
        for (id, long) in &booleans {
            for (word, expected) in [
                ("1", true),
                ("0", false),
                ("yes", true),
                ("No", false),
                ("ON", true),
                ("off", false),
                ("True", true),
                ("FALSE", false),
            ] {
                let flag = format!("--{long}={word}");
                let matches = Args::command()
                    .try_get_matches_from(["wacht-admin-host", flag.as_str()])
                    .unwrap();
                assert_eq!(matches.get_one::<bool>(id), Some(&expected), "{flag}");
            }
            let bad = format!("--{long}=maybe");
            assert!(
                Args::command()
                    .try_get_matches_from(["x", bad.as_str()])
                    .is_err()
            );
            let bare = format!("--{long}");
            let matches = Args::command()
                .try_get_matches_from(["x", bare.as_str()])
                .unwrap();
            assert_eq!(matches.get_one::<bool>(id), Some(&true), "{bare}");
        }
        let s = parse(
            &[],
            &["--quiet=off", "--trust-forwarded=YES", "--no-keep-alive=1"],
        )
        .unwrap();
        assert!(!s.access_log.is_off() && s.trust_forwarded && !s.keep_alive);
    }

    /// `--wasm`'s default: beside the binary first (make serve's target/host/ next to
    /// target/host-verifier/), then the relative path; none found is an error naming the flag.
    #[test]
    fn the_default_component_is_found_beside_the_binary() {
        let exe = Path::new("/opt/wacht/target/host/wacht-admin-host");
        assert_eq!(
            wasm_candidates(Some(exe)),
            vec![
                PathBuf::from(
                    "/opt/wacht/target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm"
                ),
                PathBuf::from(DEFAULT_WASM_PATH),
            ]
        );
        assert_eq!(
            wasm_candidates(None),
            vec![PathBuf::from(DEFAULT_WASM_PATH)]
        );

        let dir = std::env::temp_dir().join(format!("wacht-host-wasm-{}", std::process::id()));
        let built = dir.join("target").join(WASM_IN_TARGET_DIR);
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        let exe = dir.join("target/host/wacht-admin-host");
        let missing = find_wasm(&wasm_candidates(Some(&exe)))
            .unwrap_err()
            .to_string();
        std::fs::write(&built, b"\0asm").unwrap();
        let found = find_wasm(&wasm_candidates(Some(&exe)));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            missing.contains("--wasm") && missing.contains(DEFAULT_WASM_PATH),
            "{missing}"
        );
        assert_eq!(found.unwrap(), built);
        assert_eq!(
            DEFAULT_WASM_PATH,
            format!("target/{WASM_IN_TARGET_DIR}"),
            "the two paths name the same build"
        );
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
            ("quiet", "WACHT_ADMIN_QUIET"),
        ] {
            assert_eq!(env_of(id).as_deref(), Some(var), "{id}");
        }
        assert!(Args::env_names().contains(&"WACHT_ADMIN_TRUST_FORWARDED".to_string()));
        assert!(!Args::env_names().contains(&"PORT".to_string()));
        command.debug_assert();
    }
}
