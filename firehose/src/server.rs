//! The HTTP side: the filter endpoint, `/stats` and `/control/<fault>`, served by actix-web on
//! its own thread, and the handle tests hold.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use tokio::sync::oneshot;
use traptor_core::oauth::{decode_form, parse_authorization_header};

use crate::auth::SignedRequest;
use crate::config::FirehoseConfig;
use crate::fault::{ControlRequest, Fault};
use crate::params::StreamFilter;
use crate::state::Shared;
use crate::stats::Stats;

/// Path of the emulated endpoint.
pub const FILTER_PATH: &str = "/1.1/statuses/filter.json";

/// Entry point: `Firehose::start(config).await` serves until the handle is stopped or dropped.
pub struct Firehose;

/// A running emulator. Dropping it stops the server too (without waiting).
pub struct FirehoseHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: actix_web::dev::ServerHandle,
    http_done: Option<oneshot::Receiver<()>>,
    pump: Option<std::thread::JoinHandle<()>>,
}

impl Firehose {
    /// Binds `config.listen`, starts the HTTP thread and the traffic pump, and returns once
    /// the socket accepts connections. Works from any async runtime (tokio or actix-rt).
    pub async fn start(config: FirehoseConfig) -> io::Result<FirehoseHandle> {
        let listener = std::net::TcpListener::bind(config.listen).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))
        })?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(config));
        let pump = crate::pump::spawn(shared.clone())?;
        let (handle_tx, handle_rx) = oneshot::channel::<io::Result<actix_web::dev::ServerHandle>>();
        let (done_tx, done_rx) = oneshot::channel();
        let app_state = shared.clone();
        std::thread::Builder::new()
            .name("firehose-http".into())
            .spawn(move || {
                let system = actix_rt::System::new();
                let result = system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(web::Data::from(app_state.clone()))
                            .route(FILTER_PATH, web::post().to(filter_endpoint))
                            .route(FILTER_PATH, web::get().to(filter_endpoint))
                            .route("/stats", web::get().to(stats_endpoint))
                            .route("/control/{fault}", web::post().to(control_endpoint))
                    })
                    .workers(1)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener)?
                    .run();
                    let _ = handle_tx.send(Ok(server.handle()));
                    server.await
                });
                if let Err(e) = result {
                    tracing::error!(error = %e, "the emulator's HTTP server stopped with an error");
                }
                let _ = done_tx.send(());
            })?;
        let server = handle_rx.await.map_err(|_| {
            io::Error::other("the emulator's HTTP thread ended before it started serving")
        })??;
        Ok(FirehoseHandle {
            addr,
            shared,
            server,
            http_done: Some(done_rx),
            pump: Some(pump),
        })
    }
}

impl FirehoseHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The filter endpoint's URL, e.g. `http://127.0.0.1:PORT/1.1/statuses/filter.json`.
    pub fn url(&self) -> String {
        format!("http://{}{FILTER_PATH}", self.addr)
    }

    pub fn stats(&self) -> Stats {
        self.shared.snapshot()
    }

    /// Applies a fault; returns how many live connections it reached (connect faults: 0).
    pub fn inject(&self, fault: Fault) -> usize {
        self.shared.inject(fault)
    }

    /// The stats label (`key<index>`) of a configured consumer key.
    pub fn credential_label(&self, consumer_key: &str) -> Option<String> {
        self.shared
            .credential_index(Some(consumer_key))
            .map(|i| crate::state::credential_label(Some(i)))
    }

    /// Ends every stream with `disconnect` code 1, stops serving and waits for the threads.
    pub async fn stop(mut self) {
        self.shared.shutdown();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.server.stop(false).await;
        if let Some(done) = self.http_done.take() {
            let _ = done.await;
        }
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
    }
}

impl Drop for FirehoseHandle {
    fn drop(&mut self) {
        if self.pump.is_some() {
            self.shared.shutdown();
            // Sends the stop command now; completion is not awaited here.
            drop(self.server.stop(false));
        }
    }
}

/// The v1.1 error body: `{"errors":[{"code":N,"message":"..."}]}`.
fn error_response(status: u16, code: u32, message: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string())
}

async fn filter_endpoint(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let shared = shared.into_inner();
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let consumer_key = authorization
        .and_then(parse_authorization_header)
        .and_then(|oauth| oauth.get("oauth_consumer_key").cloned());
    let claimed = shared.credential_index(consumer_key.as_deref());

    let (delay, forced) = shared.take_connect_faults(consumer_key.as_deref());
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(status) = forced {
        shared.record_attempt(claimed, status, "injected", None);
        let message = match status {
            401 => "Unauthorized (injected).",
            420 => "Enhance Your Calm: too many connection attempts (injected).",
            503 => "Service Unavailable: over capacity (injected).",
            _ => "Injected failure.",
        };
        return error_response(status, u32::from(status), message);
    }

    let mut params = decode_form(req.query_string());
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !body.is_empty() && is_form {
        params.extend(decode_form(&String::from_utf8_lossy(&body)));
    }

    let host = req.connection_info().host().to_owned();
    let base_urls = [
        format!("http://{host}{FILTER_PATH}"),
        format!("https://{host}{FILTER_PATH}"),
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let request = SignedRequest {
        method: req.method().as_str(),
        base_urls: &base_urls,
        authorization,
        params: &params,
    };
    let credential = match shared.verifier.verify(&request, now) {
        Ok(index) => index,
        Err(error) => {
            shared.record_attempt(claimed, 401, error.reason(), None);
            let (code, message) = error.code_and_message();
            return error_response(401, code, &message);
        }
    };
    if let Err(wait) = shared.check_connect_rate(credential) {
        shared.record_attempt(Some(credential), 420, "rate_limited", None);
        return error_response(
            420,
            420,
            &format!("Enhance Your Calm: too many connection attempts; this key is limited for {} ms more.", wait.as_millis()),
        );
    }
    let filter = match StreamFilter::from_params(&params) {
        Ok(filter) => filter,
        Err(error) => {
            shared.record_attempt(Some(credential), error.status(), error.message(), None);
            return error_response(error.status(), u32::from(error.status()), error.message());
        }
    };
    let (id, stream) = shared.open(credential, filter);
    shared.record_attempt(Some(credential), 200, "connected", Some(id));
    HttpResponse::Ok()
        .content_type("application/json")
        .force_close()
        .streaming(stream)
}

async fn stats_endpoint(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().json(shared.snapshot())
}

async fn control_endpoint(
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let request: ControlRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ControlRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                return error_response(
                    400,
                    400,
                    &format!("the control body is not valid JSON for this fault: {e}"),
                )
            }
        }
    };
    match request.into_fault(&path.into_inner()) {
        Ok(fault) => {
            let reached = shared.inject(fault);
            HttpResponse::Ok().json(serde_json::json!({"connections": reached}))
        }
        Err((status, message)) => error_response(status, u32::from(status), &message),
    }
}
