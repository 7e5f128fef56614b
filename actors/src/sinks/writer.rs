//! The writer actor: serves `WriteBatch` and `Flush` for any [`Sink`], on a thread of its own.
//!
//! Batches are not written one by one: every batch already waiting in the mailbox is gathered
//! and written in one sink call, then each stream gets its reply ([`PendingBatches`]). Under
//! load that turns many small hand-offs into a few large ones; with light traffic a batch is
//! written as soon as it arrives, since nothing ever waits for more. Each stream still waits
//! for its reply before reading on, so at most one batch per stream is ever held here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;
use traptor_core::Record;

use super::pending::{PendingBatches, Reply};
use super::{DirectWrite, RecordOutlet, Sink, SinkError, WriterStats, WriterStatsSnapshot};
use crate::messages::{Flush, WriteBatch, WriteError};

/// Room in the writer's mailbox. Each stream has at most one batch outstanding, so this only
/// needs to exceed the number of streams for senders never to be parked (a parked sender
/// costs an extra wake-up round); it is not what bounds memory.
const MAILBOX_CAPACITY: usize = 1 << 16;

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

/// Serves one sink, alone on an arbiter thread of its own, so the sink may block (Kafka's
/// queue full, a slow pipe, a full disk) without stalling the streams' arbiters: they simply
/// wait for the reply.
pub struct Writer<S: Sink> {
    sink: S,
    shared: Shared,
    /// Batches taken from the mailbox and not yet written.
    pending: PendingBatches,
    /// Whether a [`WritePending`] is already on its way.
    write_scheduled: bool,
}

/// Sent by the writer to itself when it takes the first batch of a gathering: handled once
/// the mailbox is empty, so it writes everything taken meanwhile.
#[derive(Message)]
#[rtype(result = "()")]
struct WritePending;

/// Everything the rest of the system needs of a running writer. Cheap to clone.
#[derive(Clone)]
pub struct WriterHandle {
    /// Where streams send their records (await the reply before reading more).
    pub batches: Recipient<WriteBatch>,
    pub flush: Recipient<Flush>,
    /// The sink's way to take records on the streams' threads, if it has one.
    pub direct: Option<Arc<dyn DirectWrite>>,
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
        let direct = sink.direct();
        let stats = shared.stats.clone();
        let closing = shared.closing.clone();
        let closed = shared.closed.subscribe();
        let thread = Arbiter::new();
        // The sink moves to the writer's thread inside the closure, which runs exactly once.
        let writer = Mutex::new(Some((sink, shared)));
        let addr = Writer::start_in_arbiter(&thread.handle(), move |ctx| {
            ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
            let (sink, shared) = writer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take()
                .expect("the writer's factory runs once");
            Writer {
                sink,
                shared,
                pending: PendingBatches::default(),
                write_scheduled: false,
            }
        });
        WriterHandle {
            batches: addr.clone().recipient(),
            flush: addr.recipient(),
            direct,
            stats,
            sink: name,
            closing,
            closed,
        }
    }

    /// Writes every gathered batch in one sink call and answers each of them.
    fn write_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let (records, replies) = self.pending.take();
        let answer = if records.is_empty() {
            Ok(())
        } else {
            self.write_until_accepted(&records)
        };
        replies.send(&answer);
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
    type Context = Context<Self>;
}

impl<S: Sink> Handler<WriteBatch> for Writer<S> {
    type Result = Reply;

    fn handle(&mut self, WriteBatch(records): WriteBatch, ctx: &mut Self::Context) -> Reply {
        if let Some(reason) = self.shared.closed.borrow().clone() {
            return Reply::Now(Err(WriteError::Sink(reason)));
        }
        if self.shared.closing.load(Ordering::Acquire) {
            return Reply::Now(Err(WriteError::ShuttingDown));
        }
        if records.is_empty() {
            return Reply::Now(Ok(()));
        }
        if !self.write_scheduled {
            self.write_scheduled = true;
            // Runs after the mailbox is drained: every batch already waiting joins this write.
            ctx.notify(WritePending);
        }
        self.pending.push(records)
    }
}

impl<S: Sink> Handler<WritePending> for Writer<S> {
    type Result = ();

    fn handle(&mut self, _: WritePending, _ctx: &mut Self::Context) {
        self.write_scheduled = false;
        self.write_pending();
    }
}

impl<S: Sink> Handler<Flush> for Writer<S> {
    type Result = usize;

    fn handle(&mut self, Flush { timeout }: Flush, _ctx: &mut Self::Context) -> usize {
        // Batches taken before the flush was asked for are part of what it must deliver.
        self.write_pending();
        self.sink.flush(timeout)
    }
}

impl WriterHandle {
    /// Where streams hand their records.
    pub fn outlet(&self) -> RecordOutlet {
        RecordOutlet {
            writer: self.batches.clone(),
            direct: self.direct.clone(),
        }
    }

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
        // SeqCst: a stream writing directly counts its record in flight, then checks this
        // flag; the flush that follows reads the in-flight count. One of them sees the other.
        self.closing.store(true, Ordering::SeqCst);
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

    /// Records the batches it is given, one entry per `write` call; each write waits until
    /// the test opens the gate, like a sink under load.
    struct Gated {
        writes: Arc<Mutex<Vec<Vec<u64>>>>,
        entered: std::sync::mpsc::Sender<()>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl Sink for Gated {
        fn name(&self) -> &'static str {
            "gated"
        }
        fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
            let _ = self.entered.send(());
            let (open, opened) = &*self.gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = opened.wait(open).unwrap();
            }
            self.writes.lock().unwrap().push(
                records
                    .iter()
                    .map(|r| r.key.as_ref().unwrap().parse::<u64>().unwrap())
                    .collect(),
            );
            Ok(())
        }
        fn flush(&mut self, _: Duration) -> usize {
            0
        }
    }

    struct GatedWriter {
        handle: WriterHandle,
        writes: Arc<Mutex<Vec<Vec<u64>>>>,
        entered: std::sync::mpsc::Receiver<()>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl GatedWriter {
        fn start(open: bool) -> GatedWriter {
            let writes = Arc::new(Mutex::new(Vec::new()));
            let gate = Arc::new((Mutex::new(open), std::sync::Condvar::new()));
            let (entered_tx, entered) = std::sync::mpsc::channel();
            let sink = Gated {
                writes: writes.clone(),
                entered: entered_tx,
                gate: gate.clone(),
            };
            GatedWriter {
                handle: Writer::start(sink, Shared::new()),
                writes,
                entered,
                gate,
            }
        }

        fn open_gate(&self) {
            *self.gate.0.lock().unwrap() = true;
            self.gate.1.notify_all();
        }

        /// Waits (off the test's event loop) until the sink is inside a write.
        async fn wait_until_writing(&self) {
            for _ in 0..500 {
                if self.entered.try_recv().is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the writer never called the sink");
        }

        fn writes(&self) -> Vec<Vec<u64>> {
            self.writes.lock().unwrap().clone()
        }
    }

    #[actix::test]
    async fn batches_waiting_while_the_sink_is_busy_are_written_together() {
        let writer = GatedWriter::start(false);
        let first = writer.handle.batches.send(WriteBatch(vec![tweet(1)]));
        let first = tokio::spawn(first);
        writer.wait_until_writing().await;
        // Three streams hand over batches while the sink is busy with the first one.
        let later: Vec<_> = [vec![tweet(2), tweet(3)], vec![tweet(4)], vec![tweet(5)]]
            .into_iter()
            .map(|records| tokio::spawn(writer.handle.batches.send(WriteBatch(records))))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            later.iter().all(|reply| !reply.is_finished()) && !first.is_finished(),
            "no stream is answered before its records are written"
        );
        writer.open_gate();
        first.await.unwrap().unwrap().unwrap();
        for reply in later {
            reply.await.unwrap().unwrap().unwrap();
        }
        assert_eq!(
            writer.writes(),
            [vec![1], vec![2, 3, 4, 5]],
            "one write for the batches that waited, in arrival order"
        );
    }

    #[actix::test]
    async fn a_lone_batch_is_written_at_once() {
        let writer = GatedWriter::start(true);
        for id in [1, 2] {
            tokio::time::timeout(
                Duration::from_secs(5),
                writer.handle.batches.send(WriteBatch(vec![tweet(id)])),
            )
            .await
            .expect("a batch on a quiet writer is answered without waiting for more")
            .unwrap()
            .unwrap();
        }
        assert_eq!(writer.writes(), [vec![1], vec![2]]);
    }

    #[actix::test]
    async fn a_flush_first_writes_the_batches_taken_before_it() {
        let writer = GatedWriter::start(false);
        let first = tokio::spawn(writer.handle.batches.send(WriteBatch(vec![tweet(1)])));
        writer.wait_until_writing().await;
        let second = tokio::spawn(writer.handle.batches.send(WriteBatch(vec![tweet(2)])));
        let flush = tokio::spawn(writer.handle.flush.send(Flush {
            timeout: Duration::from_secs(1),
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.open_gate();
        assert_eq!(flush.await.unwrap().unwrap(), 0);
        assert_eq!(writer.writes(), [vec![1], vec![2]]);
        first.await.unwrap().unwrap().unwrap();
        second.await.unwrap().unwrap().unwrap();
    }

    #[actix::test]
    async fn batches_still_queued_when_shutdown_begins_are_refused_not_written() {
        let writer = GatedWriter::start(false);
        let first = tokio::spawn(writer.handle.batches.send(WriteBatch(vec![tweet(1)])));
        writer.wait_until_writing().await;
        let queued = tokio::spawn(writer.handle.batches.send(WriteBatch(vec![tweet(2)])));
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.handle.begin_shutdown();
        writer.open_gate();
        first.await.unwrap().unwrap().unwrap();
        let refused = queued.await.unwrap().unwrap();
        assert!(
            matches!(refused, Err(WriteError::ShuttingDown)),
            "{refused:?}"
        );
        assert_eq!(writer.writes(), [vec![1]]);
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
