//! Log output: always to standard error, because standard output belongs to the stdout sink.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use crate::config::LogFormat;

/// Installs the global `tracing` subscriber: JSON lines for log shippers, or human-readable
/// lines (coloured on a terminal). `RUST_LOG`, when set and valid, overrides `level`.
/// Calling it again keeps the first subscriber, so tests and embedders may call it freely.
pub fn init_logging(format: LogFormat, level: &str) {
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    // An error here only means a subscriber is already installed.
    drop(result);
}

const QUIET_DEPENDENCIES: &str = "actix_server=warn";

/// The filter from `RUST_LOG` if it is set and valid, else from the configured level, else
/// `info` (the config loader has already refused an invalid level). The embedded HTTP servers'
/// start and stop lines are kept to warnings unless `RUST_LOG` asks for them.
fn log_filter(rust_log: Option<&str>, level: &str) -> EnvFilter {
    if let Some(directives) = rust_log.filter(|d| !d.trim().is_empty()) {
        match EnvFilter::builder().parse(directives) {
            Ok(filter) => return filter,
            Err(e) => eprintln!("ignoring RUST_LOG={directives:?}: {e}"),
        }
    }
    EnvFilter::builder()
        .parse(format!("{level},{QUIET_DEPENDENCIES}"))
        .unwrap_or_else(|_| EnvFilter::new(format!("info,{QUIET_DEPENDENCIES}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_overrides_the_configured_level() {
        assert_eq!(log_filter(Some("debug"), "warn").to_string(), "debug");
        assert_eq!(
            log_filter(None, "warn").to_string(),
            "actix_server=warn,warn"
        );
        assert_eq!(
            log_filter(Some(""), "warn").to_string(),
            "actix_server=warn,warn"
        );
    }

    #[test]
    fn an_invalid_filter_falls_back() {
        assert_eq!(
            log_filter(Some("info,=["), "warn").to_string(),
            "actix_server=warn,warn"
        );
        assert_eq!(
            log_filter(None, "info,=[").to_string(),
            "actix_server=warn,info"
        );
    }
}
