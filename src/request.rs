//! Routing and query validation: what a request asks for, before any credential is looked at.
//!
//! A malformed query is refused here, so it costs no verification and no upstream call, and
//! nothing we did not validate is ever forwarded to the backend API.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

pub const USERS_PATH: &str = "/admin/users";
pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
pub const MAX_OFFSET: u64 = 1_000_000_000;
pub const MAX_SEARCH_CHARS: usize = 256;
/// Longer queries are refused before parsing. Fits `search` at its 256 characters even when each is a 4-byte one percent-encoded (12 bytes),
/// beside every other parameter.
pub const MAX_QUERY_BYTES: usize = 4096;

#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    #[error("no route for this path")]
    NotFound,
    #[error("only GET is allowed on this route")]
    MethodNotAllowed,
    #[error("{0}")]
    InvalidQuery(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    CreatedAt,
    Username,
    Email,
    PhoneNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// The validated parameters of `GET /admin/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersQuery {
    pub limit: u32,
    pub offset: Option<u64>,
    pub search: Option<String>,
    pub sort_key: Option<SortKey>,
    pub sort_order: Option<SortOrder>,
}

impl Default for UsersQuery {
    fn default() -> Self {
        UsersQuery {
            limit: DEFAULT_LIMIT,
            offset: None,
            search: None,
            sort_key: None,
            sort_order: None,
        }
    }
}

impl UsersQuery {
    /// The query string for the backend API: `limit` first, as the guide sends it.
    pub fn to_query_string(&self) -> String {
        let mut q = format!("limit={}", self.limit);
        if let Some(offset) = self.offset {
            q.push_str(&format!("&offset={offset}"));
        }
        if let Some(key) = self.sort_key {
            let key = match key {
                SortKey::CreatedAt => "created_at",
                SortKey::Username => "username",
                SortKey::Email => "email",
                SortKey::PhoneNumber => "phone_number",
            };
            q.push_str(&format!("&sort_key={key}"));
        }
        if let Some(order) = self.sort_order {
            let order = match order {
                SortOrder::Asc => "asc",
                SortOrder::Desc => "desc",
            };
            q.push_str(&format!("&sort_order={order}"));
        }
        if let Some(search) = &self.search {
            q.push_str("&search=");
            q.push_str(&percent_encode(search));
        }
        q
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Users(UsersQuery),
}

/// Routes `method` + `path_with_query` (the request target, e.g. `/admin/users?limit=5`).
pub fn route(method: &str, path_with_query: &str) -> Result<Route, RequestError> {
    let (path, query) = match path_with_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_with_query, None),
    };
    if path != USERS_PATH {
        return Err(RequestError::NotFound);
    }
    if method != "GET" {
        return Err(RequestError::MethodNotAllowed);
    }
    Ok(Route::Users(parse_users_query(query.unwrap_or(""))?))
}

fn invalid(msg: impl Into<String>) -> RequestError {
    RequestError::InvalidQuery(msg.into())
}

pub fn parse_users_query(query: &str) -> Result<UsersQuery, RequestError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(invalid(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let mut q = UsersQuery::default();
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let name_known = match name {
            "limit" | "offset" | "search" | "sort_key" | "sort_order" => name,
            // Names are echoed back only when they are ours: an unknown name could be anything.
            _ => {
                return Err(invalid(
                    "unknown query parameter (allowed: limit, offset, search, sort_key, sort_order)",
                ));
            }
        };
        if seen.contains(&name_known) {
            return Err(invalid(format!("{name_known} is given more than once")));
        }
        seen.push(name_known);
        let value = percent_decode(raw)
            .ok_or_else(|| invalid(format!("{name_known} is not valid percent-encoded UTF-8")))?;
        match name_known {
            "limit" => {
                q.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        invalid(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}"
                        ))
                    })?;
            }
            "offset" => {
                q.offset = Some(
                    value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n <= MAX_OFFSET)
                        .ok_or_else(|| {
                            invalid(format!(
                                "offset must be a whole number from 0 to {MAX_OFFSET}"
                            ))
                        })?,
                );
            }
            "search" => {
                if value.chars().count() > MAX_SEARCH_CHARS {
                    return Err(invalid(format!(
                        "search must be at most {MAX_SEARCH_CHARS} characters"
                    )));
                }
                if value.chars().any(char::is_control) {
                    return Err(invalid("search must not contain control characters"));
                }
                q.search = Some(value);
            }
            "sort_key" => {
                q.sort_key = Some(match value.as_str() {
                    "created_at" => SortKey::CreatedAt,
                    "username" => SortKey::Username,
                    "email" => SortKey::Email,
                    "phone_number" => SortKey::PhoneNumber,
                    _ => {
                        return Err(invalid(
                            "sort_key must be one of created_at, username, email, phone_number",
                        ));
                    }
                });
            }
            _ => {
                q.sort_order = Some(match value.as_str() {
                    "asc" => SortOrder::Asc,
                    "desc" => SortOrder::Desc,
                    _ => return Err(invalid("sort_order must be asc or desc")),
                });
            }
        }
    }
    Ok(q)
}

/// RFC 3986 unreserved characters stay as they are; everything else is encoded.
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte; the result must
/// be UTF-8. A `%` not followed by two hex digits is refused, where percent-encoding would pass
/// it on as text: a value forwarded to the backend must mean one thing.
fn percent_decode(raw: &str) -> Option<String> {
    let well_formed = raw.split('%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !well_formed {
        return None;
    }
    let spaced = raw.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, ENCODED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(target: &str) -> Result<UsersQuery, RequestError> {
        route("GET", target).map(|Route::Users(q)| q)
    }

    #[test]
    fn routes_only_get_admin_users() {
        assert_eq!(users("/admin/users").unwrap(), UsersQuery::default());
        assert_eq!(route("GET", "/"), Err(RequestError::NotFound));
        assert_eq!(route("GET", "/admin/users/"), Err(RequestError::NotFound));
        assert_eq!(route("GET", "/admin/Users"), Err(RequestError::NotFound));
        assert_eq!(
            route("POST", "/admin/users"),
            Err(RequestError::MethodNotAllowed)
        );
        assert_eq!(
            route("HEAD", "/admin/users?limit=5"),
            Err(RequestError::MethodNotAllowed)
        );
        // 404 wins over 405 on unknown paths.
        assert_eq!(route("DELETE", "/nope"), Err(RequestError::NotFound));
    }

    #[test]
    fn default_query_is_the_guides() {
        assert_eq!(UsersQuery::default().to_query_string(), "limit=20");
        assert_eq!(
            users("/admin/users?").unwrap().to_query_string(),
            "limit=20"
        );
    }

    #[test]
    fn valid_parameters_pass_through() {
        let q = users("/admin/users?limit=100&offset=40&sort_key=email&sort_order=desc&search=J%C3%BCrgen+O%27Neil%26co")
            .unwrap();
        assert_eq!(q.limit, 100);
        assert_eq!(q.offset, Some(40));
        assert_eq!(q.search.as_deref(), Some("Jürgen O'Neil&co"));
        assert_eq!(
            q.to_query_string(),
            "limit=100&offset=40&sort_key=email&sort_order=desc&search=J%C3%BCrgen%20O%27Neil%26co"
        );
        assert_eq!(users("/admin/users?limit=1").unwrap().limit, 1);
        assert_eq!(users("/admin/users?offset=0").unwrap().offset, Some(0));
    }

    #[test]
    fn bad_parameters_are_refused() {
        for target in [
            "/admin/users?limit=0",
            "/admin/users?limit=101",
            "/admin/users?limit=-1",
            "/admin/users?limit=abc",
            "/admin/users?limit=",
            "/admin/users?limit=1.5",
            "/admin/users?limit=20&limit=30",
            "/admin/users?offset=-5",
            "/admin/users?offset=99999999999",
            "/admin/users?sort_key=password",
            "/admin/users?sort_order=up",
            "/admin/users?search=%ZZ",
            "/admin/users?search=%FF",
            "/admin/users?search=%0A",
            "/admin/users?api_key=leak",
            "/admin/users?x",
        ] {
            assert!(
                matches!(users(target), Err(RequestError::InvalidQuery(_))),
                "accepted {target}"
            );
        }
        let long = format!("/admin/users?search={}", "a".repeat(257));
        assert!(users(&long).is_err());
        // Characters, not bytes, are counted.
        let ok = format!("/admin/users?search={}", "%C3%BC".repeat(256));
        assert_eq!(users(&ok).unwrap().search.unwrap().chars().count(), 256);
        let ok = format!("/admin/users?search={}", "a".repeat(256));
        assert!(users(&ok).is_ok());
        // 256 four-byte characters, percent-encoded, with every other parameter: still fits.
        let widest = format!(
            "/admin/users?limit=100&offset=1000000000&sort_key=phone_number&sort_order=desc&search={}",
            "%F0%9F%98%80".repeat(256)
        );
        assert_eq!(users(&widest).unwrap().search.unwrap().chars().count(), 256);
        // Control characters of both C0 and C1 are refused, as the schema's pattern says.
        for control in ["%00", "%1F", "%7F", "%C2%80", "%C2%9F"] {
            assert!(
                users(&format!("/admin/users?search=a{control}")).is_err(),
                "{control}"
            );
        }
        assert!(
            users("/admin/users?search=%C2%A0").is_ok(),
            "U+00A0 is no control"
        );
    }

    #[test]
    fn unknown_parameter_names_are_not_echoed() {
        let Err(RequestError::InvalidQuery(msg)) = users("/admin/users?%3Cscript%3E=1") else {
            panic!("accepted");
        };
        assert!(!msg.contains("script"));
    }
}
