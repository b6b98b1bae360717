//! Machine credentials (contract §4): API keys and OAuth access tokens are checked through the
//! gateway's `POST /v1/authz/check`; any failure there is a deny, never an allow.

use crate::common::*;
use anyhow::{Context as _, ensure};
use serde_json::{Value, json};
use wacht_standin::{FOREIGN_DEPLOYMENT_ID, StandIn, random_secret};

/// A stand-in that knows one API key and one OAuth token holding `user:read`.
fn machine_standin() -> (StandIn, String, String) {
    let s = standin();
    let api_key = random_secret("wk_live");
    let oat = random_secret("oat");
    s.add_credential(api_key.clone(), Credential::api_key(&["user:read"]));
    s.add_credential(oat.clone(), Credential::oauth_access_token(&["user:read"]));
    (s, api_key, oat)
}

fn h(name: &str, value: &str) -> (String, String) {
    (name.to_string(), value.to_string())
}

fn gateway_body(s: &StandIn) -> anyhow::Result<Value> {
    s.last_request(Endpoint::AuthzCheck)
        .and_then(|r| r.json)
        .context("the gateway was not called with JSON")
}

#[tokio::test]
async fn x_api_key_goes_to_the_gateway_as_api_key() -> anyhow::Result<()> {
    let (s, key, _) = machine_standin();
    let resp = get("/admin/users", &[h("x-api-key", &key)], &env_for(&s)).await?;
    expect_users(&resp, &s)?;
    let call = s
        .last_request(Endpoint::AuthzCheck)
        .context("gateway not called")?;
    ensure!(call.method == "POST");
    let ct = call.header("content-type").unwrap_or("");
    ensure!(ct.starts_with("application/json"), "content-type {ct:?}");
    ensure!(
        call.header("authorization").is_none(),
        "a credential of ours went to the gateway"
    );
    ensure!(
        !call.headers.iter().any(|(_, v)| v.contains(&s.api_key())),
        "the backend API key went to the gateway"
    );
    let body = gateway_body(&s)?;
    let mut expected = json!({
        "principal": {"type": "api_key", "value": key},
        "resource": "/admin/users",
        "method": "GET",
        "required_permissions": ["user:read"],
    });
    // user_agent is the caller's: none was sent, so none (or our own) may appear.
    if let Some(ua) = body.get("user_agent") {
        expected["user_agent"] = ua.clone();
    }
    ensure!(body == expected, "gateway body {body}");
    ensure!(s.count(Endpoint::AuthzCheck) == 1 && s.count(Endpoint::Jwks) == 0);
    let users = s.requests(Endpoint::Users);
    ensure!(users.len() == 1 && users[0].query.as_deref() == Some("limit=20"));
    assert_one_log_line(&resp, "GET", "/admin/users")?;
    assert_no_secrets(&resp, &[&key, &s.api_key()])?;
    Ok(())
}

#[tokio::test]
async fn bearer_values_are_typed_by_prefix() -> anyhow::Result<()> {
    let (s, key, oat) = machine_standin();
    let resp = get("/admin/users", &[bearer(&oat)], &env_for(&s)).await?;
    expect_users(&resp, &s)?;
    let body = gateway_body(&s)?;
    ensure!(
        body["principal"] == json!({"type": "oauth_access_token", "value": oat}),
        "{body}"
    );
    assert_no_secrets(&resp, &[&oat, &s.api_key()])?;

    let resp = get("/admin/users", &[bearer(&key)], &env_for(&s)).await?;
    expect_users(&resp, &s)?;
    let body = gateway_body(&s)?;
    ensure!(
        body["principal"] == json!({"type": "api_key", "value": key}),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn client_ip_and_user_agent_are_passed_on() -> anyhow::Result<()> {
    let (s, key, _) = machine_standin();
    let both = || {
        vec![
            h("cf-connecting-ip", "203.0.113.7"),
            h("x-forwarded-for", "198.51.100.1, 10.0.0.1"),
        ]
    };
    // (WACHT_CLIENT_IP_HEADER, request headers, client_ip the gateway must see)
    let cases: [(Option<&str>, Headers, Option<&str>); 6] = [
        (Some("cf-connecting-ip"), both(), Some("203.0.113.7")),
        // The right-most hop: the one the trusted proxy appended.
        (Some("x-forwarded-for"), both(), Some("10.0.0.1")),
        (
            Some("x-forwarded-for"),
            vec![h("x-forwarded-for", "2001:db8::1")],
            Some("2001:db8::1"),
        ),
        (Some("cf-connecting-ip"), vec![], None),
        // Not configured: no header is trusted, whatever the caller sends.
        (None, both(), None),
        (Some("none"), both(), None),
    ];
    for (source, mut headers, ip) in cases {
        let env = match source {
            Some(v) => with(env_for(&s), "WACHT_CLIENT_IP_HEADER", v),
            None => env_for(&s),
        };
        headers.push(h("x-api-key", &key));
        headers.push(h("user-agent", "admin-cli/1.2"));
        let resp = get("/admin/users", &headers, &env).await?;
        expect_users(&resp, &s)?;
        let body = gateway_body(&s)?;
        ensure!(
            body.get("client_ip").and_then(Value::as_str) == ip,
            "client_ip for {headers:?}: {body}"
        );
        ensure!(body["user_agent"] == "admin-cli/1.2", "user_agent: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn authorization_wins_over_x_api_key() -> anyhow::Result<()> {
    let (s, key, oat) = machine_standin();
    let resp = get(
        "/admin/users",
        &[bearer(&oat), h("x-api-key", &key)],
        &env_for(&s),
    )
    .await?;
    expect_users(&resp, &s)?;
    let body = gateway_body(&s)?;
    ensure!(body["principal"]["value"] == json!(oat), "{body}");
    ensure!(s.count(Endpoint::AuthzCheck) == 1);
    // A session token in Authorization wins too: the gateway is not asked.
    let resp = get(
        "/admin/users",
        &[bearer(&session_token(&s)), h("x-api-key", &key)],
        &env_for(&s),
    )
    .await?;
    expect_users(&resp, &s)?;
    ensure!(
        s.count(Endpoint::AuthzCheck) == 1,
        "x-api-key was checked despite a session token"
    );
    Ok(())
}

#[tokio::test]
async fn unknown_credentials_are_401() -> anyhow::Result<()> {
    let (s, key, oat) = machine_standin();
    let unknown = random_secret("wk_live");
    for headers in [
        vec![h("x-api-key", &unknown)],
        vec![bearer(&unknown)],
        vec![bearer(&random_secret("oat"))],
        // Known values under the wrong principal type are unknown to the gateway.
        vec![h("x-api-key", &oat)],
    ] {
        let resp = get("/admin/users", &headers, &env_for(&s)).await?;
        expect_error(&resp, 401, "invalid_credentials")
            .map_err(|e| e.context(format!("{headers:?}")))?;
        assert_no_secrets(&resp, &[&unknown, &oat, &key, &s.api_key()])?;
    }
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called for an unknown credential"
    );
    Ok(())
}

#[tokio::test]
async fn gateway_denials_are_403() -> anyhow::Result<()> {
    let s = standin();
    let weak = random_secret("wk_live");
    s.add_credential(weak.clone(), Credential::api_key(&["deployment:read"]));
    let resp = get("/admin/users", &[h("x-api-key", &weak)], &env_for(&s)).await?;
    expect_error(&resp, 403, "forbidden")?;

    // Gateway permissions are ANDed.
    let partial = random_secret("wk_live");
    s.add_credential(partial.clone(), Credential::api_key(&["user:read"]));
    let env = with(
        env_for(&s),
        "WACHT_GATEWAY_PERMISSIONS",
        "user:read,user:list",
    );
    let resp = get("/admin/users", &[h("x-api-key", &partial)], &env).await?;
    expect_error(&resp, 403, "forbidden")?;
    let body = gateway_body(&s)?;
    ensure!(
        body["required_permissions"] == json!(["user:read", "user:list"]),
        "{body}"
    );
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called for a denied credential"
    );
    assert_no_secrets(&resp, &[&partial, &s.api_key()])?;
    Ok(())
}

#[tokio::test]
async fn rate_limited_is_429_with_retry_after_in_seconds() -> anyhow::Result<()> {
    let s = standin();
    for (ms, secs) in [
        (1500u64, "2"),
        (1000, "1"),
        (1, "1"),
        (0, "1"),
        (60_001, "61"),
    ] {
        let key = random_secret("wk_live");
        s.add_credential(
            key.clone(),
            Credential::api_key(&["user:read"]).rate_limited(ms),
        );
        let resp = get("/admin/users", &[h("x-api-key", &key)], &env_for(&s)).await?;
        expect_error(&resp, 429, "rate_limited").map_err(|e| e.context(ms))?;
        let retry = header(&resp.response, "retry-after");
        ensure!(
            retry == Some(secs),
            "retry_after {ms} ms → Retry-After {retry:?}, want {secs}"
        );
    }
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called for a rate-limited credential"
    );
    Ok(())
}

#[tokio::test]
async fn gateway_failures_are_never_an_allow() -> anyhow::Result<()> {
    let (s, key, _) = machine_standin();
    let env = with(env_for(&s), "WACHT_UPSTREAM_TIMEOUT_MS", "300");
    let cases: [(Fault, &[u16]); 7] = [
        (Fault::Status(500), &[502]),
        (Fault::Status(503), &[502]),
        (Fault::Status(400), &[502]),
        (Fault::Status(422), &[502]),
        (Fault::BadJson, &[502]),
        (Fault::Close, &[502, 503]),
        (Fault::Hang, &[504]),
    ];
    for (fault, statuses) in cases {
        s.set_fault(Endpoint::AuthzCheck, fault);
        let resp = get("/admin/users", &[h("x-api-key", &key)], &env).await?;
        let (status, code, _) = json_error(&resp.response)?;
        ensure!(statuses.contains(&status), "{fault:?}: {status} {code}");
        assert_no_secrets(&resp, &[&key, &s.api_key()])?;
    }
    s.set_fault(Endpoint::AuthzCheck, Fault::Normal);
    let refused = with(env.clone(), "WACHT_GATEWAY_URL", &closed_port_url());
    let resp = get("/admin/users", &[h("x-api-key", &key)], &refused).await?;
    expect_error(&resp, 503, "upstream_unavailable")?;
    ensure!(
        s.count(Endpoint::Users) == 0,
        "the backend was called without a gateway allow"
    );
    Ok(())
}

#[tokio::test]
async fn the_gateway_timeout_is_enforced() -> anyhow::Result<()> {
    let (s, key, _) = machine_standin();
    s.set_fault(Endpoint::AuthzCheck, Fault::Hang);
    let env = with(env_for(&s), "WACHT_UPSTREAM_TIMEOUT_MS", "300");
    let started = std::time::Instant::now();
    let resp = get("/admin/users", &[h("x-api-key", &key)], &env).await?;
    expect_error(&resp, 504, "upstream_timeout")?;
    let took = started.elapsed();
    ensure!(
        took >= std::time::Duration::from_millis(250),
        "answered before the timeout: {took:?}"
    );
    ensure!(
        took < std::time::Duration::from_secs(3),
        "timeout not enforced: {took:?}"
    );
    Ok(())
}

/// The gateway is one service for every deployment: an answer counts only for ours.
#[tokio::test]
async fn grants_are_bound_to_this_deployment() -> anyhow::Result<()> {
    let (s, ours, _) = machine_standin();
    let foreign = random_secret("wk_live");
    s.add_credential(
        foreign.clone(),
        Credential::api_key(&["user:read"]).in_deployment(FOREIGN_DEPLOYMENT_ID),
    );
    let foreign_oat = random_secret("oat");
    s.add_credential(
        foreign_oat.clone(),
        Credential::oauth_access_token(&["user:read"]).in_deployment(FOREIGN_DEPLOYMENT_ID),
    );
    let nameless = random_secret("wk_live");
    s.add_credential(
        nameless.clone(),
        Credential::api_key(&["user:read"]).without_identity(),
    );
    for (header, value) in [
        ("x-api-key", foreign.clone()),
        ("authorization", format!("Bearer {foreign_oat}")),
        ("x-api-key", nameless.clone()),
    ] {
        let resp = get("/admin/users", &[h(header, &value)], &env_for(&s)).await?;
        expect_error(&resp, 401, "invalid_credentials")?;
        ensure!(
            s.count(Endpoint::Users) == 0,
            "our users were fetched for {header}"
        );
        assert_no_secrets(&resp, &[&value, &s.api_key()])?;
        if value != nameless {
            ensure!(
                resp.stderr.contains(FOREIGN_DEPLOYMENT_ID),
                "the foreign deployment is not logged: {}",
                resp.stderr
            );
        }
    }
    // Ours still works.
    let resp = get("/admin/users", &[h("x-api-key", &ours)], &env_for(&s)).await?;
    expect_users(&resp, &s)?;
    Ok(())
}

#[tokio::test]
async fn machine_credentials_need_the_deployment_id() -> anyhow::Result<()> {
    let (s, key, _) = machine_standin();
    let env = without(env_for(&s), "WACHT_DEPLOYMENT_ID");
    let resp = get("/admin/users", &[h("x-api-key", &key)], &env).await?;
    let message = expect_error(&resp, 500, "configuration_error")?;
    ensure!(message.contains("WACHT_DEPLOYMENT_ID"), "{message}");
    ensure!(
        s.count(Endpoint::AuthzCheck) == 0,
        "the key was sent anyway"
    );
    // Session tokens need nothing new.
    let resp = get("/admin/users", &[bearer(&session_token(&s))], &env).await?;
    expect_users(&resp, &s)?;
    Ok(())
}

/// Extra `WACHT_*` settings of a test case.
type Settings<'a> = Vec<(&'a str, &'a str)>;

#[tokio::test]
async fn machine_grants_are_narrowed_by_app_organization_and_workspace() -> anyhow::Result<()> {
    let (s, key, oat) = machine_standin();
    let other_app = random_secret("wk_live");
    s.add_credential(
        other_app.clone(),
        Credential::api_key(&["user:read"]).in_app("billing"),
    );
    let identity = Credential::api_key(&[]).identity.context("identity")?;
    let org = identity.organization_id.context("organization")?;
    let ws = identity.workspace_id.context("workspace")?;
    let env = env_for(&s);
    // (settings, credential header, granted; a refusal is a 403 forbidden)
    let cases: Vec<(Settings<'_>, (String, String), bool)> = vec![
        (
            vec![("WACHT_GATEWAY_APPS", "admin-dashboard")],
            h("x-api-key", &key),
            true,
        ),
        (
            vec![("WACHT_GATEWAY_APPS", "admin-dashboard")],
            h("x-api-key", &other_app),
            false,
        ),
        (
            vec![
                ("WACHT_REQUIRED_ORGANIZATION", &org),
                ("WACHT_REQUIRED_WORKSPACE", &ws),
            ],
            h("x-api-key", &key),
            true,
        ),
        (
            vec![("WACHT_REQUIRED_ORGANIZATION", "1")],
            h("x-api-key", &key),
            false,
        ),
        (
            vec![("WACHT_REQUIRED_WORKSPACE", "1")],
            h("x-api-key", &key),
            false,
        ),
        // OAuth identities name no organization: a required one refuses them.
        (
            vec![("WACHT_REQUIRED_ORGANIZATION", &org)],
            bearer(&oat),
            false,
        ),
    ];
    for (settings, credential, granted) in cases {
        let env = settings
            .iter()
            .fold(env.clone(), |env, (name, value)| with(env, name, value));
        let resp = get("/admin/users", &[credential], &env).await?;
        if granted {
            expect_users(&resp, &s)?;
        } else {
            expect_error(&resp, 403, "forbidden")?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn dotted_bearer_values_never_reach_the_gateway() -> anyhow::Result<()> {
    let (s, _, _) = machine_standin();
    let token = session_token(&s);
    let (head, rest) = token.split_once('.').context("token")?;
    for value in [
        format!("{token}="),
        format!("{token}."),
        format!("{head}+/.{rest}"),
        "a.b".to_string(),
    ] {
        let resp = get("/admin/users", &[bearer(&value)], &env_for(&s)).await?;
        expect_error(&resp, 401, "invalid_token")?;
        assert_no_secrets(&resp, &[&value])?;
    }
    let resp = get("/admin/users", &[h("x-api-key", &token)], &env_for(&s)).await?;
    expect_error(&resp, 401, "invalid_credentials")?;
    ensure!(
        s.count(Endpoint::AuthzCheck) == 0,
        "a session token reached the gateway"
    );
    Ok(())
}
