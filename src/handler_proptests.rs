//! Property: the verified-token cache is invisible. Two instances see the same generated
//! sequence of requests (valid, expired, not-yet-valid, tampered, foreign-key tokens), clock
//! steps and JWKS answers (rotations, removed keys, failures); the one with the cache on must
//! give every request the decision (status, error code) and make the upstream calls that the
//! one with `WACHT_TOKEN_CACHE_SIZE=0` does.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};
use serde_json::{Value, json};
use wacht_standin::tokens::{
    TestKey, b64url, jwks, session_claims, with_flipped_signature_bit, with_payload,
};

use super::{FRONTEND, Fake, NOW, PAGE, config, ok, run_with};
use crate::config::{Config, ConfigError};
use crate::jwks_cache::{JwksCache, MAX_STALE_SECS, REFETCH_INTERVAL_SECS, TTL_SECS};
use crate::signature::Portable;
use crate::token_cache::TokenCache;
use crate::upstream::{Service, TransportError};

/// Tokens and JWKS documents, signed once for every case (signing is the slow part).
struct Pool {
    tokens: Vec<(&'static str, String)>,
    docs: Vec<(&'static str, String)>,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| {
    let k1 = TestKey::es256(1);
    let k2 = TestKey::es256(2);
    let k1a = TestKey::es256(1).with_kid("a");
    let k2b = TestKey::es256(2).with_kid("b");
    // The kid `a` moved to another key.
    let k2a = TestKey::es256(2).with_kid("a");
    let k3 = TestKey::es384(3);
    let foreign = TestKey::es256(9);
    let foreign_kid = TestKey::es256(9).with_kid("z");

    let claims = |edit: &dyn Fn(&mut Value)| {
        let mut c = session_claims(FRONTEND, NOW);
        c["exp"] = json!(NOW + 100_000);
        edit(&mut c);
        c
    };
    let long = claims(&|_| {});
    // Expired 35 s, 700 s and 4,000 s in: before, between and after the JWKS TTL and staleness.
    let short = claims(&|c| c["exp"] = json!(NOW + 35));
    let medium = claims(&|c| c["exp"] = json!(NOW + 700));
    let hour = claims(&|c| c["exp"] = json!(NOW + 4_000));
    let not_yet = claims(&|c| c["nbf"] = json!(NOW + 60));
    let fractional = claims(&|c| {
        c["exp"] = json!(NOW as f64 + 40.5);
        c["nbf"] = json!(NOW as f64 + 10.5);
    });
    let no_permission = claims(&|c| c["permissions"]["organization"] = json!(["user:read"]));
    let workspace = claims(&|c| {
        c["permissions"] = json!({"organization": [], "workspace": ["deployment:read"]});
    });
    let other_issuer = claims(&|c| c["iss"] = json!("https://other.example.com"));
    let upgraded = claims(&|c| c["sub"] = json!("1"));

    let k1_long = k1.token(&long);
    let tokens = vec![
        ("k1 valid", k1_long.clone()),
        ("k1 exp +35s", k1.token(&short)),
        ("k1 exp +700s", k1.token(&medium)),
        ("k1 exp +4000s", k1.token(&hour)),
        ("k1 nbf +60s", k1.token(&not_yet)),
        ("k1 fractional nbf/exp", k1.token(&fractional)),
        ("k1 valid, without the permission", k1.token(&no_permission)),
        ("k1 valid, workspace permission", k1.token(&workspace)),
        ("k1 other issuer", k1.token(&other_issuer)),
        ("k2 valid", k2.token(&long)),
        ("k1 kid a valid", k1a.token(&long)),
        ("k1 kid a exp +35s", k1a.token(&short)),
        ("k2 kid b valid", k2b.token(&long)),
        ("k2 kid a valid", k2a.token(&long)),
        ("k3 ES384 valid", k3.token(&long)),
        ("k1 payload tampered", with_payload(&k1_long, &upgraded)),
        (
            "k1 signature bit flipped",
            with_flipped_signature_bit(&k1_long),
        ),
        ("foreign key", foreign.token(&long)),
        ("foreign key kid z", foreign_kid.token(&long)),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"none"}"#),
                b64url(long.to_string().as_bytes())
            ),
        ),
    ];
    let doc = |keys: &[&TestKey]| jwks(keys).to_string();
    let docs = vec![
        ("[k1]", doc(&[&k1])),
        ("[k2]", doc(&[&k2])),
        ("[k1, k2]", doc(&[&k1, &k2])),
        ("[k1 kid a, k2 kid b]", doc(&[&k1a, &k2b])),
        ("[k1 kid a]", doc(&[&k1a])),
        ("[k2 kid a]", doc(&[&k2a])),
        ("[k1, k3]", doc(&[&k1, &k3])),
        // The same keys as `[k1]`, another document: another set for the cache.
        ("[k1] reformatted", format!(" {}", doc(&[&k1]))),
        ("not JSON", "{".to_string()),
    ];
    Pool { tokens, docs }
});

/// What the frontend API answers to a JWKS fetch, from now on.
#[derive(Clone, Copy)]
enum Answer {
    Doc(usize),
    Status(u16),
    Unreachable,
}

impl fmt::Debug for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Doc(i) => write!(f, "Doc({})", POOL.docs[*i].0),
            Answer::Status(s) => write!(f, "Status({s})"),
            Answer::Unreachable => f.write_str("Unreachable"),
        }
    }
}

#[derive(Clone)]
enum Op {
    Request(usize),
    Advance(u64),
    Serve(Answer),
}

impl fmt::Debug for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Request(i) => write!(f, "Request({})", POOL.tokens[*i].0),
            Op::Advance(s) => write!(f, "Advance({s})"),
            Op::Serve(a) => write!(f, "Serve({a:?})"),
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    /// `WACHT_TOKEN_CACHE_SIZE` of the cached instance: small sizes evict.
    capacity: usize,
    skew: u64,
    /// `WACHT_JWKS` (a document of the pool) instead of fetching.
    inline: Option<usize>,
    first: Answer,
    ops: Vec<Op>,
}

fn answer() -> impl Strategy<Value = Answer> {
    prop_oneof![
        6 => (0..POOL.docs.len()).prop_map(Answer::Doc),
        1 => prop_oneof![Just(500u16), Just(404)].prop_map(Answer::Status),
        1 => Just(Answer::Unreachable),
    ]
}

/// `working`: the tokens this case sends (a few sessions, so that tokens come back).
fn op(working: Vec<usize>) -> impl Strategy<Value = Op> {
    let step = prop_oneof![
        4 => 0..=45u64,
        1 => Just(REFETCH_INTERVAL_SECS),
        2 => Just(TTL_SECS),
        1 => Just(MAX_STALE_SECS),
        1 => 0..=5_000u64,
    ];
    prop_oneof![
        8 => prop::sample::select(working).prop_map(Op::Request),
        3 => step.prop_map(Op::Advance),
        2 => answer().prop_map(Op::Serve),
    ]
}

/// A token of the pool, the ones a key set can accept twice as often.
fn token() -> impl Strategy<Value = usize> {
    let valid: Vec<usize> = (0..POOL.tokens.len())
        .filter(|&i| POOL.tokens[i].0.contains("valid"))
        .collect();
    prop_oneof![
        2 => prop::sample::select(valid),
        1 => 0..POOL.tokens.len(),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    // Inline sets are the valid documents only: an invalid one fails every request alike.
    let valid_docs = POOL.docs.len() - 1;
    (
        prop_oneof![1..=3usize, Just(1024)],
        prop_oneof![Just(0u64), Just(5), Just(60)],
        prop_oneof![3 => Just(None), 1 => (0..valid_docs).prop_map(Some)],
        answer(),
        prop::collection::vec(token(), 1..=4)
            .prop_flat_map(|working| prop::collection::vec(op(working), 1..40)),
    )
        .prop_map(|(capacity, skew, inline, first, ops)| Case {
            capacity,
            skew,
            inline,
            first,
            ops,
        })
}

/// What a request came to, as a caller and the upstream services see it.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    status: u16,
    error: Option<String>,
    calls: Vec<Service>,
}

/// One instance: its configuration, caches and upstream (which serves the shared `answer`).
struct Instance {
    config: Result<Config, ConfigError>,
    jwks: JwksCache,
    tokens: TokenCache,
    upstream: Fake,
}

impl Instance {
    fn new(case: &Case, cache_size: usize, answer: Rc<Cell<Answer>>) -> Instance {
        let size = cache_size.to_string();
        let skew = case.skew.to_string();
        let mut vars = vec![
            ("WACHT_TOKEN_CACHE_SIZE", size.as_str()),
            ("WACHT_CLOCK_SKEW_SECS", skew.as_str()),
        ];
        if let Some(doc) = case.inline {
            vars.push(("WACHT_JWKS", POOL.docs[doc].1.as_str()));
        }
        let upstream = Fake {
            sent: vec![],
            script: Box::new(move |s| match (s.service, answer.get()) {
                (Service::Jwks, Answer::Doc(i)) => ok(200, &POOL.docs[i].1),
                (Service::Jwks, Answer::Status(status)) => ok(status, "{}"),
                (Service::Jwks, Answer::Unreachable) => Err(TransportError::Unreachable),
                _ => ok(200, PAGE),
            }),
        };
        Instance {
            config: config(&vars),
            jwks: JwksCache::default(),
            tokens: TokenCache::default(),
            upstream,
        }
    }

    /// The decision, and whether the token cache hit.
    fn request(&mut self, token: &str, now: u64) -> (Decision, bool) {
        let auth = format!("Bearer {token}");
        let o = run_with(
            "/admin/users",
            &[("authorization", &auth)],
            &self.config,
            now,
            &mut self.jwks,
            &mut self.tokens,
            &Portable,
            &mut self.upstream,
        );
        let body: Value = serde_json::from_slice(o.reply.body()).unwrap_or(Value::Null);
        let decision = Decision {
            status: o.reply.status().as_u16(),
            error: body["error"].as_str().map(String::from),
            calls: self.upstream.sent.drain(..).map(|s| s.service).collect(),
        };
        (decision, o.log.token_cache == Some("hit"))
    }
}

/// How often each kind of outcome came up over the run: the generator must reach them all.
#[derive(Default)]
struct Seen {
    hits: Cell<usize>,
    ok: Cell<usize>,
    unauthorized: Cell<usize>,
    forbidden: Cell<usize>,
    unavailable: Cell<usize>,
}

fn bump(c: &Cell<usize>) {
    c.set(c.get() + 1);
}

fn check(case: &Case, seen: &Seen) -> Result<(), TestCaseError> {
    let answer = Rc::new(Cell::new(case.first));
    let mut cached = Instance::new(case, case.capacity, answer.clone());
    let mut uncached = Instance::new(case, 0, answer.clone());
    prop_assert!(cached.config.is_ok() && uncached.config.is_ok());
    let mut now = NOW;
    for (n, op) in case.ops.iter().enumerate() {
        match op {
            Op::Advance(secs) => now += secs,
            Op::Serve(a) => answer.set(*a),
            Op::Request(t) => {
                let (name, token) = &POOL.tokens[*t];
                let (with_cache, hit) = cached.request(token, now);
                let (without, _) = uncached.request(token, now);
                prop_assert_eq!(
                    &with_cache,
                    &without,
                    "op {} ({}) at NOW + {} s",
                    n,
                    name,
                    now - NOW
                );
                if hit {
                    bump(&seen.hits);
                }
                bump(match without.status {
                    200 => &seen.ok,
                    401 => &seen.unauthorized,
                    403 => &seen.forbidden,
                    _ => &seen.unavailable,
                });
            }
        }
        prop_assert!(cached.tokens.len() <= case.capacity);
    }
    prop_assert!(uncached.tokens.is_empty());
    Ok(())
}

#[test]
fn the_token_cache_never_changes_a_decision() {
    let mut runner = TestRunner::new(RunnerConfig {
        cases: 128,
        source_file: Some(file!()),
        ..RunnerConfig::default()
    });
    let seen = Seen::default();
    let result = runner.run(&case(), |case| check(&case, &seen));
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "{} requests hit the cache; answers: {} 200, {} 401, {} 403, {} 5xx",
        seen.hits.get(),
        seen.ok.get(),
        seen.unauthorized.get(),
        seen.forbidden.get(),
        seen.unavailable.get()
    );
    // A run in which the cache never hit, or no token was ever refused, proved nothing.
    for (what, n) in [
        ("cache hits", &seen.hits),
        ("200", &seen.ok),
        ("401", &seen.unauthorized),
        ("403", &seen.forbidden),
        ("5xx", &seen.unavailable),
    ] {
        assert!(n.get() > 0, "no {what} in the whole run");
    }
}
