//! The portable component (`make build`'s artifact) must run on any WASI 0.2 HTTP host: it may
//! import only `wasi:*@0.2.*` interfaces (no Spin, Fermyon or other host-specific import) and
//! must export `wasi:http/incoming-handler@0.2.*`. The host-verifier build imports exactly one
//! interface more, `wacht:admin/verifier`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use anyhow::ensure;
use common::Build;
use wacht_admin_host::wasmtime::component::Component;

/// `wasi:<package>/<interface>@0.2.<patch>`.
fn is_wasi_0_2(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("wasi:") else {
        return false;
    };
    let Some((path, version)) = rest.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    let kebab = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let patch_ok = version
        .strip_prefix("0.2.")
        .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    kebab(package) && kebab(interface) && patch_ok
}

#[test]
fn name_check_is_strict() {
    assert!(is_wasi_0_2("wasi:http/types@0.2.12"));
    assert!(is_wasi_0_2("wasi:cli/terminal-stdout@0.2.0"));
    assert!(!is_wasi_0_2("fermyon:spin/variables@2.0.0"));
    assert!(!is_wasi_0_2("wasi:config/store@0.2.0-draft-2024-09-27"));
    assert!(!is_wasi_0_2("wasi:http/handler@0.3.0"));
    assert!(!is_wasi_0_2("wasi:http/types"));
}

const VERIFIER: &str = "wacht:admin/verifier@0.1.0";

#[test]
fn portable_build_imports_only_wasi_0_2_and_exports_the_incoming_handler() -> anyhow::Result<()> {
    let foreign = check_build(Build::Portable)?;
    ensure!(
        foreign.is_empty(),
        "imports outside wasi:*@0.2.*: {foreign:?}"
    );
    Ok(())
}

#[test]
fn host_verifier_build_imports_the_verifier_and_otherwise_only_wasi() -> anyhow::Result<()> {
    let foreign = check_build(Build::HostVerifier)?;
    ensure!(
        foreign == [VERIFIER],
        "imports outside wasi:*@0.2.*: {foreign:?}"
    );
    Ok(())
}

/// The build's shape; returns its imports outside `wasi:*@0.2.*`.
fn check_build(build: Build) -> anyhow::Result<Vec<String>> {
    let path = common::wasm_path_of(build)?;
    // Through the host's engine, so the compiled code comes from the on-disk cache.
    let engine = common::component_of(build)?.engine().clone();
    let component = Component::from_file(&engine, &path)?;
    let ty = component.component_type();

    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_string()).collect();
    println!("imports of {}:", path.display());
    for name in &imports {
        println!("  {name}");
    }
    println!("exports:");
    for name in &exports {
        println!("  {name}");
    }

    let foreign: Vec<String> = imports
        .iter()
        .filter(|n| !is_wasi_0_2(n))
        .cloned()
        .collect();
    ensure!(
        imports
            .iter()
            .any(|n| n.starts_with("wasi:http/outgoing-handler@0.2.")),
        "no wasi:http/outgoing-handler import: {imports:?}"
    );
    ensure!(
        exports
            .iter()
            .any(|n| n.starts_with("wasi:http/incoming-handler@0.2.") && is_wasi_0_2(n)),
        "no wasi:http/incoming-handler@0.2.* export: {exports:?}"
    );
    // Sockets and filesystem stay out: the component reaches the network only through wasi:http.
    let ambient: Vec<&String> = imports
        .iter()
        .filter(|n| n.starts_with("wasi:sockets/") || n.starts_with("wasi:filesystem/"))
        .collect();
    ensure!(
        ambient.is_empty(),
        "unexpected ambient-authority imports: {ambient:?}"
    );
    Ok(foreign)
}
