//! The access line: one per request on stderr, in a documented, versioned format that hosts read
//! (the native host labels its metrics from it) and operators index.
//!
//! Fields, in this order (`v` = [`VERSION`]; a field is added without a new version, a change of
//! meaning or a removal takes one):
//!
//! | field | value |
//! | --- | --- |
//! | `msg` | [`MSG`] (JSON) or the line's first word (text) |
//! | `v` | [`VERSION`] |
//! | `request_id`, `trace_id` | the request's `X-Request-Id` and W3C trace id |
//! | `method`, `path` | the request's, path without the query string |
//! | `status` | the answer's status |
//! | `error` | the error code of a non-2xx answer |
//! | `credential` | [`crate::credentials::KINDS`] |
//! | `sub`, `sid`, `organization`, `workspace` | a verified session token's user, session and active scope |
//! | `key_id`, `app_slug`, `deployment_id` | a machine credential's owner as the gateway named it (another deployment's too) |
//! | `gateway_request_id` | the gateway's id for the check, for Wacht support |
//! | `upstream_status` | the last upstream answer's status |
//! | `token_cache` | [`TOKEN_CACHE_RESULTS`], for a session token when the cache is on |
//! | `duration_ms` | guest time, one decimal |
//!
//! Absent values are `null` in JSON and `-` in text. The line never holds a token, a key, a
//! query string or a user's data; every value is printable ASCII without spaces, bounded.

use crate::config::LogFormat;
use crate::gateway::Owner;

/// The JSON line's `msg` and the text line's first word: how a host finds it among the
/// component's stderr lines.
pub const MSG: &str = "wacht-admin";
pub const VERSION: u32 = 1;
/// The first words of the line an instance writes once, at its first request, when its
/// configuration is invalid: `wacht-admin configuration error: <what, naming the variable>`.
pub const CONFIG_ERROR: &str = "wacht-admin configuration error:";
/// Every value of the `token_cache` field.
pub const TOKEN_CACHE_RESULTS: [&str; 2] = [TOKEN_CACHE_HIT, TOKEN_CACHE_MISS];
pub const TOKEN_CACHE_HIT: &str = "hit";
pub const TOKEN_CACHE_MISS: &str = "miss";

/// Who was granted or denied: the audit part of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Session {
        subject: String,
        session_id: Option<String>,
        organization: Option<String>,
        workspace: Option<String>,
    },
    Machine(Owner),
}

/// What the access line records about a request, beside what the caller sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub request_id: String,
    pub trace_id: String,
    pub error: Option<&'static str>,
    pub credential: Option<&'static str>,
    pub principal: Option<Principal>,
    pub gateway_request_id: Option<String>,
    pub upstream_status: Option<u16>,
    pub token_cache: Option<&'static str>,
}

/// Values from callers and upstreams: one line, bounded, no spaces (text stays `key=value`).
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

impl Record {
    /// The line for a request `method target` answered with `status` in `duration_ns`.
    pub fn line(
        &self,
        format: LogFormat,
        method: &str,
        target: &str,
        status: u16,
        duration_ns: u64,
    ) -> String {
        let id = |s: &Option<String>| s.as_deref().map(|s| printable(s, 128));
        let (sub, sid, organization, workspace, key_id, app_slug, deployment_id) =
            match &self.principal {
                Some(Principal::Session {
                    subject,
                    session_id,
                    organization,
                    workspace,
                }) => (
                    Some(printable(subject, 128)),
                    id(session_id),
                    id(organization),
                    id(workspace),
                    None,
                    None,
                    None,
                ),
                Some(Principal::Machine(owner)) => (
                    None,
                    None,
                    None,
                    None,
                    id(&owner.key_id),
                    id(&owner.app_slug),
                    id(&owner.deployment_id),
                ),
                None => (None, None, None, None, None, None, None),
            };
        let fields: [(&str, Value); 18] = [
            ("v", Value::Number(u64::from(VERSION))),
            (
                "request_id",
                Value::Text(Some(printable(&self.request_id, 128))),
            ),
            ("trace_id", Value::Text(Some(printable(&self.trace_id, 32)))),
            ("method", Value::Text(Some(printable(method, 16)))),
            (
                "path",
                Value::Text(Some(printable(target.split('?').next().unwrap_or(""), 128))),
            ),
            ("status", Value::Number(u64::from(status))),
            ("error", Value::Text(self.error.map(String::from))),
            ("credential", Value::Text(self.credential.map(String::from))),
            ("sub", Value::Text(sub)),
            ("sid", Value::Text(sid)),
            ("organization", Value::Text(organization)),
            ("workspace", Value::Text(workspace)),
            ("key_id", Value::Text(key_id)),
            ("app_slug", Value::Text(app_slug)),
            ("deployment_id", Value::Text(deployment_id)),
            (
                "gateway_request_id",
                Value::Text(id(&self.gateway_request_id)),
            ),
            (
                "upstream_status",
                self.upstream_status
                    .map_or(Value::Text(None), |s| Value::Number(u64::from(s))),
            ),
            (
                "token_cache",
                Value::Text(self.token_cache.map(String::from)),
            ),
        ];
        // Tenths of a millisecond, rounded half up.
        let tenths = duration_ns.saturating_add(50_000) / 100_000;
        match format {
            LogFormat::Json => {
                let mut object = serde_json::Map::with_capacity(fields.len() + 2);
                object.insert("msg".into(), MSG.into());
                for (name, value) in fields {
                    let value = match value {
                        Value::Number(n) => n.into(),
                        Value::Text(Some(s)) => s.into(),
                        Value::Text(None) => serde_json::Value::Null,
                    };
                    object.insert(name.into(), value);
                }
                object.insert("duration_ms".into(), (tenths as f64 / 10.0).into());
                serde_json::Value::Object(object).to_string()
            }
            LogFormat::Text => {
                use std::fmt::Write as _;
                let mut line = String::with_capacity(320);
                line.push_str(MSG);
                for (name, value) in fields {
                    let _ = match value {
                        Value::Number(n) => write!(line, " {name}={n}"),
                        Value::Text(Some(s)) => write!(line, " {name}={s}"),
                        Value::Text(None) => write!(line, " {name}=-"),
                    };
                }
                let _ = write!(line, " duration_ms={}.{}", tenths / 10, tenths % 10);
                line
            }
        }
    }
}

enum Value {
    Number(u64),
    Text(Option<String>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            request_id: "req-1".into(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            error: Some("forbidden"),
            credential: Some("session"),
            principal: Some(Principal::Session {
                subject: "42".into(),
                session_id: Some("sess 1\n".into()),
                organization: Some("7".into()),
                workspace: None,
            }),
            gateway_request_id: None,
            upstream_status: Some(200),
            token_cache: Some(TOKEN_CACHE_MISS),
        }
    }

    #[test]
    fn text_and_json_carry_the_same_fields_in_order() {
        let r = record();
        let text = r.line(
            LogFormat::Text,
            "GET",
            "/admin/users?search=x",
            403,
            1_250_000,
        );
        assert_eq!(
            text,
            "wacht-admin v=1 request_id=req-1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 method=GET \
             path=/admin/users status=403 error=forbidden credential=session sub=42 sid=sess?1? \
             organization=7 workspace=- key_id=- app_slug=- deployment_id=- gateway_request_id=- \
             upstream_status=200 token_cache=miss duration_ms=1.3"
        );
        let json: serde_json::Value =
            serde_json::from_str(&r.line(LogFormat::Json, "GET", "/admin/users?x", 403, 0))
                .unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "msg": "wacht-admin", "v": 1, "request_id": "req-1",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "method": "GET",
                "path": "/admin/users", "status": 403, "error": "forbidden",
                "credential": "session", "sub": "42", "sid": "sess?1?", "organization": "7",
                "workspace": null, "key_id": null, "app_slug": null, "deployment_id": null,
                "gateway_request_id": null, "upstream_status": 200, "token_cache": "miss",
                "duration_ms": 0.0,
            })
        );
    }

    #[test]
    fn a_machine_credential_names_its_owner() {
        let r = Record {
            principal: Some(Principal::Machine(Owner {
                key_id: Some("9".into()),
                app_slug: Some("ops".into()),
                deployment_id: Some("1900000000000000999".into()),
            })),
            credential: Some("api_key"),
            gateway_request_id: Some("req_42".into()),
            ..record()
        };
        let text = r.line(LogFormat::Text, "GET", "/admin/users", 401, 0);
        assert!(
            text.contains(
                "sub=- sid=- organization=- workspace=- key_id=9 app_slug=ops \
                 deployment_id=1900000000000000999 gateway_request_id=req_42"
            ),
            "{text}"
        );
    }
}
