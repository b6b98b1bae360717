//! CORS for admin dashboards in the browser, off unless `WACHT_CORS_ORIGINS` lists origins.
//!
//! - Exact origins only (`scheme://host[:port]`), no wildcard: an admin API answers the
//!   dashboards it was configured for, nothing else.
//! - A listed origin's preflight (`OPTIONS /admin/users` with `Access-Control-Request-Method`)
//!   is a 204 that allows `GET` with [`DEFAULT_ALLOW_HEADERS`] (and `WACHT_CORS_ALLOW_HEADERS`);
//!   every answer to a listed
//!   origin, errors included, says `Access-Control-Allow-Origin`, so the dashboard can read the
//!   JSON error. An unlisted origin gets no CORS header, and its preflight a 403.
//! - No credentials mode: tokens travel in headers, not cookies, so `Allow-Credentials` would
//!   only widen what a page could make a browser send.

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_METHOD,
    HeaderMap, HeaderValue, ORIGIN, VARY,
};
use http::{Method, StatusCode};

use crate::base_url::BaseUrl;
use crate::reply::{Reply, error_reply, json_reply};

/// The error code of a refused preflight.
pub const ORIGIN_NOT_ALLOWED: &str = "origin_not_allowed";
/// The error code of a preflight without the method it asks for.
pub const BAD_PREFLIGHT: &str = "bad_request";

/// How long a browser may reuse a preflight answer.
pub const MAX_AGE_SECS: u64 = 600;

/// The request headers a listed origin may send: the credentials, and the tracing headers that
/// OpenTelemetry and Sentry browser SDKs add to every fetch (a preflight refusing them blocks
/// those dashboards). `WACHT_CORS_ALLOW_HEADERS` adds more.
pub const DEFAULT_ALLOW_HEADERS: [&str; 5] = [
    "authorization",
    "x-api-key",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// The response headers a listed origin's page may read beyond the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "retry-after, www-authenticate, x-request-id";

/// The preflight's `Access-Control-Allow-Headers`: the defaults, then each of `extra` (header
/// names, any case) not among them. `None` if one is not a valid header name.
pub fn allow_headers<'a>(extra: impl IntoIterator<Item = &'a str>) -> Option<HeaderValue> {
    let mut names: Vec<String> = DEFAULT_ALLOW_HEADERS
        .iter()
        .map(|n| n.to_string())
        .collect();
    for name in extra {
        let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
        if !names.iter().any(|n| n == name.as_str()) {
            names.push(name.as_str().to_string());
        }
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// A configured origin, normalised: lowercase scheme and host, no default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// `scheme://host[:port]` with an http(s) scheme and nothing after the authority (not even
    /// a `/`), as browsers send `Origin`.
    pub fn parse(raw: &str) -> Option<Origin> {
        if raw.ends_with('/') {
            return None;
        }
        let base = BaseUrl::parse(raw).filter(|base| base.path.is_empty())?;
        let default_port = if base.https { ":443" } else { ":80" };
        let authority = base
            .authority
            .strip_suffix(default_port)
            .unwrap_or(&base.authority);
        Some(Origin(format!("{}://{authority}", base.scheme())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What CORS makes of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// CORS is off: answer as usual.
    Off,
    /// CORS is on and the request has no `Origin` (not from a browser page): answer as usual.
    NoOrigin,
    /// A listed origin: answer as usual, then mark the answer readable by it.
    Allowed(HeaderValue),
    /// An unlisted origin: answer as usual, with no CORS header.
    Unlisted,
}

/// Reads the request's `Origin` against the configured list.
pub fn decide(allowed: &[Origin], headers: &HeaderMap) -> Decision {
    if allowed.is_empty() {
        return Decision::Off;
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Decision::NoOrigin;
    };
    let listed = origin
        .to_str()
        .ok()
        .and_then(Origin::parse)
        .is_some_and(|o| allowed.contains(&o));
    if listed {
        Decision::Allowed(origin.clone())
    } else {
        Decision::Unlisted
    }
}

/// With CORS on, `OPTIONS` on the users route is the preflight: 204 for a listed origin asking
/// with `Access-Control-Request-Method`, 403 for any other origin or none, 400 for a listed one
/// that does not say which method. With CORS off it is `None`: a plain 405 like any method but GET.
pub fn preflight(
    decision: &Decision,
    allow_headers: &HeaderValue,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    request_id: &str,
) -> Option<Reply> {
    if method != Method::OPTIONS || path != crate::request::USERS_PATH {
        return None;
    }
    match decision {
        Decision::Off => None,
        Decision::NoOrigin | Decision::Unlisted => Some(error_reply(
            StatusCode::FORBIDDEN,
            ORIGIN_NOT_ALLOWED,
            "this origin is not in WACHT_CORS_ORIGINS",
            request_id,
        )),
        Decision::Allowed(_) if !headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD) => {
            Some(error_reply(
                StatusCode::BAD_REQUEST,
                BAD_PREFLIGHT,
                "a CORS preflight needs Access-Control-Request-Method",
                request_id,
            ))
        }
        Decision::Allowed(_) => {
            let mut reply = json_reply(StatusCode::NO_CONTENT, Vec::new());
            let headers = reply.headers_mut();
            headers.remove(http::header::CONTENT_TYPE);
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET"),
            );
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers.clone());
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECS));
            Some(reply)
        }
    }
}

/// Marks an answer for a listed origin (and says that answers vary by origin).
pub fn decorate(decision: &Decision, reply: &mut Reply) {
    let headers = reply.headers_mut();
    match decision {
        Decision::Off | Decision::NoOrigin => {}
        Decision::Unlisted => {
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
        Decision::Allowed(origin) => {
            headers.append(VARY, HeaderValue::from_static("origin"));
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<Origin> {
        list.iter().map(|o| Origin::parse(o).unwrap()).collect()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.insert(*n, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn origins_are_exact_and_normalised() {
        assert_eq!(
            Origin::parse("HTTPS://Admin.Example.com:443")
                .unwrap()
                .as_str(),
            "https://admin.example.com"
        );
        assert_eq!(
            Origin::parse("http://localhost:3000").unwrap().as_str(),
            "http://localhost:3000"
        );
        for bad in [
            "*",
            "https://*.example.com",
            "admin.example.com",
            "https://admin.example.com/",
            "https://admin.example.com/path",
            "https://",
            "ftp://admin.example.com",
            "https://a.example.com?x",
            "https://user@a.example.com",
            "null",
        ] {
            assert_eq!(Origin::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn decisions() {
        let allowed = origins(&["https://admin.example.com"]);
        let from = |o: &str| decide(&allowed, &headers(&[("origin", o)]));
        assert!(matches!(
            from("https://admin.example.com"),
            Decision::Allowed(_)
        ));
        assert!(matches!(
            from("https://ADMIN.example.com:443"),
            Decision::Allowed(_)
        ));
        assert_eq!(from("https://evil.example.com"), Decision::Unlisted);
        assert_eq!(
            from("https://admin.example.com.evil.com"),
            Decision::Unlisted
        );
        assert_eq!(from("http://admin.example.com"), Decision::Unlisted);
        assert_eq!(from("null"), Decision::Unlisted);
        assert_eq!(decide(&allowed, &HeaderMap::new()), Decision::NoOrigin);
        // CORS off: an Origin changes nothing.
        assert_eq!(
            decide(&[], &headers(&[("origin", "https://admin.example.com")])),
            Decision::Off
        );
    }

    #[test]
    fn preflights() {
        let allowed = origins(&["https://admin.example.com"]);
        let req = headers(&[
            ("origin", "https://admin.example.com"),
            ("access-control-request-method", "GET"),
        ]);
        let d = decide(&allowed, &req);
        let defaults = allow_headers([]).unwrap();
        let mut ok = preflight(&d, &defaults, &Method::OPTIONS, "/admin/users", &req, "r").unwrap();
        decorate(&d, &mut ok);
        assert_eq!(ok.status(), 204);
        assert!(ok.body().is_empty());
        let h = ok.headers();
        assert_eq!(
            h["access-control-allow-origin"],
            "https://admin.example.com"
        );
        assert_eq!(h["access-control-allow-methods"], "GET");
        assert_eq!(
            h["access-control-allow-headers"],
            "authorization, x-api-key, x-request-id, traceparent, tracestate"
        );
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["vary"], "origin");
        assert_eq!(h["cache-control"], "no-store");
        assert!(!h.contains_key("access-control-allow-credentials"));
        assert!(!h.contains_key("content-type"));
        // A listed origin that does not say which method: a malformed preflight.
        let plain = headers(&[("origin", "https://admin.example.com")]);
        let bad = preflight(&d, &defaults, &Method::OPTIONS, "/admin/users", &plain, "r").unwrap();
        assert_eq!(bad.status(), 400);
        // No origin at all, with CORS on: refused like an unlisted one.
        let none = preflight(
            &Decision::NoOrigin,
            &defaults,
            &Method::OPTIONS,
            "/admin/users",
            &req,
            "r",
        );
        assert_eq!(none.map(|r| r.status().as_u16()), Some(403));
        // CORS off: no preflight, the route's 405.
        assert!(
            preflight(
                &Decision::Off,
                &defaults,
                &Method::OPTIONS,
                "/admin/users",
                &req,
                "r"
            )
            .is_none()
        );
        // Not a preflight: another method, another path.
        assert!(preflight(&d, &defaults, &Method::GET, "/admin/users", &req, "r").is_none());
        assert!(preflight(&d, &defaults, &Method::OPTIONS, "/other", &req, "r").is_none());
        // An unlisted origin's preflight is refused, with no CORS header.
        let evil = headers(&[
            ("origin", "https://evil.example.com"),
            ("access-control-request-method", "GET"),
        ]);
        let d = decide(&allowed, &evil);
        let mut no =
            preflight(&d, &defaults, &Method::OPTIONS, "/admin/users", &evil, "r").unwrap();
        decorate(&d, &mut no);
        assert_eq!(no.status(), 403);
        assert!(!no.headers().contains_key("access-control-allow-origin"));
        let body: serde_json::Value = serde_json::from_slice(no.body()).unwrap();
        assert_eq!(body["error"], "origin_not_allowed");
    }

    #[test]
    fn allowed_request_headers_extend_the_defaults() {
        let value = allow_headers(["X-Tenant", "traceparent", "x-tenant", "baggage"]).unwrap();
        assert_eq!(
            value,
            "authorization, x-api-key, x-request-id, traceparent, tracestate, x-tenant, baggage"
        );
        assert_eq!(allow_headers(["bad header"]), None);
        assert_eq!(allow_headers(["x:y"]), None);
    }
}
