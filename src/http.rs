//! The small HTTP/1.1 server under `perps-news serve`: one request per connection, read with
//! a deadline and a size limit, answered with `Connection: close`.
//!
//! Why not `tiny_http` (used before): 0.12 has no way to bound how long a client may take to
//! send its header or how large the header may be (200 slow clients stayed open for 20 s and
//! a 64 MiB header was accepted), and it gives each connection a thread with no cap. The
//! dashboard endpoints need only GET with a few headers, so reading them by hand on
//! `std::net` with hard limits is smaller than working around a server that has none.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Limits on reading one request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The whole header (request line and fields) must arrive within this.
    pub header_timeout: Duration,
    /// Largest header accepted, in bytes.
    pub max_header_bytes: usize,
}

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Header fields, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Why no request could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The header did not arrive within the timeout (408).
    Timeout,
    /// The header is larger than allowed (431).
    TooLarge,
    /// Not an HTTP/1.x request (400).
    Malformed,
    /// The client went away.
    Closed,
}

/// Reads one request head from `stream` within `limits`. Bytes after the head (a body) are
/// left unread: every answer closes the connection.
///
/// # Errors
/// [`ReadError`] saying what went wrong.
pub fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Request, ReadError> {
    let deadline = Instant::now() + limits.header_timeout;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(i) = find_end(&buf) {
            break i;
        }
        if buf.len() > limits.max_header_bytes {
            return Err(ReadError::TooLarge);
        }
        // A per-read timeout alone would let a client trickle one byte at a time forever:
        // every read gets only what is left of the whole header's time.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadError::Timeout);
        }
        if stream.set_read_timeout(Some(left)).is_err() {
            return Err(ReadError::Closed);
        }
        let room = (limits.max_header_bytes + 4 - buf.len()).clamp(1, chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadError::Timeout);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Err(ReadError::Closed),
        }
    };
    if end > limits.max_header_bytes {
        return Err(ReadError::TooLarge);
    }
    parse_head(&buf[..end])
}

/// The offset of the blank line ending the head, if it has arrived.
fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

fn parse_head(head: &[u8]) -> Result<Request, ReadError> {
    let text = std::str::from_utf8(head).map_err(|_| ReadError::Malformed)?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(ReadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Err(ReadError::Malformed);
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
    })
}

/// The reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        204 => "No Content",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Writes a whole JSON response (with `extra` header lines) and closes the exchange.
///
/// # Errors
/// The write failed (the client went away or stopped reading).
pub fn respond_json(
    stream: &mut TcpStream,
    status: u16,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    respond_json_as(stream, false, status, body, extra)
}

/// [`respond_json`], or with `head_only` its status and headers alone (the answer to a
/// `HEAD` request: the same `Content-Length`, no body).
///
/// # Errors
/// The write failed (the client went away or stopped reading).
pub fn respond_json_as(
    stream: &mut TcpStream,
    head_only: bool,
    status: u16,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let body = body.to_string();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// Writes a whole `200` response of `content_type` (with `extra` header lines), or with
/// `head_only` its status and headers alone.
///
/// # Errors
/// The write failed (the client went away or stopped reading).
pub fn respond_text(
    stream: &mut TcpStream,
    head_only: bool,
    content_type: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

/// Ends an exchange whose request was not read whole (too large, too slow): stops writing,
/// then reads and drops a bounded amount of what the client is still sending, so that the
/// close does not turn into a reset that destroys the answer before the client reads it.
pub fn close_unread(mut stream: TcpStream) {
    const DRAIN_BYTES: usize = 256 * 1024;
    const DRAIN_TIME: Duration = Duration::from_millis(200);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let deadline = Instant::now() + DRAIN_TIME;
    let mut sink = [0u8; 8192];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The host part of a `Host` header value (no port; IPv6 without brackets), lower-cased.
pub fn host_name(value: &str) -> String {
    let v = value.trim();
    let host = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else if v.matches(':').count() > 1 {
        // A bare IPv6 address (as configured): no port to strip.
        v
    } else {
        v.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map_or(v, |(h, _)| h)
    };
    host.to_ascii_lowercase()
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_and_hosts_lose_their_ports() {
        let r = parse_head(b"GET /api/stories?page=2 HTTP/1.1\r\nHost: 127.0.0.1:3001\r\nX-A:  b ")
            .unwrap();
        assert_eq!((r.method.as_str(), r.path()), ("GET", "/api/stories"));
        assert_eq!(r.header("host"), Some("127.0.0.1:3001"));
        assert_eq!(r.header("x-a"), Some("b"));
        for bad in [
            &b"GET /\r\n"[..],
            b"GET / HTTP/2\r\n",
            b"GET x HTTP/1.1",
            b"\xff / HTTP/1.1",
        ] {
            assert!(parse_head(bad).is_err(), "{bad:?}");
        }
        assert_eq!(host_name("LocalHost:80"), "localhost");
        assert_eq!(host_name("[::1]:3001"), "::1");
        assert_eq!(host_name("::1"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("evil.example:3001"), "evil.example");
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}
