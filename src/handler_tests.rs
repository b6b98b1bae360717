//! Unit tests of the request flow over a scripted `Upstream`.

use super::*;
use crate::config::{ClientIpHeader, LogFormat};
use crate::jwks_cache::{MAX_STALE_SECS, REFETCH_INTERVAL_SECS, TTL_SECS};
use crate::signature::{Portable, PublicParams, VerifyingKey};
use crate::token_cache::TokenCache;
use serde_json::{Value, json};
use std::cell::Cell;
use std::rc::Rc;
use wacht_standin::tokens::{TestKey, jwks, session_claims};

const API_KEY: &str = "wk_test_backend_key";
const FRONTEND: &str = "https://frontend.example.com";
const PK: &str = "pk_test_aHR0cHM6Ly9mcm9udGVuZC5leGFtcGxlLmNvbQ";
const NOW: u64 = 1_800_000_000;
const PAGE: &str =
    r#"{"data":[{"id":"1","first_name":"Ada"}],"has_more":false,"limit":20,"offset":0}"#;

#[derive(Debug, Clone)]
struct Sent {
    service: Service,
    method: Method,
    authority: String,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
}

type Script = Box<dyn FnMut(&Sent) -> Result<OutResponse, TransportError>>;

struct Fake {
    sent: Vec<Sent>,
    script: Script,
}

impl Upstream for Fake {
    fn send(&mut self, req: OutRequest<'_>) -> Result<OutResponse, TransportError> {
        let sent = Sent {
            service: req.service,
            method: req.method,
            authority: req.base.authority.clone(),
            path: req.path_with_query.clone(),
            headers: req.headers.clone(),
            body: req
                .body
                .as_ref()
                .map(|b| serde_json::from_slice(b).unwrap()),
        };
        self.sent.push(sent.clone());
        (self.script)(&sent)
    }
}

fn ok(status: u16, body: &str) -> Result<OutResponse, TransportError> {
    Ok(OutResponse {
        status: StatusCode::from_u16(status).unwrap(),
        body: body.as_bytes().to_vec(),
    })
}

/// A Wacht that answers every service normally.
fn wacht(keys: Vec<Value>) -> Fake {
    let jwks_doc = json!({ "keys": keys }).to_string();
    Fake {
        sent: vec![],
        script: Box::new(move |s| {
            match s.service {
            Service::Jwks => ok(200, &jwks_doc),
            Service::Backend => ok(200, PAGE),
            Service::Gateway => ok(
                200,
                &json!({"request_id":"req_42","allowed":true,"reason":null,"blocked_rule":null,"identity":{},
                        "permissions":["user:read"],"metadata":{},"rate_limits":[],"retry_after":null,"headers":{}})
                .to_string(),
            ),
        }
        }),
    }
}

/// A frontend API that serves `jwk` once, then answers every JWKS fetch with `then()`.
fn jwks_once_then(jwk: Value, then: fn() -> Result<OutResponse, TransportError>) -> Fake {
    let mut first = true;
    Fake {
        sent: vec![],
        script: Box::new(move |s| match s.service {
            Service::Jwks if first => {
                first = false;
                ok(200, &json!({ "keys": [jwk.clone()] }).to_string())
            }
            Service::Jwks => then(),
            _ => ok(200, PAGE),
        }),
    }
}

fn config(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut vars = vec![("WACHT_API_KEY", API_KEY), ("WACHT_PUBLISHABLE_KEY", PK)];
    vars.extend_from_slice(extra);
    Config::from_vars(vars, &Portable)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (n, v) in pairs {
        map.append(
            http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            http::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    map
}

/// One request with a token cache of its own (so no earlier request's verdict is reused).
fn run(
    target: &str,
    hdrs: &[(&str, &str)],
    cfg: &Result<Config, ConfigError>,
    now: u64,
    cache: &mut JwksCache,
    up: &mut Fake,
) -> Outcome {
    let mut tokens = TokenCache::default();
    run_with(target, hdrs, cfg, now, cache, &mut tokens, &Portable, up)
}

#[allow(clippy::too_many_arguments)]
fn run_with(
    target: &str,
    hdrs: &[(&str, &str)],
    cfg: &Result<Config, ConfigError>,
    now: u64,
    cache: &mut JwksCache,
    tokens: &mut TokenCache,
    verifier: &dyn Verifier,
    up: &mut Fake,
) -> Outcome {
    let h = headers(hdrs);
    let req = Incoming {
        method: &Method::GET,
        target,
        headers: &h,
    };
    handle(
        &req,
        Context {
            config: cfg,
            now,
            jwks: cache,
            tokens,
            verifier,
            upstream: up,
        },
    )
}

/// One request at `NOW` with a cold JWKS cache.
fn once(
    target: &str,
    hdrs: &[(&str, &str)],
    cfg: &Result<Config, ConfigError>,
    up: &mut Fake,
) -> Outcome {
    run(target, hdrs, cfg, NOW, &mut JwksCache::default(), up)
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Status and error code of an error reply.
fn status_code(o: &Outcome) -> (u16, String) {
    (o.reply.status().as_u16(), error_code(o))
}

fn error_code(o: &Outcome) -> String {
    let v: Value = serde_json::from_slice(o.reply.body()).unwrap();
    v["error"].as_str().unwrap().to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn session_request_fetches_keys_once_and_passes_the_page_through() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut up = wacht(vec![key.public_jwk()]);
    let mut cache = JwksCache::default();
    let cfg = config(&[]);

    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        NOW,
        &mut cache,
        &mut up,
    );
    assert_eq!(
        o.reply.status().as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(o.reply.body())
    );
    assert_eq!(o.reply.body(), PAGE.as_bytes());
    assert_eq!(header(&o.reply, "content-type"), Some("application/json"));
    assert_eq!(o.credential, Some("session"));
    assert_eq!(o.upstream_status, Some(200));

    let services: Vec<Service> = up.sent.iter().map(|s| s.service).collect();
    assert_eq!(services, vec![Service::Jwks, Service::Backend]);
    assert_eq!(up.sent[0].authority, "frontend.example.com");
    assert_eq!(up.sent[0].path, "/.well-known/jwks.json");
    let users = &up.sent[1];
    assert_eq!(users.authority, "api.wacht.dev");
    assert_eq!(users.path, "/users?limit=20");
    assert!(
        users
            .headers
            .contains(&("authorization", format!("Bearer {API_KEY}")))
    );

    // Within the TTL the cached set serves: one upstream call per request.
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        NOW + 1,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(up.sent.len(), 3);
    assert_eq!(up.sent[2].service, Service::Backend);

    // Past the TTL the set is fetched again.
    let later = NOW + TTL_SECS;
    let token = key.token(&session_claims(FRONTEND, later));
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        later,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(
        up.sent
            .iter()
            .filter(|s| s.service == Service::Jwks)
            .count(),
        2
    );
}

#[test]
fn unknown_kid_refetches_at_most_once_per_interval() {
    let old = TestKey::es256(1).with_kid("old");
    let new = TestKey::es256(2).with_kid("new");
    let mut cache = JwksCache::default();
    let cfg = config(&[]);
    // The frontend API has rotated to `new` after our first fetch.
    let mut fetches = 0;
    let (old_jwk, new_jwk) = (old.public_jwk(), new.public_jwk());
    let mut up = Fake {
        sent: vec![],
        script: Box::new(move |s| match s.service {
            Service::Jwks => {
                fetches += 1;
                let k = if fetches == 1 {
                    old_jwk.clone()
                } else {
                    new_jwk.clone()
                };
                ok(200, &json!({ "keys": [k] }).to_string())
            }
            _ => ok(200, PAGE),
        }),
    };
    let t_old = old.token(&session_claims(FRONTEND, NOW));
    assert_eq!(
        run(
            "/admin/users",
            &[("authorization", &bearer(&t_old))],
            &cfg,
            NOW,
            &mut cache,
            &mut up
        )
        .reply
        .status(),
        200
    );

    let t_new = new.token(&session_claims(FRONTEND, NOW + 1));
    // Too soon after the first fetch: no refetch, 401.
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&t_new))],
        &cfg,
        NOW + 1,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 401);
    assert_eq!(
        up.sent
            .iter()
            .filter(|s| s.service == Service::Jwks)
            .count(),
        1
    );

    let t = NOW + REFETCH_INTERVAL_SECS;
    let t_new = new.token(&session_claims(FRONTEND, t));
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&t_new))],
        &cfg,
        t,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(
        up.sent
            .iter()
            .filter(|s| s.service == Service::Jwks)
            .count(),
        2
    );

    // A token with a kid nobody has: 401, and no refetch storm.
    let rogue = TestKey::es256(3)
        .with_kid("rogue")
        .token(&session_claims(FRONTEND, t + 1));
    for i in 1..5 {
        let o = run(
            "/admin/users",
            &[("authorization", &bearer(&rogue))],
            &cfg,
            t + i,
            &mut cache,
            &mut up,
        );
        assert_eq!(o.reply.status().as_u16(), 401);
    }
    assert_eq!(
        up.sent
            .iter()
            .filter(|s| s.service == Service::Jwks)
            .count(),
        2
    );
}

#[test]
fn a_failing_frontend_api_keeps_the_last_good_set() {
    let key = TestKey::es256(1);
    let mut cache = JwksCache::default();
    let cfg = config(&[]);
    let mut up = jwks_once_then(key.public_jwk(), || Err(TransportError::Timeout));
    let t0 = key.token(&session_claims(FRONTEND, NOW));
    assert_eq!(
        run(
            "/admin/users",
            &[("authorization", &bearer(&t0))],
            &cfg,
            NOW,
            &mut cache,
            &mut up
        )
        .reply
        .status(),
        200
    );
    let later = NOW + TTL_SECS + 1;
    let t1 = key.token(&session_claims(FRONTEND, later));
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&t1))],
        &cfg,
        later,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    // The failed refetch is not retried on the very next request.
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&t1))],
        &cfg,
        later + 1,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(
        up.sent
            .iter()
            .filter(|s| s.service == Service::Jwks)
            .count(),
        2
    );
}

#[test]
fn no_keys_at_all_is_an_upstream_error_not_a_pass() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let cfg = config(&[]);
    for (answer, status) in [
        (Err(TransportError::Timeout), 504),
        (Err(TransportError::Unreachable), 503),
        (ok(500, "oops"), 502),
        (ok(200, "{\"keys\":"), 502),
    ] {
        let mut cache = JwksCache::default();
        let mut answer = Some(answer);
        let mut up = Fake {
            sent: vec![],
            script: Box::new(move |s| match s.service {
                Service::Jwks => answer.take().unwrap(),
                _ => ok(200, PAGE),
            }),
        };
        let o = run(
            "/admin/users",
            &[("authorization", &bearer(&token))],
            &cfg,
            NOW,
            &mut cache,
            &mut up,
        );
        assert_eq!(o.reply.status().as_u16(), status);
        assert!(up.sent.iter().all(|s| s.service != Service::Backend));
    }
}

#[test]
fn inline_jwks_needs_no_fetch() {
    let key = TestKey::es256(1);
    let doc = jwks(&[&key]).to_string();
    let cfg = config(&[("WACHT_JWKS", &doc)]);
    let mut up = wacht(vec![]);
    let mut cache = JwksCache::default();
    let token = key.token(&session_claims(FRONTEND, NOW));
    let o = run(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        NOW,
        &mut cache,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert!(up.sent.iter().all(|s| s.service == Service::Backend));
}

#[test]
fn a_session_without_the_permission_is_forbidden_and_costs_no_backend_call() {
    let key = TestKey::es256(1);
    let mut claims = session_claims(FRONTEND, NOW);
    claims["permissions"] = json!({"organization": ["user:read"], "workspace": null});
    let token = key.token(&claims);
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &config(&[]),
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 403);
    assert_eq!(error_code(&o), "forbidden");
    assert!(up.sent.iter().all(|s| s.service != Service::Backend));

    // Configured requirements are honoured.
    let token = key.token(&session_claims(FRONTEND, NOW));
    let cfg = config(&[("WACHT_REQUIRED_ORGANIZATION", "99")]);
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 403);
    let cfg = config(&[(
        "WACHT_REQUIRED_PERMISSIONS",
        "deployment:admin,deployment:read",
    )]);
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
}

#[test]
fn an_invalid_token_is_401_with_www_authenticate() {
    let key = TestKey::es256(1);
    let mut up = wacht(vec![key.public_jwk()]);
    let cfg = config(&[]);
    let expired = key.token(&session_claims(FRONTEND, NOW - 100));
    let wrong_iss = key.token(&session_claims("https://evil.example.com", NOW));
    let rogue = TestKey::es256(9).token(&session_claims(FRONTEND, NOW));
    for token in [expired, wrong_iss, rogue] {
        let o = once(
            "/admin/users",
            &[("authorization", &bearer(&token))],
            &cfg,
            &mut up,
        );
        assert_eq!(o.reply.status().as_u16(), 401);
        assert_eq!(error_code(&o), "invalid_token");
        assert!(
            header(&o.reply, "www-authenticate")
                .unwrap()
                .starts_with("Bearer")
        );
    }
    assert!(up.sent.iter().all(|s| s.service != Service::Backend));
}

#[test]
fn machine_credentials_go_through_the_gateway() {
    let cfg = config(&[("WACHT_CLIENT_IP_HEADER", "cf-connecting-ip")]);
    let mut up = wacht(vec![]);
    let o = once(
        "/admin/users?limit=5",
        &[
            ("x-api-key", "ak_live_123"),
            ("cf-connecting-ip", "203.0.113.9"),
            ("user-agent", "curl/8.5"),
        ],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(o.credential, Some("api_key"));
    assert_eq!(o.gateway_request_id.as_deref(), Some("req_42"));
    let gw = &up.sent[0];
    assert_eq!(
        (gw.service, gw.method.clone()),
        (Service::Gateway, Method::POST)
    );
    assert_eq!(gw.authority, "gateway.wacht.dev");
    assert_eq!(gw.path, "/v1/authz/check");
    assert_eq!(
        gw.body,
        Some(
            json!({"principal":{"type":"api_key","value":"ak_live_123"},"resource":"/admin/users","method":"GET",
                    "client_ip":"203.0.113.9","user_agent":"curl/8.5","required_permissions":["user:read"]})
        )
    );
    assert_eq!(up.sent[1].path, "/users?limit=5");

    let mut up = wacht(vec![]);
    let cfg = config(&[("WACHT_CLIENT_IP_HEADER", "x-forwarded-for")]);
    let o = once(
        "/admin/users",
        &[
            ("authorization", "Bearer oat_abc"),
            ("x-forwarded-for", "198.51.100.1, 10.0.0.1"),
        ],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    let body = up.sent[0].body.clone().unwrap();
    assert_eq!(body["principal"]["type"], "oauth_access_token");
    assert_eq!(body["client_ip"], "10.0.0.1", "the hop our proxy appended");
    assert!(body.get("user_agent").is_none());

    // By default no header is trusted: a caller cannot choose the address the gateway sees.
    let mut up = wacht(vec![]);
    let o = once(
        "/admin/users",
        &[
            ("x-api-key", "ak_1"),
            ("cf-connecting-ip", "10.0.0.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ],
        &config(&[]),
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert!(up.sent[0].body.as_ref().unwrap().get("client_ip").is_none());
}

#[test]
fn gateway_denials() {
    let cfg = config(&[]);
    let cases: Vec<(Result<OutResponse, TransportError>, u16, &str)> = vec![
        (
            ok(
                200,
                r#"{"request_id":"r","allowed":false,"reason":"permission_denied","retry_after":null}"#,
            ),
            403,
            "forbidden",
        ),
        (
            ok(
                200,
                r#"{"request_id":"r","allowed":false,"reason":"rate_limited","retry_after":2500}"#,
            ),
            429,
            "rate_limited",
        ),
        (ok(401, "Invalid API key"), 401, "invalid_credentials"),
        (ok(500, "{}"), 502, "upstream_error"),
        (ok(200, "{\"allowed\":"), 502, "upstream_error"),
        (Err(TransportError::Timeout), 504, "upstream_timeout"),
        (
            Err(TransportError::Unreachable),
            503,
            "upstream_unavailable",
        ),
    ];
    for (answer, status, code) in cases {
        let mut answer = Some(answer);
        let mut up = Fake {
            sent: vec![],
            script: Box::new(move |s| match s.service {
                Service::Gateway => answer.take().unwrap(),
                _ => ok(200, PAGE),
            }),
        };
        let o = once("/admin/users", &[("x-api-key", "ak_1")], &cfg, &mut up);
        assert_eq!(status_code(&o), (status, code.to_string()));
        assert_eq!(up.sent.len(), 1, "no backend call after a denial");
        if status == 429 {
            assert_eq!(header(&o.reply, "retry-after"), Some("3"));
        }
    }
}

#[test]
fn backend_failures_map_to_gateway_statuses() {
    let cfg = config(&[]);
    let cases: Vec<(Result<OutResponse, TransportError>, u16, &str)> = vec![
        (
            ok(500, r#"{"errors":[{"message":"boom","code":500}]}"#),
            502,
            "upstream_error",
        ),
        (ok(200, "{\"data\":["), 502, "upstream_error"),
        (
            ok(
                401,
                r#"{"errors":[{"message":"Invalid API key","code":401}]}"#,
            ),
            502,
            "upstream_auth_failed",
        ),
        (
            ok(429, r#"{"errors":[{"message":"slow down","code":429}]}"#),
            503,
            "upstream_rate_limited",
        ),
        (Err(TransportError::Timeout), 504, "upstream_timeout"),
        (
            Err(TransportError::Unreachable),
            503,
            "upstream_unavailable",
        ),
        (Err(TransportError::TooLarge), 502, "upstream_error"),
    ];
    for (answer, status, code) in cases {
        let mut answer = Some(answer);
        let mut up = Fake {
            sent: vec![],
            script: Box::new(move |s| match s.service {
                Service::Backend => answer.take().unwrap(),
                _ => ok(200, r#"{"request_id":"r","allowed":true}"#),
            }),
        };
        let o = once("/admin/users", &[("x-api-key", "ak_1")], &cfg, &mut up);
        assert_eq!(status_code(&o), (status, code.to_string()));
        let body = String::from_utf8(o.reply.body().clone()).unwrap();
        assert!(!body.contains(API_KEY) && !body.contains("boom"));
    }
}

#[test]
fn requests_refused_before_any_upstream_call() {
    let mut up = wacht(vec![]);
    let cfg = config(&[]);
    let cases = [
        ("/admin/users?limit=500", vec![("x-api-key", "ak_1")], 400),
        ("/nope", vec![("x-api-key", "ak_1")], 404),
        ("/admin/users", vec![], 401),
        ("/admin/users", vec![("authorization", "Basic abc")], 401),
    ];
    for (target, hdrs, status) in cases {
        let o = once(target, &hdrs, &cfg, &mut up);
        assert_eq!(o.reply.status().as_u16(), status, "{target}");
    }
    let missing_key = Config::from_vars([("WACHT_PUBLISHABLE_KEY", PK)], &Portable);
    let o = once(
        "/admin/users",
        &[("x-api-key", "ak_1")],
        &missing_key,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 500);
    assert!(String::from_utf8_lossy(o.reply.body()).contains("WACHT_API_KEY"));
    assert!(up.sent.is_empty());
}

#[test]
fn log_line_carries_no_secret() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users?search=secret-search",
        &[("authorization", &bearer(&token))],
        &config(&[]),
        &mut up,
    );
    let text = LogFormat::Text;
    let line = o.log_line(text, "GET", "/admin/users?search=secret-search", 12_345_000);
    assert_eq!(
        line,
        "wacht-admin method=GET path=/admin/users status=200 credential=session gateway_request_id=- upstream_status=200 token_cache=miss duration_ms=12.3"
    );
    assert!(!line.contains(&token) && !line.contains(API_KEY) && !line.contains("secret-search"));
    let odd = o.log_line(text, "GET\n", "/a b\nc", 0);
    assert!(!odd.contains('\n'));
    // The same fields as one JSON object.
    let json = o.log_line(
        LogFormat::Json,
        "GET",
        "/admin/users?search=secret-search",
        12_345_000,
    );
    assert!(!json.contains('\n') && !json.contains(&token) && !json.contains("secret-search"));
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap(),
        json!({
            "msg": "wacht-admin", "method": "GET", "path": "/admin/users", "status": 200,
            "credential": "session", "gateway_request_id": null, "upstream_status": 200,
            "token_cache": "miss", "duration_ms": 12.3,
        })
    );
    let odd: Value =
        serde_json::from_str(&o.log_line(LogFormat::Json, "GET\n", "/a\"b\nc", 0)).unwrap();
    assert_eq!(
        (odd["method"].as_str(), odd["path"].as_str()),
        (Some("GET?"), Some("/a\"b?c"))
    );
    // Nanoseconds to milliseconds with one decimal, half up.
    for (ns, ms) in [
        (0, "0.0"),
        (49_999, "0.0"),
        (50_000, "0.1"),
        (1_234_567, "1.2"),
        (99_950_000, "100.0"),
        (12_345_678_901, "12345.7"),
        (u64::MAX, "18446744073709.5"),
    ] {
        let line = o.log_line(text, "GET", "/", ns);
        assert!(
            line.ends_with(&format!(" duration_ms={ms}")),
            "{ns}: {line}"
        );
    }
}

#[test]
fn repeated_credential_headers_are_refused() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let cfg = config(&[]);
    for hdrs in [
        vec![
            ("authorization", bearer(&token)),
            ("Authorization", "Bearer x".to_string()),
        ],
        vec![
            ("x-api-key", "ak_1".to_string()),
            ("X-Api-Key", "ak_2".to_string()),
        ],
    ] {
        let mut up = wacht(vec![key.public_jwk()]);
        let pairs: Vec<(&str, &str)> = hdrs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let o = once("/admin/users", &pairs, &cfg, &mut up);
        assert_eq!(status_code(&o), (401, "invalid_credentials".to_string()));
        assert!(up.sent.is_empty());
    }
}

#[test]
fn client_ip_must_be_an_address() {
    let h = headers(&[
        ("cf-connecting-ip", "not-an-ip"),
        ("x-forwarded-for", "1.2.3.4"),
    ]);
    let req = Incoming {
        method: &Method::GET,
        target: "/",
        headers: &h,
    };
    assert_eq!(req.client_ip(ClientIpHeader::CfConnectingIp), None);
    assert_eq!(
        req.client_ip(ClientIpHeader::XForwardedFor),
        Some("1.2.3.4")
    );
    assert_eq!(req.client_ip(ClientIpHeader::None), None);
    let h = headers(&[
        ("X-Forwarded-For", "6.6.6.6"),
        ("x-forwarded-for", " 1.2.3.4 , 2001:db8::1 "),
    ]);
    let req = Incoming {
        method: &Method::GET,
        target: "/",
        headers: &h,
    };
    assert_eq!(
        req.client_ip(ClientIpHeader::XForwardedFor),
        Some("2001:db8::1")
    );
}

#[test]
fn a_cold_cache_does_not_fetch_for_garbage_tokens_nor_more_than_once_per_interval() {
    let cfg = config(&[]);
    let mut cache = JwksCache::default();
    let mut up = Fake {
        sent: vec![],
        script: Box::new(|s| match s.service {
            Service::Jwks => Err(TransportError::Timeout),
            _ => ok(200, PAGE),
        }),
    };
    // alg none, malformed: refused before any key is needed.
    let none = format!(
        "{}.{}.",
        wacht_standin::tokens::b64url(br#"{"alg":"none"}"#),
        wacht_standin::tokens::b64url(br#"{"sub":"1"}"#)
    );
    for token in [none.as_str(), "e30.e30.AA"] {
        let o = run(
            "/admin/users",
            &[("authorization", &bearer(token))],
            &cfg,
            NOW,
            &mut cache,
            &mut up,
        );
        assert_eq!(o.reply.status().as_u16(), 401, "{token}");
    }
    assert!(up.sent.is_empty());
    // A well-formed token with the frontend API down: one fetch (504), then 503 without fetching.
    let token = TestKey::es256(1).token(&session_claims(FRONTEND, NOW));
    let statuses: Vec<u16> = (0..5)
        .map(|i| {
            run(
                "/admin/users",
                &[("authorization", &bearer(&token))],
                &cfg,
                NOW + i,
                &mut cache,
                &mut up,
            )
            .reply
            .status()
            .as_u16()
        })
        .collect();
    assert_eq!(statuses, vec![504, 503, 503, 503, 503]);
    assert_eq!(up.sent.len(), 1);
}

#[test]
fn the_last_good_set_expires_while_fetches_fail() {
    let key = TestKey::es256(1);
    let mut cache = JwksCache::default();
    let cfg = config(&[]);
    let mut up = jwks_once_then(key.public_jwk(), || ok(500, "down"));
    let at = |t: u64| key.token(&session_claims(FRONTEND, t));
    let mut status = |t: u64| {
        run(
            "/admin/users",
            &[("authorization", &bearer(&at(t)))],
            &cfg,
            t,
            &mut cache,
            &mut up,
        )
        .reply
        .status()
    };
    assert_eq!(status(NOW), 200);
    assert_eq!(
        status(NOW + MAX_STALE_SECS - 1),
        200,
        "stale but young enough"
    );
    assert_eq!(
        status(NOW + MAX_STALE_SECS),
        503,
        "too old: no longer trusted"
    );
}

#[test]
fn an_invalid_inline_jwks_is_a_configuration_error_for_every_request() {
    let cfg = config(&[("WACHT_JWKS", "{not json")]);
    let mut up = wacht(vec![]);
    let o = once("/admin/users", &[("x-api-key", "ak_1")], &cfg, &mut up);
    assert_eq!(status_code(&o), (500, "configuration_error".to_string()));
    assert!(String::from_utf8_lossy(o.reply.body()).contains("WACHT_JWKS"));
    assert!(up.sent.is_empty());
}

#[test]
fn the_gateway_request_id_cannot_forge_log_lines() {
    let mut up = Fake {
        sent: vec![],
        script: Box::new(|s| match s.service {
            Service::Gateway => ok(
                200,
                r#"{"request_id":"r1\nwacht-admin forged=1","allowed":true}"#,
            ),
            _ => ok(200, PAGE),
        }),
    };
    let o = once(
        "/admin/users",
        &[("x-api-key", "ak_1")],
        &config(&[]),
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    let line = o.log_line(LogFormat::Text, "GET", "/admin/users", 0);
    assert!(!line.contains('\n'), "{line}");
    assert!(
        line.contains("gateway_request_id=r1?wacht-admin?forged=1"),
        "{line}"
    );
    let json: Value = serde_json::from_str(&o.log_line(LogFormat::Json, "GET", "/", 0)).unwrap();
    assert_eq!(json["gateway_request_id"], "r1?wacht-admin?forged=1");
    assert_eq!(json["token_cache"], Value::Null);
}

/// The portable verifier, counting the signature checks made with the keys it imported.
#[derive(Default)]
struct Counting {
    checks: Rc<Cell<usize>>,
}

struct CountingKey {
    inner: Rc<dyn VerifyingKey>,
    checks: Rc<Cell<usize>>,
}

impl Verifier for Counting {
    fn import(&self, params: PublicParams<'_>) -> Option<Rc<dyn VerifyingKey>> {
        Some(Rc::new(CountingKey {
            inner: Portable.import(params)?,
            checks: self.checks.clone(),
        }))
    }
}

impl VerifyingKey for CountingKey {
    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.checks.set(self.checks.get() + 1);
        self.inner.verify(message, signature)
    }
}

/// One instance's state across requests: JWKS cache, token cache, a counting verifier.
struct Instance {
    jwks: JwksCache,
    tokens: TokenCache,
    verifier: Counting,
}

impl Instance {
    fn new() -> Instance {
        Instance {
            jwks: JwksCache::default(),
            tokens: TokenCache::default(),
            verifier: Counting::default(),
        }
    }

    fn get(
        &mut self,
        token: &str,
        cfg: &Result<Config, ConfigError>,
        now: u64,
        up: &mut Fake,
    ) -> Outcome {
        let auth = format!("Bearer {token}");
        run_with(
            "/admin/users",
            &[("authorization", &auth)],
            cfg,
            now,
            &mut self.jwks,
            &mut self.tokens,
            &self.verifier,
            up,
        )
    }

    fn checks(&self) -> usize {
        self.verifier.checks.get()
    }
}

#[test]
fn a_cached_token_costs_no_signature_check() {
    let key = TestKey::es256(1);
    let mut up = wacht(vec![key.public_jwk()]);
    let cfg = config(&[]);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut i = Instance::new();
    let first = i.get(&token, &cfg, NOW, &mut up);
    assert_eq!(first.reply.status().as_u16(), 200);
    assert_eq!(first.token_cache, Some("miss"));
    assert_eq!(i.checks(), 1);
    let second = i.get(&token, &cfg, NOW + 1, &mut up);
    assert_eq!(second.reply.status().as_u16(), 200);
    assert_eq!(second.token_cache, Some("hit"));
    assert_eq!(i.checks(), 1, "a hit must not verify again");
    // The permission rules still run on a hit: a configuration that requires another
    // permission refuses the cached token.
    let strict = config(&[("WACHT_REQUIRED_PERMISSIONS", "deployment:admin")]);
    let third = i.get(&token, &strict, NOW + 2, &mut up);
    assert_eq!(status_code(&third), (403, "forbidden".into()));
    assert_eq!(third.token_cache, Some("hit"));
    // A tampered copy is another token: verified, and refused.
    let mut parts: Vec<&str> = token.split('.').collect();
    let other = serde_json::to_vec(&json!({"sub": "1", "iss": FRONTEND, "exp": NOW + 35})).unwrap();
    let other = wacht_standin::tokens::b64url(&other);
    parts[1] = &other;
    let tampered = parts.join(".");
    let fourth = i.get(&tampered, &cfg, NOW + 3, &mut up);
    assert_eq!(status_code(&fourth), (401, "invalid_token".into()));
    assert_eq!(i.checks(), 2);
}

#[test]
fn a_cached_token_expires_at_exp_plus_skew() {
    let key = TestKey::es256(1);
    let mut up = wacht(vec![key.public_jwk()]);
    let cfg = config(&[]);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut i = Instance::new();
    assert_eq!(
        i.get(&token, &cfg, NOW, &mut up).reply.status().as_u16(),
        200
    );
    // exp = NOW + 35, skew 5 s: a hit at NOW + 39, refused from NOW + 40.
    let late = i.get(&token, &cfg, NOW + 39, &mut up);
    assert_eq!(
        (late.reply.status().as_u16(), late.token_cache),
        (200, Some("hit"))
    );
    let expired = i.get(&token, &cfg, NOW + 40, &mut up);
    assert_eq!(status_code(&expired), (401, "invalid_token".into()));
    assert_eq!(expired.token_cache, Some("miss"));
    assert!(i.tokens.is_empty());
}

#[test]
fn a_key_removed_from_the_jwks_ends_its_cached_tokens() {
    let old = TestKey::es256(1);
    let new = TestKey::es256(2);
    let mut up = jwks_once_then(old.public_jwk(), || {
        ok(
            200,
            &json!({ "keys": [TestKey::es256(2).public_jwk()] }).to_string(),
        )
    });
    let cfg = config(&[]);
    let mut claims = session_claims(FRONTEND, NOW);
    claims["exp"] = json!(NOW + 3 * TTL_SECS);
    let token = old.token(&claims);
    let mut i = Instance::new();
    assert_eq!(
        i.get(&token, &cfg, NOW, &mut up).reply.status().as_u16(),
        200
    );
    assert_eq!(
        i.get(&token, &cfg, NOW + 1, &mut up).token_cache,
        Some("hit")
    );
    // Past the TTL the set is fetched again, and the old key is gone from it.
    let after = i.get(&token, &cfg, NOW + TTL_SECS, &mut up);
    assert_eq!(status_code(&after), (401, "invalid_token".into()));
    assert_eq!(after.token_cache, Some("miss"));
    let fresh = new.token(&claims);
    assert_eq!(
        i.get(&fresh, &cfg, NOW + TTL_SECS + 1, &mut up)
            .reply
            .status(),
        200
    );
}

#[test]
fn token_cache_size_zero_verifies_every_request() {
    let key = TestKey::es256(1);
    let mut up = wacht(vec![key.public_jwk()]);
    let cfg = config(&[("WACHT_TOKEN_CACHE_SIZE", "0")]);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut i = Instance::new();
    for n in 1..=3 {
        let o = i.get(&token, &cfg, NOW, &mut up);
        assert_eq!((o.reply.status().as_u16(), o.token_cache), (200, None));
        assert_eq!(i.checks(), n);
    }
    assert!(i.tokens.is_empty());
}

#[test]
fn an_inline_jwks_caches_tokens_too() {
    let key = TestKey::es256(1);
    let doc = json!({ "keys": [key.public_jwk()] }).to_string();
    let mut up = wacht(vec![]);
    let cfg = config(&[("WACHT_JWKS", &doc)]);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut i = Instance::new();
    // The inline set was imported by the config's verifier, not the counting one.
    assert_eq!(i.get(&token, &cfg, NOW, &mut up).token_cache, Some("miss"));
    assert_eq!(i.get(&token, &cfg, NOW, &mut up).token_cache, Some("hit"));
    assert!(up.sent.iter().all(|s| s.service != Service::Jwks));
}

#[test]
fn a_jwt_shaped_bearer_with_a_broken_header_never_reaches_the_gateway() {
    let key = TestKey::es256(1);
    let cfg = config(&[]);
    let payload = wacht_standin::tokens::b64url(br#"{"sub":"1"}"#);
    for header in [
        &br#"{"alg":"ES256","kid":"\ud800"}"#[..],
        format!(
            r#"{{"alg":"ES256","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        )
        .as_bytes(),
        br#"{"alg":"ES256","alg":"ES256"}"#,
    ] {
        let mut up = wacht(vec![key.public_jwk()]);
        let token = format!("{}.{payload}.c2ln", wacht_standin::tokens::b64url(header));
        let o = once(
            "/admin/users",
            &[("authorization", &format!("Bearer {token}"))],
            &cfg,
            &mut up,
        );
        assert_eq!(status_code(&o), (401, "invalid_token".into()), "{header:?}");
        assert_eq!(o.credential, Some("session"));
        assert!(up.sent.is_empty(), "{:?}", up.sent);
    }
}

/// One request with any method, a fresh instance's state.
fn with_method(
    method: Method,
    hdrs: &[(&str, &str)],
    cfg: &Result<Config, ConfigError>,
    up: &mut Fake,
) -> Outcome {
    let h = headers(hdrs);
    let req = Incoming {
        method: &method,
        target: "/admin/users",
        headers: &h,
    };
    handle(
        &req,
        Context {
            config: cfg,
            now: NOW,
            jwks: &mut JwksCache::default(),
            tokens: &mut TokenCache::default(),
            verifier: &Portable,
            upstream: up,
        },
    )
}

const DASHBOARD: &str = "https://admin.example.com";

#[test]
fn cors_is_off_unless_origins_are_listed() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let cfg = config(&[]);
    let mut up = wacht(vec![key.public_jwk()]);
    let preflight = [
        ("origin", DASHBOARD),
        ("access-control-request-method", "GET"),
    ];
    let o = with_method(Method::OPTIONS, &preflight, &cfg, &mut up);
    assert_eq!(status_code(&o), (405, "method_not_allowed".into()));
    let auth = bearer(&token);
    let o = with_method(
        Method::GET,
        &[("origin", DASHBOARD), ("authorization", &auth)],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status(), 200);
    assert!(header(&o.reply, "access-control-allow-origin").is_none());
    assert!(header(&o.reply, "vary").is_none());
}

#[test]
fn cors_for_a_listed_origin() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let cfg = config(&[(
        "WACHT_CORS_ORIGINS",
        "http://localhost:3000, https://admin.example.com",
    )]);
    let mut up = wacht(vec![key.public_jwk()]);
    let o = with_method(
        Method::OPTIONS,
        &[
            ("origin", DASHBOARD),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status(), 204);
    assert_eq!(
        header(&o.reply, "access-control-allow-origin"),
        Some(DASHBOARD)
    );
    assert_eq!(
        header(&o.reply, "access-control-allow-methods"),
        Some("GET")
    );
    assert_eq!(
        header(&o.reply, "access-control-allow-headers"),
        Some("authorization, x-api-key")
    );
    assert!(up.sent.is_empty(), "a preflight calls nothing upstream");
    // The answer and the errors are readable by the dashboard.
    let auth = bearer(&token);
    for (hdrs, status) in [
        (
            vec![("origin", DASHBOARD), ("authorization", auth.as_str())],
            200,
        ),
        (vec![("origin", DASHBOARD)], 401),
        (
            vec![
                ("origin", DASHBOARD),
                ("authorization", "Bearer eyJhbGciOiJFUzI1NiJ9.e30.c2ln"),
            ],
            401,
        ),
    ] {
        let o = with_method(Method::GET, &hdrs, &cfg, &mut up);
        assert_eq!(o.reply.status(), status);
        assert_eq!(
            header(&o.reply, "access-control-allow-origin"),
            Some(DASHBOARD)
        );
        assert_eq!(header(&o.reply, "vary"), Some("origin"));
        assert!(header(&o.reply, "access-control-allow-credentials").is_none());
    }
}

#[test]
fn cors_for_an_unlisted_origin() {
    let cfg = config(&[("WACHT_CORS_ORIGINS", DASHBOARD)]);
    let mut up = wacht(vec![]);
    let evil = "https://admin.example.com.evil.test";
    let o = with_method(
        Method::OPTIONS,
        &[("origin", evil), ("access-control-request-method", "GET")],
        &cfg,
        &mut up,
    );
    assert_eq!(status_code(&o), (403, "origin_not_allowed".into()));
    assert!(header(&o.reply, "access-control-allow-origin").is_none());
    let o = with_method(Method::GET, &[("origin", evil)], &cfg, &mut up);
    assert_eq!(status_code(&o), (401, "missing_credentials".into()));
    assert!(header(&o.reply, "access-control-allow-origin").is_none());
    assert!(up.sent.is_empty());
}

#[path = "handler_proptests.rs"]
mod proptests;
