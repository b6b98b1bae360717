//! Session tokens (contract §2, §3): the component fetches the JWKS from the frontend API that
//! the publishable key names (the stand-in), verifies the JWT, applies `protect`, then lists users.

use crate::common::*;
use anyhow::ensure;
use serde_json::{Value, json};
use wacht_standin::tokens::{TestKey, b64url, signing_input};

#[tokio::test]
async fn session_token_lists_users_byte_for_byte() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let h = get("/admin/users", &[bearer(&token)], &env_for(&s)).await?;
    expect_users(&h, &s)?;

    let calls = s.requests(Endpoint::Users);
    ensure!(calls.len() == 1, "backend called {} times", calls.len());
    let call = &calls[0];
    ensure!(call.method == "GET" && call.path == "/users");
    ensure!(
        call.query.as_deref() == Some("limit=20"),
        "query {:?}",
        call.query
    );
    let auth = call.header_all("authorization");
    ensure!(
        auth == [format!("Bearer {}", s.api_key()).as_str()],
        "authorization {auth:?}"
    );
    ensure!(s.count(Endpoint::Jwks) >= 1, "the JWKS was not fetched");
    ensure!(
        s.count(Endpoint::AuthzCheck) == 0,
        "a session token went to the gateway"
    );
    ensure!(
        s.count(Endpoint::Other) == 0,
        "unexpected paths: {:?}",
        s.requests(Endpoint::Other)
    );
    // The session token is ours to verify, never forwarded.
    for r in s.all_requests() {
        for (_, v) in &r.headers {
            ensure!(!v.contains(&token), "the token was forwarded to {}", r.path);
        }
    }
    assert_one_log_line(&h, "GET", "/admin/users")?;
    assert_no_secrets(&h, &[&s.api_key(), &token])?;
    Ok(())
}

#[tokio::test]
async fn query_parameters_pass_through() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let h = get(
        "/admin/users?limit=2&offset=1&search=ada%20l&sort_key=username&sort_order=desc",
        &[bearer(&token)],
        &env_for(&s),
    )
    .await?;
    expect_users(&h, &s)?;
    let query = s
        .last_request(Endpoint::Users)
        .and_then(|r| r.query)
        .unwrap_or_default();
    let mut pairs: Vec<&str> = query.split('&').collect();
    ensure!(
        pairs.first() == Some(&"limit=2"),
        "limit must come first: {query}"
    );
    pairs.sort_unstable();
    let search = pairs
        .iter()
        .find(|p| p.starts_with("search="))
        .copied()
        .unwrap_or("");
    ensure!(
        search == "search=ada%20l" || search == "search=ada+l",
        "search re-encoded wrongly: {query}"
    );
    for expected in ["offset=1", "sort_key=username", "sort_order=desc"] {
        ensure!(pairs.contains(&expected), "{expected} missing from {query}");
    }
    ensure!(pairs.len() == 5, "extra parameters in {query}");
    // Edge values accepted.
    for q in [
        "limit=1",
        "limit=100",
        "offset=0",
        "sort_key=created_at&sort_order=asc",
        "sort_key=email",
        "sort_key=phone_number",
    ] {
        let h = get(
            &format!("/admin/users?{q}"),
            &[bearer(&token)],
            &env_for(&s),
        )
        .await?;
        ensure!(h.response.status() == 200, "{q}: {}", h.response.status());
    }
    let long = "a".repeat(256);
    let h = get(
        &format!("/admin/users?search={long}"),
        &[bearer(&token)],
        &env_for(&s),
    )
    .await?;
    ensure!(h.response.status() == 200, "256-char search refused");
    Ok(())
}

#[tokio::test]
async fn bad_queries_are_400_and_never_reach_the_backend() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let long = "a".repeat(257);
    let cases = [
        "limit=0".to_string(),
        "limit=101".to_string(),
        "limit=abc".to_string(),
        "limit=".to_string(),
        "limit=-1".to_string(),
        "offset=-1".to_string(),
        "offset=x".to_string(),
        format!("search={long}"),
        "sort_key=name".to_string(),
        "sort_order=up".to_string(),
        "foo=bar".to_string(),
        "limit=5&page=2".to_string(),
    ];
    for q in &cases {
        let h = get(
            &format!("/admin/users?{q}"),
            &[bearer(&token)],
            &env_for(&s),
        )
        .await?;
        let msg = expect_error(&h, 400, "invalid_query").map_err(|e| e.context(q.clone()))?;
        ensure!(!msg.contains(&long), "the message echoes the input");
        assert_no_secrets(&h, &[&s.api_key(), &token])?;
    }
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called for a bad query"
    );
    Ok(())
}

#[tokio::test]
async fn no_credential_is_401_missing_credentials() -> anyhow::Result<()> {
    let s = standin();
    let h = get("/admin/users", &[], &env_for(&s)).await?;
    expect_error(&h, 401, "missing_credentials")?;
    let h = get(
        "/admin/users",
        &[("authorization".into(), "Basic dXNlcjpwYXNz".into())],
        &env_for(&s),
    )
    .await?;
    ensure!(
        h.response.status() == 401,
        "Basic auth: {}",
        h.response.status()
    );
    ensure!(s.total_count() == 0, "upstream called without a credential");
    assert_one_log_line(&h, "GET", "/admin/users")?;
    Ok(())
}

fn forge(header: &Value, claims: &Value, key: &TestKey) -> String {
    key.sign(header, claims)
}

#[tokio::test]
async fn every_token_failure_is_401_invalid_token() -> anyhow::Result<()> {
    let s = standin();
    let key = s.key().expect("key");
    let good = claims(&s);
    let now = now();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let valid = key.token(&good);
    let (h64, rest) = valid.split_once('.').unwrap();
    let (p64, sig) = rest.split_once('.').unwrap();
    let other_payload = b64url(serde_json::to_vec(&with(&|c| c["sub"] = json!("1")))?.as_slice());
    let rs256 = TestKey::rs256();
    let none_header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let hs_input = signing_input(&json!({"alg": "HS256", "typ": "JWT"}), &good);
    let hs_sig = b64url(&wacht_standin::tokens::hs256(
        serde_json::to_string(&key.public_jwk())?.as_bytes(),
        hs_input.as_bytes(),
    ));
    let huge = with(&|c| c["metadata"] = json!({"pad": "x".repeat(9000)}));

    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            key.token(&with(&|c| {
                c["iat"] = json!(now - 120);
                c["exp"] = json!(now - 60);
            })),
        ),
        (
            "no exp",
            key.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            })),
        ),
        (
            "not yet valid",
            key.token(&with(&|c| c["nbf"] = json!(now + 300))),
        ),
        (
            "string exp",
            key.token(&with(&|c| c["exp"] = json!((now + 30).to_string()))),
        ),
        (
            "wrong issuer",
            key.token(&with(&|c| c["iss"] = json!("https://evil.example.com"))),
        ),
        (
            "issuer with path",
            key.token(&with(&|c| c["iss"] = json!(format!("{}/x", s.url())))),
        ),
        (
            "no sub",
            key.token(&with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            })),
        ),
        ("unknown key", TestKey::es256(9).token(&good)),
        ("RS256 key not in the JWKS", rs256.token(&good)),
        ("tampered payload", format!("{h64}.{other_payload}.{sig}")),
        (
            "bad signature",
            format!("{h64}.{p64}.{}", b64url(&[7u8; 64])),
        ),
        (
            "alg none",
            format!("{none_header}.{p64}.{}", b64url(b"sig")),
        ),
        ("HS256 with the public key", format!("{hs_input}.{hs_sig}")),
        (
            "alg mismatch (ES384 header, P-256 key)",
            forge(&json!({"alg": "ES384", "typ": "JWT"}), &good, &key),
        ),
        (
            "crit header",
            forge(
                &json!({"alg": "ES256", "typ": "JWT", "crit": ["exp"]}),
                &good,
                &key,
            ),
        ),
        (
            "jku header pointing elsewhere",
            TestKey::es256(9).sign(
                &json!({"alg": "ES256", "jku": format!("{}/.well-known/jwks.json", s.url())}),
                &good,
            ),
        ),
        ("over 8 KiB", key.token(&huge)),
        (
            "unknown kid",
            forge(
                &json!({"alg": "ES256", "typ": "JWT", "kid": "nope"}),
                &good,
                &key,
            ),
        ),
    ];
    for (name, token) in &cases {
        let h = get("/admin/users", &[bearer(token)], &env_for(&s)).await?;
        expect_error(&h, 401, "invalid_token").map_err(|e| e.context(*name))?;
        assert_no_secrets(&h, &[token, &s.api_key()]).map_err(|e| e.context(*name))?;
    }
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called for a bad token"
    );
    ensure!(
        s.count(Endpoint::AuthzCheck) == 0,
        "a JWT-shaped token went to the gateway"
    );
    Ok(())
}

#[tokio::test]
async fn permissions_are_any_of_organization_and_workspace() -> anyhow::Result<()> {
    let s = standin();
    let env = env_for(&s);
    let token_with_perms = |org: Value, ws: Value| {
        let mut c = claims(&s);
        c["permissions"] = json!({"organization": org, "workspace": ws});
        token_with(&s, &c)
    };
    // None held → 403; null arrays = empty.
    for (org, ws) in [
        (json!([]), json!([])),
        (json!(null), json!(null)),
        (json!(["user:read"]), json!(["deployment:write"])),
    ] {
        let h = get(
            "/admin/users",
            &[bearer(&token_with_perms(org.clone(), ws.clone()))],
            &env,
        )
        .await?;
        expect_error(&h, 403, "forbidden").map_err(|e| e.context(format!("{org} {ws}")))?;
    }
    let mut c = claims(&s);
    c["permissions"] = json!({});
    let h = get("/admin/users", &[bearer(&token_with(&s, &c))], &env).await?;
    expect_error(&h, 403, "forbidden")?;
    ensure!(
        s.count(Endpoint::Users) == 0,
        "backend called for a forbidden session"
    );

    // A workspace permission suffices.
    let h = get(
        "/admin/users",
        &[bearer(&token_with_perms(
            json!([]),
            json!(["deployment:read"]),
        ))],
        &env,
    )
    .await?;
    expect_users(&h, &s)?;
    // ANY of several required permissions.
    let env2 = with(
        env.clone(),
        "WACHT_REQUIRED_PERMISSIONS",
        "deployment:admin, user:read",
    );
    let h = get(
        "/admin/users",
        &[bearer(&token_with_perms(json!(["user:read"]), json!([])))],
        &env2,
    )
    .await?;
    expect_users(&h, &s)?;
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env2).await?;
    expect_error(&h, 403, "forbidden")?;
    Ok(())
}

#[tokio::test]
async fn older_claim_layout_is_accepted() -> anyhow::Result<()> {
    let s = standin();
    let now = now();
    let old = json!({
        "iss": s.url(), "sub": "1234567890", "session_id": 99, "iat": now, "exp": now + 35,
        "organization": 42, "workspace": 7,
        "organization_permissions": ["deployment:read"], "workspace_permissions": null,
    });
    let h = get(
        "/admin/users",
        &[bearer(&token_with(&s, &old))],
        &env_for(&s),
    )
    .await?;
    expect_users(&h, &s)?;
    // Numeric organization ids compare with the configured string.
    let env = with(env_for(&s), "WACHT_REQUIRED_ORGANIZATION", "42");
    let h = get("/admin/users", &[bearer(&token_with(&s, &old))], &env).await?;
    expect_users(&h, &s)?;
    Ok(())
}

#[tokio::test]
async fn organization_and_workspace_requirements() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s); // organization "42", workspace "7"
    let base = env_for(&s);
    for (name, value, ok) in [
        ("WACHT_REQUIRED_ORGANIZATION", "42", true),
        ("WACHT_REQUIRED_ORGANIZATION", "43", false),
        ("WACHT_REQUIRED_WORKSPACE", "7", true),
        ("WACHT_REQUIRED_WORKSPACE", "8", false),
    ] {
        let h = get(
            "/admin/users",
            &[bearer(&token)],
            &with(base.clone(), name, value),
        )
        .await?;
        if ok {
            expect_users(&h, &s)?;
        } else {
            expect_error(&h, 403, "forbidden").map_err(|e| e.context(format!("{name}={value}")))?;
        }
    }
    // A token without an organization fails an organization requirement.
    let mut c = claims(&s);
    c.as_object_mut().unwrap().remove("organization");
    let env = with(base, "WACHT_REQUIRED_ORGANIZATION", "42");
    let h = get("/admin/users", &[bearer(&token_with(&s, &c))], &env).await?;
    expect_error(&h, 403, "forbidden")?;
    Ok(())
}

#[tokio::test]
async fn keys_rotate_and_kid_selects() -> anyhow::Result<()> {
    let s = standin();
    s.set_keys(vec![
        TestKey::es256(2).with_kid("old"),
        TestKey::es256(3).with_kid("new"),
    ]);
    let c = claims(&s);
    let h = get(
        "/admin/users",
        &[bearer(&TestKey::es256(3).with_kid("new").token(&c))],
        &env_for(&s),
    )
    .await?;
    expect_users(&h, &s)?;
    // No kid: any key of the matching type may verify.
    let h = get(
        "/admin/users",
        &[bearer(&TestKey::es256(3).token(&c))],
        &env_for(&s),
    )
    .await?;
    expect_users(&h, &s)?;
    // A kid naming the other key: refused.
    let h = get(
        "/admin/users",
        &[bearer(&TestKey::es256(3).with_kid("old").token(&c))],
        &env_for(&s),
    )
    .await?;
    expect_error(&h, 401, "invalid_token")?;
    // ES384 and RS256 keys in the JWKS verify their own tokens.
    s.set_keys(vec![TestKey::es384(4), TestKey::rs256()]);
    for key in [TestKey::es384(4), TestKey::rs256()] {
        let h = get("/admin/users", &[bearer(&key.token(&c))], &env_for(&s)).await?;
        expect_users(&h, &s).map_err(|e| e.context(key.alg()))?;
    }
    Ok(())
}

#[tokio::test]
async fn inline_jwks_needs_no_fetch() -> anyhow::Result<()> {
    let s = standin();
    let key = s.key().expect("key");
    let jwks = wacht_standin::tokens::jwks(&[&key]).to_string();
    let env = with(env_for(&s), "WACHT_JWKS", &jwks);
    let h = get("/admin/users", &[bearer(&session_token(&s))], &env).await?;
    expect_users(&h, &s)?;
    ensure!(
        s.count(Endpoint::Jwks) == 0,
        "the JWKS was fetched despite WACHT_JWKS"
    );
    Ok(())
}

#[tokio::test]
async fn jwks_failures_never_allow() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let env = with(env_for(&s), "WACHT_UPSTREAM_TIMEOUT_MS", "300");
    for (fault, allowed) in [
        (Fault::Status(500), &[502u16, 503][..]),
        (Fault::Status(404), &[502, 503]),
        (Fault::BadJson, &[502]),
        (Fault::Close, &[502, 503]),
        (Fault::Hang, &[504]),
    ] {
        s.set_fault(Endpoint::Jwks, fault);
        let h = get("/admin/users", &[bearer(&token)], &env).await?;
        let (status, code, _) = json_error(&h.response)?;
        ensure!(allowed.contains(&status), "{fault:?}: {status} {code}");
        ensure!(code.starts_with("upstream_"), "{fault:?}: code {code}");
        assert_no_secrets(&h, &[&token, &s.api_key()])?;
    }
    // An empty key set is not an allow either.
    s.set_fault(Endpoint::Jwks, Fault::Normal);
    s.set_keys(vec![]);
    let h = get("/admin/users", &[bearer(&token)], &env).await?;
    ensure!(
        h.response.status() != 200 && h.response.status().as_u16() >= 401,
        "empty JWKS: {}",
        h.response.status()
    );
    // Unreachable frontend API (the token's issuer is that API, so only the fetch can fail).
    s.set_keys(vec![TestKey::es256(1)]);
    let frontend = closed_port_url();
    let token = token_with(&s, &wacht_standin::tokens::session_claims(&frontend, now()));
    let pk = wacht_standin::publishable_key_for(&frontend);
    let h = get(
        "/admin/users",
        &[bearer(&token)],
        &with(env.clone(), "WACHT_PUBLISHABLE_KEY", &pk),
    )
    .await?;
    let (status, code, _) = json_error(&h.response)?;
    ensure!(
        status == 503 || status == 502,
        "unreachable JWKS: {status} {code}"
    );
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called without a verified session"
    );
    Ok(())
}

#[tokio::test]
async fn clock_skew_is_five_seconds_and_configurable() -> anyhow::Result<()> {
    let s = standin();
    let now = now();
    let expired_by = |secs: u64| {
        let mut c = claims(&s);
        c["iat"] = json!(now - 35 - secs);
        c["exp"] = json!(now - secs);
        token_with(&s, &c)
    };
    let env = env_for(&s);
    // Within the default 5 s (with a second of margin for a slow run): accepted.
    let h = get("/admin/users", &[bearer(&expired_by(2))], &env).await?;
    expect_users(&h, &s)?;
    let h = get("/admin/users", &[bearer(&expired_by(30))], &env).await?;
    expect_error(&h, 401, "invalid_token")?;
    // nbf slightly ahead of our clock: accepted within the skew.
    let mut c = claims(&s);
    c["nbf"] = json!(now + 2);
    let h = get("/admin/users", &[bearer(&token_with(&s, &c))], &env).await?;
    expect_users(&h, &s)?;
    // No skew: the token 2 s past exp is refused; a wide skew accepts one 30 s past.
    let h = get(
        "/admin/users",
        &[bearer(&expired_by(2))],
        &with(env.clone(), "WACHT_CLOCK_SKEW_SECS", "0"),
    )
    .await?;
    expect_error(&h, 401, "invalid_token")?;
    let h = get(
        "/admin/users",
        &[bearer(&expired_by(30))],
        &with(env, "WACHT_CLOCK_SKEW_SECS", "60"),
    )
    .await?;
    expect_users(&h, &s)?;
    Ok(())
}

/// The component counts the JWKS answer's `Age` from any upstream (here the stand-in as a CDN):
/// an answer an hour old, or with an `Age` that is no number, is not used.
#[tokio::test]
async fn a_jwks_answer_too_old_by_its_age_is_refused() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for age in ["3600", "1e3"] {
        s.set_jwks_age(Some(age));
        let h = get("/admin/users", &[bearer(&token)], &env_for(&s)).await?;
        let message = expect_error(&h, 502, "upstream_error")?;
        ensure!(message.contains("Age"), "Age {age}: {message}");
        ensure!(
            s.count(Endpoint::Users) == 0,
            "Age {age}: the backend was called"
        );
    }
    s.set_jwks_age(Some("3599"));
    expect_users(
        &get("/admin/users", &[bearer(&token)], &env_for(&s)).await?,
        &s,
    )?;
    Ok(())
}
