//! WebCrypto as the component's verifier, in real workerd: every algorithm, forgeries, and the
//! Wycheproof JWS/JWK vectors, whose verdicts must match the native policy layer's. A glue that
//! did not await `verifying-key.verify` would read its Promise as `true` and pass forgeries.

use super::*;
use wacht_standin::tokens::forgeries;

const BAD_SIGNATURE: &str = "token signature does not verify";

#[test]
fn webcrypto_verifies_every_algorithm_and_refuses_forgeries() {
    let s = standin();
    let keys = [
        TestKey::es256(11),
        TestKey::es384(12).with_kid("p384"),
        TestKey::rs256().with_kid("rsa"),
    ];
    let doc = wacht_standin::tokens::jwks(&keys.iter().collect::<Vec<_>>()).to_string();
    let w = Workerd::start(
        "webcrypto",
        &[Service::new(
            "inline",
            bindings(&s, &[("WACHT_JWKS", &doc)]),
        )],
    )
    .unwrap();
    let addr = w.addr("inline");
    let mut failures = Vec::new();
    for key in &keys {
        let claims = session_claims(&s.url(), now());
        let good = key.token(&claims);
        let auth = format!("Bearer {good}");
        match get(addr, "/admin/users", &[("authorization", &auth)]) {
            Ok(r) => {
                if let Err(e) = expect_users(&r, &s) {
                    failures.push(format!("{}: valid token: {e:#}", key.alg()));
                }
            }
            Err(e) => failures.push(format!("{}: valid token: {e:#}", key.alg())),
        }
        let forged = forgeries(key, &claims);
        for (how, token) in forged {
            let auth = format!("Bearer {token}");
            let verdict = get(addr, "/admin/users", &[("authorization", &auth)])
                .and_then(|r| expect_error(&r, 401, "invalid_token"));
            match verdict {
                Ok(msg) if msg.ends_with(BAD_SIGNATURE) => {}
                other => failures.push(format!("{} {how}: {other:?}", key.alg())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nworkerd:\n{}",
        failures.join("\n"),
        tail(&w.logs(), 20)
    );
}

#[test]
fn wycheproof_vectors_through_webcrypto() {
    let dir = vectors::dir();
    let s = standin();
    // A new instance per request, so each one fetches the JWKS the stand-in serves now.
    let w = Workerd::start(
        "wycheproof",
        &[Service::new(
            "fresh",
            bindings(&s, &[("WACHT_POOL_SIZE", "0")]),
        )],
    )
    .unwrap();
    let addr = w.addr("fresh");
    let mut verdicts = vectors::Verdicts::default();
    for case in vectors::http_cases(&dir) {
        s.set_jwks_document(Some(case.jwks.clone()));
        let auth = format!("Bearer {}", case.jws);
        let r = get(addr, "/admin/users", &[("authorization", &auth)])
            .unwrap_or_else(|e| panic!("{} tcId {}: {e:#}", case.file, case.id));
        let message = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_default();
        verdicts.record(&case, "WebCrypto", r.status, &message);
    }
    verdicts.assert_clean("WebCrypto in workerd");
}
