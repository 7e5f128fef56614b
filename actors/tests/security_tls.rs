//! TLS to the stream endpoint is verified: a server whose certificate no trusted authority
//! signed is refused by default, accepted once its certificate is given as `[stream] ca_file`,
//! and refused again when the certificate names another host. The server is a tiny rustls
//! server on a loopback port with a certificate made by rcgen.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use traptor_actors::stream::client::{build_client, install_crypto_provider, open, StreamRequest};
use traptor_actors::stream::{ClientSettings, Failure, TlsConfig};
use traptor_core::oauth::Credentials;

const TWEET: &str = r#"{"id_str":"1","text":"over tls"}"#;

/// A self-signed certificate for `names`, its PEM, and a TLS server using it on a free port.
/// The server answers every request with a streamed 200 carrying one tweet line.
struct TlsServer {
    port: u16,
    cert_pem: String,
}

impl TlsServer {
    fn start(names: &[&str]) -> TlsServer {
        install_crypto_provider();
        let rcgen::CertifiedKey { cert, key_pair } = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert_der: CertificateDer<'static> = cert.der().clone();
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
        let config = Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(vec![cert_der], key_der)
                .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let config = config.clone();
                std::thread::spawn(move || serve(config, tcp));
            }
        });
        TlsServer {
            port,
            cert_pem: cert.pem(),
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/1.1/statuses/filter.json", self.port)
    }
}

fn serve(config: Arc<rustls::ServerConfig>, tcp: std::net::TcpStream) {
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let connection = rustls::ServerConnection::new(config).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    // A refused handshake ends here with an error: nothing to serve.
    while !head.ends_with(b"\r\n\r\n") {
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let line = format!("{TWEET}\r\n");
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{line}\r\n",
        line.len()
    );
    if tls
        .write_all(response.as_bytes())
        .and_then(|_| tls.flush())
        .is_err()
    {
        return;
    }
    std::thread::sleep(Duration::from_millis(500));
    let _ = tls.write_all(b"0\r\n\r\n");
    let _ = tls.flush();
}

fn credentials() -> Credentials {
    Credentials {
        consumer_key: "ck".into(),
        consumer_secret: "cs".into(),
        access_token: "at".into(),
        access_token_secret: "ats".into(),
    }
}

/// Opens a stream to `url` with `tls` and returns its first chunk, or the failure.
fn first_chunk(url: &str, tls: TlsConfig) -> Result<String, Failure> {
    actix_rt::System::new().block_on(async move {
        let settings = ClientSettings {
            connect_timeout: Duration::from_secs(5),
            head_timeout: Duration::from_secs(5),
            tls,
        };
        let client = build_client(&settings);
        let credentials = credentials();
        let form = [("track", "tls")];
        let request = StreamRequest {
            endpoint: url,
            user_agent: "traptor-tls-test",
            credentials: &credentials,
            form: &form,
        };
        let mut body = open(&client, &request).await?;
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("a chunk within 5 s")
            .expect("the body has a chunk")
            .expect("the chunk reads");
        Ok(String::from_utf8_lossy(&chunk).into_owned())
    })
}

fn write_pem(dir: &Path, pem: &str) -> std::path::PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).unwrap();
    path
}

#[test]
fn a_self_signed_endpoint_is_refused_by_default() {
    let server = TlsServer::start(&["localhost", "127.0.0.1"]);
    match first_chunk(&server.url(), TlsConfig::webpki_roots()) {
        Err(Failure::Network(reason)) => {
            let lower = reason.to_lowercase();
            assert!(
                lower.contains("certificate") || lower.contains("tls") || lower.contains("issuer"),
                "the refusal should say it is about the certificate: {reason}"
            );
        }
        other => panic!("an untrusted certificate must be refused, got {other:?}"),
    }
    // The same with `TlsConfig::load(None)`, which is what a config without ca_file builds.
    let default = TlsConfig::load(None).unwrap();
    assert!(matches!(
        first_chunk(&server.url(), default),
        Err(Failure::Network(_))
    ));
}

#[test]
fn the_ca_file_makes_the_endpoint_trusted() {
    let server = TlsServer::start(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_pem(dir.path(), &server.cert_pem);
    let chunk = first_chunk(&server.url(), TlsConfig::load(Some(&ca)).unwrap())
        .unwrap_or_else(|failure| panic!("trusted through ca_file, yet refused: {failure:?}"));
    assert!(chunk.contains(TWEET), "{chunk:?}");
}

#[test]
fn a_trusted_certificate_for_another_host_is_refused() {
    let server = TlsServer::start(&["stream.example.org"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = write_pem(dir.path(), &server.cert_pem);
    match first_chunk(&server.url(), TlsConfig::load(Some(&ca)).unwrap()) {
        Err(Failure::Network(_)) => {}
        other => panic!("a certificate for another host must be refused, got {other:?}"),
    }
}

/// The config loader resolves `ca_file` against the config's directory, and the app builds the
/// client's TLS from it (`app.rs` calls `TlsConfig::load(stream.ca_file)`).
#[test]
fn ca_file_in_the_config_is_resolved_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.toml");
    std::fs::write(
        &path,
        "[stream]\nca_file = \"proxy-ca.pem\"\n[sink]\nkind = \"stdout\"\n[[keys]]\nname = \"k\"\n\
         consumer_key = \"${CK}\"\nconsumer_secret = \"${CS}\"\naccess_token = \"${AT}\"\naccess_token_secret = \"${ATS}\"\n",
    )
    .unwrap();
    std::env::set_var("CK", "a");
    std::env::set_var("CS", "b");
    std::env::set_var("AT", "c");
    std::env::set_var("ATS", "d");
    let config = traptor_actors::config::ClusterConfig::load(&path).unwrap();
    assert_eq!(
        config.stream.ca_file.as_deref(),
        Some(dir.path().join("proxy-ca.pem").as_path())
    );
}
