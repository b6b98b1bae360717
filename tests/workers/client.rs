//! A minimal blocking HTTP/1.1 client over `std::net`, enough to talk to workerd on loopback:
//! one request per connection (`connection: close`), Content-Length or chunked bodies.
//! (The root package has no HTTP client dependency, and this test must not add one.)

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};

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

/// [`send`] with a request body (sent with `content-length`).
pub fn send_body(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nhost: wacht-admin.test\r\nconnection: close\r\n");
    if !body.is_empty() || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;

    let mut reader = BufReader::new(stream);
    read_response(&mut reader, method)
}

fn read_response(reader: &mut BufReader<TcpStream>, method: &str) -> anyhow::Result<Response> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .context("reading the status line")?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (n, v) = l
            .split_once(':')
            .with_context(|| format!("bad header {l:?}"))?;
        headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v): &(String, String)| v.clone())
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 {
        // no body
    } else if find("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            line.clear();
            reader.read_line(&mut line)?;
        }
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().context("bad content-length")?;
        ensure!(len <= 16 << 20, "content-length {len} too large");
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    if status == 0 {
        bail!("status 0");
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A keep-alive connection (the way wrk drives a server), for the benchmark.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn open(addr: SocketAddr, timeout: Duration) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            reader: BufReader::new(stream),
        })
    }

    pub fn get(&mut self, target: &str, headers: &[(&str, &str)]) -> anyhow::Result<Response> {
        let mut head = format!("GET {target} HTTP/1.1\r\nhost: wacht-admin.test\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        head.push_str("\r\n");
        self.reader.get_mut().write_all(head.as_bytes())?;
        read_response(&mut self.reader, "GET")
    }
}
