//! What the emulator's examples share: test keys, and opening a filter stream as the supervisor
//! does.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use traptor_core::oauth::{authorization_header, encode_form, Credentials};
use traptor_firehose::FILTER_PATH;

/// The `n`th test key of an example, its fields named after `example`.
pub fn credentials(example: &str, n: usize) -> Credentials {
    Credentials {
        consumer_key: format!("{example}-consumer-{n}"),
        consumer_secret: format!("{example}-consumer-secret-{n}"),
        access_token: format!("{example}-token-{n}"),
        access_token_secret: format!("{example}-token-secret-{n}"),
    }
}

/// Connects to the emulator at `addr` and sends a signed `POST` of the filter `form`; the
/// response (headers, then the body) is left on the returned stream for the caller to read.
pub async fn open_filter_stream(
    addr: SocketAddr,
    credentials: &Credentials,
    form: &[(&str, &str)],
) -> TcpStream {
    let url = format!("http://{addr}{FILTER_PATH}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let auth = authorization_header(
        credentials,
        "POST",
        &url,
        form,
        &format!("n{now}{}", credentials.consumer_key),
        now,
    );
    let body = encode_form(form);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {FILTER_PATH} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    stream
}
