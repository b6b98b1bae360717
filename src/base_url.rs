//! Where an upstream lives: an absolute http(s) URL split into what an outgoing request needs.
//! Below `config` (the Wacht URLs) and `cors` (the allowed origins), which both read URLs.

/// An http(s) base URL split into what an outgoing request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub https: bool,
    /// `host[:port]`, lowercased host.
    pub authority: String,
    /// Path prefix without a trailing slash ("" for the root).
    pub path: String,
}

impl BaseUrl {
    /// An absolute http(s) URL without user info, query or fragment (`http::Uri` parses it).
    pub fn parse(raw: &str) -> Option<BaseUrl> {
        if raw.contains('#') {
            return None;
        }
        let uri: http::Uri = raw.parse().ok()?;
        let https = match uri.scheme_str()? {
            s if s.eq_ignore_ascii_case("https") => true,
            s if s.eq_ignore_ascii_case("http") => false,
            _ => return None,
        };
        let authority = uri.authority()?;
        // `http` keeps a port it cannot read as u16 in the text but not in `port()`.
        let port = authority
            .as_str()
            .strip_prefix(authority.host())
            .unwrap_or_default();
        let valid_port = port.is_empty()
            || port
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        // A DNS name or an IP literal: `http` also takes sub-delimiters such as `*` in a host.
        let valid_host = authority.host().bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
        if authority.as_str().contains('@')
            || authority.host().is_empty()
            || !valid_host
            || !valid_port
        {
            return None;
        }
        if uri.query().is_some() {
            return None;
        }
        Some(BaseUrl {
            https,
            authority: authority.as_str().to_ascii_lowercase(),
            path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    /// The origin, as `iss` carries it: `https://host[:port]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), self.authority)
    }

    pub fn scheme(&self) -> &'static str {
        if self.https { "https" } else { "http" }
    }
}
