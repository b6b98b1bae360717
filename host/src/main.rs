//! `wacht-admin-host`: the wacht-admin component on an embedded wasmtime, served over HTTP.
//! `make serve` runs it; `--help` lists the settings.

use std::process::ExitCode;

use clap::CommandFactory as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use wacht_admin_host::Server;
use wacht_admin_host::environment::ConfigRefused;
use wacht_admin_host::log::Logger;
use wacht_admin_host::settings::{Args, LogFormat, LogSink, Settings};

/// A bad flag or setting, as clap exits for one.
const EXIT_USAGE: u8 = 2;
/// sysexits' EX_CONFIG: the component's configuration is refused. A supervisor can tell it from
/// a crash and not restart in a loop (systemd's `RestartPreventExitStatus=78`).
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    // clap prints --help / --version, or the error and usage, and exits (2 on a bad flag).
    let matches = Args::command().get_matches();
    let format = matches
        .get_one::<LogFormat>("log_format")
        .copied()
        .unwrap_or_default();
    // For what is said before the server has a logger of its own (and after, the same lines).
    let logger = Logger::new(format, LogSink::Stdout, LogSink::Stderr, LogSink::Stdout);
    let exe = std::env::current_exe().ok();
    let settings = match Settings::from_matches(&matches, std::env::vars(), exe.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            logger.error(&format!("wacht-admin-host: {e}"));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wacht-admin-host")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            logger.error(&format!("wacht-admin-host: cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&format!("wacht-admin-host: {e:#}"));
            if e.downcast_ref::<ConfigRefused>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// SIGINT and SIGTERM, as they come.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next one: its name and the exit status that a process it killed would have.
    async fn next(&mut self) -> (&'static str, u8) {
        tokio::select! {
            _ = self.interrupt.recv() => ("SIGINT", 128 + 2),
            _ = self.terminate.recv() => ("SIGTERM", 128 + 15),
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<ExitCode> {
    let mut signals = Signals::new()?;
    let mut server = Server::start(settings).await?;
    server.announce();
    let logger = server.logger().clone();

    let (first, _) = tokio::select! {
        signal = signals.next() => signal,
        result = server.stopped() => return result.map(|()| ExitCode::SUCCESS),
    };
    logger.info(&format!(
        "{first}: finishing in-flight requests, then exiting (send it again to exit at once)"
    ));
    // The first signal drains; a second one (an impatient operator, a supervisor's stop
    // timeout) exits now.
    tokio::select! {
        result = server.shutdown() => {
            result?;
            logger.info("stopped");
            Ok(ExitCode::SUCCESS)
        }
        (second, status) = signals.next() => {
            logger.warn(&format!("{second} again: exiting without waiting for in-flight requests"));
            // At once: nothing is left to drain, and dropping the runtime could wait on it.
            std::process::exit(i32::from(status))
        }
    }
}
