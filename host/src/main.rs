//! `wacht-admin-host`: the wacht-admin component on an embedded wasmtime, served over HTTP.
//! `make serve` runs it; `--help` lists the settings.

use std::process::ExitCode;

use clap::Parser as _;
use wacht_admin_host::Server;
use wacht_admin_host::settings::{Args, Settings};

fn main() -> ExitCode {
    // clap prints --help / --version, or the error and usage, and exits (2 on a bad flag).
    let args = Args::parse();
    let settings = match Settings::from_args(args, std::env::vars()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("wacht-admin-host: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wacht-admin-host")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wacht-admin-host: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wacht-admin-host: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut server = Server::start(settings).await?;
    print!("{}", server.banner());
    let _ = std::io::stdout().flush();

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let signal = tokio::select! {
        result = tokio::signal::ctrl_c() => { result?; "SIGINT" }
        _ = terminate.recv() => "SIGTERM",
        result = server.stopped() => return result,
    };
    eprintln!("wacht-admin-host: {signal}: finishing in-flight requests, then exiting");
    server.shutdown().await?;
    eprintln!("wacht-admin-host: stopped");
    Ok(())
}
