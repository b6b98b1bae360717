//! Machine credentials (API keys, OAuth access tokens) checked through the Wacht gateway:
//! `POST <gateway>/v1/authz/check`. Building the request body and reading the answer are pure;
//! sending it is the adapter's job.
//!
//! Fail closed: any non-2xx answer or malformed body is a denial, never an allow.

use crate::credentials::Credential;
use serde::{Deserialize, Serialize};

pub const CHECK_PATH: &str = "/v1/authz/check";
/// The gateway's answers are small; a larger one is malformed.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Serialize)]
struct Principal<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    value: &'a str,
}

/// The request body, field for field as the gateway expects it (unknown fields are a 422 there).
#[derive(Serialize)]
struct CheckRequest<'a> {
    principal: Principal<'a>,
    resource: &'a str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    required_permissions: &'a [String],
}

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
    pub fn body(&self) -> Result<Vec<u8>, serde_json::Error> {
        let (kind, value) = match self.credential {
            Credential::ApiKey(v) => ("api_key", v),
            Credential::OAuthAccessToken(v) => ("oauth_access_token", v),
            // Session tokens are verified locally and never leave this component.
            Credential::Session(_) => ("session", ""),
        };
        serde_json::to_vec(&CheckRequest {
            principal: Principal { kind, value },
            resource: self.resource,
            method: self.method,
            client_ip: self.client_ip,
            user_agent: self.user_agent,
            required_permissions: self.required_permissions,
        })
    }
}

#[derive(Deserialize)]
struct CheckAnswer {
    request_id: Option<String>,
    allowed: bool,
    reason: Option<String>,
    /// Milliseconds.
    retry_after: Option<f64>,
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
    let answer: CheckAnswer = serde_json::from_slice(body).map_err(|_| GatewayError::Malformed)?;
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
            // Whole seconds, rounded up, at least 1, at most a day.
            let secs = (ms / 1000.0).ceil().clamp(1.0, 86_400.0) as u64;
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
        let body: serde_json::Value = serde_json::from_slice(&check.body().unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"principal":{"type":"oauth_access_token","value":"oat_x"},"resource":"/admin/users",
                   "method":"GET","client_ip":"203.0.113.7","user_agent":"curl/8","required_permissions":["user:read"]})
        );
        let check = Check {
            credential: Credential::ApiKey("ak"),
            client_ip: None,
            user_agent: None,
            ..check
        };
        let body: serde_json::Value = serde_json::from_slice(&check.body().unwrap()).unwrap();
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
}
