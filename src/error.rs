//! Every error the component can answer with, mapped to a response in this one place.
//!
//! Bodies are `{"error": code, "message": text, "request_id": id}`. Messages come from the error
//! types' `Display`, which never contain a credential, a token, a configuration value or upstream
//! text.

use http::StatusCode;
use http::header::{ALLOW, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use crate::backend::BackendError;
use crate::config::ConfigError;
use crate::credentials::CredentialError;
use crate::gateway::GatewayError;
use crate::jwks::JwksError;
use crate::jwks_cache::AgeError;
use crate::jwt::TokenError;
use crate::protect::Denied;
use crate::reply::{Reply, error_reply};
use crate::request::RequestError;
use crate::upstream::{Service, TransportError};

/// Every error code the component answers with ([`Error::code`], and the CORS refusals): the
/// access line's `error` field takes only these, and the native host labels its metrics with them.
pub const CODES: [&str; 16] = [
    "invalid_query",
    "bad_request",
    "missing_credentials",
    "invalid_token",
    "invalid_credentials",
    "forbidden",
    "origin_not_allowed",
    "not_found",
    "method_not_allowed",
    "rate_limited",
    "configuration_error",
    "upstream_error",
    "upstream_auth_failed",
    "upstream_rate_limited",
    "upstream_unavailable",
    "upstream_timeout",
];

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Error {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error("the session token is not valid: {0}")]
    Token(#[from] TokenError),
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("{} {error}", .service.name())]
    Transport {
        service: Service,
        error: TransportError,
    },
    #[error("the Wacht frontend API answered {0} for the JWKS")]
    JwksStatus(u16),
    #[error("the JWKS could not be used: {0}")]
    Jwks(#[from] JwksError),
    #[error("the JWKS answer could not be used: {0}")]
    JwksAge(#[from] AgeError),
    #[error("no signing keys are available from the Wacht frontend API")]
    NoKeys,
}

impl Error {
    /// Status, error code and extra headers for this error.
    fn parts(&self) -> (StatusCode, &'static str, Vec<(HeaderName, HeaderValue)>) {
        let bearer = |v: &'static str| vec![(WWW_AUTHENTICATE, HeaderValue::from_static(v))];
        let invalid = || bearer("Bearer error=\"invalid_token\"");
        match self {
            Error::Request(RequestError::NotFound) => (StatusCode::NOT_FOUND, "not_found", vec![]),
            Error::Request(RequestError::MethodNotAllowed) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                vec![(ALLOW, HeaderValue::from_static("GET"))],
            ),
            Error::Request(RequestError::InvalidQuery(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_query", vec![])
            }
            Error::Config(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "configuration_error",
                vec![],
            ),
            Error::Credential(CredentialError::Missing | CredentialError::NotBearer) => (
                StatusCode::UNAUTHORIZED,
                "missing_credentials",
                bearer("Bearer"),
            ),
            Error::Credential(
                CredentialError::Malformed
                | CredentialError::Ambiguous
                | CredentialError::NotMachineCredential,
            )
            | Error::Gateway(GatewayError::UnknownCredential | GatewayError::ForeignCredential) => {
                (StatusCode::UNAUTHORIZED, "invalid_credentials", invalid())
            }
            Error::Token(_) => (StatusCode::UNAUTHORIZED, "invalid_token", invalid()),
            Error::Denied(_)
            | Error::Gateway(
                GatewayError::PermissionDenied
                | GatewayError::AppNotAllowed
                | GatewayError::ScopeMismatch { .. },
            ) => (StatusCode::FORBIDDEN, "forbidden", vec![]),
            Error::Gateway(GatewayError::RateLimited {
                retry_after_secs, ..
            }) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                vec![(RETRY_AFTER, HeaderValue::from(*retry_after_secs))],
            ),
            Error::Backend(BackendError::KeyRejected) => {
                (StatusCode::BAD_GATEWAY, "upstream_auth_failed", vec![])
            }
            Error::Backend(BackendError::RateLimited) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_rate_limited",
                vec![(
                    RETRY_AFTER,
                    HeaderValue::from(crate::backend::RATE_LIMIT_RETRY_AFTER_SECS),
                )],
            ),
            Error::Transport {
                error: TransportError::Timeout,
                ..
            } => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", vec![]),
            Error::Transport {
                error: TransportError::Unreachable,
                ..
            }
            | Error::NoKeys => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                vec![],
            ),
            Error::Backend(_)
            | Error::Gateway(_)
            | Error::Transport { .. }
            | Error::JwksStatus(_)
            | Error::Jwks(_)
            | Error::JwksAge(_) => (StatusCode::BAD_GATEWAY, "upstream_error", vec![]),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    /// The error code of the body, and of the access log's `error` field.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    pub fn reply(&self, request_id: &str) -> Reply {
        let (status, code, headers) = self.parts();
        let mut reply = error_reply(status, code, &self.to_string(), request_id);
        reply.headers_mut().extend(headers);
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
        reply.headers().get(name).and_then(|v| v.to_str().ok())
    }

    fn body(reply: &Reply) -> (String, String) {
        let v: serde_json::Value = serde_json::from_slice(reply.body()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3, "exactly error, message and request_id: {v}");
        assert_eq!(obj["request_id"], "req-1");
        (
            obj["error"].as_str().unwrap().to_string(),
            obj["message"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn every_error_is_json_with_the_right_status_and_headers() {
        let cases: Vec<(Error, u16, &str)> = vec![
            (RequestError::NotFound.into(), 404, "not_found"),
            (
                RequestError::MethodNotAllowed.into(),
                405,
                "method_not_allowed",
            ),
            (
                RequestError::InvalidQuery("limit".into()).into(),
                400,
                "invalid_query",
            ),
            (
                ConfigError::Missing("WACHT_API_KEY").into(),
                500,
                "configuration_error",
            ),
            (CredentialError::Missing.into(), 401, "missing_credentials"),
            (
                CredentialError::NotBearer.into(),
                401,
                "missing_credentials",
            ),
            (
                CredentialError::Malformed.into(),
                401,
                "invalid_credentials",
            ),
            (
                CredentialError::Ambiguous.into(),
                401,
                "invalid_credentials",
            ),
            (TokenError::BadSignature.into(), 401, "invalid_token"),
            (
                GatewayError::UnknownCredential.into(),
                401,
                "invalid_credentials",
            ),
            (
                CredentialError::NotMachineCredential.into(),
                401,
                "invalid_credentials",
            ),
            (
                GatewayError::ForeignCredential.into(),
                401,
                "invalid_credentials",
            ),
            (GatewayError::AppNotAllowed.into(), 403, "forbidden"),
            (
                GatewayError::ScopeMismatch {
                    scope: "organization",
                }
                .into(),
                403,
                "forbidden",
            ),
            (
                ConfigError::MissingDeploymentId("WACHT_DEPLOYMENT_ID").into(),
                500,
                "configuration_error",
            ),
            (Denied::MissingPermission.into(), 403, "forbidden"),
            (GatewayError::PermissionDenied.into(), 403, "forbidden"),
            (
                GatewayError::RateLimited {
                    retry_after_secs: 3,
                }
                .into(),
                429,
                "rate_limited",
            ),
            (GatewayError::BadStatus(500).into(), 502, "upstream_error"),
            (GatewayError::Malformed.into(), 502, "upstream_error"),
            (BackendError::BadStatus(500).into(), 502, "upstream_error"),
            (BackendError::NotJson.into(), 502, "upstream_error"),
            (
                BackendError::KeyRejected.into(),
                502,
                "upstream_auth_failed",
            ),
            (
                BackendError::RateLimited.into(),
                503,
                "upstream_rate_limited",
            ),
            (
                Error::Transport {
                    service: Service::Backend,
                    error: TransportError::Timeout,
                },
                504,
                "upstream_timeout",
            ),
            (
                Error::Transport {
                    service: Service::Gateway,
                    error: TransportError::Unreachable,
                },
                503,
                "upstream_unavailable",
            ),
            (
                Error::Transport {
                    service: Service::Jwks,
                    error: TransportError::Failed,
                },
                502,
                "upstream_error",
            ),
            (Error::JwksStatus(404), 502, "upstream_error"),
            (JwksError::NotJson.into(), 502, "upstream_error"),
            (AgeError::TooOld(3600).into(), 502, "upstream_error"),
        ];
        for (err, status, code) in cases {
            assert!(
                CODES.contains(&err.code()),
                "{} is not in CODES",
                err.code()
            );
            let reply = err.reply("req-1");
            assert_eq!(reply.status(), status, "{err:?}");
            assert_eq!(header(&reply, "content-type"), Some("application/json"));
            assert_eq!(header(&reply, "cache-control"), Some("no-store"), "{err:?}");
            assert_eq!(header(&reply, "x-content-type-options"), Some("nosniff"));
            let (c, msg) = body(&reply);
            assert_eq!(c, code, "{err:?}");
            assert!(!msg.is_empty());
            assert_eq!(
                header(&reply, "www-authenticate").is_some(),
                status == 401,
                "{err:?}"
            );
        }
    }

    #[test]
    fn codes_hold_the_cors_refusals_too() {
        assert!(CODES.contains(&crate::cors::ORIGIN_NOT_ALLOWED));
        assert!(CODES.contains(&crate::cors::BAD_PREFLIGHT));
    }

    #[test]
    fn special_headers() {
        let r = Error::from(RequestError::MethodNotAllowed).reply("req-1");
        assert_eq!(header(&r, "allow"), Some("GET"));
        let r = Error::from(GatewayError::RateLimited {
            retry_after_secs: 7,
        })
        .reply("req-1");
        assert_eq!(header(&r, "retry-after"), Some("7"));
        let r = Error::from(BackendError::RateLimited).reply("req-1");
        assert_eq!(header(&r, "retry-after"), Some("5"));
        let r = Error::from(CredentialError::Missing).reply("req-1");
        assert_eq!(header(&r, "www-authenticate"), Some("Bearer"));
    }

    #[test]
    fn configuration_errors_name_the_variable() {
        let (_, msg) = body(&Error::from(ConfigError::Missing("WACHT_API_KEY")).reply("req-1"));
        assert!(msg.contains("WACHT_API_KEY"), "{msg}");
    }
}
