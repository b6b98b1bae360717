//! Routing and configuration: 404/405 for what is not `GET /admin/users`, 500 for a broken
//! configuration (naming the variable, never its value), and one access-log line per request.

use crate::common::*;
use anyhow::ensure;

#[tokio::test]
async fn other_paths_are_404() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for path in [
        "/",
        "/admin",
        "/admin/users/",
        "/admin/users/1",
        "/admin/Users",
        "/users",
        "/admin/users.json",
    ] {
        let h = get(path, &[bearer(&token)], &env_for(&s)).await?;
        expect_error(&h, 404, "not_found").map_err(|e| e.context(path))?;
        let logged_path = path.split('?').next().unwrap_or(path);
        assert_one_log_line(&h, "GET", logged_path)?;
    }
    ensure!(s.total_count() == 0, "upstream called for an unknown path");
    Ok(())
}

#[tokio::test]
async fn other_methods_are_405_with_allow_get() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let h = send(method, "/admin/users", &[bearer(&token)], &env_for(&s)).await?;
        expect_error(&h, 405, "method_not_allowed").map_err(|e| e.context(method))?;
        let allow = header(&h.response, "allow");
        ensure!(allow == Some("GET"), "{method}: Allow {allow:?}");
        assert_one_log_line(&h, method, "/admin/users")?;
    }
    ensure!(s.total_count() == 0, "upstream called for a refused method");
    Ok(())
}

#[tokio::test]
async fn missing_api_key_is_500_naming_the_variable() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for env in [
        without(env_for(&s), "WACHT_API_KEY"),
        with(env_for(&s), "WACHT_API_KEY", ""),
    ] {
        let h = get("/admin/users", &[bearer(&token)], &env).await?;
        let msg = expect_error(&h, 500, "configuration_error")?;
        ensure!(
            msg.contains("WACHT_API_KEY"),
            "message does not name the variable: {msg}"
        );
        for value in [s.url(), s.publishable_key(), s.api_key(), token.clone()] {
            ensure!(
                !msg.contains(&value),
                "message contains a configuration value: {msg}"
            );
        }
        assert_no_secrets(&h, &[&s.api_key(), &token])?;
    }
    ensure!(s.count(Endpoint::Users) == 0);
    Ok(())
}

#[tokio::test]
async fn bad_publishable_key_is_500_naming_the_variable() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let bad_keys = [
        "pk_test_!!!not-base64".to_string(),
        wacht_standin::publishable_key_for("ftp://frontend.example.com"),
        format!("sk_test_{}", &s.publishable_key()["pk_test_".len()..]),
        // No scheme.
        wacht_standin::publishable_key_for("frontend.example.com").replace("pk_test_", "pk_live_"),
    ];
    for bad in &bad_keys {
        let env = with(env_for(&s), "WACHT_PUBLISHABLE_KEY", bad);
        let h = get("/admin/users", &[bearer(&token)], &env).await?;
        let msg =
            expect_error(&h, 500, "configuration_error").map_err(|e| e.context(bad.clone()))?;
        ensure!(
            msg.contains("WACHT_PUBLISHABLE_KEY"),
            "message does not name the variable: {msg}"
        );
        ensure!(
            !msg.contains(bad.as_str()),
            "message contains the value: {msg}"
        );
        assert_no_secrets(&h, &[&s.api_key(), &token])?;
    }
    ensure!(
        s.total_count() == 0,
        "upstream called with a broken configuration"
    );
    Ok(())
}

#[tokio::test]
async fn malformed_settings_are_500_naming_the_variable() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    for (name, value) in [
        ("WACHT_UPSTREAM_TIMEOUT_MS", "soon"),
        ("WACHT_CLOCK_SKEW_SECS", "-5"),
        ("WACHT_BACKEND_API_URL", "ftp://api.example.com"),
        ("WACHT_GATEWAY_URL", "not a url"),
    ] {
        let h = get(
            "/admin/users",
            &[bearer(&token)],
            &with(env_for(&s), name, value),
        )
        .await?;
        let msg = expect_error(&h, 500, "configuration_error").map_err(|e| e.context(name))?;
        ensure!(
            msg.contains(name),
            "{name}: message does not name it: {msg}"
        );
        ensure!(
            !msg.contains(value),
            "{name}: message contains the value: {msg}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn one_log_line_per_request_without_secrets() -> anyhow::Result<()> {
    let s = standin();
    let key = wacht_standin::random_secret("wk_live");
    s.add_credential(key.clone(), Credential::api_key(&["user:read"]));
    let token = session_token(&s);
    let env = env_for(&s);
    let cases: Vec<(Headers, &str, u16)> = vec![
        (vec![bearer(&token)], "/admin/users?limit=3", 200),
        (vec![("x-api-key".into(), key.clone())], "/admin/users", 200),
        (vec![], "/admin/users", 401),
        (vec![bearer(&format!("{token}x"))], "/admin/users", 401),
        (vec![bearer(&token)], "/admin/users?limit=0", 400),
    ];
    for (headers, target, status) in cases {
        let h = get(target, &headers, &env).await?;
        ensure!(
            h.response.status() == status,
            "{target}: {} not {status}",
            h.response.status()
        );
        assert_one_log_line(&h, "GET", "/admin/users")?;
        assert_no_secrets(&h, &[&token, &key, &s.api_key()])?;
        ensure!(h.stdout.is_empty(), "stdout is not empty: {:?}", h.stdout);
    }
    Ok(())
}

/// The assertion helpers themselves: each must reject what it exists to catch.
#[test]
fn helpers_reject_what_they_should() -> anyhow::Result<()> {
    let handled = |status: u16, ct: &str, body: &str, stderr: &str| wacht_admin_host::Handled {
        response: http::Response::builder()
            .status(status)
            .header("content-type", ct)
            .header("cache-control", "no-store")
            .header("x-content-type-options", "nosniff")
            .header("x-request-id", "r1")
            .body(bytes::Bytes::from(body.to_string()))
            .unwrap(),
        stderr: stderr.to_string(),
        stdout: String::new(),
        elapsed: std::time::Duration::ZERO,
    };
    let ok = handled(
        404,
        "application/json",
        r#"{"error":"not_found","message":"no","request_id":"r1"}"#,
        "GET /x 404\n",
    );
    ensure!(json_error(&ok.response)?.1 == "not_found");
    // The body's request id must be the header's.
    let other_id = handled(
        404,
        "application/json",
        r#"{"error":"not_found","message":"no","request_id":"r2"}"#,
        "",
    );
    ensure!(json_error(&other_id.response).is_err());
    // An answer without the safe headers is refused.
    let mut cacheable = ok.response.clone();
    cacheable.headers_mut().remove("cache-control");
    ensure!(json_error(&cacheable).is_err());
    let mut sniffable = ok.response.clone();
    sniffable.headers_mut().remove("x-content-type-options");
    ensure!(json_error(&sniffable).is_err());
    ensure!(expect_error(&ok, 404, "not_found").is_ok());
    ensure!(expect_error(&ok, 404, "forbidden").is_err());
    ensure!(
        json_error(&handled(404, "text/plain", r#"{"error":"a","message":"b"}"#, "").response)
            .is_err()
    );
    ensure!(
        json_error(
            &handled(
                404,
                "application/json",
                r#"{"error":"a","message":"b","request_id":"r1","x":1}"#,
                ""
            )
            .response
        )
        .is_err()
    );
    ensure!(json_error(&handled(404, "application/json", "not json", "").response).is_err());
    // 401 needs WWW-Authenticate.
    let unauth = handled(
        401,
        "application/json",
        r#"{"error":"missing_credentials","message":"m","request_id":"r1"}"#,
        "",
    );
    ensure!(expect_error(&unauth, 401, "missing_credentials").is_err());
    // Secrets in stderr, body or a header are caught.
    ensure!(assert_no_secrets(&ok, &["sk_test_secret"]).is_ok());
    ensure!(
        assert_no_secrets(
            &handled(200, "application/json", "{}", "key=sk_test_secret"),
            &["sk_test_secret"]
        )
        .is_err()
    );
    ensure!(
        assert_no_secrets(
            &handled(200, "application/json", "sk_test_secret", ""),
            &["sk_test_secret"]
        )
        .is_err()
    );
    ensure!(
        assert_no_secrets(&handled(200, "sk_test_secret", "", ""), &["sk_test_secret"]).is_err()
    );
    // Exactly one log line, with method, path and status.
    ensure!(assert_one_log_line(&ok, "GET", "/x").is_ok());
    ensure!(
        assert_one_log_line(
            &handled(404, "a", "", "GET /x 404\nGET /x 404\n"),
            "GET",
            "/x"
        )
        .is_err()
    );
    ensure!(assert_one_log_line(&handled(404, "a", "", "GET /y 404\n"), "GET", "/x").is_err());
    ensure!(assert_one_log_line(&handled(404, "a", "", "GET /x 200\n"), "GET", "/x").is_err());
    Ok(())
}

#[tokio::test]
async fn wacht_log_format_json_writes_one_json_object_per_request() -> anyhow::Result<()> {
    let s = standin();
    let token = session_token(&s);
    let env = with(env_for(&s), "WACHT_LOG_FORMAT", "json");
    let h = get("/admin/users?search=secret", &[bearer(&token)], &env).await?;
    expect_users(&h, &s)?;
    let lines: Vec<&str> = h.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(lines.len() == 1, "{lines:?}");
    let line: serde_json::Value = serde_json::from_str(lines[0])?;
    ensure!(line["msg"] == "wacht-admin", "{line}");
    ensure!(
        line["method"] == "GET" && line["path"] == "/admin/users",
        "{line}"
    );
    ensure!(
        line["status"] == 200 && line["upstream_status"] == 200,
        "{line}"
    );
    ensure!(line["credential"] == "session", "{line}");
    ensure!(line["token_cache"] == "miss", "{line}");
    ensure!(line["duration_ms"].is_f64(), "{line}");
    ensure!(
        !lines[0].contains(&token) && !lines[0].contains("secret"),
        "{line}"
    );
    // The default stays the key=value line.
    let h = get("/admin/users", &[bearer(&token)], &env_for(&s)).await?;
    ensure!(
        h.stderr.starts_with("wacht-admin v=1 request_id="),
        "{}",
        h.stderr
    );
    Ok(())
}

#[tokio::test]
async fn cors_preflight_and_answers_for_listed_and_unlisted_origins() -> anyhow::Result<()> {
    let s = standin();
    let dashboard = "https://admin.example.com";
    let env = with(env_for(&s), "WACHT_CORS_ORIGINS", dashboard);
    let env = with(env, "WACHT_CORS_ALLOW_HEADERS", "X-Tenant, traceparent");
    let h = |pairs: &[(&str, &str)]| -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    };
    let preflight = send(
        "OPTIONS",
        "/admin/users",
        &h(&[
            ("origin", dashboard),
            ("access-control-request-method", "GET"),
        ]),
        &env,
    )
    .await?;
    ensure!(
        preflight.response.status() == 204,
        "{:?}",
        preflight.response
    );
    safe_headers(&preflight.response)?;
    for (name, value) in [
        ("access-control-allow-origin", dashboard),
        ("access-control-allow-methods", "GET"),
        (
            "access-control-allow-headers",
            "authorization, x-api-key, x-request-id, traceparent, tracestate, x-tenant",
        ),
        ("access-control-max-age", "600"),
        ("vary", "origin"),
    ] {
        ensure!(
            header(&preflight.response, name) == Some(value),
            "{name}: {:?}",
            preflight.response.headers()
        );
    }
    // A session answer and an error, both readable by the dashboard.
    let mut with_token = h(&[("origin", dashboard)]);
    with_token.push(bearer(&session_token(&s)));
    let ok = get("/admin/users", &with_token, &env).await?;
    expect_users(&ok, &s)?;
    let denied = get("/admin/users", &h(&[("origin", dashboard)]), &env).await?;
    expect_error(&denied, 401, "missing_credentials")?;
    for r in [&ok, &denied] {
        ensure!(header(&r.response, "access-control-allow-origin") == Some(dashboard));
    }
    // An unlisted origin: no CORS header, and its preflight refused.
    let evil = h(&[
        ("origin", "https://evil.example.com"),
        ("access-control-request-method", "GET"),
    ]);
    let refused = send("OPTIONS", "/admin/users", &evil, &env).await?;
    expect_error(&refused, 403, "origin_not_allowed")?;
    ensure!(header(&refused.response, "access-control-allow-origin").is_none());
    // A listed origin that does not say which method, or no origin at all: no preflight.
    let no_method = send(
        "OPTIONS",
        "/admin/users",
        &h(&[("origin", dashboard)]),
        &env,
    )
    .await?;
    expect_error(&no_method, 400, "bad_request")?;
    let no_origin = h(&[("access-control-request-method", "GET")]);
    let anonymous = send("OPTIONS", "/admin/users", &no_origin, &env).await?;
    expect_error(&anonymous, 403, "origin_not_allowed")?;
    // Unset: today's behaviour, a 405 for OPTIONS.
    let off = send("OPTIONS", "/admin/users", &evil, &env_for(&s)).await?;
    expect_error(&off, 405, "method_not_allowed")?;
    Ok(())
}
