//! The users call to the Wacht backend API: `GET <backend>/users?…` with our API key.
//! On success the upstream JSON is returned unchanged, as the guide does.

use crate::config::BaseUrl;
use crate::request::UsersQuery;

/// A page of 100 users is a few tens of KiB; anything near this bound is not a users page.
pub const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;
/// The backend sends no `Retry-After` when it rate-limits us; this is what we advise instead.
pub const RATE_LIMIT_RETRY_AFTER_SECS: u64 = 5;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    #[error("the Wacht backend API rejected this deployment's API key")]
    KeyRejected,
    #[error("the Wacht backend API is rate limiting this deployment")]
    RateLimited,
    #[error("the Wacht backend API answered {0}")]
    BadStatus(u16),
    #[error("the Wacht backend API sent a body that is not JSON")]
    NotJson,
    #[error("the Wacht backend API sent a body larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// Path and query of the list-users call, under the configured base path.
pub fn users_path(base: &BaseUrl, query: &UsersQuery) -> String {
    format!("{}/users?{}", base.path, query.to_query_string())
}

/// Checks the backend's answer; `Ok` means the body can be passed on unchanged.
pub fn interpret(status: u16, body: &[u8]) -> Result<(), BackendError> {
    match status {
        200 => {}
        401 | 403 => return Err(BackendError::KeyRejected),
        429 => return Err(BackendError::RateLimited),
        other => return Err(BackendError::BadStatus(other)),
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(BackendError::TooLarge);
    }
    // Validate without building a tree: passing on a body we could not parse would hand our
    // callers an upstream failure dressed as a 200.
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|_| BackendError::NotJson)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_carries_the_base_path_and_query() {
        let base = BaseUrl::parse("https://api.wacht.dev").unwrap();
        assert_eq!(users_path(&base, &UsersQuery::default()), "/users?limit=20");
        let base = BaseUrl::parse("http://127.0.0.1:1/v1/").unwrap();
        let q = UsersQuery {
            offset: Some(20),
            ..UsersQuery::default()
        };
        assert_eq!(users_path(&base, &q), "/v1/users?limit=20&offset=20");
    }

    #[test]
    fn statuses_map_to_errors() {
        let page = br#"{"data":[],"has_more":false,"limit":20,"offset":0}"#;
        assert_eq!(interpret(200, page), Ok(()));
        let err = br#"{"errors":[{"message":"Invalid API key","code":401}]}"#;
        assert_eq!(interpret(401, err), Err(BackendError::KeyRejected));
        assert_eq!(interpret(403, err), Err(BackendError::KeyRejected));
        assert_eq!(interpret(429, err), Err(BackendError::RateLimited));
        assert_eq!(interpret(500, err), Err(BackendError::BadStatus(500)));
        assert_eq!(interpret(400, err), Err(BackendError::BadStatus(400)));
        assert_eq!(interpret(204, b""), Err(BackendError::BadStatus(204)));
        assert_eq!(
            interpret(200, br#"{"data":[{"id":"1""#),
            Err(BackendError::NotJson)
        );
        assert_eq!(interpret(200, b"<html>"), Err(BackendError::NotJson));
        let big = vec![b' '; MAX_ANSWER_BYTES + 1];
        assert_eq!(interpret(200, &big), Err(BackendError::TooLarge));
    }
}
