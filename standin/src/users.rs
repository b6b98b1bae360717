//! The backend API's `User`, shaped exactly as `GET /users` returns it (contract §5), and a few
//! sample users for tests and demo mode.

use serde::{Deserialize, Serialize};

/// One user as the backend API lists it. Field order and names match the server's JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Decimal id, as a string.
    pub id: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    pub first_name: String,
    pub last_name: String,
    pub username: Option<String>,
    pub profile_picture_url: String,
    pub primary_email_address: Option<String>,
    pub primary_phone_number: Option<String>,
}

/// Five users that cover the nullable fields (no username, no email, a phone number).
pub fn sample_users() -> Vec<User> {
    let user = |id: u64,
                day: u32,
                first: &str,
                last: &str,
                username: Option<&str>,
                email: Option<&str>,
                phone: Option<&str>| User {
        id: id.to_string(),
        created_at: format!("2026-01-{day:02}T09:30:00.000Z"),
        updated_at: format!("2026-03-{day:02}T17:05:12.345Z"),
        first_name: first.to_string(),
        last_name: last.to_string(),
        username: username.map(str::to_string),
        profile_picture_url: format!("https://img.wacht.dev/avatars/{id}.png"),
        primary_email_address: email.map(str::to_string),
        primary_phone_number: phone.map(str::to_string),
    };
    vec![
        user(
            1_900_000_000_000_000_001,
            3,
            "Ada",
            "Lovelace",
            Some("ada"),
            Some("ada@example.com"),
            None,
        ),
        user(
            1_900_000_000_000_000_002,
            7,
            "Grace",
            "Hopper",
            Some("grace"),
            Some("grace@example.com"),
            Some("+15555550102"),
        ),
        user(
            1_900_000_000_000_000_003,
            11,
            "Alan",
            "Turing",
            None,
            Some("alan@example.com"),
            None,
        ),
        user(
            1_900_000_000_000_000_004,
            19,
            "Edsger",
            "Dijkstra",
            Some("ewd"),
            None,
            Some("+31555550104"),
        ),
        user(
            1_900_000_000_000_000_005,
            23,
            "Barbara",
            "Liskov",
            Some("liskov"),
            Some("barbara@example.com"),
            None,
        ),
    ]
}

/// The backend API's list parameters, as the stand-in understands them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub limit: usize,
    pub offset: usize,
    pub search: Option<String>,
    pub sort_key: Option<String>,
    pub desc: bool,
}

impl ListQuery {
    /// Parses `limit`, `offset`, `search`, `sort_key`, `sort_order`; other names are ignored, as
    /// the real server's extractor does. `Err` carries the message of a 400.
    pub(crate) fn parse(query: Option<&str>) -> Result<ListQuery, String> {
        let mut q = ListQuery {
            limit: 20,
            offset: 0,
            search: None,
            sort_key: None,
            desc: false,
        };
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            match name.as_ref() {
                "limit" => {
                    q.limit = value
                        .parse()
                        .map_err(|_| "limit must be a number".to_string())?
                }
                "offset" => {
                    q.offset = value
                        .parse()
                        .map_err(|_| "offset must be a number".to_string())?
                }
                "search" => q.search = Some(value),
                "sort_key" => match value.as_str() {
                    "created_at" | "username" | "email" | "phone_number" => {
                        q.sort_key = Some(value)
                    }
                    _ => return Err(format!("unknown sort_key {value:?}")),
                },
                "sort_order" => match value.as_str() {
                    "asc" => q.desc = false,
                    "desc" => q.desc = true,
                    _ => return Err(format!("unknown sort_order {value:?}")),
                },
                _ => {}
            }
        }
        Ok(q)
    }

    /// Filters, sorts and pages `users`; returns the page and `has_more`.
    pub(crate) fn apply(&self, users: &[User]) -> (Vec<User>, bool) {
        let mut selected: Vec<User> = users
            .iter()
            .filter(|u| match &self.search {
                None => true,
                Some(s) => {
                    let s = s.to_lowercase();
                    [
                        Some(&u.first_name),
                        Some(&u.last_name),
                        u.username.as_ref(),
                        u.primary_email_address.as_ref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&s))
                }
            })
            .cloned()
            .collect();
        if let Some(key) = &self.sort_key {
            selected.sort_by(|a, b| {
                let field = |u: &User| -> Option<String> {
                    match key.as_str() {
                        "username" => u.username.clone(),
                        "email" => u.primary_email_address.clone(),
                        "phone_number" => u.primary_phone_number.clone(),
                        _ => Some(u.created_at.clone()),
                    }
                };
                field(a).cmp(&field(b))
            });
        }
        if self.desc {
            selected.reverse();
        }
        let total = selected.len();
        let page: Vec<User> = selected
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        let has_more = self.offset.saturating_add(self.limit) < total;
        (page, has_more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_serialize_with_every_field() {
        let users = sample_users();
        let json = serde_json::to_value(&users).unwrap();
        let first = &json[0];
        for field in [
            "id",
            "created_at",
            "updated_at",
            "first_name",
            "last_name",
            "username",
            "profile_picture_url",
            "primary_email_address",
            "primary_phone_number",
        ] {
            assert!(first.get(field).is_some(), "missing {field}");
        }
        assert!(first["id"].is_string());
        assert!(json[2]["username"].is_null());
        assert!(json[3]["primary_email_address"].is_null());
    }

    #[test]
    fn paging_and_search() {
        let users = sample_users();
        let q = ListQuery::parse(Some("limit=2&offset=1")).unwrap();
        let (page, more) = q.apply(&users);
        assert_eq!(page.len(), 2);
        assert_eq!(page[0].first_name, "Grace");
        assert!(more);
        let q = ListQuery::parse(Some("search=GRACE%20")).unwrap();
        assert_eq!(q.search.as_deref(), Some("GRACE "));
        let q = ListQuery::parse(Some("search=hopper&limit=20")).unwrap();
        let (page, more) = q.apply(&users);
        assert_eq!(page.len(), 1);
        assert!(!more);
        assert!(ListQuery::parse(Some("limit=x")).is_err());
        assert!(ListQuery::parse(Some("sort_key=name")).is_err());
    }
}
