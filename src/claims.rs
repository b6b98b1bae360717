//! Session token claims: time window, issuer, subject, and the two Wacht claim layouts.
//!
//! Rules (contract §2 "Decisions"):
//! - `exp` is required; the token is expired once `now >= exp + skew` (RFC 7519 §4.1.4: "on or
//!   after"; jose, which the JS SDK uses, draws the same line).
//! - `nbf`, if present, must satisfy `now + skew >= nbf`.
//! - `iat`, if present, must be a number; a future `iat` is not refused (only `nbf` says when a
//!   token starts to be valid, as in jose without `maxTokenAge`).
//! - Dates are JSON numbers (RFC 7519 NumericDate); fractions are rounded towards rejection
//!   (`exp` down, `nbf` up); negative or non-numeric dates are invalid.
//! - `iss` must equal the configured issuer exactly. `aud` is not checked: Wacht sends none and
//!   nothing here is configured to expect one.
//! - `sub` is a non-empty string or an integer (stringified); Wacht sends decimal strings.
//! - Ids (`sid`/`session_id`, `organization`, `workspace`) are strings or integers; `null`, absent
//!   and `""` all mean none.
//! - Permissions: the flat `organization_permissions` / `workspace_permissions` arrays (older
//!   issuers) win when present and not `null`, else the nested `permissions.organization` /
//!   `permissions.workspace` (as the JS SDK's `??`); `null` means empty; entries must be strings.

use serde_json::{Map, Value};

/// What the caller supplies: the core never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRules<'a> {
    /// The frontend API URL, exactly as it appears in `iss`.
    pub issuer: &'a str,
    /// Unix seconds.
    pub now: u64,
    /// Allowed clock skew in seconds.
    pub skew: u64,
}

impl<'a> ClaimRules<'a> {
    pub fn new(issuer: &'a str, now: u64, skew: u64) -> Self {
        ClaimRules { issuer, now, skew }
    }
}

/// When a token may be used: `exp` rounded down, `nbf` rounded up, in whole Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub expires: u64,
    pub not_before: Option<u64>,
}

impl Validity {
    /// The time rules alone: a verified token found in the token cache meets them again on
    /// every use.
    pub fn check(&self, now: u64, skew: u64) -> Result<(), ClaimsError> {
        if now >= self.expires.saturating_add(skew) {
            return Err(ClaimsError::Expired);
        }
        if self
            .not_before
            .is_some_and(|nbf| now.saturating_add(skew) < nbf)
        {
            return Err(ClaimsError::NotYetValid);
        }
        Ok(())
    }
}

/// The claims the rest of the component uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub validity: Validity,
    pub subject: String,
    pub session_id: Option<String>,
    pub organization: Option<String>,
    pub workspace: Option<String>,
    pub organization_permissions: Vec<String>,
    pub workspace_permissions: Vec<String>,
}

#[derive(thiserror::Error, Debug, PartialEq, Eq, Clone)]
pub enum ClaimsError {
    #[error("token payload is not a JSON object")]
    NotJson,
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token issuer does not match")]
    BadIssuer,
    #[error("token has no subject")]
    MissingSubject,
    #[error("token claim {0} has an invalid type or value")]
    InvalidClaim(&'static str),
}

/// Checks a verified payload against `rules` and extracts the claims.
pub fn check(payload: &[u8], rules: &ClaimRules) -> Result<Claims, ClaimsError> {
    let claims = crate::json::json_object(payload).map_err(|_| ClaimsError::NotJson)?;

    let exp = match claims.get("exp") {
        None | Some(Value::Null) => return Err(ClaimsError::MissingExp),
        Some(v) => numeric_date(v, Round::Down).ok_or(ClaimsError::InvalidClaim("exp"))?,
    };
    let nbf = match claims.get("nbf") {
        None => None,
        Some(v) => Some(numeric_date(v, Round::Up).ok_or(ClaimsError::InvalidClaim("nbf"))?),
    };
    if let Some(v) = claims.get("iat") {
        numeric_date(v, Round::Down).ok_or(ClaimsError::InvalidClaim("iat"))?;
    }
    let validity = Validity {
        expires: exp,
        not_before: nbf,
    };
    validity.check(rules.now, rules.skew)?;
    if claims.get("iss").and_then(Value::as_str) != Some(rules.issuer) {
        return Err(ClaimsError::BadIssuer);
    }
    let subject = id(&claims, "sub")?.ok_or(ClaimsError::MissingSubject)?;

    let session_id = match id(&claims, "sid")? {
        Some(sid) => Some(sid),
        None => id(&claims, "session_id")?,
    };
    let nested = match claims.get("permissions") {
        None | Some(Value::Null) => None,
        Some(Value::Object(nested)) => Some(nested),
        Some(_) => return Err(ClaimsError::InvalidClaim("permissions")),
    };
    Ok(Claims {
        validity,
        subject,
        session_id,
        organization: id(&claims, "organization")?,
        workspace: id(&claims, "workspace")?,
        organization_permissions: permissions(
            &claims,
            nested,
            "organization_permissions",
            "organization",
        )?,
        workspace_permissions: permissions(&claims, nested, "workspace_permissions", "workspace")?,
    })
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

/// A NumericDate as whole seconds, or `None` if it is not a non-negative number.
fn numeric_date(v: &Value, round: Round) -> Option<u64> {
    let Value::Number(n) = v else {
        return None;
    };
    if let Some(secs) = n.as_u64() {
        return Some(secs);
    }
    let f = n.as_f64().filter(|f| f.is_finite() && *f >= 0.0)?;
    // `as` saturates: a date beyond u64 seconds is "never".
    Some(match round {
        Round::Down => f.floor() as u64,
        Round::Up => f.ceil() as u64,
    })
}

/// An id claim: a non-empty string or an integer; absent, `null` and `""` are none.
fn id(claims: &Map<String, Value>, name: &'static str) -> Result<Option<String>, ClaimsError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(_) => Err(ClaimsError::InvalidClaim(name)),
    }
}

fn permissions(
    claims: &Map<String, Value>,
    nested: Option<&Map<String, Value>>,
    flat: &'static str,
    inner: &'static str,
) -> Result<Vec<String>, ClaimsError> {
    match claims.get(flat) {
        Some(list) if !list.is_null() => string_list(list, flat),
        _ => match nested.and_then(|n| n.get(inner)) {
            Some(list) => string_list(list, "permissions"),
            None => Ok(Vec::new()),
        },
    }
}

fn string_list(list: &Value, name: &'static str) -> Result<Vec<String>, ClaimsError> {
    match list {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or(ClaimsError::InvalidClaim(name))
            })
            .collect(),
        _ => Err(ClaimsError::InvalidClaim(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wacht_standin::tokens::session_claims;

    const ISS: &str = "https://frontend.example.com";
    const NOW: u64 = 1_800_000_000;

    fn rules(now: u64) -> ClaimRules<'static> {
        ClaimRules::new(ISS, now, 5)
    }

    fn run(claims: &Value, now: u64) -> Result<Claims, ClaimsError> {
        check(&serde_json::to_vec(claims).unwrap(), &rules(now))
    }

    fn with(mut claims: Value, name: &str, value: Value) -> Value {
        claims[name] = value;
        claims
    }

    fn without(mut claims: Value, name: &str) -> Value {
        claims.as_object_mut().unwrap().remove(name);
        claims
    }

    #[test]
    fn newest_layout() {
        let c = run(&session_claims(ISS, NOW), NOW).unwrap();
        assert_eq!(
            c,
            Claims {
                validity: Validity {
                    expires: NOW + 35,
                    not_before: None,
                },
                subject: "1234567890".into(),
                session_id: c.session_id.clone(),
                organization: Some("42".into()),
                workspace: Some("7".into()),
                organization_permissions: vec!["deployment:read".into()],
                workspace_permissions: vec![],
            }
        );
        assert!(c.session_id.as_deref().is_some_and(|s| !s.is_empty()));
    }

    #[test]
    fn older_layout_with_numeric_ids_and_flat_arrays() {
        let claims = json!({
            "iss": ISS, "sub": 1234567890u64, "exp": NOW + 35, "iat": NOW,
            "session_id": 555, "organization": 42, "workspace": 7,
            "organization_permissions": ["user:read", "deployment:read"],
            "workspace_permissions": ["ws:admin"],
        });
        let c = run(&claims, NOW).unwrap();
        assert_eq!(c.subject, "1234567890");
        assert_eq!(c.session_id.as_deref(), Some("555"));
        assert_eq!(c.organization.as_deref(), Some("42"));
        assert_eq!(c.workspace.as_deref(), Some("7"));
        assert_eq!(c.organization_permissions, ["user:read", "deployment:read"]);
        assert_eq!(c.workspace_permissions, ["ws:admin"]);
    }

    #[test]
    fn flat_permissions_take_precedence_per_kind() {
        let base = session_claims(ISS, NOW);
        let c = run(
            &with(base.clone(), "organization_permissions", json!(["flat"])),
            NOW,
        )
        .unwrap();
        assert_eq!(c.organization_permissions, ["flat"]);
        // An empty flat array still wins; a null one falls through to the nested form.
        let c = run(
            &with(base.clone(), "organization_permissions", json!([])),
            NOW,
        )
        .unwrap();
        assert!(c.organization_permissions.is_empty());
        let c = run(
            &with(base.clone(), "organization_permissions", json!(null)),
            NOW,
        )
        .unwrap();
        assert_eq!(c.organization_permissions, ["deployment:read"]);
        let c = run(&with(base, "workspace_permissions", json!(["w"])), NOW).unwrap();
        assert_eq!(c.workspace_permissions, ["w"]);
        assert_eq!(c.organization_permissions, ["deployment:read"]);
    }

    #[test]
    fn null_and_missing_permissions_are_empty() {
        let base = session_claims(ISS, NOW);
        for perms in [
            json!({"organization": null, "workspace": null}),
            json!({}),
            json!(null),
        ] {
            let c = run(&with(base.clone(), "permissions", perms.clone()), NOW).unwrap();
            assert!(c.organization_permissions.is_empty(), "{perms}");
            assert!(c.workspace_permissions.is_empty(), "{perms}");
        }
        let c = run(&without(base, "permissions"), NOW).unwrap();
        assert!(c.organization_permissions.is_empty());
    }

    #[test]
    fn malformed_permissions_are_invalid() {
        let base = session_claims(ISS, NOW);
        let p = ClaimsError::InvalidClaim("permissions");
        for (name, value, want) in [
            ("permissions", json!({"organization": ["a", 1]}), p.clone()),
            ("permissions", json!({"workspace": "a"}), p.clone()),
            ("permissions", json!(["a"]), p.clone()),
            ("permissions", json!("a"), p),
            (
                "organization_permissions",
                json!([null]),
                ClaimsError::InvalidClaim("organization_permissions"),
            ),
            (
                "workspace_permissions",
                json!({"a": 1}),
                ClaimsError::InvalidClaim("workspace_permissions"),
            ),
        ] {
            assert_eq!(
                run(&with(base.clone(), name, value.clone()), NOW),
                Err(want),
                "{name}: {value}"
            );
        }
    }

    #[test]
    fn ids_accept_strings_and_integers_only() {
        let base = session_claims(ISS, NOW);
        for (value, want) in [
            (json!("org_1"), Some("org_1")),
            (json!(9_007_199_254_740_993u64), Some("9007199254740993")),
            (json!(-1), Some("-1")),
            (json!(""), None),
            (json!(null), None),
        ] {
            let c = run(&with(base.clone(), "organization", value.clone()), NOW).unwrap();
            assert_eq!(c.organization.as_deref(), want, "{value}");
        }
        for value in [json!(1.5), json!(true), json!(["1"]), json!({})] {
            assert_eq!(
                run(&with(base.clone(), "workspace", value.clone()), NOW),
                Err(ClaimsError::InvalidClaim("workspace")),
                "{value}"
            );
        }
        let c = run(
            &without(without(base.clone(), "organization"), "workspace"),
            NOW,
        )
        .unwrap();
        assert_eq!((c.organization, c.workspace), (None, None));
        // sid wins over session_id; session_id is the fallback.
        let both = with(
            with(base.clone(), "sid", json!("s1")),
            "session_id",
            json!(2),
        );
        assert_eq!(run(&both, NOW).unwrap().session_id.as_deref(), Some("s1"));
        let old = with(without(base.clone(), "sid"), "session_id", json!(2));
        assert_eq!(run(&old, NOW).unwrap().session_id.as_deref(), Some("2"));
        assert_eq!(run(&without(base, "sid"), NOW).unwrap().session_id, None);
    }

    #[test]
    fn exp_is_required_and_numeric() {
        let base = session_claims(ISS, NOW);
        assert_eq!(
            run(&without(base.clone(), "exp"), NOW),
            Err(ClaimsError::MissingExp)
        );
        assert_eq!(
            run(&with(base.clone(), "exp", json!(null)), NOW),
            Err(ClaimsError::MissingExp)
        );
        for exp in [
            json!((NOW + 35).to_string()),
            json!(-1),
            json!(true),
            json!([NOW + 35]),
        ] {
            assert_eq!(
                run(&with(base.clone(), "exp", exp.clone()), NOW),
                Err(ClaimsError::InvalidClaim("exp")),
                "{exp}"
            );
        }
    }

    #[test]
    fn expiry_boundary_with_skew() {
        let exp = NOW + 35;
        let c = with(session_claims(ISS, NOW), "exp", json!(exp));
        // Valid until exp + skew - 1; expired on exp + skew (RFC 7519: "on or after").
        assert!(run(&c, exp + 4).is_ok());
        assert_eq!(run(&c, exp + 5), Err(ClaimsError::Expired));
        assert_eq!(run(&c, u64::MAX), Err(ClaimsError::Expired));
        let no_skew = ClaimRules::new(ISS, exp - 1, 0);
        assert!(check(&serde_json::to_vec(&c).unwrap(), &no_skew).is_ok());
        let no_skew = ClaimRules::new(ISS, exp, 0);
        assert_eq!(
            check(&serde_json::to_vec(&c).unwrap(), &no_skew),
            Err(ClaimsError::Expired)
        );
        // Fractional exp rounds down: 100.9 expires at 100 (+ skew).
        let c = with(session_claims(ISS, NOW), "exp", json!(NOW as f64 + 10.9));
        assert!(run(&c, NOW + 14).is_ok());
        assert_eq!(run(&c, NOW + 15), Err(ClaimsError::Expired));
        // A huge exp does not overflow.
        let c = with(session_claims(ISS, NOW), "exp", json!(u64::MAX));
        assert!(run(&c, NOW).is_ok());
        let c = with(session_claims(ISS, NOW), "exp", json!(1e300));
        assert!(run(&c, NOW).is_ok());
    }

    #[test]
    fn nbf_boundary_with_skew() {
        let nbf = NOW + 100;
        let c = with(session_claims(ISS, NOW), "exp", json!(NOW + 1000));
        let c = with(c, "nbf", json!(nbf));
        assert_eq!(run(&c, nbf - 6), Err(ClaimsError::NotYetValid));
        assert!(run(&c, nbf - 5).is_ok());
        assert!(run(&c, nbf).is_ok());
        let c = with(c, "nbf", json!(nbf as f64 + 0.5));
        assert_eq!(run(&c, nbf - 5), Err(ClaimsError::NotYetValid));
        assert!(run(&c, nbf - 4).is_ok());
        for bad in [json!("1"), json!(null), json!(-5)] {
            assert_eq!(
                run(&with(c.clone(), "nbf", bad.clone()), nbf),
                Err(ClaimsError::InvalidClaim("nbf")),
                "{bad}"
            );
        }
    }

    #[test]
    fn iat_must_be_numeric_but_may_be_in_the_future() {
        let base = session_claims(ISS, NOW);
        assert!(run(&with(base.clone(), "iat", json!(NOW + 10_000)), NOW).is_ok());
        assert!(run(&without(base.clone(), "iat"), NOW).is_ok());
        assert_eq!(
            run(&with(base, "iat", json!("now")), NOW),
            Err(ClaimsError::InvalidClaim("iat"))
        );
    }

    #[test]
    fn issuer_must_match_exactly() {
        let base = session_claims(ISS, NOW);
        for iss in [
            json!("https://frontend.example.com/"),
            json!("HTTPS://frontend.example.com"),
            json!("https://frontend.example.co"),
            json!(""),
            json!(null),
            json!(["https://frontend.example.com"]),
        ] {
            assert_eq!(
                run(&with(base.clone(), "iss", iss.clone()), NOW),
                Err(ClaimsError::BadIssuer),
                "{iss}"
            );
        }
        assert_eq!(run(&without(base, "iss"), NOW), Err(ClaimsError::BadIssuer));
    }

    #[test]
    fn subject_is_required() {
        let base = session_claims(ISS, NOW);
        assert_eq!(
            run(&without(base.clone(), "sub"), NOW),
            Err(ClaimsError::MissingSubject)
        );
        for sub in [json!(""), json!(null)] {
            assert_eq!(
                run(&with(base.clone(), "sub", sub), NOW),
                Err(ClaimsError::MissingSubject)
            );
        }
        assert_eq!(
            run(&with(base.clone(), "sub", json!({"id": 1})), NOW),
            Err(ClaimsError::InvalidClaim("sub"))
        );
        assert_eq!(
            run(&with(base, "sub", json!(77)), NOW).unwrap().subject,
            "77"
        );
    }

    #[test]
    fn payload_must_be_a_json_object() {
        for payload in [&b""[..], b"foo", b"[]", b"\"x\"", b"null", b"{", b"{} {}"] {
            assert_eq!(
                check(payload, &rules(NOW)),
                Err(ClaimsError::NotJson),
                "{payload:?}"
            );
        }
    }
}
