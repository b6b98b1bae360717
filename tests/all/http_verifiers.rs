//! Both builds of the component in wasmtime, each with its own verifier: the portable one
//! (jwt-simple inside the component) and the host-verifier one (ring in this host, through
//! `wacht:admin/verifier`). The same tokens and the Wycheproof JWS/JWK vectors must get the same
//! verdicts from both, and the verdicts the native policy layer gives.
use crate::common;
use crate::vectors;

use anyhow::{Context as _, ensure};
use common::{Build, bearer, component_of, env_for, json_error, request, standin, with};
use serde_json::Value;
use wacht_admin_host::Handled;
use wacht_standin::StandIn;
use wacht_standin::tokens::{TestKey, forgeries, jwks, session_claims};

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

            let forged = forgeries(key, &claims(&s));
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

#[tokio::test]
async fn wycheproof_jws_and_jwk_vectors_through_both_builds() -> anyhow::Result<()> {
    let dir = vectors::dir();
    let cases = vectors::http_cases(&dir);
    let s = standin();
    for build in BUILDS {
        let mut verdicts = vectors::Verdicts::default();
        for case in &cases {
            let env = with(env_for(&s), "WACHT_JWKS", &case.jwks);
            let h = get_with(build, &case.jws, &env).await?;
            let message = json_error(&h.response)
                .map(|(_, _, m)| m)
                .unwrap_or_default();
            verdicts.record(
                case,
                &format!("{build:?}"),
                h.response.status().as_u16(),
                &message,
            );
        }
        verdicts.assert_clean(&format!("{build:?}"));
    }
    Ok(())
}
