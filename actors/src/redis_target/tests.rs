use std::path::Path;

use super::*;

/// A self-signed CA certificate, as PEM.
fn ca_pem() -> String {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().pem()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_missing_ca_file_is_an_error_naming_the_file_and_the_setting() {
    let err = RedisTarget::with_ca_file(
        "rediss://127.0.0.1:6380/0",
        Path::new("/nonexistent/ca.pem"),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RedisTargetError::CaFile { .. }), "{text}");
    assert!(text.contains("/nonexistent/ca.pem"), "{text}");
    assert!(text.contains("[redis] ca_file"), "{text}");
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "empty.pem", "not a certificate\n");
    let err = RedisTarget::with_ca_file("rediss://127.0.0.1:6380/0", &path).unwrap_err();
    assert!(
        matches!(err, RedisTargetError::NoCertificate { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("empty.pem"), "{err}");

    // A private key alone is PEM too, but not a certificate.
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let path = write(dir.path(), "key.pem", &key);
    let err = RedisTarget::with_ca_file("rediss://127.0.0.1:6380/0", &path).unwrap_err();
    assert!(
        matches!(err, RedisTargetError::NoCertificate { .. }),
        "{err}"
    );
}

#[test]
fn a_damaged_certificate_block_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let err = RedisTarget::with_ca_file("rediss://127.0.0.1:6380/0", &path).unwrap_err();
    assert!(matches!(err, RedisTargetError::CaFile { .. }), "{err}");
    assert!(err.to_string().contains("bad.pem"), "{err}");
}

#[test]
fn a_ca_file_is_refused_for_a_url_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ca.pem", &ca_pem());
    let err = RedisTarget::with_ca_file("redis://:pw-secret@127.0.0.1:6379/2", &path).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RedisTargetError::TlsFileWithoutTls {
                file: "CA file",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("rediss://") && text.contains("127.0.0.1:6379/2"),
        "{text}"
    );
    assert!(!text.contains("pw-secret"), "{text}");
}

#[test]
fn a_ca_file_gives_a_tls_client_and_debug_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ca.pem", &ca_pem());
    let target = RedisTarget::with_ca_file("rediss://:pw-secret@10.0.0.1:6380/3", &path).unwrap();
    assert_eq!(target.ca_file(), Some(path.as_path()));
    assert_eq!(target.address(), "10.0.0.1:6380/3");
    let client = target.client().expect("a TLS client with the CA");
    assert!(matches!(
        client.get_connection_info().addr(),
        ConnectionAddr::TcpTls {
            tls_params: Some(_),
            ..
        }
    ));
    let shown = format!("{target:?}");
    assert!(!shown.contains("pw-secret"), "{shown}");
    assert!(
        shown.contains("10.0.0.1:6380/3") && shown.contains("ca.pem"),
        "{shown}"
    );

    let plain = RedisTarget::new("rediss://u:pw-secret@10.0.0.1:6380/3");
    assert!(matches!(
        plain.client().unwrap().get_connection_info().addr(),
        ConnectionAddr::TcpTls {
            tls_params: None,
            ..
        }
    ));
    assert!(!format!("{plain:?}").contains("pw-secret"));
}

#[test]
fn the_config_ca_file_is_read_with_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "ca.pem", &ca_pem());
    let mut config = RedisConfig {
        url: "rediss://127.0.0.1:6380/0".into(),
        ..RedisConfig::default()
    };
    assert_eq!(RedisTarget::from_config(&config).unwrap().ca_file(), None);
    config.ca_file = Some(path.clone());
    assert_eq!(
        RedisTarget::from_config(&config).unwrap().ca_file(),
        Some(path.as_path())
    );
    config.ca_file = Some(dir.path().join("missing.pem"));
    assert!(RedisTarget::from_config(&config).is_err());
}

fn certificate_error(problem: rustls::CertificateError) -> redis::RedisError {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(problem),
    )
    .into()
}

#[test]
fn an_untrusted_certificate_points_at_the_ca_file_setting() {
    let target = RedisTarget::new("rediss://127.0.0.1:6380/0");
    let text = target.explain(&certificate_error(rustls::CertificateError::UnknownIssuer));
    assert!(text.contains("not trusted"), "{text}");
    assert!(text.contains("[redis] ca_file"), "{text}");

    let text = target.explain(&certificate_error(
        rustls::CertificateError::NotValidForName,
    ));
    assert!(text.contains("does not name the host"), "{text}");
}

#[test]
fn other_errors_are_shown_as_they_are() {
    let target = RedisTarget::new("rediss://127.0.0.1:6380/0");
    let refused: redis::RedisError =
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into();
    assert_eq!(target.explain(&refused), refused.to_string());
}

#[test]
fn only_rediss_urls_are_tls() {
    assert!(is_tls_url("rediss://h:6380/0"));
    assert!(!is_tls_url("redis://h:6379/0"));
    assert!(!is_tls_url("not a url"));
}

/// A client certificate and its key as PEM files in `dir` (self-signed: the files only have
/// to be well-formed here).
fn client_identity(dir: &Path) -> RedisTlsFiles {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["traptor".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    RedisTlsFiles {
        ca_file: None,
        client_cert_file: Some(write(dir, "client.pem", &cert.pem())),
        client_key_file: Some(write(dir, "client.key", &key.serialize_pem())),
    }
}

#[test]
fn a_client_certificate_gives_a_tls_client_and_debug_names_only_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = client_identity(dir.path());
    let target =
        RedisTarget::with_tls_files("rediss://:pw-secret@10.0.0.1:6380/3", &files).unwrap();
    assert_eq!(target.client_cert_file(), files.client_cert_file.as_deref());
    assert_eq!(target.ca_file(), None, "the public roots stay trusted");
    let client = target.client().expect("a TLS client with the certificate");
    assert!(matches!(
        client.get_connection_info().addr(),
        ConnectionAddr::TcpTls {
            tls_params: Some(_),
            ..
        }
    ));
    let shown = format!("{target:?}");
    let key = std::fs::read_to_string(files.client_key_file.unwrap()).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    assert!(
        shown.contains("client.pem") && !shown.contains(key_body) && !shown.contains("pw-secret"),
        "{shown}"
    );
}

#[test]
fn a_client_certificate_needs_its_key_and_tls() {
    let dir = tempfile::tempdir().unwrap();
    let files = client_identity(dir.path());
    for half in [
        RedisTlsFiles {
            client_key_file: None,
            ..files.clone()
        },
        RedisTlsFiles {
            client_cert_file: None,
            ..files.clone()
        },
    ] {
        let err = RedisTarget::with_tls_files("rediss://127.0.0.1:6380/0", &half).unwrap_err();
        assert!(matches!(err, RedisTargetError::HalfIdentity), "{err}");
    }
    let err =
        RedisTarget::with_tls_files("redis://:pw-secret@127.0.0.1:6379/0", &files).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RedisTargetError::TlsFileWithoutTls {
                file: "client certificate",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("rediss://") && !text.contains("pw-secret"),
        "{text}"
    );
}

#[test]
fn unusable_client_certificate_or_key_files_are_named_and_the_key_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let files = client_identity(dir.path());
    // The certificate file holds a key, the key file a certificate.
    let swapped = RedisTlsFiles {
        ca_file: None,
        client_cert_file: files.client_key_file.clone(),
        client_key_file: files.client_cert_file.clone(),
    };
    let err = RedisTarget::with_tls_files("rediss://127.0.0.1:6380/0", &swapped).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RedisTargetError::ClientCertificate { .. })
            && text.contains("client.key")
            && text.contains("[redis] client_cert_file"),
        "{text}"
    );
    let key = std::fs::read_to_string(files.client_key_file.as_ref().unwrap()).unwrap();
    assert!(!text.contains(key.lines().nth(1).unwrap()), "{text}");

    let wrong_key = RedisTlsFiles {
        client_key_file: files.client_cert_file.clone(),
        ..files.clone()
    };
    let err = RedisTarget::with_tls_files("rediss://127.0.0.1:6380/0", &wrong_key).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RedisTargetError::ClientKey { .. })
            && text.contains("[redis] client_key_file"),
        "{text}"
    );

    let missing = RedisTlsFiles {
        client_key_file: Some(PathBuf::from("/nonexistent/client.key")),
        ..files
    };
    let err = RedisTarget::with_tls_files("rediss://127.0.0.1:6380/0", &missing).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/client.key"), "{err}");
}
