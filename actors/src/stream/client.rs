//! Opening one streaming connection: an awc client set up for long-lived streamed responses,
//! and the signed `POST` of a filter form.
//!
//! awc's pitfalls, handled here: its `Client` is `!Send` (build one on the arbiter that uses
//! it); its connector admits 100 connections by default and a streamed response holds its
//! permit for its whole life (so the limit is lifted); its timeout covers only the response
//! head (the stall watchdog in [`super::lifecycle`] covers the body); rustls 0.23 needs a crypto
//! provider installed once per process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use awc::error::{PayloadError, SendRequestError};
use awc::http::header;
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use traptor_core::oauth::{authorization_header, encode_form, Credentials};

use super::lifecycle::Failure;

/// How the HTTP client connects. Built once (reading the CA file, if any) and cloned into every
/// stream's spec; each stream builds its own `awc::Client` from it on its arbiter.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// TCP connect timeout, then TLS handshake timeout.
    pub connect_timeout: Duration,
    /// From sending the request to the response head. The body has no timeout: the stall
    /// watchdog judges it.
    pub head_timeout: Duration,
    pub tls: TlsConfig,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            head_timeout: Duration::from_secs(5),
            tls: TlsConfig::webpki_roots(),
        }
    }
}

/// The TLS setup of the stream client: the webpki roots, plus the certificate authorities of an
/// optional PEM file (a TLS-intercepting proxy, or the emulator served over TLS with its own CA).
#[derive(Clone)]
pub struct TlsConfig(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig")
    }
}

impl TlsConfig {
    /// Trusts the webpki roots only.
    pub fn webpki_roots() -> TlsConfig {
        TlsConfig::with_roots(webpki_store())
    }

    /// Trusts the webpki roots and every certificate of `ca_file`, if given.
    pub fn load(ca_file: Option<&Path>) -> Result<TlsConfig, ClientError> {
        let mut roots = webpki_store();
        if let Some(path) = ca_file {
            let ca_error = |reason: String| ClientError::CaFile {
                path: path.to_owned(),
                reason,
            };
            let mut found = 0;
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))? {
                let cert = cert.map_err(|e| ca_error(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
                found += 1;
            }
            if found == 0 {
                return Err(ClientError::NoCertificate {
                    path: path.to_owned(),
                });
            }
        }
        Ok(TlsConfig::with_roots(roots))
    }

    fn with_roots(roots: rustls::RootCertStore) -> TlsConfig {
        install_crypto_provider();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        // One long response per connection: HTTP/1.1 is what the streaming API speaks.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsConfig(Arc::new(config))
    }
}

fn webpki_store() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Why the HTTP client could not be set up: a configuration problem, reported at start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the CA file {path}: {reason}; check the `ca_file` setting")]
    CaFile { path: PathBuf, reason: String },
    #[error("the CA file {path} holds no PEM certificate; it must contain at least one `BEGIN CERTIFICATE` block")]
    NoCertificate { path: PathBuf },
    #[error("the stream endpoint {endpoint:?} is not usable: {reason}")]
    Endpoint {
        endpoint: String,
        reason: &'static str,
    },
}

/// Installs rustls' ring crypto provider for the process, if no provider is installed yet.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is all we need.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds an HTTP client for streaming. Call it on the arbiter that will use the client
/// (`awc::Client` is `!Send`).
pub fn build_client(settings: &ClientSettings) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(settings.tls.0.clone())
        .timeout(settings.connect_timeout)
        .handshake_timeout(settings.connect_timeout)
        // Streams never end on their own: no pool limit may make the next one wait.
        .limit(0);
    awc::Client::builder()
        .connector(connector)
        .timeout(settings.head_timeout)
        .disable_redirects()
        .finish()
}

/// The endpoint without query or fragment: OAuth signs the base URL, and the filter goes in
/// the form body, so a query part would be either unsigned or misplaced.
pub fn check_endpoint(endpoint: &str) -> Result<(), ClientError> {
    let problem = |reason| {
        Err(ClientError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        })
    };
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        return problem("it must start with http:// or https://");
    }
    if endpoint.contains('?') || endpoint.contains('#') {
        return problem(
            "it must not carry a query string or fragment; filter parameters go in the form body",
        );
    }
    if endpoint.parse::<awc::http::Uri>().is_err() {
        return problem("it is not a valid URL");
    }
    Ok(())
}

/// One signed filter request.
pub struct StreamRequest<'a> {
    pub endpoint: &'a str,
    pub user_agent: &'a str,
    pub credentials: &'a Credentials,
    pub form: &'a [(&'a str, &'a str)],
}

/// The body of an open stream: its chunks as they arrive.
pub trait StreamBody:
    futures_util::Stream<Item = Result<bytes::Bytes, PayloadError>> + Unpin + 'static
{
}

impl<S> StreamBody for S where
    S: futures_util::Stream<Item = Result<bytes::Bytes, PayloadError>> + Unpin + 'static
{
}

/// How much of an error response's body is kept for the report.
const ERROR_BODY_LIMIT: usize = 512;

/// Sends the signed `POST`. `Ok` is a 200 response whose body is the stream; anything else is
/// a [`Failure`] for the lifecycle, never quoting the credentials.
pub async fn open(
    client: &awc::Client,
    request: &StreamRequest<'_>,
) -> Result<impl StreamBody, Failure> {
    let authorization = authorization_header(
        request.credentials,
        "POST",
        request.endpoint,
        request.form,
        &nonce(),
        unix_time(),
    );
    let sent = client
        .post(request.endpoint)
        .insert_header((header::AUTHORIZATION, authorization))
        .insert_header((header::USER_AGENT, request.user_agent))
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .send_body(encode_form(request.form))
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => return Err(Failure::Network(describe_send_error(&error))),
    };
    let status = response.status();
    if status == awc::http::StatusCode::OK {
        return Ok(response);
    }
    let reason = error_body(&mut response).await;
    let reason = match reason {
        Some(body) => format!(
            "{}: {body}",
            status.canonical_reason().unwrap_or("unexpected status")
        ),
        None => status
            .canonical_reason()
            .unwrap_or("unexpected status")
            .to_owned(),
    };
    Err(Failure::Http {
        status: status.as_u16(),
        reason,
    })
}

/// The first bytes of an error response, as one line of text, if they come quickly.
async fn error_body<S>(response: &mut awc::ClientResponse<S>) -> Option<String>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, PayloadError>> + Unpin,
{
    let mut body = Vec::new();
    let read = async {
        while let Some(Ok(chunk)) = response.next().await {
            body.extend_from_slice(&chunk);
            if body.len() >= ERROR_BODY_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    body.truncate(ERROR_BODY_LIMIT);
    let text = String::from_utf8_lossy(&body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (!line.is_empty()).then_some(line)
}

/// Says what went wrong without the request itself (which carries the `Authorization` header).
fn describe_send_error(error: &SendRequestError) -> String {
    match error {
        SendRequestError::Custom(inner, _) => format!("request failed: {inner}"),
        SendRequestError::Timeout => "no response head before the head timeout".to_owned(),
        other => other.to_string(),
    }
}

/// A fresh OAuth nonce: 128 random bits in hex.
fn nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_a_query_or_no_scheme_are_refused_with_the_reason() {
        assert!(check_endpoint("https://stream.twitter.com/1.1/statuses/filter.json").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080/1.1/statuses/filter.json").is_ok());
        let err = check_endpoint("https://stream.twitter.com/1.1/statuses/filter.json?track=a")
            .unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
        assert!(check_endpoint("stream.twitter.com/filter.json").is_err());
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce(), nonce());
        assert_eq!(nonce().len(), 32);
    }

    #[test]
    fn a_missing_ca_file_is_a_clear_configuration_error() {
        let err = TlsConfig::load(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let path =
            std::env::temp_dir().join(format!("traptor-empty-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = TlsConfig::load(Some(&path)).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(matches!(err, ClientError::NoCertificate { .. }), "{err}");
    }

    #[actix_rt::test]
    async fn a_refused_connection_is_a_network_failure() {
        let client = build_client(&ClientSettings::default());
        // Bind then drop a listener: its port now refuses connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let credentials = Credentials {
            consumer_key: "ck".into(),
            consumer_secret: "cs-secret".into(),
            access_token: "at".into(),
            access_token_secret: "ats-secret".into(),
        };
        let endpoint = format!("http://127.0.0.1:{port}/1.1/statuses/filter.json");
        let request = StreamRequest {
            endpoint: &endpoint,
            user_agent: "traptor-test",
            credentials: &credentials,
            form: &[("track", "a")],
        };
        match open(&client, &request).await {
            Err(Failure::Network(reason)) => assert!(!reason.contains("secret"), "{reason}"),
            Err(other) => panic!("expected a network failure, got {other:?}"),
            Ok(_) => panic!("expected a network failure, got a stream"),
        }
    }
}
