//! `make serve` for the benchmark: the native host binary (`target/host/wacht-admin-host`, built
//! with `cargo build --profile host -p wacht-admin-host`) serving the host-verifier
//! component (`target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm`, from `make build`)
//! on a 127.0.0.1 port, with the compiled-code cache `make serve` uses. The process is ours and
//! is killed by its PID when the guard drops, on failure too.

use std::ops::Deref;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::ensure;

use super::workerd::repo_root;
use crate::process::ServerProcess;

const BUILD_HINT: &str = "run `make build` and `cargo build --profile host -p wacht-admin-host` first (`make bench` does both)";

pub struct NativeHost(ServerProcess);

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
        let addr = ServerProcess::free_addr()?;
        let mut command = Command::new(&bin);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--wasm")
            .arg(&wasm)
            .arg("--cache-dir")
            .arg(root.join("target/wasmtime-cache"))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let process =
            ServerProcess::start("wacht-admin-host", command, addr, Duration::from_secs(60))?;
        Ok(NativeHost(process))
    }
}

impl Deref for NativeHost {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.0
    }
}
