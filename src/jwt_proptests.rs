//! Properties of the readers of a token's JSON (`json_object`, `Header::parse`, `jwt::parse`,
//! `claims::check`): whatever the bytes, they never panic, and an object with a member named
//! twice is refused, however the two names are spelled and wherever the two members stand.

use proptest::prelude::*;
use proptest::test_runner::Config as RunnerConfig;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use wacht_standin::tokens::b64url;

use super::*;
use crate::claims::{self, ClaimRules, ClaimsError};

const ISS: &str = "https://frontend.example.com";
const NOW: u64 = 1_800_000_000;
const NOT_AN_OBJECT: TokenError = TokenError::Malformed("header is not a JSON object");

/// Names the readers look at, and a few others.
const NAMES: [&str; 16] = [
    "alg",
    "kid",
    "crit",
    "typ",
    "jku",
    "exp",
    "nbf",
    "iat",
    "iss",
    "sub",
    "sid",
    "organization",
    "workspace",
    "permissions",
    "organization_permissions",
    "",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(&NAMES[..]).prop_map(String::from),
        // Any text, astral characters (surrogate pairs once escaped) included.
        1 => "\\PC{0,6}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e12..1e12f64).prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((name(), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

/// How a member name is written: the same name for any JSON reader.
#[derive(Debug, Clone, Copy)]
enum Spelling {
    Plain,
    /// Every character as `\uXXXX` (UTF-16, so astral ones as a surrogate pair).
    Escaped,
    /// Only the first character escaped.
    FirstEscaped,
}

fn spelling() -> impl Strategy<Value = Spelling> {
    prop_oneof![
        Just(Spelling::Plain),
        Just(Spelling::Escaped),
        Just(Spelling::FirstEscaped),
    ]
}

fn spell(name: &str, how: Spelling) -> String {
    let escape = |c: char| {
        let mut units = [0u16; 2];
        c.encode_utf16(&mut units)
            .iter()
            .map(|u| format!("\\u{u:04x}"))
            .collect::<String>()
    };
    let plain = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap();
        quoted[1..quoted.len() - 1].to_string()
    };
    let body = match how {
        Spelling::Plain => plain(name),
        Spelling::Escaped => name.chars().map(escape).collect(),
        Spelling::FirstEscaped => {
            let mut chars = name.chars();
            match chars.next() {
                Some(first) => escape(first) + &plain(chars.as_str()),
                None => String::new(),
            }
        }
    };
    format!("\"{body}\"")
}

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", "", " ", "\n", "\t ", "\r\n"][..])
}

/// An object written member by member, so that a name can occur twice.
#[derive(Debug, Clone)]
struct Written {
    members: Vec<(String, Spelling, Value)>,
    ws: (&'static str, &'static str),
}

impl Written {
    fn bytes(&self) -> Vec<u8> {
        let (a, b) = self.ws;
        let members: Vec<String> = self
            .members
            .iter()
            .map(|(n, how, v)| format!("{a}{}{b}:{a}{v}{b}", spell(n, *how)))
            .collect();
        format!("{b}{{{}}}{a}", members.join(",")).into_bytes()
    }
}

/// Distinct names with any values, then one of them (or one the readers look at) written
/// again, at any position, with any value and spelling.
fn duplicated() -> impl Strategy<Value = (Written, Written)> {
    (
        prop::collection::btree_map(name(), (spelling(), json()), 0..6),
        name(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        spelling(),
        json(),
        ws(),
        ws(),
    )
        .prop_map(|(unique, extra, pick, at, how, value, a, b)| {
            let mut members: Vec<(String, Spelling, Value)> = unique
                .into_iter()
                .map(|(n, (how, v))| (n, how, v))
                .collect();
            if !members.iter().any(|(n, ..)| *n == extra) {
                members.push((extra, how, Value::Null));
            }
            let once = Written {
                members: members.clone(),
                ws: (a, b),
            };
            let name = members[pick.index(members.len())].0.clone();
            members.insert(at.index(members.len() + 1), (name, how, value));
            (
                once,
                Written {
                    members,
                    ws: (a, b),
                },
            )
        })
}

/// The number of members as written (a repeated name counted twice): serde's own map walk,
/// not the reader under test.
fn members_written(json: &[u8]) -> Option<usize> {
    struct Count(usize);
    impl<'de> Deserialize<'de> for Count {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Count;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                    let mut n = 0;
                    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {
                        n += 1;
                    }
                    Ok(Count(n))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_slice::<Count>(json).ok().map(|c| c.0)
}

/// Every reader on `json`; none may panic. When one accepts, the strict reader accepted too,
/// found as many distinct members as were written, and read what serde_json reads.
fn read_all(json: &[u8]) -> Result<(), TestCaseError> {
    let strict = json_object(json);
    let header = Header::parse(json);
    let claims = claims::check(json, &ClaimRules::new(ISS, NOW, 5));
    let token = format!("{}.{}.{}", b64url(json), b64url(json), b64url(json));
    let parsed = parse(&token).map(|p| p.alg);
    // A dotted bearer value is a session token whatever its header holds: refused here, never a
    // value for the gateway.
    prop_assert!(is_session(&token));
    let _ = parse(&String::from_utf8_lossy(json)).map(|p| p.alg);

    if header.is_ok() || claims.is_ok() || parsed.is_ok() {
        prop_assert!(strict.is_ok());
    }
    if let Ok(map) = strict {
        prop_assert_eq!(members_written(json), Some(map.len()));
        let loose: Value = serde_json::from_slice(json).unwrap();
        prop_assert_eq!(loose, Value::Object(map));
    }
    Ok(())
}

/// `json` with a few bytes replaced, inserted or removed.
fn mutated(json: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), 0..3u8, any::<u8>());
    prop::collection::vec(edit, 1..4).prop_map(move |edits| {
        let mut bytes = json.clone();
        for (at, kind, byte) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => bytes.push(byte),
            }
        }
        bytes
    })
}

proptest! {
    #![proptest_config(RunnerConfig::with_cases(512))]

    #[test]
    fn a_member_named_twice_is_refused((once, twice) in duplicated()) {
        let once = once.bytes();
        let twice = twice.bytes();
        // Without the repetition the same text is a good object: the repetition is what fails.
        let read = json_object(&once);
        prop_assert!(read.is_ok(), "{}", String::from_utf8_lossy(&once));
        prop_assert_eq!(read.unwrap(), serde_json::from_slice::<Map<String, Value>>(&once).unwrap());

        let text = String::from_utf8_lossy(&twice).into_owned();
        prop_assert!(json_object(&twice).is_err(), "{}", text);
        prop_assert!(matches!(Header::parse(&twice), Err(e) if e == NOT_AN_OBJECT), "{}", text);
        prop_assert_eq!(
            claims::check(&twice, &ClaimRules::new(ISS, NOW, 5)),
            Err(ClaimsError::NotJson),
            "{}",
            text
        );
        let token = format!("{}.{}.{}", b64url(&twice), b64url(b"{}"), b64url(&[0; 64]));
        prop_assert!(is_session(&token));
        prop_assert_eq!(parse(&token).err(), Some(NOT_AN_OBJECT));
        read_all(&twice)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        read_all(&bytes)?;
    }

    #[test]
    fn damaged_objects_never_panic_nor_lose_a_member(
        bytes in duplicated().prop_flat_map(|(once, twice)| {
            prop_oneof![mutated(once.bytes()), mutated(twice.bytes())]
        })
    ) {
        read_all(&bytes)?;
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash(
        depth in prop_oneof![0..20_000usize, 120..135usize],
        object in any::<bool>(),
    ) {
        let (open, close) = if object { ("{\"a\":", "}") } else { ("[", "]") };
        let json = format!("{{\"alg\":\"ES256\",\"x\":{}1{}}}", open.repeat(depth), close.repeat(depth));
        // serde_json's recursion limit: 128 levels, the outer object included.
        let accepted = json_object(json.as_bytes()).is_ok();
        prop_assert_eq!(accepted, depth < 127, "depth {}", depth);
        read_all(json.as_bytes())?;
    }
}

/// How `credentials::extract` routes this bearer value.
fn is_session(token: &str) -> bool {
    matches!(
        crate::credentials::extract(Some(&format!("Bearer {token}")), None),
        Ok(crate::credentials::Credential::Session(_))
    )
}
