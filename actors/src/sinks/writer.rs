//! The writer actor: serves `WriteBatch` and `Flush` for any [`Sink`], on a thread of its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use traptor_core::Record;

use super::{Sink, SinkError, WriterStats, WriterStatsSnapshot};
use crate::messages::{Flush, WriteBatch, WriteError};

/// State shared between the writer, its sink and its handle.
pub(crate) struct Shared {
    pub stats: Arc<WriterStats>,
    /// Set at shutdown: batches are refused and waits for the in-flight bound end.
    pub closing: Arc<AtomicBool>,
    /// Set (with the reason) when the destination went away for good.
    closed: watch::Sender<Option<String>>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            stats: Arc::default(),
            closing: Arc::default(),
            closed: watch::Sender::new(None),
        }
    }
}

/// Serves one sink. A sync actor, so the sink may block (Kafka's queue full, a slow pipe, a
/// full disk) without stalling the streams' arbiters: they simply wait for the reply.
pub struct Writer<S: Sink> {
    sink: S,
    shared: Shared,
}

/// Everything the rest of the system needs of a running writer. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    /// Where streams send their records (await the reply before reading more).
    pub batches: Recipient<WriteBatch>,
    pub flush: Recipient<Flush>,
    pub stats: Arc<WriterStats>,
    /// The sink's short name (`kafka`, `stdout`, `file`).
    pub sink: &'static str,
    closing: Arc<AtomicBool>,
    closed: watch::Receiver<Option<String>>,
}

impl<S: Sink> Writer<S> {
    /// Starts a writer for `sink` on a thread of its own. Needs a running actix `System`.
    pub(crate) fn start(sink: S, shared: Shared) -> WriterHandle {
        let name = sink.name();
        let stats = shared.stats.clone();
        let closing = shared.closing.clone();
        let closed = shared.closed.subscribe();
        let writer = Mutex::new(Some(Writer { sink, shared }));
        let addr = SyncArbiter::start(1, move || {
            writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .expect("a writer is never restarted: it never calls ctx.stop()")
        });
        WriterHandle {
            batches: addr.clone().recipient(),
            flush: addr.recipient(),
            stats,
            sink: name,
            closing,
            closed,
        }
    }

    /// Writes the batch, retrying with a growing pause while the sink reports passing errors:
    /// the streams wait instead of losing records.
    fn write_until_accepted(&mut self, records: &[Record]) -> Result<(), WriteError> {
        let mut pause = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            match self.sink.write(records) {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!(
                            sink = self.sink.name(),
                            failures,
                            "sink writes succeed again"
                        );
                    }
                    return Ok(());
                }
                Err(SinkError::Io(reason)) => {
                    if failures == 0 {
                        tracing::error!(sink = self.sink.name(), %reason, records = records.len(),
                            "sink write failed; retrying until it succeeds (streams wait meanwhile)");
                    }
                    failures += 1;
                    if self.shared.closing.load(Ordering::Acquire) {
                        self.shared.stats.record_given_up(records.len() as u64);
                        tracing::error!(sink = self.sink.name(), records = records.len(), %reason,
                            "shutting down while the sink fails: these records are lost");
                        return Err(WriteError::Sink(reason));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(SinkError::Closed(reason)) => {
                    tracing::warn!(sink = self.sink.name(), %reason, "sink closed; the process should shut down");
                    self.shared.closed.send_replace(Some(reason.clone()));
                    return Err(WriteError::Sink(reason));
                }
                Err(SinkError::Setup(reason)) => return Err(WriteError::Sink(reason)),
            }
        }
    }
}

impl<S: Sink> Actor for Writer<S> {
    type Context = SyncContext<Self>;
}

impl<S: Sink> Handler<WriteBatch> for Writer<S> {
    type Result = Result<(), WriteError>;

    fn handle(
        &mut self,
        WriteBatch(records): WriteBatch,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        if let Some(reason) = self.shared.closed.borrow().clone() {
            return Err(WriteError::Sink(reason));
        }
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(WriteError::ShuttingDown);
        }
        if records.is_empty() {
            return Ok(());
        }
        self.write_until_accepted(&records)
    }
}

impl<S: Sink> Handler<Flush> for Writer<S> {
    type Result = usize;

    fn handle(&mut self, Flush { timeout }: Flush, _ctx: &mut Self::Context) -> usize {
        self.sink.flush(timeout)
    }
}

impl WriterHandle {
    pub fn stats(&self) -> WriterStatsSnapshot {
        self.stats.snapshot()
    }

    /// Why the destination went away for good, if it did.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.borrow().clone()
    }

    /// Refuses further batches and ends any wait for the in-flight bound, so a following
    /// `Flush` is served promptly even while the destination is down.
    pub fn begin_shutdown(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Shuts the writer down: refuses new batches, delivers what it holds within `timeout`,
    /// and returns how many records are still undelivered (0 when all were delivered).
    /// Stop the streams first: their later batches are refused.
    pub async fn shutdown(&self, timeout: Duration) -> usize {
        self.begin_shutdown();
        match self.flush.send(Flush { timeout }).await {
            Ok(undelivered) => undelivered,
            Err(_) => self.stats.in_flight() as usize,
        }
    }

    /// Resolves when the destination went away for good (e.g. standard output's reader
    /// exited), with the reason. The owner should then shut down as it does for SIGTERM.
    pub async fn closed(&self) -> String {
        let mut closed = self.closed.clone();
        let reason = match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            // The writer is gone, so its destination is as good as closed.
            Err(_) => "the writer stopped".to_owned(),
        };
        reason
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Write};

    use traptor_core::MessageKind;

    use super::*;
    use crate::config::{KafkaConfig, SinkConfig};
    use crate::sinks::{start_writer, LineSink};

    fn tweet(id: u64) -> Record {
        Record {
            kind: MessageKind::Tweet,
            key: Some(id.to_string()),
            payload: format!("{{\"id\":{id}}}").into_bytes(),
            slot: None,
            received_at_ms: 0,
        }
    }

    #[actix::test]
    async fn replies_once_written_and_refuses_batches_after_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.jsonl");
        let writer = start_writer(
            &SinkConfig::File { path: path.clone() },
            &KafkaConfig::default(),
        )
        .unwrap();
        assert_eq!(writer.sink, "file");

        writer
            .batches
            .send(WriteBatch(vec![tweet(1), tweet(2)]))
            .await
            .unwrap()
            .unwrap();
        // The reply means the lines are written (flushed), not merely queued.
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":1}\n{\"id\":2}\n"
        );
        assert_eq!(writer.stats().delivered, 2);

        assert_eq!(writer.shutdown(Duration::from_secs(1)).await, 0);
        let refused = writer
            .batches
            .send(WriteBatch(vec![tweet(3)]))
            .await
            .unwrap();
        assert!(
            matches!(refused, Err(WriteError::ShuttingDown)),
            "{refused:?}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    /// Standard output whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[actix::test]
    async fn a_closed_destination_is_announced_not_panicked_on() {
        let shared = Shared::new();
        let sink = LineSink::new("stdout", ClosedPipe, |_| Ok(()), shared.stats.clone());
        let writer = Writer::start(sink, shared);
        let result = writer
            .batches
            .send(WriteBatch(vec![tweet(1)]))
            .await
            .unwrap();
        assert!(matches!(result, Err(WriteError::Sink(_))), "{result:?}");
        let reason = tokio::time::timeout(Duration::from_secs(5), writer.closed())
            .await
            .unwrap();
        assert!(reason.contains("stdout"), "{reason}");
        // The actor is still alive and answers.
        assert_eq!(
            writer
                .flush
                .send(Flush {
                    timeout: Duration::from_millis(10)
                })
                .await
                .unwrap(),
            0
        );
    }

    /// Fails twice with a passing error, then accepts everything.
    struct Flaky {
        failures_left: u32,
        accepted: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
            if self.failures_left > 0 {
                self.failures_left -= 1;
                return Err(SinkError::Io("disk full".into()));
            }
            let mut accepted = self.accepted.lock().unwrap();
            accepted.extend(
                records
                    .iter()
                    .map(|r| r.key.as_ref().unwrap().parse::<u64>().unwrap()),
            );
            Ok(())
        }
        fn flush(&mut self, _: Duration) -> usize {
            0
        }
    }

    #[actix::test]
    async fn passing_errors_are_retried_until_the_batch_is_accepted() {
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let sink = Flaky {
            failures_left: 2,
            accepted: accepted.clone(),
        };
        let writer = Writer::start(sink, Shared::new());
        writer
            .batches
            .send(WriteBatch(vec![tweet(7), tweet(8)]))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*accepted.lock().unwrap(), [7, 8]);
    }
}
