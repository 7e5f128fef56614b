//! The Redis connection of the rule commands (and `traptor plan`): where it points, which CA
//! it trusts, how it is opened, and how its failures read. The URL may carry a password, so
//! messages name only `host:port/db`.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use traptor_actors::redis_target::{RedisTarget, RedisTlsFiles};

/// Used when neither `--redis` nor `$TRAPTOR_REDIS_URL` is given (the original's default).
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";

/// The environment variable that replaces [`DEFAULT_REDIS_URL`].
pub const REDIS_URL_VAR: &str = "TRAPTOR_REDIS_URL";

/// The environment variable read when `--redis-ca-file` is not given.
pub const REDIS_CA_FILE_VAR: &str = "TRAPTOR_REDIS_CA_FILE";

/// The environment variables read when `--redis-client-cert` / `--redis-client-key` are not
/// given.
pub const REDIS_CLIENT_CERT_VAR: &str = "TRAPTOR_REDIS_CLIENT_CERT";
pub const REDIS_CLIENT_KEY_VAR: &str = "TRAPTOR_REDIS_CLIENT_KEY";

/// Generous bounds: a SCAN of a large keyspace on a busy server takes a while, but a dead
/// server must not hang a command forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// `--redis URL` and its TLS files, shared by every rule command.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis holding the rules, `redis://[user:password@]host:port/db` (`rediss://` for TLS).
    /// Default: $TRAPTOR_REDIS_URL, else redis://127.0.0.1:6379/0.
    #[arg(long = "redis", value_name = "URL")]
    pub url: Option<String>,

    /// PEM file of the private CA that signed the Redis server's certificate (`rediss://`
    /// only; only its certificates are then trusted). Default: $TRAPTOR_REDIS_CA_FILE.
    #[arg(long = "redis-ca-file", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// PEM file of the client certificate, for a Redis that requires one (`tls-auth-clients
    /// yes`; with --redis-client-key). Default: $TRAPTOR_REDIS_CLIENT_CERT.
    #[arg(long = "redis-client-cert", value_name = "PATH")]
    pub client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key. Default: $TRAPTOR_REDIS_CLIENT_KEY.
    #[arg(long = "redis-client-key", value_name = "PATH")]
    pub client_key: Option<PathBuf>,
}

impl RedisArgs {
    /// The URL to use: the flag, else the environment, else the default.
    pub fn resolved_url(&self) -> String {
        resolve_url(
            self.url.as_deref(),
            std::env::var(REDIS_URL_VAR).ok().as_deref(),
        )
    }

    /// The TLS files: each flag, else its environment variable, else none.
    pub fn resolved_tls_files(&self) -> RedisTlsFiles {
        let from_env = |var: &str| std::env::var_os(var).map(PathBuf::from);
        RedisTlsFiles {
            ca_file: resolve_path(self.ca_file.as_deref(), from_env(REDIS_CA_FILE_VAR)),
            client_cert_file: resolve_path(
                self.client_cert.as_deref(),
                from_env(REDIS_CLIENT_CERT_VAR),
            ),
            client_key_file: resolve_path(
                self.client_key.as_deref(),
                from_env(REDIS_CLIENT_KEY_VAR),
            ),
        }
    }

    /// The Redis to talk to, with its TLS files read.
    pub fn target(&self) -> anyhow::Result<RedisTarget> {
        target(self.resolved_url(), &self.resolved_tls_files())
    }
}

/// A target for `url` with the TLS files given (read now).
pub fn target(url: String, files: &RedisTlsFiles) -> anyhow::Result<RedisTarget> {
    Ok(RedisTarget::with_tls_files(url, files)?)
}

/// `--channel` and `--no-notify`, shared by the commands that change rules.
#[derive(Debug, Clone, clap::Args)]
pub struct NotifyArgs {
    /// Channel on which `<type>:<id>` is published after a slot's rules change.
    #[arg(long, value_name = "CHANNEL", default_value = traptor_actors::rule_store::DEFAULT_NOTIFY_CHANNEL)]
    pub channel: String,

    /// Do not publish change notices (running supervisors then see the change at their next
    /// periodic resync).
    #[arg(long)]
    pub no_notify: bool,
}

fn resolve_url(flag: Option<&str>, env: Option<&str>) -> String {
    flag.or(env.filter(|url| !url.trim().is_empty()))
        .unwrap_or(DEFAULT_REDIS_URL)
        .to_owned()
}

fn resolve_path(flag: Option<&Path>, env: Option<PathBuf>) -> Option<PathBuf> {
    flag.map(Path::to_owned)
        .or(env.filter(|path| !path.as_os_str().is_empty()))
}

/// Runs a future of a command to completion on a fresh single-threaded runtime.
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = actix_rt::Runtime::new().context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// Opens a connection, with an error that says where it tried and what to do.
pub async fn connect(redis: &RedisTarget) -> anyhow::Result<MultiplexedConnection> {
    let address = redis.address();
    if redis.url().trim().is_empty() {
        // Typically `--redis "$VAR"` with VAR unset: say so rather than "invalid URL".
        anyhow::bail!(
            "the Redis URL is empty; give --redis redis://[user:password@]host:port/db (or set \
             ${REDIS_URL_VAR})"
        );
    }
    let client = redis.client().map_err(|e| {
        anyhow::anyhow!(
            "the Redis URL is invalid ({}); expected redis://[user:password@]host:port/db",
            e.category()
        )
    })?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| match redis.certificate_hint(&e) {
            Some(hint) => anyhow::anyhow!("cannot connect to Redis at {address}: {e}; {hint}"),
            None => anyhow::Error::new(e).context(format!(
                "cannot connect to Redis at {address}; start it, or point --redis (or \
                 ${REDIS_URL_VAR}) at it"
            )),
        })
}

/// Describes a failed Redis command without repeating the URL.
pub fn redis_failure(doing: &str, redis: &RedisTarget) -> String {
    format!("Redis at {} failed while {doing}", redis.address())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_beats_the_environment_which_beats_the_default() {
        assert_eq!(
            resolve_url(Some("redis://a/1"), Some("redis://b/2")),
            "redis://a/1"
        );
        assert_eq!(resolve_url(None, Some("redis://b/2")), "redis://b/2");
        assert_eq!(resolve_url(None, Some(" ")), DEFAULT_REDIS_URL);
        assert_eq!(resolve_url(None, None), DEFAULT_REDIS_URL);
    }

    #[test]
    fn a_file_flag_beats_the_environment_and_an_empty_variable_means_none() {
        let env = || Some(PathBuf::from("/env/ca.pem"));
        assert_eq!(
            resolve_path(Some(Path::new("/flag/ca.pem")), env()),
            Some(PathBuf::from("/flag/ca.pem"))
        );
        assert_eq!(resolve_path(None, env()), Some(PathBuf::from("/env/ca.pem")));
        assert_eq!(resolve_path(None, Some(PathBuf::new())), None);
        assert_eq!(resolve_path(None, None), None);
    }

    #[test]
    fn an_unreadable_ca_file_is_reported_before_connecting() {
        let err = target(
            "rediss://:pw-secret@127.0.0.1:6380/0".into(),
            &RedisTlsFiles {
                ca_file: Some(PathBuf::from("/nonexistent/redis-ca.pem")),
                ..RedisTlsFiles::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent/redis-ca.pem"), "{err}");
        assert!(err.contains("--redis-ca-file"), "{err}");
        assert!(!err.contains("pw-secret"), "{err}");
    }
}
