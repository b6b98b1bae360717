//! The host's log lines, written through `tracing` (text by default, one JSON object per line
//! with `--log-format json`): one access event per request (target `access`, on the access
//! sink), the component's own lines tagged with the request number (target `guest`) and the
//! host's messages and failures (target `host`), both on the guest sink, and the start-up
//! banner (target `banner`, on its own sink).
//!
//! In JSON, every line is tracing-subscriber's JSON object, flattened (`timestamp`, `level`,
//! `message`, the fields, `target`). An event may carry a JSON object in its [`MERGE_FIELD`]: its
//! members become fields of the line, typed as they are (numbers, `null`, nested values), which
//! tracing's own fields cannot be (no `null`, names fixed where the event is written). That is
//! how the component's JSON access line is merged, whatever fields it has, and how the host's
//! access event says `null` for an absent value.
//!
//! Each server owns its subscriber (a [`Dispatch`] used for its own events), so several servers
//! in one process (the tests) keep their lines apart and nothing global is installed.

use std::borrow::Cow;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::PoisonError;

use indexmap::IndexMap;
use serde_json::Value;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use wacht_admin::credentials::KINDS;
use wacht_admin::error::CODES;
use wacht_admin::handler::{ACCESS_LOG_MSG, TOKEN_CACHE_RESULTS};

use crate::settings::{LogFormat, LogSink};

const ACCESS: &str = "access";
const BANNER: &str = "banner";
/// The field whose value, a JSON object, is spread into the JSON line (see the module
/// documentation).
pub const MERGE_FIELD: &str = "json_fields";
/// A merged object's member with this name (the component's `msg`) becomes the line's message.
const MERGED_MESSAGE: &str = "msg";
/// A merged member whose name the host's line already has is kept under this prefix.
const COLLISION_PREFIX: &str = "component_";

/// What the access event records about one request. No query string, header or body.
#[derive(Debug)]
pub(crate) struct Access<'a> {
    pub id: u64,
    /// The `X-Request-Id` of the answer, the one the component saw too.
    pub request_id: &'a str,
    pub peer: SocketAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub ms: f64,
    /// What the component's own log line said.
    pub component: ComponentLine,
    pub instance: Option<u64>,
    pub uses: Option<u64>,
    /// The host's error code when the host, not the component, answered.
    pub error: Option<&'a str>,
}

/// The access event's fields in JSON: absent values `null`, numbers numbers, in this order.
#[derive(serde::Serialize)]
struct AccessFields<'a> {
    req: u64,
    request_id: &'a str,
    peer: SocketAddr,
    method: &'a str,
    path: &'a str,
    status: u16,
    bytes: u64,
    ms: f64,
    credential: Option<&'static str>,
    token_cache: Option<&'static str>,
    instance: Option<u64>,
    uses: Option<u64>,
    error: Option<&'a str>,
}

/// An optional field as its value or `-` (the text format), formatted where the line is written
/// (no String per field per request).
struct Dash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Writes the host's lines; cheap to clone.
#[derive(Clone)]
pub struct Logger {
    dispatch: Dispatch,
    format: LogFormat,
    access: LogSink,
    guest: LogSink,
    banner: LogSink,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logger")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Logger {
    /// Access events to `access`, the banner to `banner`, everything else to `guest`.
    pub fn new(format: LogFormat, access: LogSink, guest: LogSink, banner: LogSink) -> Logger {
        let sinks = Sinks {
            access: access.clone(),
            guest: guest.clone(),
            banner: banner.clone(),
        };
        let builder = tracing_subscriber::fmt().with_writer(sinks);
        let dispatch = match format {
            LogFormat::Text => Dispatch::new(builder.finish()),
            LogFormat::Json => {
                let json = tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false);
                Dispatch::new(builder.json().event_format(MergeJson(json)).finish())
            }
        };
        Logger {
            dispatch,
            format,
            access,
            guest,
            banner,
        }
    }

    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// A message of the host's own (start-up, signals, shutdown).
    pub fn info(&self, message: &str) {
        self.host(tracing::Level::INFO, message);
    }

    pub fn warn(&self, message: &str) {
        self.host(tracing::Level::WARN, message);
    }

    pub fn error(&self, message: &str) {
        self.host(tracing::Level::ERROR, message);
    }

    fn host(&self, level: tracing::Level, message: &str) {
        if self.guest.is_off() {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || match level {
            tracing::Level::ERROR => tracing::error!(target: "host", "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "host", "{message}"),
            _ => tracing::info!(target: "host", "{message}"),
        });
    }

    pub(crate) fn access(&self, a: &Access<'_>) {
        if self.access.is_off() {
            return;
        }
        let ms = (a.ms * 100.0).round() / 100.0;
        tracing::dispatcher::with_default(&self.dispatch, || match self.format {
            LogFormat::Text => tracing::info!(
                target: ACCESS,
                req = a.id,
                request_id = %a.request_id,
                peer = %a.peer,
                method = %a.method,
                path = %a.path,
                status = a.status,
                bytes = a.bytes,
                ms,
                credential = %Dash(a.component.credential),
                token_cache = %Dash(a.component.token_cache),
                instance = %Dash(a.instance),
                uses = %Dash(a.uses),
                error = %Dash(a.error),
            ),
            LogFormat::Json => {
                let fields = AccessFields {
                    req: a.id,
                    request_id: a.request_id,
                    peer: a.peer,
                    method: a.method,
                    path: a.path,
                    status: a.status,
                    bytes: a.bytes,
                    ms,
                    credential: a.component.credential,
                    token_cache: a.component.token_cache,
                    instance: a.instance,
                    uses: a.uses,
                    error: a.error,
                };
                let fields = serde_json::to_string(&fields).unwrap_or_default();
                tracing::info!(target: ACCESS, json_fields = fields.as_str(), "request");
            }
        });
    }

    /// One line the component wrote (already made printable and bounded). In JSON, a line
    /// that is a JSON object (its access line) is merged into the event.
    pub(crate) fn guest(&self, id: u64, line: &str) {
        if self.guest.is_off() {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || {
            if self.format == LogFormat::Json && line.starts_with('{') {
                tracing::info!(target: "guest", req = id, json_fields = line, "component");
            } else {
                tracing::info!(target: "guest", req = id, "{line}");
            }
        });
    }

    /// A failure of the host or of a request (`id` 0: not about one request).
    pub(crate) fn failure(&self, id: u64, message: &str) {
        if self.guest.is_off() {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || {
            if id == 0 {
                tracing::warn!(target: "host", "{message}");
            } else {
                tracing::warn!(target: "host", req = id, "{message}");
            }
        });
    }

    /// The start-up banner: `text` as it is (for a person), or in JSON one event whose
    /// message is `message` and whose fields are `fields` (a JSON object).
    pub(crate) fn banner(&self, text: &str, message: &str, fields: &Value) {
        if self.banner.is_off() {
            return;
        }
        match self.format {
            LogFormat::Text => {
                let _ = SinkWriter(&self.banner).write_all(text.as_bytes());
            }
            LogFormat::Json => {
                let fields = fields.to_string();
                tracing::dispatcher::with_default(&self.dispatch, || {
                    tracing::info!(target: BANNER, json_fields = fields.as_str(), "{message}");
                });
            }
        }
    }
}

/// tracing-subscriber's JSON format, with the [`MERGE_FIELD`] of an event spread into its line.
struct MergeJson(Format<Json>);

impl<S, N> FormatEvent<S, N> for MergeJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().fields().field(MERGE_FIELD).is_none() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        match merged(&line) {
            Some(merged) => writeln!(writer, "{merged}"),
            None => writer.write_str(&line),
        }
    }
}

/// `line`, a JSON object, with the object in its [`MERGE_FIELD`] spread into it, before its
/// `target` (the host's own fields win; see [`COLLISION_PREFIX`], [`MERGED_MESSAGE`]). A value
/// that is not a JSON object becomes the message. `None` if `line` is not a JSON object.
fn merged(line: &str) -> Option<String> {
    let mut event: IndexMap<String, Value> = serde_json::from_str(line).ok()?;
    let raw = match event.shift_remove(MERGE_FIELD) {
        Some(Value::String(raw)) => raw,
        _ => return None,
    };
    let target = event.shift_remove("target");
    match serde_json::from_str::<IndexMap<String, Value>>(&raw) {
        Ok(fields) => {
            for (name, value) in fields {
                if name == MERGED_MESSAGE && value.is_string() {
                    event.insert("message".to_string(), value);
                } else if event.contains_key(&name) || name == "target" {
                    event.insert(format!("{COLLISION_PREFIX}{name}"), value);
                } else {
                    event.insert(name, value);
                }
            }
        }
        Err(_) => {
            event.insert("message".to_string(), Value::String(raw));
        }
    }
    if let Some(target) = target {
        event.insert("target".to_string(), target);
    }
    serde_json::to_string(&event).ok()
}

/// Access events to the access sink, the banner to its own, everything else to the guest sink.
struct Sinks {
    access: LogSink,
    guest: LogSink,
    banner: LogSink,
}

impl<'a> MakeWriter<'a> for Sinks {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> SinkWriter<'a> {
        SinkWriter(&self.guest)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SinkWriter<'a> {
        SinkWriter(match meta.target() {
            ACCESS => &self.access,
            BANNER => &self.banner,
            _ => &self.guest,
        })
    }
}

/// The formatter writes each event whole in one call; a failed write (a closed pipe) is
/// ignored: logging never fails a request.
struct SinkWriter<'a>(&'a LogSink);

impl std::io::Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0 {
            LogSink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(buf);
                // A pipe (a log collector) must see each line when it is written.
                let _ = out.flush();
            }
            LogSink::Stderr => {
                let _ = std::io::stderr().lock().write_all(buf);
            }
            LogSink::Off => {}
            LogSink::Memory(lines) => {
                let text = String::from_utf8_lossy(buf);
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(text.lines().map(str::to_string));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the component's own access line says (its text or JSON format), as the fixed words
/// the component uses: label values for the metrics, with nothing allocated per request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ComponentLine {
    pub credential: Option<&'static str>,
    pub token_cache: Option<&'static str>,
    /// The error code of a non-2xx answer ([`wacht_admin::error::CODES`]).
    pub error: Option<&'static str>,
}

impl ComponentLine {
    /// The component's access line among what it wrote for one request (default: none found).
    pub(crate) fn find(stderr: &str) -> ComponentLine {
        stderr
            .lines()
            .rev()
            .find_map(ComponentLine::parse)
            .unwrap_or_default()
    }

    fn parse(line: &str) -> Option<ComponentLine> {
        let line = line.trim();
        if let Some(fields) = line
            .strip_prefix(ACCESS_LOG_MSG)
            .and_then(|rest| rest.strip_prefix(' '))
        {
            let mut parsed = ComponentLine::default();
            for (key, value) in fields.split_whitespace().filter_map(|f| f.split_once('=')) {
                match key {
                    "credential" => parsed.credential = word(value, &KINDS),
                    "token_cache" => parsed.token_cache = word(value, &TOKEN_CACHE_RESULTS),
                    "error" => parsed.error = word(value, &CODES),
                    _ => {}
                }
            }
            return Some(parsed);
        }
        if line.starts_with('{') {
            // Only the fields the metrics read, borrowed where unescaped: no map built per request.
            let v: JsonLine<'_> = serde_json::from_str(line).ok()?;
            if v.msg != ACCESS_LOG_MSG {
                return None;
            }
            let field = |f: Option<Cow<'_, str>>, words| f.and_then(|f| word(&f, words));
            return Some(ComponentLine {
                credential: field(v.credential, &KINDS),
                token_cache: field(v.token_cache, &TOKEN_CACHE_RESULTS),
                error: field(v.error, &CODES),
            });
        }
        None
    }
}

/// The fields of the component's JSON access line that the metrics read (others are skipped).
#[derive(serde::Deserialize)]
struct JsonLine<'a> {
    #[serde(borrow)]
    msg: Cow<'a, str>,
    #[serde(borrow, default)]
    credential: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    token_cache: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
}

/// `value` as one of `words`; `-` (none) is `None`, anything else `other`.
fn word(value: &str, words: &[&'static str]) -> Option<&'static str> {
    match value {
        "-" | "" => None,
        _ => Some(
            words
                .iter()
                .copied()
                .find(|w| *w == value)
                .unwrap_or("other"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_component_line_is_read_in_both_formats() {
        let text = "wacht-admin method=GET path=/admin/users status=200 credential=session \
                    gateway_request_id=- upstream_status=200 token_cache=hit duration_ms=0.4";
        let json = r#"{"msg":"wacht-admin","method":"GET","status":401,"credential":null,"token_cache":null}"#;
        assert_eq!(
            ComponentLine::find(&format!("something else\n{text}\n")),
            ComponentLine {
                credential: Some("session"),
                token_cache: Some("hit"),
                error: None,
            }
        );
        let api_key = r#"{"msg":"wacht-admin","credential":"api_key","token_cache":"sideways"}"#;
        assert_eq!(
            ComponentLine::find(api_key),
            ComponentLine {
                credential: Some("api_key"),
                token_cache: Some("other"),
                error: None,
            }
        );
        assert_eq!(ComponentLine::find(json), ComponentLine::default());
        assert_eq!(
            ComponentLine::find("config error: WACHT_X\n{\"msg\":\"other\"}"),
            ComponentLine::default()
        );
    }

    fn lines(sink: &std::sync::Arc<std::sync::Mutex<Vec<String>>>) -> Vec<Value> {
        sink.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    fn access(credential: Option<&'static str>) -> Access<'static> {
        Access {
            id: 7,
            request_id: "r-7",
            peer: SocketAddr::from(([127, 0, 0, 1], 9)),
            method: "GET",
            path: "/admin/users",
            status: 200,
            bytes: 2,
            ms: 0.5,
            component: ComponentLine {
                credential,
                ..ComponentLine::default()
            },
            instance: None,
            uses: Some(3),
            error: None,
        }
    }

    #[test]
    fn json_lines_parse_are_typed_and_go_to_their_sink() {
        let (access_sink, access_lines) = LogSink::memory();
        let (guest, guest_lines) = LogSink::memory();
        let (banner, banner_lines) = LogSink::memory();
        let log = Logger::new(LogFormat::Json, access_sink, guest, banner);
        log.access(&access(Some("session")));
        log.guest(7, "hello \"guest\"");
        // The component's access line, with fields it may add later (an error code, a request
        // id, a nested object) and one named like a field of the host's line.
        log.guest(
            7,
            r#"{"msg":"wacht-admin","method":"GET","status":401,"credential":null,"duration_ms":0.4,"error":"invalid_token","request_id":"r-1","audit":{"sub":"u"},"req":99}"#,
        );
        log.guest(7, "{not json");
        log.failure(7, "failed: trap");
        log.info("SIGTERM: finishing");
        log.banner(
            "ignored in JSON",
            "serving",
            &serde_json::json!({"url": "http://x", "curl": ["a", "b"]}),
        );

        let access = lines(&access_lines);
        assert_eq!(access.len(), 1, "{access:?}");
        let a = &access[0];
        assert_eq!(a["message"], "request");
        assert_eq!(a["level"], "INFO");
        assert!(a["timestamp"].is_string());
        assert_eq!(a["req"], 7);
        assert_eq!(a["status"], 200);
        assert_eq!(a["ms"], 0.5);
        assert_eq!(a["credential"], "session");
        assert_eq!(a["token_cache"], Value::Null);
        assert_eq!(a["instance"], Value::Null);
        assert_eq!(a["uses"], 3);
        assert_eq!(a["peer"], "127.0.0.1:9");
        assert_eq!(a["target"], "access");
        assert!(a.get(MERGE_FIELD).is_none());

        let guest = lines(&guest_lines);
        assert_eq!(guest.len(), 5, "{guest:?}");
        for g in &guest {
            assert!(g["timestamp"].is_string() && g["level"].is_string(), "{g}");
            assert!(g["message"].is_string(), "{g}");
        }
        assert_eq!(guest[0]["message"], "hello \"guest\"");
        assert_eq!(guest[0]["req"], 7);
        let c = &guest[1];
        assert_eq!(c["message"], "wacht-admin");
        assert_eq!(c["req"], 7, "the host's request number wins");
        assert_eq!(c["component_req"], 99);
        assert_eq!(c["status"], 401);
        assert_eq!(c["duration_ms"], 0.4);
        assert_eq!(c["credential"], Value::Null);
        assert_eq!(c["error"], "invalid_token");
        assert_eq!(c["request_id"], "r-1");
        assert_eq!(c["audit"]["sub"], "u");
        assert_eq!(c["target"], "guest");
        assert!(
            c.get("msg").is_none() && c.get(MERGE_FIELD).is_none(),
            "{c}"
        );
        assert_eq!(guest[2]["message"], "{not json");
        assert_eq!(
            (&guest[3]["level"], &guest[3]["req"]),
            (&Value::from("WARN"), &Value::from(7))
        );
        assert_eq!(guest[4]["message"], "SIGTERM: finishing");

        let banner = lines(&banner_lines);
        assert_eq!(banner.len(), 1);
        assert_eq!(banner[0]["message"], "serving");
        assert_eq!(banner[0]["curl"][1], "b");
    }

    #[test]
    fn text_lines_keep_their_shape() {
        let (access_sink, access_lines) = LogSink::memory();
        let (guest, guest_lines) = LogSink::memory();
        let (banner, banner_lines) = LogSink::memory();
        let log = Logger::new(LogFormat::Text, access_sink, guest, banner);
        log.access(&access(None));
        log.guest(7, r#"{"msg":"wacht-admin"}"#);
        log.banner("line one\nline two\n", "serving", &serde_json::json!({}));
        let access = access_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(access.len(), 1);
        assert!(
            access[0].contains(" access: req=7 ")
                && access[0].contains("credential=- token_cache=-"),
            "{access:?}"
        );
        let guest = guest_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert!(
            guest[0].ends_with(r#"guest: {"msg":"wacht-admin"} req=7"#),
            "{guest:?}"
        );
        let banner = banner_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(banner, vec!["line one", "line two"]);
    }

    /// New fields in the component's access line (any type) do not stop the host reading it.
    #[test]
    fn the_component_line_is_read_with_fields_it_may_gain() {
        let json = r#"{"msg":"wacht-admin","request_id":"r","error":null,"audit":{"a":[1]},"credential":"api_key","token_cache":null,"n":1.5}"#;
        assert_eq!(
            ComponentLine::find(json),
            ComponentLine {
                credential: Some("api_key"),
                token_cache: None,
                error: None,
            }
        );
        let text = "wacht-admin method=GET status=401 error=invalid_token request_id=r credential=session token_cache=miss";
        assert_eq!(
            ComponentLine::find(text),
            ComponentLine {
                credential: Some("session"),
                token_cache: Some("miss"),
                error: Some("invalid_token"),
            }
        );
        // A code outside the fixed set is `other`: the metric's label stays bounded.
        let odd = "wacht-admin status=500 error=brand_new_code";
        assert_eq!(ComponentLine::find(odd).error, Some("other"));
        let json = r#"{"msg":"wacht-admin","status":403,"error":"forbidden"}"#;
        assert_eq!(ComponentLine::find(json).error, Some("forbidden"));
    }
}
