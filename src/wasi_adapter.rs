//! The thin wasi:http adapter: turns an incoming wasi request into the core's `Incoming`,
//! implements `Upstream` with `wasi:http/outgoing-handler`, and writes the core's `Reply` out.
//! Everything that decides anything lives in the core modules.

use std::cell::RefCell;

use crate::access_log;
use crate::config::{Config, ConfigError, LogFormat};
use crate::error::Error;
use crate::handler::{self, Context, Incoming};
use crate::jwks_cache::JwksCache;
use crate::reply::Reply;
use crate::request::RequestError;
use crate::signature::Verifier;
use crate::token_cache::TokenCache;
use crate::trace::{self, Trace};
use crate::upstream::{
    Method as OutMethod, OutRequest, OutResponse, Service, StatusCode, TransportError, Upstream,
};

// The generated bindings are FFI glue and need `unsafe`; the adapter code below needs none.
#[allow(unsafe_code)]
mod bindings {
    // The world also lists the imports Rust std needs; bind them too rather than map each.
    #[cfg(not(feature = "host-verifier"))]
    wit_bindgen::generate!({ path: "wit", world: "wacht-admin", generate_all });
    #[cfg(feature = "host-verifier")]
    wit_bindgen::generate!({ path: "wit", world: "wacht-admin-host-verifier", generate_all });
}

#[cfg(not(any(feature = "host-verifier", feature = "portable-verifier")))]
compile_error!("the component needs a verifier: feature `portable-verifier` or `host-verifier`");

/// Signatures: the host's native crypto when the world imports it, else jwt-simple in here.
#[cfg(feature = "host-verifier")]
const VERIFIER: &dyn Verifier = &host_verifier::HostVerifier;
#[cfg(not(feature = "host-verifier"))]
const VERIFIER: &dyn Verifier = &crate::signature::Portable;

#[cfg(feature = "host-verifier")]
mod host_verifier {
    use std::rc::Rc;

    use super::bindings::wacht::admin::verifier::{self as host, EcPoint, PublicKey, RsaPublicKey};
    use crate::jwks::Alg;
    use crate::signature::{PublicParams, Verifier, VerifyingKey};

    pub struct HostVerifier;

    impl Verifier for HostVerifier {
        fn import(&self, params: PublicParams<'_>) -> Option<Rc<dyn VerifyingKey>> {
            let key = match params {
                PublicParams::Ec { alg, x, y } => {
                    let point = EcPoint {
                        x: x.to_vec(),
                        y: y.to_vec(),
                    };
                    match alg {
                        Alg::Es256 => PublicKey::Es256(point),
                        Alg::Es384 => PublicKey::Es384(point),
                        Alg::Rs256 => return None,
                    }
                }
                PublicParams::Rsa { n, e } => PublicKey::Rs256(RsaPublicKey {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }),
            };
            let key = host::import_key(&key).ok()?;
            Some(Rc::new(HostKey(key)))
        }
    }

    struct HostKey(host::VerifyingKey);

    impl VerifyingKey for HostKey {
        fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            self.0.verify(message, signature)
        }
    }
}

#[allow(unsafe_code)]
mod export {
    use super::Component;
    super::bindings::export!(Component with_types_in super::bindings);
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::wasi;
use wasi::clocks::monotonic_clock;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    RequestOptions, ResponseOutparam, Scheme,
};
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::StreamError;

struct Component;

/// State that lives as long as the instance: hosts that reuse instances (the jco pool on
/// Workers, the native host) keep the JWKS and the parsed configuration between requests.
#[derive(Default)]
struct InstanceState {
    config: Option<Result<Config, ConfigError>>,
    jwks: JwksCache,
    tokens: TokenCache,
}

thread_local! {
    static STATE: RefCell<InstanceState> = RefCell::new(InstanceState::default());
}

const WRITE_CHUNK: usize = 4096;
const READ_CHUNK: u64 = 64 * 1024;

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let started = monotonic_clock::now();
        let method = http_method(&request.method());
        let target = request.path_with_query().unwrap_or_else(|| "/".to_string());
        let headers = header_map(request.headers().entries());
        drop(request);
        let now = wasi::clocks::wall_clock::now().seconds;
        let mut random = [0u8; trace::RANDOM_BYTES];
        let bytes = wasi::random::random::get_random_bytes(trace::RANDOM_BYTES as u64);
        for (slot, byte) in random.iter_mut().zip(bytes) {
            *slot = byte;
        }
        let trace = Trace::from_headers(&headers, &random);

        let (outcome, format) = STATE.with_borrow_mut(|state| {
            let config = state.config.get_or_insert_with(|| {
                let parsed = Config::from_vars(wasi::cli::environment::get_environment(), VERIFIER);
                // Once per instance, naming the variable (never its value): every request still
                // answers 500, and the Workers shim logs this line once per isolate.
                if let Err(e) = &parsed {
                    write_stderr(&format!("{} {e}\n", access_log::CONFIG_ERROR));
                }
                parsed
            });
            let format = match config {
                Ok(config) => config.log_format,
                Err(_) => LogFormat::default(),
            };
            // The host hands over only valid method tokens; anything else is simply not GET.
            let Some(method) = &method else {
                let refused = Error::from(RequestError::MethodNotAllowed);
                return (handler::refuse(&refused, &trace), format);
            };
            let incoming = Incoming {
                method,
                target: &target,
                headers: &headers,
            };
            let outcome = handler::handle(
                &incoming,
                Context {
                    config,
                    now,
                    jwks: &mut state.jwks,
                    tokens: &mut state.tokens,
                    verifier: VERIFIER,
                    upstream: &mut WasiUpstream,
                    trace: &trace,
                },
            );
            (outcome, format)
        });

        let elapsed_ns = monotonic_clock::now().saturating_sub(started);
        let method_text = method.as_ref().map_or("?", http::Method::as_str);
        let mut line = outcome.log_line(format, method_text, &target, elapsed_ns);
        line.push('\n');
        write_stderr(&line);
        write_reply(response_out, &outcome.reply);
    }
}

/// Straight to wasi:cli/stderr, not through std::io (whose machinery and error texts cost ~8 KB
/// of component). A failed write is ignored: logging must never fail the request.
fn write_stderr(line: &str) {
    let _ = wasi::cli::stderr::get_stderr().blocking_write_and_flush(line.as_bytes());
}

/// The wasi method as `http` has it; `None` for an extension method `http` refuses.
fn http_method(method: &Method) -> Option<http::Method> {
    Some(match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Delete => http::Method::DELETE,
        Method::Connect => http::Method::CONNECT,
        Method::Options => http::Method::OPTIONS,
        Method::Trace => http::Method::TRACE,
        Method::Patch => http::Method::PATCH,
        Method::Other(other) => http::Method::from_bytes(other.as_bytes()).ok()?,
    })
}

/// The request's headers as an `http::HeaderMap`. The host has validated names and values; one
/// that `http` still refuses is dropped, never guessed at.
fn header_map(entries: Vec<(String, Vec<u8>)>) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        if let (Ok(name), Ok(value)) = (
            http::header::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn write_reply(out: ResponseOutparam, reply: &Reply) {
    let headers = Fields::new();
    for (name, value) in reply.headers() {
        let _ = headers.append(name.as_str(), value.as_bytes());
    }
    let _ = headers.append("content-length", reply.body().len().to_string().as_bytes());
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(reply.status().as_u16());
    let Ok(body) = response.body() else {
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(None)));
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(stream) = body.write() {
        for chunk in reply.body().chunks(WRITE_CHUNK) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                // The client went away; nothing more to do.
                return;
            }
        }
        drop(stream);
    }
    let _ = OutgoingBody::finish(body, None);
}

/// `Upstream` over `wasi:http/outgoing-handler`, with one deadline for the whole exchange.
struct WasiUpstream;

impl Upstream for WasiUpstream {
    fn send(&mut self, req: OutRequest<'_>) -> Result<OutResponse, TransportError> {
        let timeout_ns = req.timeout_ms.saturating_mul(1_000_000);
        let deadline = monotonic_clock::now().saturating_add(timeout_ns);

        let headers = Fields::new();
        for (name, value) in &req.headers {
            headers
                .append(name, value.as_bytes())
                .map_err(|_| TransportError::Failed)?;
        }
        if let Some(body) = &req.body {
            headers
                .append("content-length", body.len().to_string().as_bytes())
                .map_err(|_| TransportError::Failed)?;
        }
        let outgoing = OutgoingRequest::new(headers);
        let method = if req.method == OutMethod::GET {
            Method::Get
        } else if req.method == OutMethod::POST {
            Method::Post
        } else {
            return Err(TransportError::Failed);
        };
        let scheme = if req.base.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        outgoing
            .set_method(&method)
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(Some(&req.base.authority)))
            .and_then(|()| outgoing.set_path_with_query(Some(&req.path_with_query)))
            .map_err(|()| TransportError::Failed)?;

        // Only a request with a body takes the body resource: a GET whose body is never taken
        // goes out with none, instead of racing an empty body's `finish` against the response.
        let body = match &req.body {
            Some(_) => Some(outgoing.body().map_err(|()| TransportError::Failed)?),
            None => None,
        };

        // Hosts that honour these fail fast on their own; the deadline below bounds the rest.
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(timeout_ns));
        let _ = options.set_first_byte_timeout(Some(timeout_ns));
        let _ = options.set_between_bytes_timeout(Some(timeout_ns));

        let future = outgoing_handler::handle(outgoing, Some(options)).map_err(map_error)?;

        if let (Some(body), Some(bytes)) = (body, &req.body) {
            let stream = body.write().map_err(|()| TransportError::Failed)?;
            for chunk in bytes.chunks(WRITE_CHUNK) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|_| TransportError::Failed)?;
            }
            drop(stream);
            OutgoingBody::finish(body, None).map_err(map_error)?;
        }

        wait(&future.subscribe(), deadline)?;
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(map_error(code)),
            Some(Err(())) | None => return Err(TransportError::Failed),
        };
        let status = StatusCode::from_u16(response.status()).map_err(|_| TransportError::Failed)?;
        // Only the JWKS answer's age is used. Other calls skip the lookup: on some hosts the first
        // `headers()` converts every header (the Workers shim builds them from fetch's).
        let age = match req.service {
            Service::Jwks => response.headers().get("age").into_iter().next(),
            Service::Gateway | Service::Backend => None,
        };
        let incoming_body = response.consume().map_err(|()| TransportError::Failed)?;
        let stream = incoming_body
            .stream()
            .map_err(|()| TransportError::Failed)?;
        let mut body = Vec::new();
        loop {
            wait(&stream.subscribe(), deadline)?;
            match stream.read(READ_CHUNK) {
                Ok(chunk) => {
                    if body.len().saturating_add(chunk.len()) > req.max_body_bytes {
                        return Err(TransportError::TooLarge);
                    }
                    body.extend_from_slice(&chunk);
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(_)) => return Err(TransportError::Failed),
            }
        }
        drop(stream);
        drop(incoming_body);
        Ok(OutResponse { status, body, age })
    }
}

/// Waits for `pollable` until `deadline` (monotonic nanoseconds).
fn wait(pollable: &Pollable, deadline: u64) -> Result<(), TransportError> {
    // Checked first: a host whose pollables always report ready must not spin past it.
    if monotonic_clock::now() >= deadline {
        return Err(TransportError::Timeout);
    }
    if pollable.ready() {
        return Ok(());
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    let ready = poll(&[pollable, &timer]);
    if ready.contains(&0) {
        Ok(())
    } else {
        Err(TransportError::Timeout)
    }
}

fn map_error(code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportError::Timeout,
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionLimitReached => TransportError::Unreachable,
        ErrorCode::HttpResponseBodySize(_) => TransportError::TooLarge,
        _ => TransportError::Failed,
    }
}
