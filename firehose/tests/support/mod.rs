//! A deliberately plain HTTP/1.1 client for the conformance tests: raw TCP, hand-built
//! requests signed with `traptor_core::oauth`, chunked decoding and both framings. It shares
//! nothing with traptor's own stream client, so the emulator is tested on its own.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{timeout, Instant};
use traptor_core::oauth::{authorization_header, encode_form, Credentials};
use traptor_firehose::{
    ControlMessageRates, Firehose, FirehoseConfig, FirehoseHandle, FILTER_PATH,
};

pub fn key(n: u32) -> Credentials {
    Credentials {
        consumer_key: format!("consumer-key-{n}"),
        consumer_secret: format!("consumer-secret-{n}"),
        access_token: format!("access-token-{n}"),
        access_token_secret: format!("access-token-secret-{n}"),
    }
}

/// A config for fast tests: three keys, short keep-alives, no compliance noise.
pub fn config() -> FirehoseConfig {
    FirehoseConfig {
        keys: vec![key(0), key(1), key(2)],
        rate: 200.0,
        keepalive: Duration::from_millis(200),
        control_message_rates: ControlMessageRates::none(),
        ..FirehoseConfig::default()
    }
}

pub async fn start(config: FirehoseConfig) -> FirehoseHandle {
    Firehose::start(config).await.expect("the emulator starts")
}

/// The fast test [`config`] at `rate` tweets per second (0: keep-alives only), the one knob
/// most stream tests turn.
pub async fn start_at_rate(rate: f64) -> FirehoseHandle {
    start(FirehoseConfig { rate, ..config() }).await
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

static NONCE: AtomicU64 = AtomicU64::new(0);

pub fn nonce() -> String {
    format!(
        "nonce{}x{}",
        std::process::id(),
        NONCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// One connect request; `form` goes in the body (POST) and `query` in the URL.
#[derive(Clone)]
pub struct Connect {
    pub method: &'static str,
    pub form: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub credentials: Option<Credentials>,
    pub timestamp: Option<u64>,
    pub nonce: Option<String>,
    /// Parameters sent but not signed (to break the signature).
    pub unsigned_extra: Option<(String, String)>,
    /// A small receive buffer makes a slow reader visible quickly.
    pub recv_buffer: Option<u32>,
}

impl Connect {
    pub fn post(credentials: &Credentials, form: &[(&str, &str)]) -> Connect {
        Connect {
            method: "POST",
            form: form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            query: Vec::new(),
            credentials: Some(credentials.clone()),
            timestamp: None,
            nonce: None,
            unsigned_extra: None,
            recv_buffer: None,
        }
    }

    /// A POST of `key(n)` tracking `phrases` (comma-separated), the request most tests send.
    pub fn track(n: u32, phrases: &str) -> Connect {
        Connect::post(&key(n), &[("track", phrases)])
    }

    /// The same request asking for `delimited=length` framing.
    pub fn length_delimited(mut self) -> Connect {
        self.form.push(("delimited".into(), "length".into()));
        self
    }

    pub fn get(credentials: &Credentials, query: &[(&str, &str)]) -> Connect {
        let mut c = Connect::post(credentials, &[]);
        c.method = "GET";
        c.query = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c
    }

    fn http_request(&self, addr: SocketAddr) -> Vec<u8> {
        let url = format!("http://{addr}{FILTER_PATH}");
        fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
            v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
        }
        let mut signed: Vec<(&str, &str)> = pairs(&self.form);
        signed.extend(pairs(&self.query));
        let mut form = pairs(&self.form);
        let mut query = pairs(&self.query);
        if let Some((k, v)) = &self.unsigned_extra {
            if self.method == "POST" {
                form.push((k, v));
            } else {
                query.push((k, v));
            }
        }
        let body = encode_form(&form);
        let target = if query.is_empty() {
            FILTER_PATH.to_owned()
        } else {
            format!("{FILTER_PATH}?{}", encode_form(&query))
        };
        let mut request = format!(
            "{} {target} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: conformance-test\r\n",
            self.method
        );
        if let Some(credentials) = &self.credentials {
            let nonce = self.nonce.clone().unwrap_or_else(nonce);
            let header = authorization_header(
                credentials,
                self.method,
                &url,
                &signed,
                &nonce,
                self.timestamp.unwrap_or_else(unix_now),
            );
            request.push_str(&format!("Authorization: {header}\r\n"));
        }
        if self.method == "POST" {
            request.push_str(&format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        request.push_str("\r\n");
        if self.method == "POST" {
            request.push_str(&body);
        }
        request.into_bytes()
    }

    /// Sends the request and reads the response head.
    pub async fn send(&self, addr: SocketAddr) -> Response {
        let socket = TcpSocket::new_v4().unwrap();
        if let Some(size) = self.recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(addr).await.expect("connect to the emulator");
        stream.write_all(&self.http_request(addr)).await.unwrap();
        Response::read_head(stream).await
    }
}

/// How a body ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The terminating zero-length chunk arrived.
    Clean,
    /// The socket closed (or was reset) without it.
    Closed,
    /// Nothing arrived in time.
    Timeout,
}

/// One unit of the stream.
#[derive(Debug, Clone)]
pub enum Frame {
    KeepAlive,
    /// A message's bytes (framing removed).
    Message(Vec<u8>),
}

impl Frame {
    pub fn json(&self) -> Option<Value> {
        match self {
            Frame::Message(bytes) => serde_json::from_slice(bytes).ok(),
            Frame::KeepAlive => None,
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    raw: Vec<u8>,
    body: Vec<u8>,
    chunked: bool,
    remaining_length: Option<usize>,
    end: Option<End>,
    pub delimited: bool,
}

impl Response {
    async fn read_head(mut stream: TcpStream) -> Response {
        let mut raw = Vec::new();
        let head_end = loop {
            if let Some(pos) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos;
            }
            let mut buf = [0u8; 4096];
            let n = timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("response head in time")
                .unwrap();
            assert!(n > 0, "connection closed before the response head");
            raw.extend_from_slice(&buf[..n]);
        };
        let head = String::from_utf8(raw[..head_end].to_vec()).unwrap();
        let rest = raw[head_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        let remaining_length = header("content-length").map(|v| v.parse().unwrap());
        let mut response = Response {
            status,
            headers,
            stream,
            raw: Vec::new(),
            body: Vec::new(),
            chunked,
            remaining_length,
            end: None,
            delimited: false,
        };
        response.absorb(&rest);
        response
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn absorb(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.body.extend_from_slice(bytes);
            if let Some(left) = &mut self.remaining_length {
                *left = left.saturating_sub(bytes.len());
                if *left == 0 {
                    self.end = Some(End::Clean);
                }
            }
            return;
        }
        self.raw.extend_from_slice(bytes);
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            if size == 0 {
                self.end = Some(End::Clean);
                self.raw.clear();
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            self.body
                .extend_from_slice(&self.raw[line_end + 2..line_end + 2 + size]);
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// Reads more bytes; false once the body has ended.
    async fn fill(&mut self, deadline: Instant) -> bool {
        if self.end.is_some() {
            return false;
        }
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => {
                self.end = Some(End::Closed);
                false
            }
            Ok(Ok(n)) => {
                self.absorb(&buf[..n]);
                true
            }
        }
    }

    /// The whole (non-streaming) body, e.g. of an error response.
    pub async fn body_text(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.end.is_none() && self.fill(deadline).await {}
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub async fn body_json(&mut self) -> Value {
        let text = self.body_text().await;
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"))
    }

    fn take_frame(&mut self) -> Option<Frame> {
        let line_end = self.body.windows(2).position(|w| w == b"\r\n")?;
        if line_end == 0 {
            self.body.drain(..2);
            return Some(Frame::KeepAlive);
        }
        if !self.delimited {
            let line = self.body[..line_end].to_vec();
            self.body.drain(..line_end + 2);
            return Some(Frame::Message(line));
        }
        let length: usize = std::str::from_utf8(&self.body[..line_end])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "bad length line {:?}",
                    String::from_utf8_lossy(&self.body[..line_end])
                )
            });
        if self.body.len() < line_end + 2 + length {
            return None;
        }
        let message = self.body[line_end + 2..line_end + 2 + length].to_vec();
        assert!(
            message.ends_with(b"\r\n"),
            "a delimited message ends with CRLF and the length counts it"
        );
        self.body.drain(..line_end + 2 + length);
        Some(Frame::Message(message[..message.len() - 2].to_vec()))
    }

    /// The next frame, or how the stream ended.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Frame, End> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(frame) = self.take_frame() {
                return Ok(frame);
            }
            if !self.fill(deadline).await {
                return Err(self.end.clone().unwrap_or(End::Timeout));
            }
        }
    }

    /// The next JSON message (keep-alives skipped).
    pub async fn next_json(&mut self, wait: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_frame(left).await? {
                Frame::KeepAlive => continue,
                frame => {
                    return Ok(frame.json().unwrap_or_else(|| {
                        panic!(
                            "not JSON: {:?}",
                            String::from_utf8_lossy(match &frame {
                                Frame::Message(b) => b,
                                Frame::KeepAlive => b"",
                            })
                        )
                    }))
                }
            }
        }
    }

    /// The next tweet (other messages skipped).
    pub async fn next_tweet(&mut self, wait: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.next_json(left).await?;
            if message.get("id_str").is_some() && message.get("user").is_some() {
                return Ok(message);
            }
        }
    }

    /// Bytes received but not yet framed (what a cut frame leaves behind).
    pub fn leftover(&self) -> &[u8] {
        &self.body
    }

    pub fn ended(&self) -> Option<End> {
        self.end.clone()
    }

    /// Skips frames (5 s for each at the most) until the stream ends, and says how.
    pub async fn until_end(&mut self) -> End {
        loop {
            if let Err(end) = self.next_frame(Duration::from_secs(5)).await {
                return end;
            }
        }
    }

    /// The next `disconnect` notice (other messages skipped), or how the stream ended before
    /// one came: the notice every shutdown, kick and injected disconnect must send.
    pub async fn next_disconnect(&mut self, wait: Duration) -> Result<Value, End> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.next_json(left).await?;
            if message.get("disconnect").is_some() {
                return Ok(message);
            }
        }
    }
}

/// Opens a stream and checks it was accepted.
pub async fn open(handle: &FirehoseHandle, connect: Connect) -> Response {
    let delimited = connect
        .form
        .iter()
        .chain(&connect.query)
        .any(|(k, v)| k == "delimited" && v == "length");
    let mut response = connect.send(handle.addr()).await;
    if response.status != 200 {
        let status = response.status;
        panic!(
            "stream refused with {status}: {}",
            response.body_text().await
        );
    }
    response.delimited = delimited;
    response
}

/// Opens a POST stream of `key(n)` tracking `phrases` (comma-separated), the plain stream
/// most tests start from.
pub async fn open_track(handle: &FirehoseHandle, n: u32, phrases: &str) -> Response {
    open(handle, Connect::track(n, phrases)).await
}

/// The fast test [`config`] at `rate` tweets per second with keep-alives every `keepalive`,
/// for the tests that time the silence between tweets.
pub async fn start_with_keepalive(rate: f64, keepalive: Duration) -> FirehoseHandle {
    start(FirehoseConfig {
        rate,
        keepalive,
        ..config()
    })
    .await
}

/// An emulator whose connect-rate limit is `limit` attempts per `window` for each key, and whose
/// first 420 penalty lasts `penalty`: the knobs of the rate-limit tests.
pub async fn start_connect_limited(
    limit: usize,
    window: Duration,
    penalty: Duration,
) -> FirehoseHandle {
    start(FirehoseConfig {
        connect_limit: limit,
        connect_window: window,
        rate_limit_penalty: penalty,
        ..config()
    })
    .await
}

/// Opens like [`open_track`] and waits (5 s at the most) for the first tweet, so that what a
/// test does next meets a stream that is already flowing.
pub async fn open_track_flowing(handle: &FirehoseHandle, n: u32, phrases: &str) -> Response {
    let mut stream = open_track(handle, n, phrases).await;
    stream
        .next_tweet(Duration::from_secs(5))
        .await
        .expect("a first tweet");
    stream
}

/// Sends a connect attempt expected to be refused and returns only its status.
pub async fn connect_status(handle: &FirehoseHandle, connect: Connect) -> u16 {
    connect.send(handle.addr()).await.status
}

/// The first error message of a Twitter-style error body (`{"errors":[{"message":..}]}`).
pub fn error_message(body: &Value) -> &str {
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
}

/// Posts to `/control/{action}`, asserts it was accepted (200) and returns the reply.
pub async fn control(handle: &FirehoseHandle, action: &str, body: &str) -> Value {
    let (status, reply) =
        plain_request(handle.addr(), "POST", &format!("/control/{action}"), body).await;
    assert_eq!(status, 200, "/control/{action} refused: {reply}");
    reply
}

/// A plain request to the emulator's own endpoints (`/stats`, `/control/...`).
pub async fn plain_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Response::read_head(stream).await;
    let status = response.status;
    (status, response.body_json().await)
}

/// Every lowercased string a track term may be found in, over a tweet and its nested tweets.
pub fn searchable_text(tweet: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect(tweet, &mut out);
    out
}

fn collect(status: &Value, out: &mut Vec<String>) {
    for text in [&status["text"], &status["extended_tweet"]["full_text"]] {
        if let Some(s) = text.as_str() {
            out.push(s.to_lowercase());
        }
    }
    for entities in [&status["entities"], &status["extended_tweet"]["entities"]] {
        for h in entities["hashtags"].as_array().into_iter().flatten() {
            out.push(h["text"].as_str().unwrap_or("").to_lowercase());
        }
        for m in entities["user_mentions"].as_array().into_iter().flatten() {
            out.push(m["screen_name"].as_str().unwrap_or("").to_lowercase());
        }
        for u in entities["urls"].as_array().into_iter().flatten() {
            out.push(u["expanded_url"].as_str().unwrap_or("").to_lowercase());
            out.push(u["display_url"].as_str().unwrap_or("").to_lowercase());
        }
    }
    for nested in ["retweeted_status", "quoted_status"] {
        if status[nested].is_object() {
            collect(&status[nested], out);
        }
    }
}

/// Polls the stats until `check` holds (or panics after `wait`).
pub async fn eventually<F: Fn(&traptor_firehose::Stats) -> bool>(
    handle: &FirehoseHandle,
    wait: Duration,
    what: &str,
    check: F,
) {
    let deadline = Instant::now() + wait;
    loop {
        let stats = handle.stats();
        if check(&stats) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\nstats: {stats:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
