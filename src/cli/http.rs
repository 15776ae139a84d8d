//! A minimal blocking HTTP/1.1 client for the admin API (`junction session ...`):
//! one request per connection (`Connection: close`), JSON in and out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server may take to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer of the admin API.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body (JSON for the API routes).
    pub body: String,
}

/// Why no answer came.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Nothing answers at the address, or it did not answer in time.
    #[error("the admin API at {addr} is unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The address is malformed or the answer is not HTTP.
    #[error("the admin API at {addr}: {reason}")]
    Bad { addr: String, reason: String },
}

/// `METHOD path` to `addr` (`IP:PORT` or `HOST:PORT`, sent as the `Host`), with
/// `Authorization: Bearer token` when a token is given and `body` as
/// `application/json` when there is one.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<Answer, HttpError> {
    let unreachable = |reason: String| HttpError::Unreachable { addr: addr.to_owned(), reason };
    let bad = |reason: String| HttpError::Bad { addr: addr.to_owned(), reason };
    let targets: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|e| bad(format!("not an address like 127.0.0.1:8090 or localhost:8090 ({e})")))?
        .collect();
    let mut last = String::from("the name resolves to no address");
    let mut stream = None;
    for target in targets {
        match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("{target}: {e}"),
        }
    }
    let mut stream = stream.ok_or_else(|| unreachable(last))?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(|e| unreachable(e.to_string()))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\n"
    );
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    stream.write_all(req.as_bytes()).map_err(|e| unreachable(e.to_string()))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            unreachable(format!("no answer within {} s", IO_TIMEOUT.as_secs()))
        }
        _ => unreachable(e.to_string()),
    })?;
    parse(&raw).ok_or_else(|| bad("the answer is not HTTP".into()))
}

/// Status and body of a `Connection: close` response (chunked or not).
fn parse(raw: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
        })
    });
    let body = if chunked { dechunk(rest) } else { rest.to_owned() };
    Some(Answer { status, body })
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_chunked_answers_parse() {
        let a = parse(b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((a.status, a.body.as_str()), (404, "{}"));
        let c =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n[1,\r\n2\r\n2]\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!((c.status, c.body.as_str()), (200, "[1,2]"));
        assert!(parse(b"garbage").is_none());
    }
}
