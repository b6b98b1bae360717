//! Request ids and W3C Trace Context, so that every answer, log line and upstream call can be
//! traced to its request.
//!
//! - `X-Request-Id`: a caller's value of 1-128 characters from `[A-Za-z0-9._:-]` is kept (a proxy
//!   or the dashboard chose it); anything else is replaced by a fresh random id.
//! - `traceparent` (W3C Trace Context): a valid one keeps its trace id and flags, and our upstream
//!   calls get a new parent id (this component's span); `tracestate` is passed on with it.
//!   Without a valid one, a new trace starts.
//!
//! The randomness is passed in (the adapter reads `wasi:random`), as the clock is.

use std::fmt::Write as _;

use http::HeaderMap;

pub const MAX_REQUEST_ID_LEN: usize = 128;
/// Bounds what is passed on: W3C allows 32 list members, far less than this in practice.
const MAX_TRACESTATE_LEN: usize = 512;
/// Random bytes a request needs: a request id (16), a trace id (16), a span id (8).
pub const RANDOM_BYTES: usize = 40;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub request_id: String,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits: this component's span, the parent of its upstream calls.
    pub span_id: String,
    /// 2 lowercase hex digits (the caller's, else `00`: we do not decide sampling).
    pub flags: String,
    pub tracestate: Option<String>,
}

impl Trace {
    /// The ids of a request with these headers; `random` fills what the caller did not give.
    pub fn from_headers(headers: &HeaderMap, random: &[u8; RANDOM_BYTES]) -> Trace {
        let (fresh_request, rest) = random.split_at(16);
        let (fresh_trace, span) = rest.split_at(16);
        let request_id = single(headers, "x-request-id")
            .filter(|id| valid_request_id(id))
            .map_or_else(|| hex(fresh_request), str::to_string);
        let parent = single(headers, "traceparent").and_then(parse_traceparent);
        let tracestate = parent
            .as_ref()
            .and_then(|_| joined(headers, "tracestate"))
            .filter(|s| {
                !s.is_empty()
                    && s.len() <= MAX_TRACESTATE_LEN
                    && s.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
            });
        let (trace_id, flags) = parent.unwrap_or_else(|| (hex(fresh_trace), "00".to_string()));
        Trace {
            request_id,
            trace_id,
            span_id: hex(span),
            flags,
            tracestate,
        }
    }

    /// The `traceparent` of our upstream calls: the trace, with this component as the parent.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, self.flags)
    }
}

fn valid_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The value of a header sent once; a repeated one is ambiguous and counts as absent.
fn single<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok().map(str::trim),
        _ => None,
    }
}

/// A list header's lines joined as one (RFC 9110 §5.3).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Option<Vec<&str>> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().ok().map(str::trim))
        .collect();
    let values = values?;
    (!values.is_empty()).then(|| values.join(","))
}

/// W3C Trace Context `traceparent`: `version-traceid-parentid-flags`, lowercase hex of 2, 32, 16
/// and 2 digits; version `ff` and all-zero ids are invalid; a future version may append fields
/// after a `-`, version `00` may not. Returns the trace id and the flags.
fn parse_traceparent(value: &str) -> Option<(String, String)> {
    let hex_of = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let mut fields = value.split('-');
    let (version, trace_id, parent_id, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let rest_ok = match version {
        "00" => fields.next().is_none(),
        _ => true,
    };
    let valid = rest_ok
        && hex_of(version, 2)
        && version != "ff"
        && hex_of(trace_id, 32)
        && trace_id.bytes().any(|b| b != b'0')
        && hex_of(parent_id, 16)
        && parent_id.bytes().any(|b| b != b'0')
        && hex_of(flags, 2);
    valid.then(|| (trace_id.to_string(), flags.to_string()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANDOM: [u8; RANDOM_BYTES] = {
        let mut r = [0u8; RANDOM_BYTES];
        let mut i = 0;
        while i < RANDOM_BYTES {
            r[i] = i as u8 + 1;
            i += 1;
        }
        r
    };

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(*n, v.parse().unwrap());
        }
        map
    }

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn fresh_ids_without_caller_headers() {
        let t = Trace::from_headers(&HeaderMap::new(), &RANDOM);
        assert_eq!(t.request_id, "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(t.trace_id, "1112131415161718191a1b1c1d1e1f20");
        assert_eq!(t.span_id, "2122232425262728");
        assert_eq!(t.flags, "00");
        assert_eq!(
            t.traceparent(),
            "00-1112131415161718191a1b1c1d1e1f20-2122232425262728-00"
        );
        assert_eq!(t.tracestate, None);
    }

    #[test]
    fn a_valid_request_id_is_kept_and_anything_else_replaced() {
        for id in ["abc", "req-1.2_3:4", &"a".repeat(128)] {
            let t = Trace::from_headers(&headers(&[("x-request-id", id)]), &RANDOM);
            assert_eq!(t.request_id, id);
        }
        for id in ["", "a b", "a/b", "ü", &"a".repeat(129), "x\"y"] {
            let Ok(value) = http::HeaderValue::from_bytes(id.as_bytes()) else {
                continue;
            };
            let mut map = HeaderMap::new();
            map.insert("x-request-id", value);
            let t = Trace::from_headers(&map, &RANDOM);
            assert_eq!(t.request_id, "0102030405060708090a0b0c0d0e0f10", "{id:?}");
        }
        // Two ids: which one? Neither.
        let two = headers(&[("x-request-id", "a"), ("x-request-id", "b")]);
        assert_eq!(
            Trace::from_headers(&two, &RANDOM).request_id,
            "0102030405060708090a0b0c0d0e0f10"
        );
    }

    #[test]
    fn a_valid_traceparent_continues_its_trace_with_our_span() {
        let t = Trace::from_headers(
            &headers(&[
                ("traceparent", PARENT),
                ("tracestate", "congo=t61rcWkgMzE"),
                ("tracestate", "rojo=00f067aa0ba902b7"),
            ]),
            &RANDOM,
        );
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, "01");
        assert_eq!(
            t.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-2122232425262728-01"
        );
        assert_eq!(
            t.tracestate.as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        // A future version may carry more fields.
        let future = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        let t = Trace::from_headers(&headers(&[("traceparent", future)]), &RANDOM);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
            "",
        ] {
            let t = Trace::from_headers(
                &headers(&[("traceparent", bad), ("tracestate", "a=b")]),
                &RANDOM,
            );
            assert_eq!(t.trace_id, "1112131415161718191a1b1c1d1e1f20", "{bad}");
            assert_eq!(t.tracestate, None, "{bad}");
        }
        let long = format!("a={}", "b".repeat(MAX_TRACESTATE_LEN));
        let t = Trace::from_headers(
            &headers(&[("traceparent", PARENT), ("tracestate", &long)]),
            &RANDOM,
        );
        assert_eq!(t.tracestate, None, "over the bound: not passed on");
    }
}
