//! A minimal blocking HTTP/1.1 GET for the status endpoint, used by `traptor status` and the
//! tests. The endpoint is plain HTTP on a trusted address (loopback by default), so a few
//! lines of `std::net` do, without an async runtime in the command-line tool.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

/// Why a GET failed.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("{0:?} is not an http:// URL (expected e.g. http://127.0.0.1:9099)")]
    BadUrl(String),
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address} did not answer properly: {reason}")]
    BadResponse { address: String, reason: String },
}

/// `GET {base}{path}` with `timeout` on connecting and on each read.
pub fn get(base: &str, path: &str, timeout: Duration) -> Result<Response, GetError> {
    let host_port = host_port(base)?;
    let address = host_port.to_owned();
    let connect = |source| GetError::Connect {
        address: address.clone(),
        source,
    };
    let bad = |reason: String| GetError::BadResponse {
        address: address.clone(),
        reason,
    };
    let targets: Vec<_> = host_port.to_socket_addrs().map_err(connect)?.collect();
    let mut last_error = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for target in targets {
        match TcpStream::connect_timeout(&target, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = e,
        }
    }
    let mut stream = stream.ok_or_else(|| connect(last_error))?;
    stream.set_read_timeout(Some(timeout)).map_err(connect)?;
    stream.set_write_timeout(Some(timeout)).map_err(connect)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(connect)?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| bad(format!("reading the response failed: {e}")))?;
    parse_response(&raw).map_err(bad)
}

/// `host:port` of an `http://host:port[/...]` URL (port 80 when absent).
fn host_port(base: &str) -> Result<String, GetError> {
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| GetError::BadUrl(base.to_owned()))?;
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(GetError::BadUrl(base.to_owned()));
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    Ok(if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    })
}

/// Status line, headers, then a body with `Content-Length`, chunked, or up to the close.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length: usize = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            body = body
                .get(..length)
                .ok_or("the body is shorter than its Content-Length")?;
        } else if name.eq_ignore_ascii_case("transfer-encoding")
            && value.eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    let body = String::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk size line is cut short")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or("a chunk is cut short")?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or("a chunk is cut short")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("http://127.0.0.1:9099").unwrap(),
            "127.0.0.1:9099"
        );
        assert_eq!(host_port("http://localhost/").unwrap(), "localhost:80");
        assert_eq!(host_port("http://[::1]:9099/x").unwrap(), "[::1]:9099");
        assert_eq!(host_port("http://[::1]").unwrap(), "[::1]:80");
        assert!(host_port("https://127.0.0.1:9099").is_err());
        assert!(host_port("http://user:pw@host:1").is_err());
    }

    #[test]
    fn responses_with_length_chunks_or_close_are_read() {
        let sized = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\nextra";
        assert_eq!(
            parse_response(sized).unwrap(),
            Response {
                status: 200,
                body: "ok\n".into()
            }
        );
        let chunked = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x=y\r\nc\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            Response {
                status: 503,
                body: "abc".into()
            }
        );
        let to_close = b"HTTP/1.0 200 OK\r\n\r\nall of it";
        assert_eq!(parse_response(to_close).unwrap().body, "all of it");
        assert!(parse_response(b"garbage").is_err());
    }
}
