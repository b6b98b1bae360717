//! Lints spin.toml: there is no Spin CLI or published `spin-manifest` crate on these machines, so
//! this checks the subset of the v2 schema the manifest uses, with unknown fields refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context as _, ensure};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    spin_manifest_version: i64,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    trigger: Triggers,
    component: BTreeMap<String, ComponentDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Application {
    name: String,
    version: Option<String>,
    description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Variable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Triggers {
    http: Vec<HttpTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpTrigger {
    route: String,
    component: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ComponentDef {
    description: Option<String>,
    source: String,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    build: Option<Build>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Build {
    command: String,
    #[serde(default)]
    watch: Vec<String>,
}

const BUILD_COMMAND: &str = "cargo build --target wasm32-wasip2 --release";

fn manifest_text() -> anyhow::Result<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("spin.toml");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn manifest() -> anyhow::Result<Manifest> {
    toml::from_str(&manifest_text()?).context("spin.toml does not fit the v2 subset")
}

/// The names inside every `{{ name }}` of `s`; `Err` on an unclosed template.
fn template_refs(s: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = rest.get(start + 2..).unwrap_or("");
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed template in {s:?}"))?;
        names.push(after.get(..end).unwrap_or("").trim().to_string());
        rest = after.get(end + 2..).unwrap_or("");
    }
    Ok(names)
}

/// Every `WACHT_*` name the component reads: the string literals of src/config.rs.
fn names_the_component_reads() -> anyhow::Result<BTreeSet<String>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs");
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let names: BTreeSet<String> = src
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| lit.len() > "WACHT_".len() && lit.starts_with("WACHT_"))
        .filter(|lit| lit.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(str::to_string)
        .collect();
    ensure!(
        names.contains("WACHT_API_KEY"),
        "src/config.rs no longer names WACHT_API_KEY: {names:?}"
    );
    Ok(names)
}

#[test]
fn template_parser_works() {
    assert_eq!(template_refs("{{ a }}x{{b}}").unwrap(), vec!["a", "b"]);
    assert!(template_refs("{{ a ").is_err());
    assert!(template_refs("plain").unwrap().is_empty());
}

#[test]
fn manifest_is_v2_and_triggers_resolve() -> anyhow::Result<()> {
    let m = manifest()?;
    ensure!(
        m.spin_manifest_version == 2,
        "spin_manifest_version is {}",
        m.spin_manifest_version
    );
    ensure!(
        m.application.name == "wacht-admin",
        "application name {:?}",
        m.application.name
    );
    ensure!(m.application.version.is_some() && m.application.description.is_some());
    ensure!(!m.trigger.http.is_empty(), "no HTTP trigger");
    for t in &m.trigger.http {
        ensure!(
            m.component.contains_key(&t.component),
            "trigger {} names unknown component {}",
            t.route,
            t.component
        );
    }
    ensure!(
        m.trigger
            .http
            .iter()
            .any(|t| t.route == "/..." && t.component == "wacht-admin"),
        "no `/...` route to wacht-admin"
    );
    Ok(())
}

const PORTABLE_WASM: &str = "target/wasm32-wasip2/release/wacht_admin.wasm";

#[test]
fn source_and_build_match_make_build() -> anyhow::Result<()> {
    let m = manifest()?;
    let c = m
        .component
        .get("wacht-admin")
        .context("no component wacht-admin")?;
    ensure!(c.description.is_some());
    // Spin gets the portable build: it imports only wasi:*, and Spin has no verifier to give.
    ensure!(
        c.source == PORTABLE_WASM,
        "source {:?} is not where `make build` writes the portable component ({PORTABLE_WASM})",
        c.source,
    );
    let build = c.build.as_ref().context("no build section")?;
    ensure!(
        build.command == BUILD_COMMAND,
        "build command {:?}",
        build.command
    );
    ensure!(
        build.watch.iter().any(|w| w.starts_with("src/")),
        "watch list misses src/"
    );
    Ok(())
}

#[test]
fn templates_name_declared_variables() -> anyhow::Result<()> {
    let m = manifest()?;
    for (name, v) in &m.variables {
        ensure!(
            name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "variable name {name:?} is not Spin-valid"
        );
        ensure!(
            v.required != v.default.is_some(),
            "variable {name} must have exactly one of default / required"
        );
        ensure!(
            !v.secret,
            "variable {name}: secrets come through `spin up -e`, not variables"
        );
        if let Some(default) = &v.default {
            ensure!(
                default.starts_with("https://"),
                "variable {name} default {default:?} is not an https URL"
            );
        }
    }
    let mut used = BTreeSet::new();
    for (cname, c) in &m.component {
        for host in &c.allowed_outbound_hosts {
            let refs = template_refs(host)?;
            ensure!(
                !refs.is_empty() || host.contains("://"),
                "{cname}: outbound host {host:?} has no scheme"
            );
            for r in refs {
                ensure!(
                    m.variables.contains_key(&r),
                    "{cname}: {host:?} names undeclared variable {r:?}"
                );
                used.insert(r);
            }
        }
        for (k, v) in &c.environment {
            ensure!(
                !v.contains("{{"),
                "{cname}: Spin does not expand templates in environment ({k} = {v:?})"
            );
        }
    }
    for name in ["backend_api_url", "gateway_url", "frontend_api_url"] {
        ensure!(
            used.contains(name),
            "allowed_outbound_hosts does not use {name}"
        );
    }
    let frontend = m
        .variables
        .get("frontend_api_url")
        .context("no frontend_api_url")?;
    ensure!(
        frontend.required,
        "frontend_api_url must be set by the user"
    );
    Ok(())
}

#[test]
fn environment_names_are_ones_the_component_reads() -> anyhow::Result<()> {
    let m = manifest()?;
    let known = names_the_component_reads()?;
    let c = m
        .component
        .get("wacht-admin")
        .context("no component wacht-admin")?;
    for (k, v) in &c.environment {
        ensure!(
            known.contains(k),
            "environment sets {k}, which the component does not read ({known:?})"
        );
        ensure!(
            k != "WACHT_API_KEY",
            "the API key is a secret: pass it with `spin up -e`"
        );
        ensure!(!v.is_empty());
    }
    // The static environment defaults agree with the allowlist's defaults.
    let default_of = |var: &str| m.variables.get(var).and_then(|v| v.default.clone());
    ensure!(c.environment.get("WACHT_BACKEND_API_URL").cloned() == default_of("backend_api_url"));
    ensure!(c.environment.get("WACHT_GATEWAY_URL").cloned() == default_of("gateway_url"));
    // The `-e NAME=` of the usage comment name real variables too.
    let text = manifest_text()?;
    let mut documented = BTreeSet::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('#')) {
        for part in line.split("-e ").skip(1) {
            if let Some((name, _)) = part.split_once('=') {
                documented.insert(name.trim().to_string());
            }
        }
    }
    for name in ["WACHT_API_KEY", "WACHT_PUBLISHABLE_KEY"] {
        ensure!(
            documented.contains(name),
            "the usage comment does not pass {name} with -e"
        );
    }
    for name in &documented {
        ensure!(
            known.contains(name),
            "the usage comment passes {name}, which the component does not read"
        );
    }
    Ok(())
}
