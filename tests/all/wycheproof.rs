// Wycheproof vectors against the JWT core (C2SP/wycheproof, testvectors_v1): the JWS and JWK
// files from `tests/data/wycheproof/` (`tests/all/vectors/mod.rs`), the ECDSA P1363 files from the
// `wycheproof` crate. Nothing is skipped: a clone anywhere has them.
//
// - JWS / JWK files: every `invalid` vector must be rejected; every `valid` one whose algorithm
//   this core supports (ES256, ES384, RS256) and whose key set it can use must be accepted; the
//   other valid ones (HS*, PS*, RS384/512, ES512) are counted as rejected by policy.
// - ECDSA P1363 files: `verify_raw`, the function the JWS layer uses, on raw r‖s signatures:
//   every `invalid` rejected, every `valid` accepted.
// - Each file runs once per native verifier: `Portable` (jwt-simple, what the portable component
//   carries) and `Ring` (what the native host provides). `tests/all/http_verifiers.rs` runs the JWS
//   vectors through both builds of the component in wasmtime, `tests/all/workers.rs` through
//   WebCrypto in workerd.
//
// Run with `--nocapture` to see the counts.

use crate::vectors;

use std::collections::BTreeMap;
use std::path::Path;
use wycheproof::ecdsa::{TestName, TestSet};
use wycheproof::{HashFunction, TestResult};

use serde_json::{Value, json};
use wacht_admin::jwks::{Alg, KeySet};
use wacht_admin::jwt::{verify_raw, verify_signature};
use wacht_admin::signature::{Portable, Verifier};
use wacht_admin_host::verifier::Ring;

const VERIFIERS: [(&str, &dyn Verifier); 2] = [("jwt-simple", &Portable), ("ring", &Ring)];

/// The group's key set, parsed: unusable sets (HMAC secrets, P-521, …) are `Err`.
fn group_keyset(group: &Value, verifier: &dyn Verifier) -> Result<KeySet, String> {
    KeySet::parse(vectors::group_jwks(group).as_bytes(), verifier).map_err(|e| format!("{e:?}"))
}

/// The header `alg` of a compact JWS, if it has a readable one.
fn header_alg(jws: &str) -> Option<String> {
    use base64::Engine as _;
    let header = jws.split('.').next()?;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Value = serde_json::from_slice(&header).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

#[derive(Default, Debug)]
struct Counts {
    valid_accepted: usize,
    valid_rejected_by_policy: usize,
    invalid_rejected: usize,
    acceptable: usize,
    reasons: BTreeMap<String, usize>,
    failures: Vec<String>,
}

fn run_jws_file(dir: &Path, name: &str, verifier: &dyn Verifier) -> Counts {
    let file = vectors::load(dir, name);
    let mut counts = Counts::default();
    let mut seen = 0;
    for group in file["testGroups"].as_array().expect("testGroups") {
        let keyset = group_keyset(group, verifier);
        for test in group["tests"].as_array().expect("tests") {
            seen += 1;
            let id = test["tcId"].as_u64().unwrap_or(0);
            let comment = test["comment"].as_str().unwrap_or("");
            let result = test["result"].as_str().expect("result");
            // JSON-serialised JWS objects are not compact tokens: never accepted here.
            let (outcome, alg) = match (&keyset, test["jws"].as_str()) {
                (Err(e), _) => (Err(format!("keyset: {e}")), None),
                (Ok(_), None) => (Err("not a compact JWS".to_owned()), None),
                (Ok(keys), Some(jws)) => (
                    verify_signature(jws, keys)
                        .map(|_| ())
                        .map_err(|e| format!("{e:?}")),
                    header_alg(jws),
                ),
            };
            let supported = keyset.is_ok()
                && alg.as_deref().is_some_and(|a| {
                    [Alg::Es256, Alg::Es384, Alg::Rs256]
                        .iter()
                        .any(|s| s.name() == a)
                });
            match (result, outcome) {
                ("invalid", Ok(())) => counts.failures.push(format!(
                    "{name} tcId {id} ({comment}): invalid vector accepted"
                )),
                ("invalid", Err(reason)) => {
                    counts.invalid_rejected += 1;
                    *counts.reasons.entry(reason).or_default() += 1;
                }
                ("valid", Ok(())) => counts.valid_accepted += 1,
                ("valid", Err(reason)) if supported => counts.failures.push(format!(
                    "{name} tcId {id} ({comment}): valid {alg:?} vector rejected: {reason}"
                )),
                ("valid", Err(_)) => counts.valid_rejected_by_policy += 1,
                ("acceptable", _) => counts.acceptable += 1,
                (other, _) => panic!("{name} tcId {id}: unknown result {other}"),
            }
        }
    }
    assert_eq!(
        Some(seen),
        file["numberOfTests"].as_u64().map(|n| n as usize),
        "{name}: vector count"
    );
    eprintln!(
        "{name}: {seen} vectors: valid accepted {}, valid rejected by policy {}, invalid rejected {}, acceptable {}",
        counts.valid_accepted,
        counts.valid_rejected_by_policy,
        counts.invalid_rejected,
        counts.acceptable
    );
    for (reason, n) in &counts.reasons {
        eprintln!("    invalid rejected as {reason}: {n}");
    }
    counts
}

fn assert_clean(name: &str, counts: &Counts) {
    assert!(
        counts.failures.is_empty(),
        "{name}: {} failures:\n{}",
        counts.failures.len(),
        counts.failures.join("\n")
    );
}

#[test]
fn json_web_signature_vectors() {
    let dir = vectors::dir();
    let name = "json_web_signature_test.json";
    for (label, verifier) in VERIFIERS {
        eprintln!("{label}:");
        let counts = run_jws_file(&dir, name, verifier);
        assert_clean(name, &counts);
        // ES256 and RS256 groups hold supported valid vectors: rejecting everything must fail.
        assert!(counts.valid_accepted >= 10, "{label}: {counts:?}");
        assert!(counts.invalid_rejected >= 300, "{label}: {counts:?}");
    }
}

#[test]
fn json_web_key_vectors() {
    let dir = vectors::dir();
    let name = "json_web_key_test.json";
    for (label, verifier) in VERIFIERS {
        eprintln!("{label}:");
        let counts = run_jws_file(&dir, name, verifier);
        assert_clean(name, &counts);
        assert!(counts.valid_accepted >= 1, "{label}: {counts:?}");
    }
}

/// The raw r‖s vectors (the JWS ES256/ES384 signature format), from the `wycheproof` crate.
fn run_p1363(name: TestName, crv: &str, field: usize, alg: Alg) {
    let set = TestSet::load(name).unwrap_or_else(|e| panic!("{name:?}: {e:?}"));
    for (label, verifier) in VERIFIERS {
        eprintln!("{label}:");
        run_p1363_with(&set, name, crv, field, alg, verifier);
    }
}

fn run_p1363_with(
    set: &TestSet,
    name: TestName,
    crv: &str,
    field: usize,
    alg: Alg,
    verifier: &dyn Verifier,
) {
    let hash = match alg {
        Alg::Es384 => HashFunction::Sha2_384,
        _ => HashFunction::Sha2_256,
    };
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let (mut valid, mut invalid, mut acceptable, mut seen) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for group in &set.test_groups {
        assert_eq!(group.hash, hash, "{name:?}: unexpected hash");
        let point: &[u8] = &group.key.key;
        assert_eq!(point.len(), 1 + 2 * field);
        let jwk = json!({"kty": "EC", "crv": crv, "x": b64(&point[1..=field]), "y": b64(&point[1 + field..])});
        let doc = serde_json::to_vec(&json!({ "keys": [jwk] })).unwrap();
        let keys =
            KeySet::parse(&doc, verifier).unwrap_or_else(|e| panic!("{name:?}: group key: {e:?}"));
        let key = &keys.keys()[0];
        assert_eq!(key.alg(), alg);
        for test in &group.tests {
            seen += 1;
            let ok = verify_raw(key, &test.msg, &test.sig).is_ok();
            match (test.result, ok) {
                (TestResult::Valid, true) => valid += 1,
                (TestResult::Invalid, false) => invalid += 1,
                (TestResult::Acceptable, _) => acceptable += 1,
                (result, _) => failures.push(format!(
                    "{name:?} tcId {} ({}): {result:?} vector {}",
                    test.tc_id,
                    test.comment,
                    if ok { "accepted" } else { "rejected" }
                )),
            }
        }
    }
    assert_eq!(seen, set.number_of_tests);
    eprintln!(
        "{name:?}: {seen} vectors: valid accepted {valid}, invalid rejected {invalid}, acceptable {acceptable}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(valid > 100 && invalid > 50, "{name:?}: too few vectors ran");
}

#[test]
fn ecdsa_p256_p1363_vectors() {
    run_p1363(TestName::EcdsaSecp256r1Sha256P1363, "P-256", 32, Alg::Es256);
}

#[test]
fn ecdsa_p384_p1363_vectors() {
    run_p1363(TestName::EcdsaSecp384r1Sha384P1363, "P-384", 48, Alg::Es384);
}
