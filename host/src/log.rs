//! The host's log lines, written through `tracing` (text by default, one JSON object per line
//! with `--log-format json`): one access event per request (target `access`, on the access
//! sink), the component's own lines tagged with the request number (target `guest`) and the
//! host's failures (target `host`), both on the guest sink.
//!
//! Each server owns its subscriber (a [`Dispatch`] used for its own events), so several servers
//! in one process (the tests) keep their lines apart and nothing global is installed.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::PoisonError;

use tracing::Dispatch;
use tracing_subscriber::fmt::MakeWriter;
use wacht_admin::credentials::KINDS;
use wacht_admin::handler::{ACCESS_LOG_MSG, TOKEN_CACHE_RESULTS};

use crate::settings::{LogFormat, LogSink};

const ACCESS: &str = "access";

/// What the access event records about one request. No query string, header or body.
#[derive(Debug)]
pub(crate) struct Access<'a> {
    pub id: u64,
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

/// An optional field as its value or `-`, formatted where the line is written (no String per
/// field per request).
struct Dash<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for Dash<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("-"),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Logger {
    dispatch: Dispatch,
    access_off: bool,
    guest_off: bool,
}

impl std::fmt::Debug for Logger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Logger")
    }
}

impl Logger {
    pub(crate) fn new(format: LogFormat, access: LogSink, guest: LogSink) -> Logger {
        let (access_off, guest_off) = (access.is_off(), guest.is_off());
        let builder = tracing_subscriber::fmt().with_writer(Sinks { access, guest });
        let dispatch = match format {
            LogFormat::Text => Dispatch::new(builder.finish()),
            LogFormat::Json => Dispatch::new(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .finish(),
            ),
        };
        Logger {
            dispatch,
            access_off,
            guest_off,
        }
    }

    pub(crate) fn access(&self, a: &Access<'_>) {
        if self.access_off {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || {
            tracing::info!(
                target: ACCESS,
                req = a.id,
                peer = %a.peer,
                method = %a.method,
                path = %a.path,
                status = a.status,
                bytes = a.bytes,
                ms = (a.ms * 100.0).round() / 100.0,
                credential = %Dash(a.component.credential),
                token_cache = %Dash(a.component.token_cache),
                instance = %Dash(a.instance),
                uses = %Dash(a.uses),
                error = %Dash(a.error),
            );
        });
    }

    /// One line the component wrote (already made printable and bounded).
    pub(crate) fn guest(&self, id: u64, line: &str) {
        if self.guest_off {
            return;
        }
        tracing::dispatcher::with_default(&self.dispatch, || {
            tracing::info!(target: "guest", req = id, "{line}");
        });
    }

    /// A failure of the host or of a request (`id` 0: not about one request).
    pub(crate) fn failure(&self, id: u64, message: &str) {
        if self.guest_off {
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
}

/// Access events to the access sink, everything else to the guest sink.
struct Sinks {
    access: LogSink,
    guest: LogSink,
}

impl<'a> MakeWriter<'a> for Sinks {
    type Writer = SinkWriter<'a>;

    fn make_writer(&'a self) -> SinkWriter<'a> {
        SinkWriter(&self.guest)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SinkWriter<'a> {
        SinkWriter(if meta.target() == ACCESS {
            &self.access
        } else {
            &self.guest
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
                let _ = std::io::stdout().lock().write_all(buf);
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
                    _ => {}
                }
            }
            return Some(parsed);
        }
        if line.starts_with('{') {
            // Only the three fields, borrowed where unescaped: no map built per request.
            let v: JsonLine<'_> = serde_json::from_str(line).ok()?;
            if v.msg != ACCESS_LOG_MSG {
                return None;
            }
            let field = |f: Option<Cow<'_, str>>, words| f.and_then(|f| word(&f, words));
            return Some(ComponentLine {
                credential: field(v.credential, &KINDS),
                token_cache: field(v.token_cache, &TOKEN_CACHE_RESULTS),
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
            }
        );
        let api_key = r#"{"msg":"wacht-admin","credential":"api_key","token_cache":"sideways"}"#;
        assert_eq!(
            ComponentLine::find(api_key),
            ComponentLine {
                credential: Some("api_key"),
                token_cache: Some("other"),
            }
        );
        assert_eq!(ComponentLine::find(json), ComponentLine::default());
        assert_eq!(
            ComponentLine::find("config error: WACHT_X\n{\"msg\":\"other\"}"),
            ComponentLine::default()
        );
    }

    #[test]
    fn json_lines_parse_and_go_to_their_sink() {
        let (access, access_lines) = LogSink::memory();
        let (guest, guest_lines) = LogSink::memory();
        let log = Logger::new(LogFormat::Json, access, guest);
        log.access(&Access {
            id: 7,
            peer: SocketAddr::from(([127, 0, 0, 1], 9)),
            method: "GET",
            path: "/admin/users",
            status: 200,
            bytes: 2,
            ms: 0.5,
            component: ComponentLine {
                credential: Some("session"),
                token_cache: None,
            },
            instance: None,
            uses: None,
            error: None,
        });
        log.guest(7, "hello \"guest\"");
        let access = access_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let guest = guest_lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        assert_eq!(access.len(), 1, "{access:?}");
        assert_eq!(guest.len(), 1, "{guest:?}");
        let a: serde_json::Value = serde_json::from_str(&access[0]).unwrap_or_default();
        assert_eq!(a["req"], 7);
        assert_eq!(a["status"], 200);
        assert_eq!(a["credential"], "session");
        assert_eq!(a["token_cache"], "-");
        assert_eq!(a["peer"], "127.0.0.1:9");
        assert_eq!(a["target"], "access");
        let g: serde_json::Value = serde_json::from_str(&guest[0]).unwrap_or_default();
        assert_eq!(g["message"], "hello \"guest\"");
        assert_eq!(g["req"], 7);
    }
}
