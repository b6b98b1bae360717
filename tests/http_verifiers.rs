//! Both builds of the component in wasmtime, each with its own verifier: the portable one
//! (jwt-simple inside the component) and the host-verifier one (ring in this host, through
//! `wacht:admin/verifier`). The same tokens and the Wycheproof JWS/JWK vectors must get the same
//! verdicts from both, and the verdicts the native policy layer gives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, ensure};
use common::{Build, bearer, component_of, env_for, json_error, request, standin, with};
use serde_json::{Value, json};
use wacht_admin::jwks::KeySet;
use wacht_admin::jwt::verify_signature;
use wacht_admin::signature::Portable;
use wacht_admin_host::Handled;
use wacht_standin::StandIn;
use wacht_standin::tokens::{TestKey, b64url, jwks, session_claims};

const BUILDS: [Build; 2] = [Build::Portable, Build::HostVerifier];
const BAD_SIGNATURE: &str = "token signature does not verify";

async fn get_with(build: Build, token: &str, env: &[(String, String)]) -> anyhow::Result<Handled> {
    component_of(build)?
        .handle(request("GET", "/admin/users", &[bearer(token)]), env)
        .await
}

fn claims(s: &StandIn) -> Value {
    session_claims(&s.url(), common::now())
}

/// The token with its payload replaced, the signature kept.
fn tampered(token: &str, payload: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        b64url(payload.to_string().as_bytes()),
        parts[2]
    )
}

/// The token with one bit of its signature flipped.
fn flip_signature_bit(token: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = b64.decode(sig).unwrap();
    sig[10] ^= 0x01;
    format!("{input}.{}", b64.encode(sig))
}

#[tokio::test]
async fn every_algorithm_verifies_and_forgeries_fail_in_both_builds() -> anyhow::Result<()> {
    let s = standin();
    let keys = [
        TestKey::es256(11),
        TestKey::es384(12).with_kid("p384"),
        TestKey::rs256().with_kid("rsa"),
    ];
    let doc = serde_json::to_string(&jwks(&keys.iter().collect::<Vec<_>>()))?;
    let env = with(env_for(&s), "WACHT_JWKS", &doc);
    for build in BUILDS {
        for key in &keys {
            let what = format!("{build:?} {}", key.alg());
            let good = key.token(&claims(&s));
            let h = get_with(build, &good, &env).await?;
            common::expect_users(&h, &s).with_context(|| what.clone())?;

            let mut upgraded = claims(&s);
            upgraded["permissions"] = json!({"organization": ["deployment:read", "admin"]});
            upgraded["sub"] = json!("1");
            let mut forged = vec![
                ("tampered payload", tampered(&good, &upgraded)),
                ("signature with a flipped bit", flip_signature_bit(&good)),
            ];
            // Another key of the same type (and kid): there is one committed RSA test key.
            let rogue = match key.alg() {
                "ES256" => Some(TestKey::es256(99)),
                "ES384" => Some(TestKey::es384(99)),
                _ => None,
            };
            if let Some(rogue) = rogue {
                let rogue = match key.kid() {
                    Some(kid) => rogue.with_kid(kid),
                    None => rogue,
                };
                forged.push(("foreign key", rogue.token(&claims(&s))));
            }
            for (how, token) in forged {
                let h = get_with(build, &token, &env).await?;
                let msg = common::expect_error(&h, 401, "invalid_token")
                    .with_context(|| format!("{what}: {how}"))?;
                ensure!(msg.ends_with(BAD_SIGNATURE), "{what}: {how}: {msg}");
            }
        }
    }
    Ok(())
}

fn vectors_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("WYCHEPROOF_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/wycheproof"),
    };
    if dir.join("json_web_signature_test.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "Wycheproof vectors not found at {} (set WYCHEPROOF_DIR); CI must not skip them",
        dir.display()
    );
    eprintln!("SKIPPED: Wycheproof vectors not found at {}", dir.display());
    None
}

/// A group's public JWK Set document (private members removed).
fn group_jwks(group: &Value) -> String {
    let doc = group
        .get("public")
        .or_else(|| group.get("private"))
        .expect("group has a key");
    let mut keys = match doc.get("keys") {
        Some(keys) => keys.as_array().expect("keys").clone(),
        None => vec![doc.clone()],
    };
    for key in &mut keys {
        if let Some(key) = key.as_object_mut() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
                key.remove(private);
            }
        }
    }
    json!({ "keys": keys }).to_string()
}

/// Runs a Wycheproof JWS/JWK file through `build` over HTTP, each group's key set as
/// `WACHT_JWKS`, and compares every verdict with the native policy layer's.
/// Returns (verdicts compared, invalid vectors refused, signatures accepted).
async fn run_file(build: Build, dir: &Path, name: &str) -> anyhow::Result<(usize, usize, usize)> {
    let file: Value = serde_json::from_slice(&std::fs::read(dir.join(name))?)?;
    let s = standin();
    let (mut compared, mut invalid_refused, mut accepted) = (0, 0, 0);
    let mut failures = Vec::new();
    for group in file["testGroups"].as_array().expect("testGroups") {
        let doc = group_jwks(group);
        // Sets the policy layer refuses outright (HMAC secrets, P-521, …) are a configuration
        // error here; tests/wycheproof.rs covers them.
        let Ok(native_keys) = KeySet::parse(doc.as_bytes(), &Portable) else {
            continue;
        };
        let env = with(env_for(&s), "WACHT_JWKS", &doc);
        for test in group["tests"].as_array().expect("tests") {
            let id = test["tcId"].as_u64().unwrap_or(0);
            let result = test["result"].as_str().expect("result");
            // JSON-serialised JWS are no bearer tokens: the gateway refuses them, not us.
            let Some(jws) = test["jws"].as_str() else {
                continue;
            };
            let h = get_with(build, jws, &env).await?;
            let status = h.response.status().as_u16();
            let message = json_error(&h.response)
                .map(|(_, _, m)| m)
                .unwrap_or_default();
            let native = verify_signature(jws, &native_keys).is_ok();
            // A valid signature over a payload that is no Wacht claim set fails its claims.
            let signature_ok = status == 200 || message.contains("token claims rejected");
            accepted += usize::from(signature_ok);
            if signature_ok != native {
                failures.push(format!(
                    "{name} tcId {id} ({result}): native {native}, {build:?} {status} {message}"
                ));
            }
            if result == "invalid" {
                if status == 200 {
                    failures.push(format!("{name} tcId {id}: invalid vector accepted"));
                } else {
                    invalid_refused += 1;
                }
            }
            compared += 1;
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n"));
    Ok((compared, invalid_refused, accepted))
}

#[tokio::test]
async fn wycheproof_jws_and_jwk_vectors_through_both_builds() -> anyhow::Result<()> {
    let Some(dir) = vectors_dir() else {
        return Ok(());
    };
    for build in BUILDS {
        let (jws, jws_invalid, jws_ok) =
            run_file(build, &dir, "json_web_signature_test.json").await?;
        let (jwk, jwk_invalid, jwk_ok) = run_file(build, &dir, "json_web_key_test.json").await?;
        eprintln!(
            "{build:?}: {jws} JWS and {jwk} JWK vectors agree with the native policy layer; invalid refused: {jws_invalid} + {jwk_invalid}; signatures accepted: {jws_ok} + {jwk_ok}"
        );
        // Usable key sets only (the JWK file mostly tests key sets the policy refuses).
        ensure!(
            jws >= 250 && jws_invalid >= 240,
            "{build:?}: too few JWS vectors ran"
        );
        ensure!(
            jws_ok >= 10 && jwk >= 2 && jwk_ok >= 1,
            "{build:?}: the valid vectors did not run"
        );
    }
    Ok(())
}
