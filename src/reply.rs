//! The answer every part of the core builds, in its two shapes: a JSON body passed through as it
//! is, and the error body `{"error": code, "message": text, "request_id": id}`.

use http::StatusCode;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};

/// A response, ready for any host adapter to write out.
pub type Reply = http::Response<Vec<u8>>;

/// A JSON body passed through unchanged. Every answer carries `Cache-Control: no-store` (user
/// data and auth errors must not be kept by browsers or shared caches) and
/// `X-Content-Type-Options: nosniff`.
pub fn json_reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut reply = Reply::new(body);
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    reply
}

/// An error answer. The request id lets whoever reads the body find the request's log line.
pub fn error_reply(status: StatusCode, code: &str, message: &str, request_id: &str) -> Reply {
    let body = serde_json::json!({ "error": code, "message": message, "request_id": request_id });
    json_reply(status, body.to_string().into_bytes())
}
