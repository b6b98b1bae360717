//! CORS through the Worker in real workerd: the shim passes preflights and `Origin` to the
//! component, and the answers keep their CORS headers on the way out.

use super::*;

#[test]
fn cors_preflight_and_answers_in_workerd() {
    let s = standin();
    let dashboard = "https://admin.example.com";
    let w = Workerd::start(
        "cors",
        &[
            Service::new("cors", bindings(&s, &[("WACHT_CORS_ORIGINS", dashboard)])),
            Service::new("off", bindings(&s, &[])),
        ],
    )
    .unwrap();
    let preflight = [
        ("origin", dashboard),
        ("access-control-request-method", "GET"),
    ];
    let r = client::send(
        w.addr("cors"),
        "OPTIONS",
        "/admin/users",
        &preflight,
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(r.status, 204, "{}", r.dump());
    for (name, value) in [
        ("access-control-allow-origin", dashboard),
        ("access-control-allow-methods", "GET"),
        (
            "access-control-allow-headers",
            "authorization, x-api-key, x-request-id, traceparent, tracestate",
        ),
        ("access-control-max-age", "600"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.header(name), Some(value), "{name}: {}", r.dump());
    }
    let token = format!("Bearer {}", session_token(&s));
    let ok = get(
        w.addr("cors"),
        "/admin/users",
        &[("origin", dashboard), ("authorization", &token)],
    )
    .unwrap();
    expect_users(&ok, &s).unwrap();
    let denied = get(w.addr("cors"), "/admin/users", &[("origin", dashboard)]).unwrap();
    expect_error(&denied, 401, "missing_credentials").unwrap();
    for r in [&ok, &denied] {
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some(dashboard),
            "{}",
            r.dump()
        );
    }
    let evil = [
        ("origin", "https://evil.example.com"),
        ("access-control-request-method", "GET"),
    ];
    let refused = client::send(w.addr("cors"), "OPTIONS", "/admin/users", &evil, TIMEOUT).unwrap();
    expect_error(&refused, 403, "origin_not_allowed").unwrap();
    assert_eq!(refused.header("access-control-allow-origin"), None);
    let off = client::send(
        w.addr("off"),
        "OPTIONS",
        "/admin/users",
        &preflight,
        TIMEOUT,
    )
    .unwrap();
    expect_error(&off, 405, "method_not_allowed").unwrap();
}
