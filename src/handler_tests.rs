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
/// This deployment, as `WACHT_DEPLOYMENT_ID` and the gateway's `identity.deployment_id`.
const DEPLOYMENT: &str = "1900000000000000100";
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
        age: None,
    })
}

/// A JWKS of `jwk` with `Age: age`, as a CDN or the native host's shared cache sends it.
fn aged_jwks(jwk: &Value, age: &str) -> Result<OutResponse, TransportError> {
    Ok(OutResponse {
        age: Some(age.as_bytes().to_vec()),
        ..ok(200, &json!({ "keys": [jwk] }).to_string())?
    })
}

/// A frontend API that serves the scripted JWKS answers in turn (the last one from then on).
fn jwks_answers(answers: Vec<Result<OutResponse, TransportError>>) -> Fake {
    let mut answers = std::collections::VecDeque::from(answers);
    Fake {
        sent: vec![],
        script: Box::new(move |s| match s.service {
            Service::Jwks if answers.len() > 1 => answers.pop_front().unwrap(),
            Service::Jwks => answers.front().unwrap().clone(),
            _ => ok(200, PAGE),
        }),
    }
}

fn jwks_fetches(up: &Fake) -> usize {
    up.sent
        .iter()
        .filter(|s| s.service == Service::Jwks)
        .count()
}

/// A Wacht that answers every service normally.
fn wacht(keys: Vec<Value>) -> Fake {
    let jwks_doc = json!({ "keys": keys }).to_string();
    Fake {
        sent: vec![],
        script: Box::new(move |s| match s.service {
            Service::Jwks => ok(200, &jwks_doc),
            Service::Backend => ok(200, PAGE),
            Service::Gateway => ok(200, &grant(identity())),
        }),
    }
}

/// An API key's `identity` in this deployment, as the gateway writes it.
fn identity() -> Value {
    json!({"key_id":"9","deployment_id":DEPLOYMENT,"app_slug":"dashboard","key_name":"ci",
           "owner_user_id":"5","organization_id":"7","workspace_id":"8",
           "organization_membership_id":null,"workspace_membership_id":null})
}

/// The gateway's `allowed: true` answer for a credential owned by `identity`.
fn grant(identity: Value) -> String {
    json!({"request_id":"req_42","allowed":true,"reason":null,"blocked_rule":null,"identity":identity,
           "permissions":["user:read"],"metadata":{},"rate_limits":[],"retry_after":null,"headers":{}})
    .to_string()
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
    let mut vars = vec![
        ("WACHT_API_KEY", API_KEY),
        ("WACHT_PUBLISHABLE_KEY", PK),
        ("WACHT_DEPLOYMENT_ID", DEPLOYMENT),
    ];
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
            trace: &trace(&h),
        },
    )
}

/// The request's ids, from fixed random bytes: tests can name them.
fn trace(headers: &HeaderMap) -> crate::trace::Trace {
    crate::trace::Trace::from_headers(headers, &[7; crate::trace::RANDOM_BYTES])
}

/// The request id a request without `X-Request-Id` gets here.
const REQUEST_ID: &str = "07070707070707070707070707070707";

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
    assert_eq!(o.log.credential, Some("session"));
    assert_eq!(o.log.upstream_status, Some(200));

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
    assert_eq!(o.log.credential, Some("api_key"));
    assert_eq!(o.log.gateway_request_id.as_deref(), Some("req_42"));
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
        let (o, sent) = machine_with(&cfg, answer);
        assert_eq!(status_code(&o), (status, code.to_string()));
        assert_eq!(sent.len(), 1, "no backend call after a denial");
        if status == 429 {
            assert_eq!(header(&o.reply, "retry-after"), Some("3"));
        }
    }
}

/// One machine-credential request against a gateway that answers `answer`.
fn machine(cfg: &Result<Config, ConfigError>, answer: String) -> (Outcome, Vec<Sent>) {
    machine_with(cfg, ok(200, &answer))
}

/// One API-key request against a gateway whose one answer is `answer` (a status and body, or a
/// transport failure); every other service answers normally.
fn machine_with(
    cfg: &Result<Config, ConfigError>,
    answer: Result<OutResponse, TransportError>,
) -> (Outcome, Vec<Sent>) {
    let mut answer = Some(answer);
    let mut up = Fake {
        sent: vec![],
        script: Box::new(move |s| match s.service {
            Service::Gateway => answer.take().unwrap_or(Err(TransportError::Failed)),
            _ => ok(200, PAGE),
        }),
    };
    let o = once("/admin/users", &[("x-api-key", "ak_1")], cfg, &mut up);
    (o, up.sent)
}

#[test]
fn a_grant_for_another_deployment_is_not_ours() {
    let cfg = config(&[]);
    let mut foreign = identity();
    foreign["deployment_id"] = json!("1900000000000000999");
    let (o, sent) = machine(&cfg, grant(foreign));
    assert_eq!(status_code(&o), (401, "invalid_credentials".into()));
    assert!(header(&o.reply, "www-authenticate").is_some());
    assert_eq!(sent.len(), 1, "our users are never fetched for it");
    assert_eq!(o.log.gateway_request_id.as_deref(), Some("req_42"));
    let line = o.log_line(LogFormat::Text, "GET", "/admin/users", 0);
    assert!(
        line.contains("error=invalid_credentials credential=api_key")
            && line.contains("key_id=9 app_slug=dashboard deployment_id=1900000000000000999"),
        "the other deployment is logged: {line}"
    );
    assert!(!line.contains("ak_1"), "{line}");
    // An answer that names no owner is no grant either.
    for identity in [json!(null), json!({}), json!({"key_id":"9"})] {
        let (o, sent) = machine(&cfg, grant(identity.clone()));
        assert_eq!(
            status_code(&o),
            (401, "invalid_credentials".into()),
            "{identity}"
        );
        assert_eq!(sent.len(), 1);
    }
    // Ours: granted, and the audit trail names the key.
    let (o, sent) = machine(&cfg, grant(identity()));
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(sent.len(), 2);
    let line = o.log_line(LogFormat::Text, "GET", "/admin/users", 0);
    assert!(
        line.contains("error=- credential=api_key")
            && line.contains(&format!(
                "key_id=9 app_slug=dashboard deployment_id={DEPLOYMENT}"
            )),
        "{line}"
    );
}

#[test]
fn machine_credentials_need_the_deployment_id() {
    let cfg = Config::from_vars(
        [("WACHT_API_KEY", API_KEY), ("WACHT_PUBLISHABLE_KEY", PK)],
        &Portable,
    );
    let (o, sent) = machine(&cfg, grant(identity()));
    assert_eq!(status_code(&o), (500, "configuration_error".into()));
    assert!(String::from_utf8_lossy(o.reply.body()).contains("WACHT_DEPLOYMENT_ID"));
    assert!(sent.is_empty(), "the credential is not sent anywhere");
    // Session-token deployments need nothing new.
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &cfg,
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
}

/// Extra `WACHT_*` settings of a test case.
type Vars<'a> = &'a [(&'a str, &'a str)];

#[test]
fn machine_grants_are_narrowed_by_app_organization_and_workspace() {
    // (settings, the credential's identity, granted; a refusal is a 403 forbidden)
    let cases: [(Vars<'_>, Value, bool); 7] = [
        (&[("WACHT_GATEWAY_APPS", "dashboard,ops")], identity(), true),
        (&[("WACHT_GATEWAY_APPS", "ops")], identity(), false),
        (&[("WACHT_REQUIRED_ORGANIZATION", "7")], identity(), true),
        (&[("WACHT_REQUIRED_ORGANIZATION", "70")], identity(), false),
        (&[("WACHT_REQUIRED_WORKSPACE", "80")], identity(), false),
        // An OAuth token's identity names no organization: it cannot meet a required one.
        (
            &[("WACHT_REQUIRED_ORGANIZATION", "7")],
            json!({"key_id":"3","deployment_id":DEPLOYMENT,"app_slug":"dashboard","key_name":"client",
                   "organization_id":null,"workspace_id":null}),
            false,
        ),
        (
            &[],
            json!({"deployment_id":DEPLOYMENT,"app_slug":null}),
            true,
        ),
    ];
    for (extra, identity, granted) in cases {
        let (o, sent) = machine(&config(extra), grant(identity.clone()));
        if granted {
            assert_eq!(o.reply.status().as_u16(), 200, "{extra:?} {identity}");
        } else {
            assert_eq!(
                status_code(&o),
                (403, "forbidden".into()),
                "{extra:?} {identity}"
            );
        }
        assert_eq!(sent.len(), if granted { 2 } else { 1 });
    }
}

#[test]
fn dotted_bearer_values_never_reach_the_gateway() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    for value in [
        format!("{token}="),
        format!("{token}."),
        format!("{token}=="),
        token.replacen('.', "+/.", 1),
        "a.b".to_string(),
        "oat_x.y".to_string(),
    ] {
        let mut up = wacht(vec![key.public_jwk()]);
        let o = once(
            "/admin/users",
            &[("authorization", &bearer(&value))],
            &config(&[]),
            &mut up,
        );
        assert_eq!(status_code(&o), (401, "invalid_token".into()), "{value}");
        assert_eq!(o.log.credential, Some("session"));
        assert!(
            up.sent.iter().all(|s| s.service != Service::Gateway),
            "{value}"
        );
    }
    // A session token pasted into x-api-key is refused, not sent as a key.
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users",
        &[("x-api-key", &token)],
        &config(&[]),
        &mut up,
    );
    assert_eq!(status_code(&o), (401, "invalid_credentials".into()));
    assert!(up.sent.is_empty());
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
                _ => ok(200, &grant(identity())),
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
        format!(
            "wacht-admin v=1 request_id={REQUEST_ID} trace_id={REQUEST_ID} method=GET path=/admin/users \
             status=200 error=- credential=session sub=1234567890 sid=sess_1234567890 organization=42 \
             workspace=7 key_id=- app_slug=- deployment_id=- gateway_request_id=- upstream_status=200 \
             token_cache=miss duration_ms=12.3"
        )
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
            "msg": "wacht-admin", "v": 1, "request_id": REQUEST_ID, "trace_id": REQUEST_ID,
            "method": "GET", "path": "/admin/users", "status": 200, "error": null,
            "credential": "session", "sub": "1234567890", "sid": "sess_1234567890",
            "organization": "42", "workspace": "7", "key_id": null, "app_slug": null,
            "deployment_id": null, "gateway_request_id": null, "upstream_status": 200,
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
    let (o, _) = machine(
        &config(&[]),
        format!(
            r#"{{"request_id":"r1\nwacht-admin forged=1","allowed":true,"identity":{}}}"#,
            identity()
        ),
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
    // Nor can the deployment id a foreign credential's answer names.
    let mut forged = identity();
    forged["deployment_id"] = json!("1\nwacht-admin forged=1");
    let (o, _) = machine(&config(&[]), grant(forged));
    assert_eq!(o.reply.status().as_u16(), 401);
    let line = o.log_line(LogFormat::Text, "GET", "/admin/users", 0);
    assert!(
        line.contains("deployment_id=1?wacht-admin?forged=1"),
        "{line}"
    );
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
    assert_eq!(first.log.token_cache, Some("miss"));
    assert_eq!(i.checks(), 1);
    let second = i.get(&token, &cfg, NOW + 1, &mut up);
    assert_eq!(second.reply.status().as_u16(), 200);
    assert_eq!(second.log.token_cache, Some("hit"));
    assert_eq!(i.checks(), 1, "a hit must not verify again");
    // The permission rules still run on a hit: a configuration that requires another
    // permission refuses the cached token.
    let strict = config(&[("WACHT_REQUIRED_PERMISSIONS", "deployment:admin")]);
    let third = i.get(&token, &strict, NOW + 2, &mut up);
    assert_eq!(status_code(&third), (403, "forbidden".into()));
    assert_eq!(third.log.token_cache, Some("hit"));
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
        (late.reply.status().as_u16(), late.log.token_cache),
        (200, Some("hit"))
    );
    let expired = i.get(&token, &cfg, NOW + 40, &mut up);
    assert_eq!(status_code(&expired), (401, "invalid_token".into()));
    assert_eq!(expired.log.token_cache, Some("miss"));
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
        i.get(&token, &cfg, NOW + 1, &mut up).log.token_cache,
        Some("hit")
    );
    // Past the TTL the set is fetched again, and the old key is gone from it.
    let after = i.get(&token, &cfg, NOW + TTL_SECS, &mut up);
    assert_eq!(status_code(&after), (401, "invalid_token".into()));
    assert_eq!(after.log.token_cache, Some("miss"));
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
        assert_eq!((o.reply.status().as_u16(), o.log.token_cache), (200, None));
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
    assert_eq!(
        i.get(&token, &cfg, NOW, &mut up).log.token_cache,
        Some("miss")
    );
    assert_eq!(
        i.get(&token, &cfg, NOW, &mut up).log.token_cache,
        Some("hit")
    );
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
        assert_eq!(o.log.credential, Some("session"));
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
            trace: &trace(&h),
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
        Some("authorization, x-api-key, x-request-id, traceparent, tracestate")
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

/// One session request at `t` on a long-lived JWKS cache: its status.
fn status_at(
    key: &TestKey,
    t: u64,
    cfg: &Result<Config, ConfigError>,
    cache: &mut JwksCache,
    up: &mut Fake,
) -> u16 {
    let token = key.token(&session_claims(FRONTEND, t));
    let hdrs = [("authorization", bearer(&token))];
    let hdrs: Vec<(&str, &str)> = hdrs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    run("/admin/users", &hdrs, cfg, t, cache, up)
        .reply
        .status()
        .as_u16()
}

#[test]
fn a_removed_key_stops_verifying_within_the_ttl_counted_from_the_answers_age() {
    let (old, new) = (TestKey::es256(1), TestKey::es256(2));
    let cfg = config(&[]);
    let mut cache = JwksCache::default();
    // The first answer was already 500 s old (a cache in front); then the key is gone.
    let mut up = jwks_answers(vec![
        aged_jwks(&old.public_jwk(), "500"),
        aged_jwks(&new.public_jwk(), "0"),
    ]);
    assert_eq!(status_at(&old, NOW, &cfg, &mut cache, &mut up), 200);
    let expiry = NOW + TTL_SECS - 500;
    assert_eq!(status_at(&old, expiry - 1, &cfg, &mut cache, &mut up), 200);
    assert_eq!(
        jwks_fetches(&up),
        1,
        "fresh until 600 s after the answer was made"
    );
    assert_eq!(status_at(&old, expiry, &cfg, &mut cache, &mut up), 401);
    assert_eq!(jwks_fetches(&up), 2);
    assert_eq!(status_at(&new, expiry + 1, &cfg, &mut cache, &mut up), 200);
    // The new answer had no age: fresh for the whole TTL from its fetch.
    assert_eq!(
        status_at(&new, expiry + TTL_SECS - 1, &cfg, &mut cache, &mut up),
        200
    );
    assert_eq!(jwks_fetches(&up), 2);
}

#[test]
fn the_stale_bound_counts_the_answers_age() {
    let key = TestKey::es256(1);
    let cfg = config(&[]);
    let mut cache = JwksCache::default();
    let mut up = jwks_answers(vec![aged_jwks(&key.public_jwk(), "3000"), ok(500, "down")]);
    assert_eq!(status_at(&key, NOW, &cfg, &mut cache, &mut up), 200);
    // Past its TTL at once, so refetched (and failing) at every chance; it serves meanwhile.
    let bound = NOW + MAX_STALE_SECS - 3000;
    assert_eq!(status_at(&key, bound - 1, &cfg, &mut cache, &mut up), 200);
    assert_eq!(jwks_fetches(&up), 2);
    assert_eq!(
        status_at(&key, bound, &cfg, &mut cache, &mut up),
        503,
        "an hour after the answer was made, not after it reached us"
    );
}

#[test]
fn an_answer_too_old_or_with_an_invalid_age_is_a_failed_fetch() {
    let (old, new) = (TestKey::es256(1), TestKey::es256(2));
    let cfg = config(&[]);
    for age in ["3600", "99999999999999999999999", "-1", "1.5", "soon", ""] {
        // No set yet: the request fails like any failed fetch, and the keys are not used.
        let mut up = jwks_answers(vec![aged_jwks(&old.public_jwk(), age)]);
        let token = old.token(&session_claims(FRONTEND, NOW));
        let o = once(
            "/admin/users",
            &[("authorization", &bearer(&token))],
            &cfg,
            &mut up,
        );
        assert_eq!(
            status_code(&o),
            (502, "upstream_error".into()),
            "Age {age:?}"
        );
        assert!(String::from_utf8_lossy(o.reply.body()).contains("Age"));
        assert!(up.sent.iter().all(|s| s.service != Service::Backend));

        // A good set: kept (and so its key) until its own bounds, as after a failed fetch.
        let mut cache = JwksCache::default();
        let mut up = jwks_answers(vec![
            aged_jwks(&old.public_jwk(), "0"),
            aged_jwks(&new.public_jwk(), age),
        ]);
        assert_eq!(status_at(&old, NOW, &cfg, &mut cache, &mut up), 200);
        assert_eq!(
            status_at(&old, NOW + TTL_SECS, &cfg, &mut cache, &mut up),
            200
        );
        assert_eq!(
            status_at(&new, NOW + TTL_SECS + 1, &cfg, &mut cache, &mut up),
            401
        );
        assert_eq!(
            jwks_fetches(&up),
            2,
            "the refused answer counts as an attempt"
        );
    }
}

#[test]
fn every_answer_and_upstream_call_carries_the_request_id_and_trace() {
    let key = TestKey::es256(1);
    let token = key.token(&session_claims(FRONTEND, NOW));
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users",
        &[
            ("authorization", &bearer(&token)),
            ("x-request-id", "dash-123"),
            ("traceparent", parent),
            ("tracestate", "vendor=x"),
        ],
        &config(&[]),
        &mut up,
    );
    assert_eq!(o.reply.status().as_u16(), 200);
    assert_eq!(header(&o.reply, "x-request-id"), Some("dash-123"));
    assert_eq!(o.log.request_id, "dash-123");
    assert_eq!(o.log.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(up.sent.len(), 2, "JWKS and users");
    for sent in &up.sent {
        let h = |name: &str| {
            sent.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("x-request-id"), Some("dash-123"), "{:?}", sent.service);
        assert_eq!(
            h("traceparent"),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-0707070707070707-01"),
            "the caller's trace, our span"
        );
        assert_eq!(h("tracestate"), Some("vendor=x"));
    }

    // An error: the id in the header and the body; a fresh id when the caller's is unusable.
    let mut up = wacht(vec![]);
    let o = once(
        "/admin/users",
        &[("x-request-id", "not valid!")],
        &config(&[]),
        &mut up,
    );
    assert_eq!(status_code(&o), (401, "missing_credentials".into()));
    assert_eq!(header(&o.reply, "x-request-id"), Some(REQUEST_ID));
    let body: Value = serde_json::from_slice(o.reply.body()).unwrap();
    assert_eq!(body["request_id"], REQUEST_ID);
    assert_eq!(o.log.error, Some("missing_credentials"));
    // A configuration error and a 404 too.
    for (cfg, target, code) in [
        (
            Config::from_vars([("WACHT_CLOCK_SKEW_SECS", "x")], &Portable),
            "/admin/users",
            "configuration_error",
        ),
        (config(&[]), "/nope", "not_found"),
    ] {
        let o = once(target, &[], &cfg, &mut wacht(vec![]));
        assert_eq!(header(&o.reply, "x-request-id"), Some(REQUEST_ID), "{code}");
        let body: Value = serde_json::from_slice(o.reply.body()).unwrap();
        assert_eq!(
            (body["error"].as_str(), body["request_id"].as_str()),
            (Some(code), Some(REQUEST_ID))
        );
        assert_eq!(o.log.error, Some(code));
    }
}

#[test]
fn the_audit_trail_names_who_was_denied() {
    let key = TestKey::es256(1);
    let mut claims = session_claims(FRONTEND, NOW);
    claims["permissions"] = json!({"organization": [], "workspace": []});
    let token = key.token(&claims);
    let mut up = wacht(vec![key.public_jwk()]);
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&token))],
        &config(&[]),
        &mut up,
    );
    assert_eq!(status_code(&o), (403, "forbidden".into()));
    let line = o.log_line(LogFormat::Text, "GET", "/admin/users", 0);
    assert!(
        line.contains("error=forbidden credential=session sub=1234567890 sid=sess_1234567890 organization=42 workspace=7"),
        "{line}"
    );
    // A token that did not verify names nobody: its claims are the caller's word.
    let forged = TestKey::es256(2).token(&session_claims(FRONTEND, NOW));
    let o = once(
        "/admin/users",
        &[("authorization", &bearer(&forged))],
        &config(&[]),
        &mut wacht(vec![key.public_jwk()]),
    );
    assert_eq!(status_code(&o), (401, "invalid_token".into()));
    assert_eq!(o.log.principal, None);
}

#[path = "handler_proptests.rs"]
mod proptests;
