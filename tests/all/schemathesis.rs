//! Schemathesis (the Python package; `make test` installs it into `target/pytools/`) against
//! `make serve`'s server in demo mode: examples generated from `openapi.yaml`, valid and not,
//! with every check it has. A schema that promises what the code refuses, or an answer the
//! schema does not describe, fails here.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use wacht_admin_host::Server;

use crate::common::repo_root;

const HINT: &str = "run `make pytools` (make test does)";
/// Examples per operation and phase: bounded, so the run takes seconds, not minutes.
const MAX_EXAMPLES: &str = "40";

fn schemathesis() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("SCHEMATHESIS")
        .map_or_else(|| repo_root().join("target/pytools/bin/st"), PathBuf::from);
    ensure!(path.is_file(), "{} is missing: {HINT}", path.display());
    Ok(path)
}

#[test]
fn schemathesis_finds_nothing_against_the_demo_server() -> anyhow::Result<()> {
    let st = schemathesis()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    // The preflight operation needs a configured origin to answer anything but 405.
    let (settings, _logs) = crate::http_serve::settings(vec![(
        "WACHT_CORS_ORIGINS".to_string(),
        "https://admin.example.com".to_string(),
    )])?;
    let server = rt.block_on(Server::start(settings))?;
    let token = server
        .demo()
        .context("not in demo mode")?
        .session_token()
        .to_string();
    let out = Command::new(&st)
        .args([
            "run",
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            "1",
        ])
        .args(["--workers", "1", "--request-timeout", "20", "--no-color"])
        .arg("--url")
        .arg(server.url())
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(repo_root().join("openapi.yaml"))
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .context("running schemathesis")?;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await })??;
    ensure!(out.status.success(), "schemathesis failed:\n{report}");
    ensure!(
        report.contains("passed") && !report.contains("No operations"),
        "schemathesis ran nothing:\n{report}"
    );
    eprintln!("{report}");
    Ok(())
}
