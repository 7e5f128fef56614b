//! The Redis side of the actors that write on a timer (heartbeat, the original's stats): one
//! connection opened lazily with timeouts, reused while it works and dropped after an error so
//! that the next write reconnects; an outage logged once at warn, then at debug, and its end
//! at info. Both writers behave the same in an outage because they share this.

use std::future::Future;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::RedisResult;

use crate::redis_target::RedisTarget;

/// A Redis connection for periodic pipelines, and the state of its outage log.
pub struct RedisWriter {
    /// Only its address is logged: its URL may carry a password.
    target: RedisTarget,
    /// What is written, for log lines: "heartbeat", "the original's stats keys".
    what: &'static str,
    client: Option<redis::Client>,
    connection: Option<MultiplexedConnection>,
    timeout: Duration,
    failing: bool,
}

impl RedisWriter {
    /// An invalid URL is logged here once; every write is then skipped.
    pub fn new(target: &RedisTarget, what: &'static str, timeout: Duration) -> RedisWriter {
        let client = match target.client() {
            Ok(client) => Some(client),
            Err(e) => {
                tracing::error!(
                    redis = %target.address(),
                    "the Redis URL is invalid, the {what} will not be written: {e}"
                );
                None
            }
        };
        RedisWriter {
            target: target.clone(),
            what,
            client,
            connection: None,
            timeout,
            failing: false,
        }
    }

    /// Whether writes can be attempted at all (the URL was valid).
    pub fn usable(&self) -> bool {
        self.client.is_some()
    }

    /// Sends `pipe` on the current connection, or on a new one; hand the result to
    /// [`RedisWriter::finished`]. `None` when the URL was invalid.
    pub fn send(
        &self,
        pipe: redis::Pipeline,
    ) -> Option<impl Future<Output = RedisResult<MultiplexedConnection>> + 'static> {
        let client = self.client.clone()?;
        let connection = self.connection.clone();
        let timeout = self.timeout;
        Some(async move {
            let mut con = match connection {
                Some(con) => con,
                None => {
                    let config = redis::AsyncConnectionConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout));
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?
                }
            };
            pipe.query_async::<()>(&mut con).await?;
            Ok(con)
        })
    }

    /// Keeps the connection after a success, drops it after an error, and logs the change of
    /// state; `on_error` says what happens to what was not written. True on success.
    pub fn finished(
        &mut self,
        result: RedisResult<MultiplexedConnection>,
        on_error: impl FnOnce() -> String,
    ) -> bool {
        let what = self.what;
        match result {
            Ok(con) => {
                self.connection = Some(con);
                if self.failing {
                    tracing::info!("{what} written again after Redis errors");
                }
                self.failing = false;
                true
            }
            Err(e) => {
                self.connection = None;
                if self.failing {
                    tracing::debug!("{what} still cannot be written: {e}");
                } else {
                    tracing::warn!(
                        redis = %self.target.address(),
                        "{what} could not be written; {}: {}",
                        on_error(),
                        self.target.explain(&e)
                    );
                }
                self.failing = true;
                false
            }
        }
    }
}
