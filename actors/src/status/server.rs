//! The HTTP endpoint an operator (or Prometheus, or an orchestrator's probes) asks:
//!
//! - `GET /healthz`: 200 `ok` while the actor system answers, else 503;
//! - `GET /readyz`: 200 when ready, else 503; both with a JSON [`Readiness`] body;
//! - `GET /status`: the [`StatusReport`](super::StatusReport) as JSON;
//! - `GET /metrics`: Prometheus text.
//!
//! One worker thread is plenty for probes and a scraper; it only reads shared counters and
//! asks the supervisor for its snapshot, so it never slows the streams.

use std::net::{SocketAddr, TcpListener};

use actix_web::dev::ServerHandle;

use super::metrics::MetricsOptions;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};

use super::health::Readiness;
use super::report::{ask_supervisor, collect};
use super::{metrics, StatusSources};

/// A running status server. Stop it with [`StatusServer::stop`].
pub struct StatusServer {
    handle: ServerHandle,
    local_addr: SocketAddr,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {listen} for the status endpoint ({source}); change [status] listen in the config or free that port")]
pub struct StatusServerError {
    pub listen: String,
    pub source: std::io::Error,
}

impl StatusServer {
    /// Binds `listen` (e.g. `127.0.0.1:9099`; port 0 picks a free one) and serves in the
    /// background. Must be called inside an actix `System`.
    pub fn start(
        listen: &str,
        sources: StatusSources,
        metrics_options: MetricsOptions,
    ) -> Result<StatusServer, StatusServerError> {
        let failed = |source| StatusServerError {
            listen: listen.to_owned(),
            source,
        };
        let listener = TcpListener::bind(listen).map_err(failed)?;
        let local_addr = listener.local_addr().map_err(failed)?;
        let data = web::Data::new(sources);
        let metrics_options = web::Data::new(metrics_options);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(metrics_options.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/readyz", web::get().to(readyz))
                .route("/status", web::get().to(status))
                .route("/metrics", web::get().to(metrics_text))
        })
        .workers(1)
        // The process handles SIGTERM itself and stops this server when it is done.
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)
        .map_err(failed)?
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        tracing::info!(listen = %local_addr, "status endpoint listening (/healthz, /readyz, /status, /metrics)");
        Ok(StatusServer { handle, local_addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting requests and waits (about a second at most) for those under way.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn healthz(sources: web::Data<StatusSources>) -> HttpResponse {
    match ask_supervisor(&sources).await {
        Ok(_) => text(StatusCode::OK, "ok\n"),
        Err(error) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ok: {error}\n"),
        ),
    }
}

async fn readyz(sources: web::Data<StatusSources>) -> HttpResponse {
    let readiness = match collect(&sources).await {
        Ok(report) => report.ready,
        Err(error) => Readiness::failing(format!("supervisor: {error}")),
    };
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(code, &readiness)
}

async fn status(sources: web::Data<StatusSources>) -> HttpResponse {
    match collect(&sources).await {
        Ok(report) => json(StatusCode::OK, &report),
        Err(error) => unavailable(error),
    }
}

async fn metrics_text(
    sources: web::Data<StatusSources>,
    options: web::Data<MetricsOptions>,
) -> HttpResponse {
    match collect(&sources).await {
        Ok(report) => HttpResponse::Ok()
            .content_type(metrics::CONTENT_TYPE)
            .body(metrics::render(&report, **options)),
        Err(error) => unavailable(error),
    }
}

fn unavailable(error: impl std::fmt::Display) -> HttpResponse {
    let body = serde_json::json!({ "error": format!("supervisor: {error}") });
    json(StatusCode::SERVICE_UNAVAILABLE, &body)
}

fn json(code: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    match serde_json::to_string_pretty(body) {
        Ok(text) => HttpResponse::build(code)
            .content_type("application/json")
            .body(text + "\n"),
        Err(error) => HttpResponse::InternalServerError().body(format!("cannot encode: {error}\n")),
    }
}

fn text(code: StatusCode, body: &str) -> HttpResponse {
    HttpResponse::build(code)
        .content_type("text/plain; charset=utf-8")
        .body(body.to_owned())
}
