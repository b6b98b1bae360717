//! Machine credentials (API keys, OAuth access tokens) checked through the Wacht gateway:
//! `POST <gateway>/v1/authz/check`. Building the request body and reading the answer are pure;
//! sending it is the adapter's job.
//!
//! Fail closed: any non-2xx answer or malformed body is a denial, never an allow. And the
//! gateway is one service for every Wacht deployment: it looks a key up globally and says
//! `allowed: true` for *that key's own* permissions. So an answer is a grant only when its
//! `identity` names this deployment ([`Binding`]); another deployment's key is not ours.

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

/// What a grant must name to count here: this deployment, and the optional narrowing of
/// `WACHT_GATEWAY_APPS`, `WACHT_REQUIRED_ORGANIZATION` and `WACHT_REQUIRED_WORKSPACE`.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub deployment_id: u64,
    /// Empty: any app of this deployment.
    pub apps: &'a [String],
    pub organization: Option<&'a str>,
    pub workspace: Option<&'a str>,
}

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    #[error("the gateway does not know this credential")]
    UnknownCredential,
    /// Another deployment's key or OAuth token, or an answer that names no deployment.
    #[error("the credential does not belong to this deployment")]
    ForeignCredential,
    #[error("the credential's app is not allowed here")]
    AppNotAllowed,
    #[error("the credential is not for the required {scope}")]
    ScopeMismatch { scope: &'static str },
    #[error("the credential lacks the required permissions")]
    PermissionDenied,
    #[error("the credential is rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("the Wacht gateway answered {0}")]
    BadStatus(u16),
    #[error("the Wacht gateway sent an answer that could not be read")]
    Malformed,
}

/// Who owns a checked credential, as the gateway names it: what the access log records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    pub key_id: Option<String>,
    pub app_slug: Option<String>,
    pub deployment_id: Option<String>,
}

/// One check's outcome: the verdict, and for the log the gateway's request id and the
/// credential's owner (another deployment's, too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub verdict: Result<(), GatewayError>,
    pub request_id: Option<String>,
    pub owner: Option<Owner>,
}

impl Checked {
    fn refused(error: GatewayError) -> Checked {
        Checked {
            verdict: Err(error),
            request_id: None,
            owner: None,
        }
    }
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
    /// `null` in some answers; absent in older ones. Both mean "names no deployment".
    #[serde(default)]
    identity: Option<Identity>,
}

/// The owner of the checked credential, as the gateway names it (ids are decimal strings).
/// Other members (`key_name`, membership ids, ...) are not needed here.
#[derive(Deserialize)]
struct Identity {
    key_id: Option<String>,
    deployment_id: Option<String>,
    app_slug: Option<String>,
    organization_id: Option<String>,
    workspace_id: Option<String>,
}

impl Identity {
    fn is_deployment(&self, id: u64) -> bool {
        // Decimal strings compared as numbers: a leading zero or sign cannot make two ids differ
        // or match by spelling.
        self.deployment_id
            .as_deref()
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u64>().ok())
            == Some(id)
    }
}

/// Reads the gateway's answer: a grant only for a well-formed 2xx answer with `allowed: true`
/// whose `identity` is this deployment's and fits `binding`'s narrowing.
pub fn interpret(status: u16, body: &[u8], binding: &Binding<'_>) -> Checked {
    match status {
        200..=299 => {}
        401 => return Checked::refused(GatewayError::UnknownCredential),
        other => return Checked::refused(GatewayError::BadStatus(other)),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Checked::refused(GatewayError::Malformed);
    }
    let Ok(answer) = serde_json::from_slice::<CheckAnswer>(body) else {
        return Checked::refused(GatewayError::Malformed);
    };
    let owner = answer.identity.as_ref().map(|i| Owner {
        key_id: i.key_id.clone(),
        app_slug: i.app_slug.clone(),
        deployment_id: i.deployment_id.clone(),
    });
    Checked {
        verdict: verdict(&answer, binding),
        request_id: answer.request_id,
        owner,
    }
}

fn verdict(answer: &CheckAnswer, binding: &Binding<'_>) -> Result<(), GatewayError> {
    let ours = answer
        .identity
        .as_ref()
        .filter(|i| i.is_deployment(binding.deployment_id));
    // Another deployment's credential is not ours, whatever the gateway decided for it: its
    // denials and rate limits are no business of this API either.
    let named_other = answer
        .identity
        .as_ref()
        .is_some_and(|i| i.deployment_id.is_some());
    if ours.is_none() && (named_other || answer.allowed) {
        return Err(GatewayError::ForeignCredential);
    }
    if !answer.allowed {
        return Err(match answer.reason.as_deref() {
            Some("rate_limited") => {
                let ms = answer
                    .retry_after
                    .filter(|ms| ms.is_finite() && *ms > 0.0)
                    .unwrap_or(1000.0);
                // Whole seconds, rounded up, at least 1, at most a day.
                let secs = (ms / 1000.0).ceil().clamp(1.0, 86_400.0) as u64;
                GatewayError::RateLimited {
                    retry_after_secs: secs,
                }
            }
            _ => GatewayError::PermissionDenied,
        });
    }
    let Some(identity) = ours else {
        return Err(GatewayError::ForeignCredential);
    };
    if !binding.apps.is_empty()
        && !identity
            .app_slug
            .as_ref()
            .is_some_and(|app| binding.apps.contains(app))
    {
        return Err(GatewayError::AppNotAllowed);
    }
    for (scope, required, actual) in [
        (
            "organization",
            binding.organization,
            &identity.organization_id,
        ),
        ("workspace", binding.workspace, &identity.workspace_id),
    ] {
        if let Some(required) = required
            && actual.as_deref() != Some(required)
        {
            return Err(GatewayError::ScopeMismatch { scope });
        }
    }
    Ok(())
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

    const OURS: u64 = 1_900_000_000_000_000_100;
    const BINDING: Binding<'static> = Binding {
        deployment_id: OURS,
        apps: &[],
        organization: None,
        workspace: None,
    };

    /// An API key's identity in this deployment, as the gateway writes it.
    fn identity() -> serde_json::Value {
        json!({"key_id":"9","deployment_id":OURS.to_string(),"app_slug":"dashboard","key_name":"ci",
               "owner_user_id":"5","organization_id":"7","workspace_id":"8",
               "organization_membership_id":null,"workspace_membership_id":null})
    }

    fn answer_with(
        allowed: bool,
        reason: serde_json::Value,
        retry_after: serde_json::Value,
        identity: serde_json::Value,
    ) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"request_id":"req_1","allowed":allowed,"reason":reason,"blocked_rule":null,
            "identity":identity,"permissions":["user:read"],"metadata":{},"rate_limits":[],
            "retry_after":retry_after,"headers":{}}),
        )
        .unwrap()
    }

    fn answer(allowed: bool, reason: serde_json::Value, retry_after: serde_json::Value) -> Vec<u8> {
        answer_with(allowed, reason, retry_after, identity())
    }

    fn interpret(status: u16, body: &[u8]) -> Result<(), GatewayError> {
        super::interpret(status, body, &BINDING).verdict
    }

    fn allowed_as(identity: serde_json::Value, binding: &Binding<'_>) -> Result<(), GatewayError> {
        super::interpret(
            200,
            &answer_with(true, json!(null), json!(null), identity),
            binding,
        )
        .verdict
    }

    #[test]
    fn a_grant_and_what_the_log_learns() {
        let checked = super::interpret(200, &answer(true, json!(null), json!(null)), &BINDING);
        assert_eq!(checked.verdict, Ok(()));
        assert_eq!(checked.request_id.as_deref(), Some("req_1"));
        assert_eq!(
            checked.owner,
            Some(Owner {
                key_id: Some("9".into()),
                app_slug: Some("dashboard".into()),
                deployment_id: Some(OURS.to_string()),
            })
        );
        // A refusal before any JSON was read: nothing to log but the verdict.
        let checked = super::interpret(401, b"Invalid API key", &BINDING);
        assert_eq!(checked.verdict, Err(GatewayError::UnknownCredential));
        assert_eq!((checked.request_id, checked.owner), (None, None));
    }

    #[test]
    fn denials() {
        assert_eq!(
            interpret(200, &answer(false, json!("permission_denied"), json!(null))),
            Err(GatewayError::PermissionDenied)
        );
        for (ms, secs) in [(json!(1500), 2), (json!(1), 1), (json!(null), 1)] {
            assert_eq!(
                interpret(200, &answer(false, json!("rate_limited"), ms)),
                Err(GatewayError::RateLimited {
                    retry_after_secs: secs
                })
            );
        }
        // An unknown reason is still a denial.
        assert_eq!(
            interpret(200, &answer(false, json!("something_new"), json!(null))),
            Err(GatewayError::PermissionDenied)
        );
        // A denial that names nobody is still a denial.
        let body = answer_with(false, json!("permission_denied"), json!(null), json!(null));
        assert_eq!(interpret(200, &body), Err(GatewayError::PermissionDenied));
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
        for body in [
            &b"{\"allowed\":tr"[..],
            b"{\"allowed\":\"true\"}",
            b"{}",
            b"",
        ] {
            assert_eq!(interpret(200, body), Err(GatewayError::Malformed));
        }
    }

    #[test]
    fn a_grant_must_name_this_deployment() {
        let mut other = identity();
        other["deployment_id"] = json!("1900000000000000999");
        assert_eq!(
            allowed_as(other.clone(), &BINDING),
            Err(GatewayError::ForeignCredential)
        );
        let checked = super::interpret(
            200,
            &answer_with(true, json!(null), json!(null), other.clone()),
            &BINDING,
        );
        assert_eq!(
            checked.owner.and_then(|o| o.deployment_id).as_deref(),
            Some("1900000000000000999"),
            "the other deployment is there for the log"
        );
        // Its denials and rate limits are not ours to report either.
        for reason in ["permission_denied", "rate_limited"] {
            assert_eq!(
                interpret(
                    200,
                    &answer_with(false, json!(reason), json!(900), other.clone())
                ),
                Err(GatewayError::ForeignCredential),
                "{reason}"
            );
        }
        // No identity, a null one, or one without a deployment: a grant for nobody we know.
        let mut nameless = identity();
        nameless.as_object_mut().unwrap().remove("deployment_id");
        for identity in [
            json!(null),
            json!({}),
            nameless,
            json!({"deployment_id": null}),
        ] {
            assert_eq!(
                allowed_as(identity.clone(), &BINDING),
                Err(GatewayError::ForeignCredential),
                "{identity}"
            );
        }
        let body = br#"{"request_id":"req_1","allowed":true,"reason":null,"retry_after":null}"#;
        assert_eq!(interpret(200, body), Err(GatewayError::ForeignCredential));
        // Spellings that are not the decimal id: refused, never matched loosely.
        for id in [
            json!(OURS),
            json!(format!("+{OURS}")),
            json!(format!(" {OURS}")),
            json!(""),
            json!("abc"),
        ] {
            let mut odd = identity();
            odd["deployment_id"] = id.clone();
            assert!(
                matches!(
                    allowed_as(odd, &BINDING),
                    Err(GatewayError::ForeignCredential | GatewayError::Malformed)
                ),
                "{id}"
            );
        }
        // A leading zero is the same number.
        let mut padded = identity();
        padded["deployment_id"] = json!(format!("0{OURS}"));
        assert_eq!(allowed_as(padded, &BINDING), Ok(()));
    }

    #[test]
    fn optional_narrowing_by_app_organization_and_workspace() {
        let apps = ["dashboard".to_string(), "ops".to_string()];
        let narrowed = Binding {
            apps: &apps,
            ..BINDING
        };
        assert_eq!(allowed_as(identity(), &narrowed), Ok(()));
        let mut other_app = identity();
        other_app["app_slug"] = json!("billing");
        assert_eq!(
            allowed_as(other_app, &narrowed),
            Err(GatewayError::AppNotAllowed)
        );
        let mut no_app = identity();
        no_app["app_slug"] = json!(null);
        assert_eq!(
            allowed_as(no_app.clone(), &narrowed),
            Err(GatewayError::AppNotAllowed)
        );
        assert_eq!(
            allowed_as(no_app, &BINDING),
            Ok(()),
            "no allowlist: any app"
        );

        let org = Binding {
            organization: Some("7"),
            workspace: Some("8"),
            ..BINDING
        };
        assert_eq!(allowed_as(identity(), &org), Ok(()));
        let wrong_org = Binding {
            organization: Some("70"),
            ..BINDING
        };
        assert_eq!(
            allowed_as(identity(), &wrong_org),
            Err(GatewayError::ScopeMismatch {
                scope: "organization"
            })
        );
        let wrong_ws = Binding {
            workspace: Some("80"),
            ..BINDING
        };
        assert_eq!(
            allowed_as(identity(), &wrong_ws),
            Err(GatewayError::ScopeMismatch { scope: "workspace" })
        );
        // An OAuth token's identity has no organization: it cannot meet a required one.
        let mut oauth = identity();
        oauth["organization_id"] = json!(null);
        oauth["workspace_id"] = json!(null);
        assert!(matches!(
            allowed_as(oauth.clone(), &org),
            Err(GatewayError::ScopeMismatch { .. })
        ));
        assert_eq!(allowed_as(oauth, &BINDING), Ok(()));
    }
}
