//! Where Redis is and which certificate authority to trust for it.
//!
//! A `rediss://` URL alone trusts the public (webpki) roots, which is right for a managed Redis
//! with a publicly signed certificate. A server signed by a private CA (GCP Memorystore with
//! in-transit encryption, an on-prem Redis) needs that CA: [`RedisTarget`] carries the URL and,
//! when given, the CA's PEM, and every Redis client of traptor is opened through it so the
//! rule watcher, the heartbeat, the original's stats keys, `check` and the CLI all trust the
//! same thing.
//!
//! With a CA file, redis-rs trusts **only** the certificates of that file (its `root_cert`
//! replaces the public roots rather than adding to them); without one, only the public roots.
//!
//! A server that checks its clients' certificates (`tls-auth-clients yes`) also needs traptor's
//! own: a client certificate and its private key, read once at start like the CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redis::{ConnectionAddr, IntoConnectionInfo, RedisResult};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::RedisConfig;
use crate::watcher::redis_address;

/// A Redis server to connect to: its URL (which may carry a password, so it is never shown)
/// and the private CA to trust for its TLS certificate, if any.
#[derive(Clone)]
pub struct RedisTarget {
    url: String,
    ca: Option<PrivateCa>,
    identity: Option<ClientIdentity>,
}

/// The TLS files of a Redis connection as configured (`[redis] ca_file`, `client_cert_file`,
/// `client_key_file`, or the CLI's flags); [`RedisTarget::with_tls_files`] reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// traptor's client certificate chain and private key (PEM), for servers that require one.
/// The key is never shown: `RedisTarget`'s `Debug` names the certificate file only.
#[derive(Clone)]
struct ClientIdentity {
    cert_file: PathBuf,
    cert_pem: Arc<Vec<u8>>,
    key_pem: Arc<Vec<u8>>,
}

/// The PEM of a CA file, read once at start, with the file's name for messages.
#[derive(Clone)]
struct PrivateCa {
    file: PathBuf,
    pem: Arc<Vec<u8>>,
}

/// Why a [`RedisTarget`] could not be set up: a configuration problem, reported at start.
#[derive(Debug, thiserror::Error)]
pub enum RedisTargetError {
    #[error(
        "cannot read the Redis CA file {path}: {reason}; check `[redis] ca_file` \
         (or `--redis-ca-file`)"
    )]
    CaFile { path: PathBuf, reason: String },
    #[error(
        "the Redis CA file {path} holds no PEM certificate; it must contain the \
         `-----BEGIN CERTIFICATE-----` block of the CA that signed the Redis server's certificate"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "a Redis {file} ({path}) is given but the URL of Redis at {address} is not \
         `rediss://`: the connection would not use TLS; use a `rediss://` URL, or drop the \
         {file}"
    )]
    TlsFileWithoutTls {
        /// Which file: "CA file" or "client certificate".
        file: &'static str,
        path: PathBuf,
        address: String,
    },
    #[error(
        "cannot use the Redis client certificate {path}: {reason}; check `[redis] \
         client_cert_file` (or `--redis-client-cert`)"
    )]
    ClientCertificate { path: PathBuf, reason: String },
    #[error(
        "cannot use the Redis client key {path}: {reason}; check `[redis] client_key_file` \
         (or `--redis-client-key`)"
    )]
    ClientKey { path: PathBuf, reason: String },
    #[error(
        "a Redis client certificate needs its key and the key its certificate: set both \
         `[redis] client_cert_file` and `client_key_file` (or `--redis-client-cert` and \
         `--redis-client-key`)"
    )]
    HalfIdentity,
}

impl RedisTarget {
    /// A target trusting the public roots (for `rediss://`), or plain TCP (`redis://`).
    pub fn new(url: impl Into<String>) -> RedisTarget {
        RedisTarget {
            url: url.into(),
            ca: None,
            identity: None,
        }
    }

    /// A target trusting only the CA certificates of `ca_file` (a PEM bundle, read and checked
    /// now); `url` must be `rediss://`. The public roots are then not trusted for this server:
    /// redis-rs uses the given roots instead of its webpki ones.
    pub fn with_ca_file(
        url: impl Into<String>,
        ca_file: &Path,
    ) -> Result<RedisTarget, RedisTargetError> {
        let url = url.into();
        require_tls_url(&url, "CA file", ca_file)?;
        let pem = read_ca_pem(ca_file)?;
        Ok(RedisTarget {
            url,
            ca: Some(PrivateCa {
                file: ca_file.to_owned(),
                pem: Arc::new(pem),
            }),
            identity: None,
        })
    }

    /// A target with every TLS file of `files` read and checked now: the CA to trust, and the
    /// client certificate and key to present (both or neither; `rediss://` only).
    pub fn with_tls_files(
        url: impl Into<String>,
        files: &RedisTlsFiles,
    ) -> Result<RedisTarget, RedisTargetError> {
        let url = url.into();
        let mut target = match &files.ca_file {
            Some(ca_file) => RedisTarget::with_ca_file(url, ca_file)?,
            None => RedisTarget::new(url),
        };
        match (&files.client_cert_file, &files.client_key_file) {
            (None, None) => {}
            (Some(cert_file), Some(key_file)) => {
                require_tls_url(&target.url, "client certificate", cert_file)?;
                target.identity = Some(ClientIdentity {
                    cert_file: cert_file.clone(),
                    cert_pem: Arc::new(read_client_cert_pem(cert_file)?),
                    key_pem: Arc::new(read_client_key_pem(key_file)?),
                });
            }
            _ => return Err(RedisTargetError::HalfIdentity),
        }
        Ok(target)
    }

    /// `[redis] url` and its TLS files, when set (read now).
    pub fn from_config(config: &RedisConfig) -> Result<RedisTarget, RedisTargetError> {
        RedisTarget::with_tls_files(
            config.url.clone(),
            &RedisTlsFiles {
                ca_file: config.ca_file.clone(),
                client_cert_file: config.client_cert_file.clone(),
                client_key_file: config.client_key_file.clone(),
            },
        )
    }

    /// `host:port/db`, never the password: what logs, errors and the status show.
    pub fn address(&self) -> String {
        redis_address(&self.url)
    }

    /// The URL as configured. It may carry a password: never log it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The private CA file trusted for this server, if one was given.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca.as_ref().map(|ca| ca.file.as_path())
    }

    /// The client certificate presented to this server, if one was given.
    pub fn client_cert_file(&self) -> Option<&Path> {
        self.identity.as_ref().map(|id| id.cert_file.as_path())
    }

    /// A redis-rs client for this server (no connection is opened yet).
    pub fn client(&self) -> RedisResult<redis::Client> {
        if self.ca.is_none() && self.identity.is_none() {
            return redis::Client::open(self.url.as_str());
        }
        redis::Client::build_with_tls(
            self.url.as_str(),
            redis::TlsCertificates {
                client_tls: self.identity.as_ref().map(|id| redis::ClientTlsConfig {
                    client_cert: id.cert_pem.as_ref().clone(),
                    client_key: id.key_pem.as_ref().clone(),
                }),
                // None: the public roots.
                root_cert: self.ca.as_ref().map(|ca| ca.pem.as_ref().clone()),
            },
        )
    }

    /// `error` as an operator should read it: when the server's TLS certificate was refused,
    /// what to change (the `[redis] ca_file` setting) follows the error itself.
    pub fn explain(&self, error: &redis::RedisError) -> String {
        match self.certificate_hint(error) {
            Some(hint) => format!("{error}; {hint}"),
            None => error.to_string(),
        }
    }

    /// What to change when `error` is the server's TLS certificate being refused; `None` for
    /// any other error.
    pub fn certificate_hint(&self, error: &redis::RedisError) -> Option<String> {
        let text = error_chain(error);
        if text.contains("UnknownIssuer") || text.contains("unknown issuer") {
            return Some(match self.ca_file() {
                None => "the Redis server's TLS certificate is not trusted: the CA that signed \
                         it is not among the public roots; set `[redis] ca_file` (or \
                         `--redis-ca-file`) to the PEM file of that CA"
                    .to_owned(),
                Some(file) => format!(
                    "the Redis server's TLS certificate is not trusted: it is not signed by a \
                     CA of {}; point `[redis] ca_file` (or `--redis-ca-file`) at the CA that \
                     signed it",
                    file.display()
                ),
            });
        }
        // Alerts the server sends about the client's certificate (none, or not signed by a CA
        // it trusts); a server certificate traptor refuses is `UnknownIssuer` above, not an alert.
        if ["CertificateRequired", "BadCertificate", "alert: UnknownCA"]
            .iter()
            .any(|alert| text.contains(alert))
        {
            return Some(match self.client_cert_file() {
                None => "the Redis server requires a client certificate: set `[redis] \
                         client_cert_file` and `client_key_file` (or `--redis-client-cert` and \
                         `--redis-client-key`)"
                    .to_owned(),
                Some(file) => format!(
                    "the Redis server refused the client certificate {}: it must be signed by \
                     a CA the server trusts (its tls-ca-cert-file)",
                    file.display()
                ),
            });
        }
        if text.contains("NotValidForName") || text.contains("not valid for name") {
            return Some(
                "the Redis server's TLS certificate does not name the host of the URL; connect \
                 with a host name (or IP address) the certificate lists"
                    .to_owned(),
            );
        }
        None
    }
}

/// Lets settings take a plain URL (public roots) where a target is expected.
impl From<String> for RedisTarget {
    fn from(url: String) -> RedisTarget {
        RedisTarget::new(url)
    }
}

impl From<&str> for RedisTarget {
    fn from(url: &str) -> RedisTarget {
        RedisTarget::new(url)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("address", &self.address())
            .field("ca_file", &self.ca_file())
            .field("client_cert_file", &self.client_cert_file())
            .finish()
    }
}

/// Refuses a TLS `file` given for a `url` that is not `rediss://`: the file would be ignored.
fn require_tls_url(url: &str, file: &'static str, path: &Path) -> Result<(), RedisTargetError> {
    if is_tls_url(url) {
        return Ok(());
    }
    Err(RedisTargetError::TlsFileWithoutTls {
        file,
        path: path.to_owned(),
        address: redis_address(url),
    })
}

/// Whether `url` asks for TLS (`rediss://`). An unparsable URL is not TLS.
fn is_tls_url(url: &str) -> bool {
    matches!(
        url.into_connection_info().map(|info| info.addr().clone()),
        Ok(ConnectionAddr::TcpTls { .. })
    )
}

/// The PEM of `path`, checked as redis-rs will use it: every certificate parses and can be a
/// trust anchor, and there is at least one.
fn read_ca_pem(path: &Path) -> Result<Vec<u8>, RedisTargetError> {
    let ca_error = |reason: String| RedisTargetError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| ca_error(format!("not a valid PEM certificate ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("not a usable CA certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(RedisTargetError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(pem)
}

/// The PEM of a client certificate chain, checked as redis-rs will read it: at least one
/// certificate, each one well-formed.
fn read_client_cert_pem(path: &Path) -> Result<Vec<u8>, RedisTargetError> {
    let cert_error = |reason: String| RedisTargetError::ClientCertificate {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| cert_error(e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("not a valid PEM certificate ({e})")))?;
    if chain.is_empty() {
        return Err(cert_error(
            "it holds no `-----BEGIN CERTIFICATE-----` block".to_owned(),
        ));
    }
    Ok(pem)
}

/// The PEM of a private key (PKCS#8, PKCS#1 or SEC1, unencrypted), checked as redis-rs will
/// read it. The key's bytes never appear in the error.
fn read_client_key_pem(path: &Path) -> Result<Vec<u8>, RedisTargetError> {
    let key_error = |reason: String| RedisTargetError::ClientKey {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| key_error(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        key_error(
            "it holds no unencrypted PEM private key (`-----BEGIN PRIVATE KEY-----`, \
             `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
                .to_owned(),
        )
    })?;
    Ok(pem)
}

/// An error and its sources as one text, to recognise what rustls refused.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = format!("{error} {error:?}");
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(&format!(" {inner} {inner:?}"));
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests;
