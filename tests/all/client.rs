//! A blocking face on hyper's HTTP/1.1 client, for tests that run servers in other processes
//! (workerd, the native host): one request per connection, or a keep-alive [`Conn`] (the way wrk
//! drives a server) for the benchmarks.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Bodies larger than this are an error (no test expects one).
const MAX_BODY: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Status line, headers and body, for failure messages and secret scans.
    pub fn dump(&self) -> String {
        let mut s = format!("HTTP {}\n", self.status);
        for (n, v) in &self.headers {
            s.push_str(&format!("{n}: {v}\n"));
        }
        s.push('\n');
        s.push_str(&self.text());
        s
    }
}

/// Sends `method target` to `addr` with `headers` and an empty body; waits at most `timeout`.
pub fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> anyhow::Result<Response> {
    send_body(addr, method, target, headers, &[], timeout)
}

/// [`send`] with a request body.
pub fn send_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut conn = Conn::open(addr, timeout)?;
    let mut all: Vec<(&str, &str)> = vec![("connection", "close")];
    all.extend_from_slice(headers);
    conn.request(method, target, &all, Bytes::copy_from_slice(body))
}

/// A keep-alive connection on a runtime of its own.
pub struct Conn {
    runtime: tokio::runtime::Runtime,
    sender: SendRequest<Full<Bytes>>,
    timeout: Duration,
}

impl Conn {
    pub fn open(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Conn> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let sender = runtime.block_on(async {
            let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                .await
                .with_context(|| format!("connecting to {addr}: timed out"))?
                .with_context(|| format!("connecting to {addr}"))?;
            stream.set_nodelay(true)?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            anyhow::Ok(sender)
        })?;
        Ok(Conn {
            runtime,
            sender,
            timeout,
        })
    }

    pub fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        self.request("GET", target, headers, Bytes::new())
    }

    fn request(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Response> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header("host", "wacht-admin.test");
        for (n, v) in headers {
            request = request.header(*n, *v);
        }
        let request = request.body(Full::new(body))?;
        let (sender, timeout) = (&mut self.sender, self.timeout);
        self.runtime.block_on(async {
            tokio::time::timeout(timeout, async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let (parts, body) = response.into_parts();
                let body = Limited::new(body, MAX_BODY)
                    .collect()
                    .await
                    .map_err(|e| anyhow::anyhow!("reading the body: {e}"))?
                    .to_bytes();
                let headers = parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect();
                anyhow::Ok(Response {
                    status: parts.status.as_u16(),
                    headers,
                    body: body.to_vec(),
                })
            })
            .await
            .with_context(|| format!("{method} {target}: no answer within {timeout:?}"))?
        })
    }
}
