//! Where records go: Kafka, standard output or a file, chosen by `[sink]` in the config.
//!
//! Each destination is a [`Sink`]; one [`Writer`] actor serves any of them, so streams only
//! ever see `WriteBatch` and `Flush` through a [`WriterHandle`]. A writer replies to a batch
//! only once its records are accepted (written, or enqueued with the in-flight bound
//! respected): that reply is the backpressure that slows the streams when the sink is slow.
//! With `[kafka.spool]`, a Kafka outage longer than the in-flight bound fills a bounded
//! on-disk spool instead (`spool`), replayed once Kafka answers.

mod kafka;
mod lines;
mod pending;
mod spool;
mod stats;
mod writer;

use std::time::Duration;

use traptor_core::Record;

use crate::config::{KafkaConfig, SinkConfig};

pub use kafka::{check_producer_settings, KafkaSink, MESSAGE_TYPE_HEADER, SLOT_HEADER};
pub use lines::{encode_line, LineSink};
pub use stats::{KafkaHealth, KafkaHealthSnapshot, WriterStats, WriterStatsSnapshot};
pub use writer::{Writer, WriterHandle};

/// A destination for records, driven by a [`Writer`] on its own thread (so it may block).
pub trait Sink: Send + Unpin + 'static {
    /// A short name for logs and status (`kafka`, `stdout`, `file`).
    fn name(&self) -> &'static str;

    /// Accepts the records and returns once they are accepted. Blocking here is the point: the
    /// streams wait for the reply. After an [`SinkError::Io`] the writer calls it again with
    /// the same records, so a sink may deliver some of them twice but never loses them.
    fn write(&mut self, records: &[Record]) -> Result<(), SinkError>;

    /// Delivers everything held, waiting at most `timeout`; returns how many records are
    /// still undelivered.
    fn flush(&mut self, timeout: Duration) -> usize;
}

/// Why a sink could not be started or could not take records.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// The destination went away for good (e.g. the reader of standard output exited): the
    /// process should shut down.
    #[error("{0}")]
    Closed(String),
    /// A write failed; later writes may succeed.
    #[error("{0}")]
    Io(String),
    /// The sink could not be created from its configuration.
    #[error("{0}")]
    Setup(String),
}

/// Creates the sink the config names and starts its writer on a thread of its own.
/// Must be called from within a running actix `System`.
pub fn start_writer(sink: &SinkConfig, kafka: &KafkaConfig) -> Result<WriterHandle, SinkError> {
    let shared = writer::Shared::new();
    match sink {
        SinkConfig::Kafka => {
            let sink = KafkaSink::new(kafka, shared.stats.clone(), shared.closing.clone())?;
            Ok(Writer::start(sink, shared))
        }
        SinkConfig::Stdout => Ok(Writer::start(
            LineSink::stdout(shared.stats.clone()),
            shared,
        )),
        SinkConfig::File { path } => {
            let sink = LineSink::file(path, shared.stats.clone())?;
            Ok(Writer::start(sink, shared))
        }
    }
}
