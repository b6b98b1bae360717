//! The contract in `openapi.yaml` against real answers of the component in wasmtime: every status
//! the component answers with, its body against the documented schema (JSON Schema 2020-12) and
//! its documented headers against theirs. A change to the code that the document does not follow,
//! or the other way round, fails here.

use crate::common::*;
use anyhow::{Context as _, anyhow, ensure};
use serde_json::{Value, json};
use wacht_standin::{Credential, Endpoint, Fault};

fn document() -> Value {
    let text = std::fs::read_to_string(repo_root().join("openapi.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// `$ref` → the referenced object, within the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

/// Validates `instance` against `schema`, resolving `#/…` references in the whole document.
fn validate(doc: &Value, schema: &Value, instance: &Value) -> anyhow::Result<()> {
    let mut root = doc.clone();
    let object = root.as_object_mut().context("document is an object")?;
    object.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    object.insert("allOf".into(), json!([schema]));
    let validator = jsonschema::validator_for(&root).map_err(|e| anyhow!("schema: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    ensure!(
        errors.is_empty(),
        "{instance} does not validate: {errors:?}"
    );
    Ok(())
}

/// Checks one answer against the documented response for `method` + status.
fn check(doc: &Value, method: &str, h: &wacht_admin_host::Handled) -> anyhow::Result<()> {
    let header = |name: &str| header(&h.response, name).map(str::to_string);
    check_answer(
        doc,
        method,
        h.response.status().as_u16(),
        &header,
        h.response.body(),
    )
}

/// One answer from any host (the component, the native host, the Worker) against the document.
pub fn check_answer(
    doc: &Value,
    method: &str,
    status: u16,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> anyhow::Result<()> {
    let status = status.to_string();
    let operation = &doc["paths"]["/admin/users"][method.to_ascii_lowercase()];
    let response = match operation["responses"].get(&status) {
        Some(r) => resolve(doc, r),
        // Any other method: the documented 405.
        None if status == "405" => &doc["components"]["responses"]["MethodNotAllowed"],
        None => return Err(anyhow!("{method} {status} is not documented")),
    };
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, spec) in headers {
            let spec = resolve(doc, spec);
            let Some(value) = header(name) else {
                ensure!(
                    spec["required"] != true,
                    "{method} {status}: no {name} header"
                );
                continue;
            };
            validate(doc, &spec["schema"], &json!(value))
                .with_context(|| format!("{method} {status}: header {name}"))?;
        }
    }
    match response.pointer("/content/application~1json/schema") {
        Some(schema) => {
            let body: Value = serde_json::from_slice(body)
                .with_context(|| format!("{method} {status}: body is not JSON"))?;
            validate(doc, schema, &body).with_context(|| format!("{method} {status}"))?;
            // The open `anyOf` accepts any string: our own codes must be the listed ones.
            if let Some(code) = body.get("error") {
                let listed = schema
                    .pointer("/properties/error/anyOf/0/enum")
                    .and_then(Value::as_array)
                    .with_context(|| format!("{method} {status}: no enum of codes"))?;
                ensure!(
                    listed.contains(code),
                    "{method} {status}: {code} is not among {listed:?}"
                );
            }
            Ok(())
        }
        None => {
            ensure!(body.is_empty(), "{method} {status}: undocumented body");
            Ok(())
        }
    }
}

/// The document, parsed once per call site.
pub fn openapi() -> Value {
    document()
}

#[tokio::test]
async fn every_answer_matches_openapi_yaml() -> anyhow::Result<()> {
    let doc = document();
    ensure!(doc["openapi"] == "3.1.0");
    let s = standin();
    let env = env_for(&s);
    let api_key = "wk_live_".to_string() + &wacht_standin::tokens::b64url(&[7u8; 32]);
    let unknown_key = "wk_live_".to_string() + &wacht_standin::tokens::b64url(&[8u8; 32]);
    let limited = "wk_live_".to_string() + &wacht_standin::tokens::b64url(&[9u8; 32]);
    s.add_credential(&api_key, Credential::api_key(&["user:read"]));
    s.add_credential(
        &limited,
        Credential::api_key(&["user:read"]).rate_limited(2000),
    );
    let token = session_token(&s);
    let mut no_permission = claims(&s);
    no_permission["permissions"] = json!({"organization": ["billing:read"], "workspace": null});
    let forbidden = token_with(&s, &no_permission);
    let key = |k: &str| vec![("x-api-key".to_string(), k.to_string())];

    let mut seen = std::collections::BTreeSet::new();
    let mut run = async |method: &str, target: &str, headers: Headers, env: &[(String, String)]| {
        let h = send(method, target, &headers, env).await?;
        check(&doc, method, &h)?;
        seen.insert(h.response.status().as_u16());
        anyhow::Ok(h)
    };
    run("GET", "/admin/users", vec![bearer(&token)], &env).await?;
    run(
        "GET",
        "/admin/users?limit=2&sort_key=email",
        key(&api_key),
        &env,
    )
    .await?;
    run("GET", "/admin/users?limit=0", vec![], &env).await?;
    run("GET", "/admin/users", vec![], &env).await?;
    run(
        "GET",
        "/admin/users",
        vec![bearer("eyJhbGciOiJFUzI1NiJ9.e30.c2ln")],
        &env,
    )
    .await?;
    run("GET", "/admin/users", key(&unknown_key), &env).await?;
    run("GET", "/admin/users", vec![bearer(&forbidden)], &env).await?;
    run("GET", "/admin/users", key(&limited), &env).await?;
    run(
        "GET",
        "/admin/users",
        key(&api_key),
        &without(env.clone(), "WACHT_API_KEY"),
    )
    .await?;
    run("POST", "/admin/users", vec![bearer(&token)], &env).await?;
    for (fault, want) in [
        (Fault::Status(500), 502),
        (Fault::Status(401), 502),
        (Fault::RateLimited, 503),
        (Fault::Hang, 504),
    ] {
        s.set_fault(Endpoint::Users, fault);
        let env = with(env.clone(), "WACHT_UPSTREAM_TIMEOUT_MS", "300");
        let h = run("GET", "/admin/users", key(&api_key), &env).await?;
        ensure!(
            h.response.status() == want,
            "{fault:?}: {}",
            h.response.status()
        );
    }
    s.set_fault(Endpoint::Users, Fault::Normal);
    let unreachable = with(env.clone(), "WACHT_BACKEND_API_URL", &closed_port_url());
    run("GET", "/admin/users", key(&api_key), &unreachable).await?;
    let cors = with(
        env.clone(),
        "WACHT_CORS_ORIGINS",
        "https://admin.example.com",
    );
    let preflight = |origin: &str| {
        vec![
            ("origin".to_string(), origin.to_string()),
            (
                "access-control-request-method".to_string(),
                "GET".to_string(),
            ),
        ]
    };
    run(
        "OPTIONS",
        "/admin/users",
        preflight("https://admin.example.com"),
        &cors,
    )
    .await?;
    run(
        "OPTIONS",
        "/admin/users",
        preflight("https://evil.example.com"),
        &cors,
    )
    .await?;
    let want = [200, 204, 400, 401, 403, 405, 429, 500, 502, 503, 504];
    ensure!(
        want.iter().all(|s| seen.contains(s)),
        "statuses seen: {seen:?}"
    );
    Ok(())
}

#[tokio::test]
async fn the_document_lists_exactly_the_error_codes_the_component_has() -> anyhow::Result<()> {
    let doc = document();
    let documented: Vec<&str> = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .context("ErrorCode enum")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // The README's list is the other public copy: both must name every code.
    let readme = std::fs::read_to_string(repo_root().join("README.md"))?;
    for code in &documented {
        ensure!(
            readme.contains(&format!("`{code}`")),
            "README misses {code}"
        );
    }
    // Every code comes from the component, the native host or the Workers shim.
    let mut source = String::new();
    for file in [
        "src/error.rs",
        "src/cors.rs",
        "host/src/server.rs",
        "worker/src/index.js",
    ] {
        source += &std::fs::read_to_string(repo_root().join(file))?;
    }
    for code in &documented {
        ensure!(
            source.contains(&format!("\"{code}\"")),
            "no {code} in the source"
        );
    }
    // And every one is asserted on a real answer somewhere in the tests.
    let mut tests = String::new();
    for dir in ["tests/all", "tests/all/workers", "src"] {
        for entry in std::fs::read_dir(repo_root().join(dir))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "rs") {
                tests += &std::fs::read_to_string(&path)?;
            }
        }
    }
    for code in &documented {
        ensure!(
            tests.contains(&format!(", \"{code}\")"))
                || tests.contains(&format!(", \"{code}\"."))
                || tests.contains(&format!("(\"{code}\""))
                || tests.contains(&format!("\"{code}\".into()")),
            "no test expects {code} on an answer"
        );
    }
    Ok(())
}

/// openapi-python-client (`make pytools` installs it) keeps every documented response and reads
/// an error code added later as a string: `scripts/openapi-client-check.py`.
#[test]
fn a_generated_python_client_keeps_every_response() -> anyhow::Result<()> {
    let python = repo_root().join("target/pytools/bin/python");
    ensure!(
        python.is_file(),
        "{} is missing: run `make pytools` (make test does)",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("scripts/openapi-client-check.py"))
        .output()
        .context("running scripts/openapi-client-check.py")?;
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "{report}");
    ensure!(report.contains("keeps all"), "{report}");
    Ok(())
}
