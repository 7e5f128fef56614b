//! The Redis and Kafka a benchmark runs against: those started by `scripts/services.sh`, found
//! through the variables its `env` command prints, and the broker's pause switch.

use std::path::PathBuf;

use anyhow::{bail, Context};

const HOW_TO_START: &str = "start your own services first: \
     TRAPTOR_SERVICES_DIR=/tmp/perf-services bash scripts/services.sh start && \
     eval \"$(TRAPTOR_SERVICES_DIR=/tmp/perf-services bash scripts/services.sh env)\" \
     (or run everything with scripts/bench.sh)";

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Services {
    /// Redis base URL, e.g. `redis://127.0.0.1:6379/`.
    pub redis_url: String,
    /// Kafka bootstrap servers.
    pub kafka_brokers: String,
    /// The state dir of `scripts/services.sh` (holds `kafka.pid`).
    pub dir: Option<PathBuf>,
}

impl Services {
    /// Reads `TRAPTOR_TEST_REDIS_URL`, `TRAPTOR_TEST_KAFKA_BROKERS` and
    /// `TRAPTOR_TEST_SERVICES_DIR`.
    pub fn from_env() -> anyhow::Result<Services> {
        let var = |name: &str| -> anyhow::Result<String> {
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => Ok(value),
                _ => bail!("{name} is not set: {HOW_TO_START}"),
            }
        };
        Ok(Services {
            redis_url: var("TRAPTOR_TEST_REDIS_URL")?,
            kafka_brokers: var("TRAPTOR_TEST_KAFKA_BROKERS")?,
            dir: std::env::var_os("TRAPTOR_TEST_SERVICES_DIR").map(PathBuf::from),
        })
    }

    /// The Redis URL with database `db` (the benchmarks flush it: it must be theirs alone).
    pub fn redis_db_url(&self, db: u32) -> String {
        with_database(&self.redis_url, db)
    }

    /// The broker's process id, from `kafka.pid` in the services dir.
    pub fn kafka_pid(&self) -> anyhow::Result<i32> {
        let dir = self
            .dir
            .as_ref()
            .with_context(|| format!("TRAPTOR_TEST_SERVICES_DIR is not set: {HOW_TO_START}"))?;
        let path = dir.join("kafka.pid");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (is the broker running?)", path.display()))?;
        text.trim()
            .parse()
            .with_context(|| format!("{} does not hold a pid: {text:?}", path.display()))
    }

    /// Freezes the broker (SIGSTOP to its process group) until the guard is dropped.
    pub fn pause_kafka(&self) -> anyhow::Result<PausedBroker> {
        let pid = self.kafka_pid()?;
        signal_group(pid, libc::SIGSTOP)?;
        Ok(PausedBroker { pid })
    }
}

/// A broker frozen with SIGSTOP; dropping this resumes it, so a failing benchmark never
/// leaves Kafka paused.
#[derive(Debug)]
pub struct PausedBroker {
    pid: i32,
}

impl PausedBroker {
    pub fn resume(self) {}
}

impl Drop for PausedBroker {
    fn drop(&mut self) {
        if let Err(e) = signal_group(self.pid, libc::SIGCONT) {
            eprintln!("could not resume the Kafka broker (pid {}): {e}", self.pid);
        }
    }
}

fn signal_group(pid: i32, signal: libc::c_int) -> anyhow::Result<()> {
    // SAFETY: kill only sends a signal; a negative pid names the process group.
    if unsafe { libc::kill(-pid, signal) } != 0 {
        bail!(
            "kill(-{pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `url` with its database path replaced by `/db`.
pub fn with_database(url: &str, db: u32) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    format!("{}/{db}", &url[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_replaced_or_added() {
        assert_eq!(
            with_database("redis://127.0.0.1:6379/", 15),
            "redis://127.0.0.1:6379/15"
        );
        assert_eq!(
            with_database("redis://127.0.0.1:6379/2", 15),
            "redis://127.0.0.1:6379/15"
        );
        assert_eq!(
            with_database("redis://127.0.0.1:6379", 3),
            "redis://127.0.0.1:6379/3"
        );
    }
}
