//! Which credential a request carries, and where it goes. API keys (`<prefix>_<43 base64url>`)
//! and opaque OAuth tokens (`oat_…`) never contain a `.`, so a bearer value with a `.` is a
//! session token: verified here or refused, never sent to the gateway, whatever else is wrong
//! with it (padding, `+`/`/`, a trailing dot). Any other bearer value or an `x-api-key` header is
//! a machine credential, checked through the Wacht gateway, and only when it has a machine
//! credential's alphabet (`[A-Za-z0-9_-]`).
//!
//! Cookies (`__session`) are not read: the JS SDK reads only `Authorization`, and an admin API
//! that honoured ambient browser cookies would need CSRF defences it has no use for.

/// Machine credentials are short (`<prefix>_<43 chars>`); anything longer is not sent anywhere.
pub const MAX_MACHINE_CREDENTIAL_BYTES: usize = 512;

/// Every value of the access log's `credential` field ([`Credential::kind`]): the native host
/// labels its metrics with these.
pub const KINDS: [&str; 3] = [SESSION, API_KEY, OAUTH_ACCESS_TOKEN];
const SESSION: &str = "session";
const API_KEY: &str = "api_key";
const OAUTH_ACCESS_TOKEN: &str = "oauth_access_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    Session(&'a str),
    ApiKey(&'a str),
    OAuthAccessToken(&'a str),
}

#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialError {
    #[error(
        "send a session token or an OAuth access token as `Authorization: Bearer <token>`, or an API key as `x-api-key`"
    )]
    Missing,
    #[error("the Authorization header must use the Bearer scheme")]
    NotBearer,
    #[error("the credential is empty, too long or not printable ASCII")]
    Malformed,
    #[error(
        "that is not an API key or OAuth access token (letters, digits, '_' and '-' only); send session tokens as `Authorization: Bearer <token>`"
    )]
    NotMachineCredential,
    #[error("send exactly one Authorization or x-api-key header")]
    Ambiguous,
}

impl Credential<'_> {
    /// For the access log: the kind, never the value.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Session(_) => SESSION,
            Credential::ApiKey(_) => API_KEY,
            Credential::OAuthAccessToken(_) => OAUTH_ACCESS_TOKEN,
        }
    }
}

/// Picks the credential from the `Authorization` and `x-api-key` header values.
/// `Authorization` wins when both are present: it is what the guide's SDK reads.
pub fn extract<'a>(
    authorization: Option<&'a str>,
    x_api_key: Option<&'a str>,
) -> Result<Credential<'a>, CredentialError> {
    if let Some(auth) = authorization {
        let (scheme, value) = auth
            .trim_start()
            .split_once(' ')
            .ok_or(CredentialError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(CredentialError::NotBearer);
        }
        let value = value.trim();
        if value.contains('.') {
            // Length is bounded by the JWT layer, which refuses oversized tokens unparsed.
            return Ok(Credential::Session(value));
        }
        let value = machine_credential(value)?;
        return Ok(if value.starts_with("oat_") {
            Credential::OAuthAccessToken(value)
        } else {
            Credential::ApiKey(value)
        });
    }
    match x_api_key {
        Some(key) => Ok(Credential::ApiKey(machine_credential(key.trim())?)),
        None => Err(CredentialError::Missing),
    }
}

fn machine_credential(value: &str) -> Result<&str, CredentialError> {
    let printable = value.bytes().all(|b| b.is_ascii_graphic());
    if value.is_empty() || value.len() > MAX_MACHINE_CREDENTIAL_BYTES || !printable {
        return Err(CredentialError::Malformed);
    }
    // Nothing else is a key the gateway could know, and a session token pasted into
    // `x-api-key` (it has dots) must not leave the component either.
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(CredentialError::NotMachineCredential);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";

    #[test]
    fn bearer_jwt_is_a_session() {
        let auth = format!("Bearer {JWT}");
        assert_eq!(extract(Some(&auth), None), Ok(Credential::Session(JWT)));
        let auth = format!("bearer   {JWT} ");
        assert_eq!(
            extract(Some(&auth), Some("ak_x")),
            Ok(Credential::Session(JWT))
        );
    }

    #[test]
    fn other_bearer_values_go_to_the_gateway() {
        assert_eq!(
            extract(Some("Bearer oat_abc"), None),
            Ok(Credential::OAuthAccessToken("oat_abc"))
        );
        assert_eq!(
            extract(Some("Bearer sk_live_abc"), None),
            Ok(Credential::ApiKey("sk_live_abc"))
        );
    }

    #[test]
    fn any_bearer_value_with_a_dot_is_a_session_token() {
        // Not JWT-shaped, but dotted: verified here (and refused there), never sent on.
        for value in [
            "a.b.c",
            "a.b",
            ".",
            "eyJhbGciOiJFUzI1NiJ9.e30.c2ln=",
            "eyJhbGciOiJFUzI1NiJ9.e30.c2ln.",
            "eyJhbGciOiJFUzI1NiJ9.e30.c2l+/w==",
            "oat_abc.def",
        ] {
            assert_eq!(
                extract(Some(&format!("Bearer {value}")), None),
                Ok(Credential::Session(value)),
                "{value}"
            );
        }
    }

    #[test]
    fn machine_credentials_have_a_machine_alphabet() {
        for value in ["ak+1", "ak/1", "ak=", "a~b", "ey.J"] {
            assert_eq!(
                extract(None, Some(value)),
                Err(CredentialError::NotMachineCredential),
                "{value}"
            );
        }
        assert_eq!(
            extract(Some("Bearer ak+1"), None),
            Err(CredentialError::NotMachineCredential)
        );
        // A session token in x-api-key is refused, not sent to the gateway as a key.
        assert_eq!(
            extract(None, Some(JWT)),
            Err(CredentialError::NotMachineCredential)
        );
        let key = format!("wk_live_{}", "A-_z9".repeat(8));
        assert_eq!(extract(None, Some(&key)), Ok(Credential::ApiKey(&key)));
    }

    #[test]
    fn x_api_key_is_an_api_key_and_authorization_wins() {
        assert_eq!(extract(None, Some("ak_1")), Ok(Credential::ApiKey("ak_1")));
        assert_eq!(
            extract(Some("Bearer oat_1"), Some("ak_1")),
            Ok(Credential::OAuthAccessToken("oat_1"))
        );
        // x-api-key is taken as it is: an `oat_` value there is still an API key.
        assert_eq!(
            extract(None, Some("oat_1")),
            Ok(Credential::ApiKey("oat_1"))
        );
    }

    #[test]
    fn missing_and_malformed() {
        assert_eq!(extract(None, None), Err(CredentialError::Missing));
        assert_eq!(
            extract(Some("Basic dXNlcjpwYXNz"), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            extract(Some("Bearer"), None),
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            extract(Some("Bearer  "), None),
            Err(CredentialError::Malformed)
        );
        assert_eq!(extract(None, Some("")), Err(CredentialError::Malformed));
        assert_eq!(extract(None, Some("a b")), Err(CredentialError::Malformed));
        let long = "k".repeat(MAX_MACHINE_CREDENTIAL_BYTES + 1);
        assert_eq!(extract(None, Some(&long)), Err(CredentialError::Malformed));
        assert_eq!(
            extract(Some(&format!("Bearer {long}")), None),
            Err(CredentialError::Malformed)
        );
    }

    #[test]
    fn kinds_are_named_for_the_log() {
        assert_eq!(Credential::Session("x").kind(), "session");
        assert_eq!(Credential::ApiKey("x").kind(), "api_key");
        assert_eq!(
            Credential::OAuthAccessToken("x").kind(),
            "oauth_access_token"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Bearer values as they come: printable ASCII with dots, base64 of every alphabet,
        /// padding, and the prefixes of real keys.
        fn bearer_value() -> impl Strategy<Value = String> {
            prop_oneof![
                "[!-~]{1,80}",
                "[A-Za-z0-9_=+/.-]{1,120}",
                "(oat_|wk_live_|sk_test_)?[A-Za-z0-9_-]{0,43}[.=+/]?[A-Za-z0-9_.-]{0,20}",
            ]
        }

        /// Compact JWS shapes: three segments of any base64 alphabet, with or without padding
        /// and trailing dots.
        fn jwt_shaped() -> impl Strategy<Value = String> {
            (
                "[A-Za-z0-9_+/-]{1,60}={0,2}",
                "[A-Za-z0-9_+/-]{0,200}={0,2}",
                "[A-Za-z0-9_+/-]{0,90}={0,2}",
                "\\.?",
            )
                .prop_map(|(h, p, s, tail)| format!("{h}.{p}.{s}{tail}"))
        }

        proptest! {
            #[test]
            fn no_dotted_value_is_ever_a_machine_credential(value in bearer_value()) {
                let auth = format!("Bearer {value}");
                let bearer = extract(Some(&auth), None);
                let header = extract(None, Some(&value));
                for routed in [bearer, header] {
                    if let Ok(Credential::ApiKey(v) | Credential::OAuthAccessToken(v)) = routed {
                        prop_assert!(!v.contains('.'), "{v:?} would reach the gateway");
                        prop_assert!(
                            v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                            "{v:?}"
                        );
                    }
                }
            }

            #[test]
            fn every_jwt_shaped_value_is_a_session_token(token in jwt_shaped()) {
                let auth = format!("Bearer {token}");
                prop_assert_eq!(extract(Some(&auth), None), Ok(Credential::Session(token.as_str())));
                // Never sent as a key from x-api-key either.
                prop_assert!(!matches!(
                    extract(None, Some(&token)),
                    Ok(Credential::ApiKey(_) | Credential::OAuthAccessToken(_))
                ));
            }
        }
    }
}
