//! Machine credentials (API keys, OAuth access tokens) checked through the Wacht gateway:
//! `POST <gateway>/v1/authz/check`. Building the request body and reading the answer are pure;
//! sending it is the adapter's job.
//!
//! Fail closed: any non-2xx answer or malformed body is a denial, never an allow.

use crate::credentials::Credential;
use crate::json::{self, Number, ObjectWriter, Value};

pub const CHECK_PATH: &str = "/v1/authz/check";
/// The gateway's answers are small; a larger one is malformed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct Check<'a> {
    pub credential: Credential<'a>,
    pub resource: &'a str,
    pub method: &'a str,
    pub client_ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub required_permissions: &'a [String],
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    #[error("the gateway does not know this credential")]
    UnknownCredential,
    #[error("the credential lacks the required permissions")]
    PermissionDenied { request_id: Option<String> },
    #[error("the credential is rate limited")]
    RateLimited {
        retry_after_secs: u64,
        request_id: Option<String>,
    },
    #[error("the Wacht gateway answered {0}")]
    BadStatus(u16),
    #[error("the Wacht gateway sent an answer that could not be read")]
    Malformed,
}

impl GatewayError {
    pub fn request_id(&self) -> Option<&str> {
        match self {
            GatewayError::PermissionDenied { request_id }
            | GatewayError::RateLimited { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }
}

/// What an allowed check tells us; kept for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub request_id: Option<String>,
}

impl Check<'_> {
    /// The request body, field for field as the gateway expects it (unknown fields are a 422
    /// there): `principal{type,value}`, `resource`, `method`, `client_ip` and `user_agent` only
    /// when known (absent, not null), `required_permissions`.
    pub fn body(&self) -> Vec<u8> {
        let (kind, value) = match self.credential {
            Credential::ApiKey(v) => ("api_key", v),
            Credential::OAuthAccessToken(v) => ("oauth_access_token", v),
            // Session tokens are verified locally and never leave this component.
            Credential::Session(_) => ("session", ""),
        };
        let mut principal = ObjectWriter::default();
        principal.string("type", kind);
        principal.string("value", value);
        let mut body = ObjectWriter::default();
        body.object("principal", principal);
        body.string("resource", self.resource);
        body.string("method", self.method);
        if let Some(client_ip) = self.client_ip {
            body.string("client_ip", client_ip);
        }
        if let Some(user_agent) = self.user_agent {
            body.string("user_agent", user_agent);
        }
        body.strings("required_permissions", self.required_permissions);
        body.finish()
    }
}

/// The members of the answer this component reads; the others are skipped unread.
struct CheckAnswer {
    request_id: Option<String>,
    allowed: bool,
    reason: Option<String>,
    /// Milliseconds.
    retry_after: Option<Number>,
}

impl CheckAnswer {
    /// As a serde derive of this struct read it: `allowed` required, the others absent or
    /// `null` for none, a repeated one refused.
    fn parse(body: &[u8]) -> Result<CheckAnswer, GatewayError> {
        let [request_id, allowed, reason, retry_after] =
            json::parse_fields(body, ["request_id", "allowed", "reason", "retry_after"])
                .map_err(|_| GatewayError::Malformed)?;
        let Some(Value::Bool(allowed)) = allowed else {
            return Err(GatewayError::Malformed);
        };
        let retry_after = match retry_after {
            None | Some(Value::Null) => None,
            Some(Value::Number(ms)) => Some(ms),
            Some(_) => return Err(GatewayError::Malformed),
        };
        Ok(CheckAnswer {
            request_id: optional_string(request_id)?,
            allowed,
            reason: optional_string(reason)?,
            retry_after,
        })
    }
}

fn optional_string(member: Option<Value>) -> Result<Option<String>, GatewayError> {
    match member {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(GatewayError::Malformed),
    }
}

/// Reads the gateway's answer: `Ok` only for a well-formed 2xx answer with `allowed: true`.
pub fn interpret(status: u16, body: &[u8]) -> Result<Allowed, GatewayError> {
    match status {
        200..=299 => {}
        401 => return Err(GatewayError::UnknownCredential),
        other => return Err(GatewayError::BadStatus(other)),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(GatewayError::Malformed);
    }
    let answer = CheckAnswer::parse(body)?;
    if answer.allowed {
        return Ok(Allowed {
            request_id: answer.request_id,
        });
    }
    match answer.reason.as_deref() {
        Some("rate_limited") => {
            // Whole seconds, rounded up, at least 1, at most a day; none, zero or negative
            // milliseconds are 1 second.
            let secs = answer
                .retry_after
                .and_then(|ms| ms.floor_ceil(-3))
                .map_or(1, |(_, ceil)| ceil.clamp(1, 86_400));
            Err(GatewayError::RateLimited {
                retry_after_secs: secs,
                request_id: answer.request_id,
            })
        }
        _ => Err(GatewayError::PermissionDenied {
            request_id: answer.request_id,
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_is_exactly_the_contract() {
        let perms = vec!["user:read".to_string()];
        let check = Check {
            credential: Credential::OAuthAccessToken("oat_x"),
            resource: "/admin/users",
            method: "GET",
            client_ip: Some("203.0.113.7"),
            user_agent: Some("curl/8"),
            required_permissions: &perms,
        };
        let body: serde_json::Value = serde_json::from_slice(&check.body()).unwrap();
        assert_eq!(
            body,
            json!({"principal":{"type":"oauth_access_token","value":"oat_x"},"resource":"/admin/users",
                   "method":"GET","client_ip":"203.0.113.7","user_agent":"curl/8","required_permissions":["user:read"]})
        );
        // The same bytes serde's derive wrote, escapes included.
        assert_eq!(
            String::from_utf8(check.body()).unwrap(),
            r#"{"principal":{"type":"oauth_access_token","value":"oat_x"},"resource":"/admin/users","method":"GET","client_ip":"203.0.113.7","user_agent":"curl/8","required_permissions":["user:read"]}"#
        );
        let odd = Check {
            user_agent: Some("a \"quoted\" \\ agent\u{1}"),
            ..check
        };
        assert_eq!(
            String::from_utf8(odd.body()).unwrap(),
            r#"{"principal":{"type":"oauth_access_token","value":"oat_x"},"resource":"/admin/users","method":"GET","client_ip":"203.0.113.7","user_agent":"a \"quoted\" \\ agent\u0001","required_permissions":["user:read"]}"#
        );
        let check = Check {
            credential: Credential::ApiKey("ak"),
            client_ip: None,
            user_agent: None,
            ..check
        };
        let body: serde_json::Value = serde_json::from_slice(&check.body()).unwrap();
        assert_eq!(
            body,
            json!({"principal":{"type":"api_key","value":"ak"},"resource":"/admin/users",
                   "method":"GET","required_permissions":["user:read"]})
        );
    }

    fn answer(allowed: bool, reason: serde_json::Value, retry_after: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"request_id":"req_1","allowed":allowed,"reason":reason,"blocked_rule":null,
            "identity":{"key_id":"9"},"permissions":["user:read"],"metadata":{},"rate_limits":[],
            "retry_after":retry_after,"headers":{}}),
        )
        .unwrap()
    }

    #[test]
    fn allowed_answer() {
        assert_eq!(
            interpret(200, &answer(true, json!(null), json!(null))),
            Ok(Allowed {
                request_id: Some("req_1".into())
            })
        );
    }

    #[test]
    fn denials() {
        assert_eq!(
            interpret(200, &answer(false, json!("permission_denied"), json!(null))),
            Err(GatewayError::PermissionDenied {
                request_id: Some("req_1".into())
            })
        );
        assert_eq!(
            interpret(200, &answer(false, json!("rate_limited"), json!(1500))),
            Err(GatewayError::RateLimited {
                retry_after_secs: 2,
                request_id: Some("req_1".into())
            })
        );
        assert_eq!(
            interpret(200, &answer(false, json!("rate_limited"), json!(1))),
            Err(GatewayError::RateLimited {
                retry_after_secs: 1,
                request_id: Some("req_1".into())
            })
        );
        assert!(matches!(
            interpret(200, &answer(false, json!("rate_limited"), json!(null))),
            Err(GatewayError::RateLimited {
                retry_after_secs: 1,
                ..
            })
        ));
        // An unknown reason is still a denial.
        assert!(matches!(
            interpret(200, &answer(false, json!("something_new"), json!(null))),
            Err(GatewayError::PermissionDenied { .. })
        ));
    }

    #[test]
    fn anything_else_is_a_denial() {
        assert_eq!(
            interpret(401, b"Invalid API key"),
            Err(GatewayError::UnknownCredential)
        );
        assert_eq!(interpret(400, b"{}"), Err(GatewayError::BadStatus(400)));
        assert_eq!(
            interpret(500, &answer(true, json!(null), json!(null))),
            Err(GatewayError::BadStatus(500))
        );
        assert_eq!(interpret(302, b""), Err(GatewayError::BadStatus(302)));
        assert_eq!(
            interpret(200, b"{\"allowed\":tr"),
            Err(GatewayError::Malformed)
        );
        assert_eq!(
            interpret(200, b"{\"allowed\":\"true\"}"),
            Err(GatewayError::Malformed)
        );
        assert_eq!(interpret(200, b"{}"), Err(GatewayError::Malformed));
        assert_eq!(interpret(200, b""), Err(GatewayError::Malformed));
    }

    /// The answer as the serde derive and f64 arithmetic read it before src/json.rs.
    fn serde_interpret(status: u16, body: &[u8]) -> Result<Allowed, GatewayError> {
        #[derive(serde::Deserialize)]
        struct SerdeAnswer {
            request_id: Option<String>,
            allowed: bool,
            reason: Option<String>,
            retry_after: Option<f64>,
        }
        if !(200..=299).contains(&status) {
            return interpret(status, body);
        }
        let answer: SerdeAnswer =
            serde_json::from_slice(body).map_err(|_| GatewayError::Malformed)?;
        if answer.allowed {
            return Ok(Allowed {
                request_id: answer.request_id,
            });
        }
        match answer.reason.as_deref() {
            Some("rate_limited") => {
                let ms = answer
                    .retry_after
                    .filter(|ms| ms.is_finite() && *ms > 0.0)
                    .unwrap_or(1000.0);
                Err(GatewayError::RateLimited {
                    retry_after_secs: (ms / 1000.0).ceil().clamp(1.0, 86_400.0) as u64,
                    request_id: answer.request_id,
                })
            }
            _ => Err(GatewayError::PermissionDenied {
                request_id: answer.request_id,
            }),
        }
    }

    #[test]
    fn answers_are_read_as_the_serde_derive_read_them() {
        let rate_limited = |ms: &str| {
            format!(
                r#"{{"request_id":"r","allowed":false,"reason":"rate_limited","retry_after":{ms}}}"#
            )
        };
        let mut answers: Vec<String> = [
            "0", "1", "999", "1000", "1001", "1500", "1500.5", "2.5e3", "0.001", "1e-400", "-0",
            "-5", "-1e-400", "86399999", "86400000", "86400001", "1e20", "1e308", "1e999",
            "\"1500\"", "null", "true", "[1500]",
        ]
        .iter()
        .map(|ms| rate_limited(ms))
        .collect();
        answers.extend(
            [
                r#"{"allowed":true}"#,
                r#"{"allowed":true,"allowed":true}"#,
                r#"{"allowed":true,"request_id":"a","request_id":"a"}"#,
                r#"{"allowed":true,"x":1,"x":[]}"#,
                r#"{"allowed":true,"metadata":{"name":"\ud800"},"n":1e999}"#,
                r#"{"allowed":true,"request_id":"\ud800"}"#,
                r#"{"allowed":1}"#,
                r#"{"allowed":null}"#,
                r#"{"allowed":"true"}"#,
                r#"{"allowed":true,"request_id":1}"#,
                r#"{"allowed":false,"reason":["rate_limited"]}"#,
                r#"{"allowed":false,"reason":null}"#,
                r#"{"allowed":false}"#,
                r#"{"reason":"rate_limited"}"#,
                r#"{"allowed":true} x"#,
                r#"{"allowed":true,}"#,
                "{}",
                "",
                "null",
            ]
            .map(str::to_owned),
        );
        for answer in &answers {
            assert_eq!(
                interpret(200, answer.as_bytes()),
                serde_interpret(200, answer.as_bytes()),
                "{answer}"
            );
        }
        // The derive also read an array positionally (it allowed this one); such an answer is
        // now malformed.
        assert_eq!(
            interpret(200, b"[null,true,null,null]"),
            Err(GatewayError::Malformed)
        );
    }
}
