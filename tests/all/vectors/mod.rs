//! The Wycheproof JWS and JWK vectors (C2SP/wycheproof, testvectors_v1), kept in
//! `tests/data/wycheproof/` with their license and upstream commit (no registry package has
//! them), or read from `$WYCHEPROOF_DIR` when it is set.
//!
//! Shared by `tests/all/wycheproof.rs` (the policy layer natively), `tests/all/http_verifiers.rs` (both
//! builds in wasmtime) and `tests/all/workers.rs` (WebCrypto in workerd).
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use wacht_admin::jwks::KeySet;
use wacht_admin::jwt::verify_signature;
use wacht_admin::signature::Portable;

pub const JWS_FILE: &str = "json_web_signature_test.json";
pub const JWK_FILE: &str = "json_web_key_test.json";

pub fn dir() -> PathBuf {
    let dir = std::env::var_os("WYCHEPROOF_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/wycheproof"),
        PathBuf::from,
    );
    assert!(
        dir.join(JWS_FILE).is_file() && dir.join(JWK_FILE).is_file(),
        "Wycheproof vectors not found in {}",
        dir.display()
    );
    dir
}

pub fn load(dir: &Path, name: &str) -> Value {
    let path = dir.join(name);
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The group's key(s) as a public JWK Set document: `public` if given, else `private` with the
/// private members removed.
pub fn group_jwks(group: &Value) -> String {
    let doc = group
        .get("public")
        .or_else(|| group.get("private"))
        .expect("group has a key");
    let mut keys = match doc.get("keys") {
        Some(keys) => keys.as_array().expect("keys array").clone(),
        None => vec![doc.clone()],
    };
    for key in &mut keys {
        if let Some(key) = key.as_object_mut() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
                key.remove(private);
            }
        }
    }
    json!({ "keys": keys }).to_string()
}

/// One compact JWS vector of a group whose key set the policy layer accepts.
pub struct Case {
    pub file: &'static str,
    pub id: u64,
    pub result: String,
    pub jws: String,
    /// The group's JWK Set document.
    pub jwks: String,
    /// The native policy layer's signature verdict (jwt-simple).
    pub native: bool,
}

/// Every compact JWS vector of both files whose group key set is usable: the cases a whole
/// component can be asked about over HTTP. (Unusable sets are a configuration error there;
/// `tests/all/wycheproof.rs` covers them. JSON-serialised JWS are no bearer tokens.)
pub fn http_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for file in [JWS_FILE, JWK_FILE] {
        let doc = load(dir, file);
        for group in doc["testGroups"].as_array().expect("testGroups") {
            let jwks = group_jwks(group);
            let Ok(keys) = KeySet::parse(jwks.as_bytes(), &Portable) else {
                continue;
            };
            for test in group["tests"].as_array().expect("tests") {
                let Some(jws) = test["jws"].as_str() else {
                    continue;
                };
                cases.push(Case {
                    file,
                    id: test["tcId"].as_u64().unwrap_or(0),
                    result: test["result"].as_str().expect("result").to_string(),
                    jws: jws.to_string(),
                    jwks: jwks.clone(),
                    native: verify_signature(jws, &keys).is_ok(),
                });
            }
        }
    }
    cases
}

/// What a component answered to the cases.
#[derive(Debug, Default)]
pub struct Verdicts {
    pub compared: usize,
    pub invalid_refused: usize,
    pub signatures_accepted: usize,
    pub failures: Vec<String>,
}

impl Verdicts {
    /// Records one answer. A valid signature over a payload that is no Wacht claim set fails its
    /// claims ("token claims rejected"), so the message tells the signature verdict apart.
    pub fn record(&mut self, case: &Case, who: &str, status: u16, message: &str) {
        let signature_ok = status == 200 || message.contains("token claims rejected");
        self.compared += 1;
        self.signatures_accepted += usize::from(signature_ok);
        if signature_ok != case.native {
            self.failures.push(format!(
                "{} tcId {} ({}): native {}, {who} {status} {message}",
                case.file, case.id, case.result, case.native
            ));
        }
        if case.result == "invalid" {
            if status == 200 {
                self.failures.push(format!(
                    "{} tcId {}: invalid vector accepted",
                    case.file, case.id
                ));
            } else {
                self.invalid_refused += 1;
            }
        }
    }

    /// Everything agreed, and enough of both kinds ran.
    pub fn assert_clean(&self, who: &str) {
        assert!(
            self.failures.is_empty(),
            "{who}: {} disagreements:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
        eprintln!(
            "{who}: {} Wycheproof JWS/JWK vectors agree with the native policy layer; invalid refused {}, signatures accepted {}",
            self.compared, self.invalid_refused, self.signatures_accepted
        );
        assert!(
            self.compared >= 250 && self.invalid_refused >= 240,
            "{who}: too few vectors ran: {self:?}"
        );
        assert!(
            self.signatures_accepted >= 11,
            "{who}: the valid vectors did not run: {self:?}"
        );
    }
}
