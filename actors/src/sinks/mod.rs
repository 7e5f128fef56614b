//! Where records go: Kafka, standard output or a file, chosen by `[sink]` in the config.
//!
//! Each destination is a [`Sink`]; one [`Writer`] actor serves any of them, so streams only
//! ever see `WriteBatch` and `Flush` through a [`WriterHandle`]. A writer replies to a batch
//! only once its records are accepted (written, or enqueued with the in-flight bound
//! respected): that reply is the backpressure that slows the streams when the sink is slow.
//! With `[kafka.spool]`, a Kafka outage longer than the in-flight bound fills a bounded
//! on-disk spool instead (`spool`), replayed once Kafka answers.
//!
//! A sink may also offer a [`DirectWrite`]: streams then hand it their records on their own
//! thread for as long as it can take them without waiting (Kafka: below the in-flight bound,
//! nothing spooled), and only the rest travel to the writer. A [`RecordOutlet`] is a stream's
//! view of both.

mod kafka;
mod lines;
mod pending;
mod spool;
mod stats;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use traptor_core::Record;

use crate::config::{KafkaConfig, SinkConfig};
use crate::messages::WriteBatch;

pub use kafka::{
    check_producer_settings, probe_kafka, KafkaProbe, KafkaSink, TopicProbe, MESSAGE_TYPE_HEADER,
    SLOT_HEADER,
};
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

    /// The sink's way to take records on the streams' threads, if it has one.
    fn direct(&self) -> Option<Arc<dyn DirectWrite>> {
        None
    }
}

/// Takes records on the calling stream's thread, never waiting. Handing a batch to the writer
/// costs a trip to another thread and back, and the records' memory then moves between cores;
/// while the destination keeps up, that trip buys nothing.
pub trait DirectWrite: Send + Sync {
    /// Takes records from the front of `records` for as long as it can without waiting, and
    /// returns how many it took (each is then accounted as the writer would have). It stops at
    /// the first record that would have to wait (or be spooled, or is refused at shutdown):
    /// that one and the rest must go to the writer, in order.
    fn try_write(&self, records: &[Record]) -> usize;
}

/// Where a stream hands its records: to the sink directly while it can take them at once, the
/// rest to the writer, which waits for room or spools and replies when they are accepted.
#[derive(Clone)]
pub struct RecordOutlet {
    pub writer: Recipient<WriteBatch>,
    pub direct: Option<Arc<dyn DirectWrite>>,
}

impl RecordOutlet {
    /// An outlet that sends every record through the writer.
    pub fn through_writer(writer: Recipient<WriteBatch>) -> RecordOutlet {
        RecordOutlet {
            writer,
            direct: None,
        }
    }

    /// Hands the sink directly what it takes at once, and returns the records left for the
    /// writer (in their order; empty when all were taken).
    pub fn write_directly(&self, mut records: Vec<Record>) -> Vec<Record> {
        if let Some(direct) = &self.direct {
            let taken = direct.try_write(&records);
            records.drain(..taken);
        }
        records
    }
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
