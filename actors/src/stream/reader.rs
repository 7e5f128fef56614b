//! Reading one open stream: body chunks → frames → enriched records → the sink (directly
//! while it keeps up, else through the writer: [`RecordOutlet`]).
//!
//! The synchronous part ([`Reader::process_chunk`]) is plain code, tested without I/O; the
//! async loop ([`read_stream`]) only moves chunks in and batches out, waiting for the writer to
//! accept each batch before reading on, so a slow sink slows the stream instead of growing a
//! queue.
//!
//! Closing is a request ([`StopReading`]), not a cancellation: the loop stops reading at once
//! but first finishes handing the batch it holds to the writer, so nothing traptor decoded is
//! lost when a stream stops, reconnects for a rule change or stalls.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use traptor_core::enrich::Enricher;
use traptor_core::protocol::{classify, ControlDetail, FrameDecoder, ItemRef};
use traptor_core::{MessageKind, Record, Rule, SlotId};

use super::client::StreamBody;
use super::stats::{RuleMatchTally, StreamStats};
use crate::messages::WriteBatch;
use crate::sinks::RecordOutlet;

/// When the stream last showed life, shared between the reader (which sees the bytes) and the
/// stream actor (whose watchdog asks). Time spent waiting for the writer counts as alive: a
/// slow sink must not pass for a stalled server.
#[derive(Debug)]
pub struct Liveness {
    last: Cell<Instant>,
    waiting_on_writer: Cell<bool>,
}

impl Liveness {
    pub fn new(now: Instant) -> Rc<Liveness> {
        Rc::new(Liveness {
            last: Cell::new(now),
            waiting_on_writer: Cell::new(false),
        })
    }

    /// The moment to count silence from, asked at `now`.
    pub fn last_sign_of_life(&self, now: Instant) -> Instant {
        if self.waiting_on_writer.get() {
            now
        } else {
            self.last.get()
        }
    }

    fn alive(&self, now: Instant) {
        self.last.set(now);
    }
}

/// New rules for the open connection whose filter did not change (only rule metadata did):
/// the reader picks them up before its next chunk.
pub type RulesUpdate = Rc<RefCell<Option<Vec<Rule>>>>;

/// Why the reading ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// The server ended the body.
    Closed,
    /// Reading the body failed.
    ReadError(String),
    /// The server sent a `disconnect` message (forwarded before ending).
    Disconnect {
        code: Option<u32>,
        reason: Option<String>,
    },
    /// The writer refused records or is gone: reading on would lose them.
    WriterGone(String),
    /// traptor asked the reader to stop ([`StopReading`]); everything decoded was handed over.
    Stopped,
}

/// What one connection delivered: bytes read, and the messages (tweets among them) the
/// writer accepted. Logged when the connection ends, so what traptor received can be
/// compared with what the server says it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub messages: u64,
    pub tweets: u64,
}

/// How the reading of one connection ended, and what it delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub end: End,
    pub received: Received,
}

/// Asks an open stream's reader to stop: it reads no further chunk, hands what it already
/// decoded to the writer and ends with [`End::Stopped`]. Cancelling the reader instead could
/// drop a batch it was still handing over.
#[derive(Debug, Default)]
pub struct StopReading(tokio::sync::Notify);

impl StopReading {
    pub fn new() -> Rc<StopReading> {
        Rc::new(StopReading::default())
    }

    /// Asks for the stop; a request made before the reader waits is kept until it does.
    pub fn request(&self) {
        self.0.notify_one();
    }

    async fn requested(&self) {
        self.0.notified().await;
    }
}

/// What one chunk turned into.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    pub records: Vec<Record>,
    /// A `disconnect` message was among the frames: `(code, reason)`.
    pub disconnect: Option<(Option<u32>, Option<String>)>,
}

/// The per-connection decoding state: framing, enrichment and counting.
pub struct Reader {
    connection: String,
    decoder: FrameDecoder,
    enricher: Enricher,
    stats: Arc<StreamStats>,
    /// Matches per rule of the current chunk, added to `stats` at its end.
    rule_matches: RuleMatchTally,
    /// Test-only fault injection (see [`panic_on_frames_of`]).
    panic_on_frames_of: Option<usize>,
}

impl Reader {
    /// `connection` names the connection in logs (its id; never credentials).
    pub fn new(
        connection: String,
        slot: SlotId,
        rules: Vec<Rule>,
        max_frame_bytes: usize,
        stats: Arc<StreamStats>,
    ) -> Reader {
        stats.keep_rules(&rules);
        Reader {
            connection,
            decoder: FrameDecoder::new(max_frame_bytes),
            enricher: Enricher::new(Some(slot), rules),
            stats,
            rule_matches: RuleMatchTally::default(),
            panic_on_frames_of: panic_on_frames_of(),
        }
    }

    /// Matches the following messages against `rules`.
    pub fn replace_rules(&mut self, rules: Vec<Rule>) {
        self.rule_matches.flush(self.enricher.rules(), &self.stats);
        self.stats.keep_rules(&rules);
        self.enricher = Enricher::new(self.enricher.slot().cloned(), rules);
    }

    /// Decodes and enriches every complete frame of `chunk`. Never panics and never drops a
    /// frame: a frame whose enrichment fails unexpectedly is forwarded as an invalid record.
    pub fn process_chunk(&mut self, chunk: &[u8], received_at_ms: i64) -> ChunkOutcome {
        let mut outcome = ChunkOutcome::default();
        self.process_chunk_into(chunk, received_at_ms, &mut outcome);
        outcome
    }

    /// [`Reader::process_chunk`], adding to the records (and disconnect) of `outcome`.
    pub fn process_chunk_into(
        &mut self,
        chunk: &[u8],
        received_at_ms: i64,
        outcome: &mut ChunkOutcome,
    ) {
        self.stats.bytes(chunk.len());
        // Frames are lent by the decoder and enriched where they lie: the decoder is taken out
        // of `self` for the loop so that `process_frame` can borrow the rest.
        let placeholder = FrameDecoder::new(self.decoder.max_frame_bytes());
        let mut decoder = std::mem::replace(&mut self.decoder, placeholder);
        decoder.push(chunk);
        while let Some(item) = decoder.next_item_ref() {
            match item {
                ItemRef::KeepAlive => self.stats.keep_alive(),
                ItemRef::Error(error) => self.frame_error(&error.to_string()),
                ItemRef::Frame(frame) => self.process_frame(frame, received_at_ms, outcome),
            }
        }
        self.decoder = decoder;
        self.rule_matches.flush(self.enricher.rules(), &self.stats);
    }

    /// The body ended: reports a message cut short, if any.
    pub fn finish(&mut self) {
        if let Some(error) = self.decoder.finish() {
            self.frame_error(&error.to_string());
        }
    }

    fn process_frame(&mut self, frame: &[u8], received_at_ms: i64, outcome: &mut ChunkOutcome) {
        if self
            .panic_on_frames_of
            .is_some_and(|bytes| frame.len() >= bytes)
        {
            panic!(
                "fault injection: a frame of {} bytes on {} (TRAPTOR_TEST_PANIC_ON_FRAME_BYTES)",
                frame.len(),
                self.connection
            );
        }
        let enriched = catch_unwind(AssertUnwindSafe(|| {
            self.enricher.enrich(frame, received_at_ms)
        }));
        let enriched = match enriched {
            Ok(enriched) => enriched,
            Err(_) => {
                tracing::error!(connection = %self.connection, "enriching a message panicked; it is forwarded as invalid");
                self.stats.message(MessageKind::Invalid);
                let slot = self.enricher.slot().cloned();
                outcome.records.push(Record {
                    kind: MessageKind::Invalid,
                    key: None,
                    payload: frame.to_vec(),
                    slot,
                    received_at_ms,
                });
                return;
            }
        };
        let kind = enriched.record.kind;
        self.stats.message(kind);
        if kind.is_tweet() {
            self.stats.tweet_matched(!enriched.matched.is_empty());
            for &index in &enriched.matched {
                self.rule_matches.note(index);
            }
            if let Some(timestamp_ms) = tweet_timestamp_ms(frame) {
                self.stats.tweet_timestamp(timestamp_ms);
            }
        }
        if let Some(error) = &enriched.error {
            if kind == MessageKind::Invalid {
                self.frame_error(&error.to_string());
            } else {
                tracing::debug!(connection = %self.connection, %error, "message enriched with a problem");
            }
        }
        match kind {
            MessageKind::Limit | MessageKind::Disconnect | MessageKind::Warning => {
                self.control_message(frame, outcome)
            }
            _ => {}
        }
        outcome.records.push(enriched.record);
    }

    fn control_message(&mut self, frame: &[u8], outcome: &mut ChunkOutcome) {
        match classify(frame).detail {
            ControlDetail::Limit {
                undelivered: Some(count),
                ..
            } => self.stats.limit_undelivered(count),
            ControlDetail::Disconnect { code, reason, .. } => {
                tracing::warn!(connection = %self.connection, ?code, ?reason, "the server sent a disconnect message");
                outcome.disconnect = Some((code, reason));
            }
            ControlDetail::Warning {
                code,
                message,
                percent_full,
            } => {
                tracing::warn!(connection = %self.connection, ?code, ?message, ?percent_full, "the server warns that traptor is falling behind");
            }
            _ => {}
        }
    }

    fn frame_error(&mut self, error: &str) {
        tracing::warn!(connection = %self.connection, %error, "malformed message on the stream");
        self.stats.frame_error(error);
    }
}

/// Most body bytes gathered into one batch. The HTTP client hands the body over in reads of
/// about 8 KB (two or three tweets); sending each to the writer on its own costs a round trip
/// per read. Whatever more is already readable joins the batch, up to this much, so a busy
/// stream sends few large batches. It bounds what one stream holds: with 1,000 busy streams,
/// 64 MB at most.
const GATHER_BYTES: usize = 64 * 1024;

/// How the body went on while a batch was being gathered.
enum Gathered {
    /// Nothing more is readable right now (or the batch is full).
    Drained,
    /// The body ended, or reading it failed: hand the batch over, then end this way.
    Ended(End),
}

/// Adds to `outcome` the chunks of `body` that are readable without waiting, until
/// [`GATHER_BYTES`] are gathered or a `disconnect` message arrives. Never waits: a chunk that
/// is not ready yet is left for the next batch, so light traffic is handed over at once.
fn gather_ready_chunks(
    body: &mut impl StreamBody,
    reader: &mut Reader,
    received: &mut Received,
    mut gathered_bytes: usize,
    outcome: &mut ChunkOutcome,
) -> Gathered {
    while gathered_bytes < GATHER_BYTES && outcome.disconnect.is_none() {
        let chunk = match body.next().now_or_never() {
            None => return Gathered::Drained,
            Some(None) => {
                reader.finish();
                return Gathered::Ended(End::Closed);
            }
            Some(Some(Err(error))) => {
                reader.finish();
                return Gathered::Ended(End::ReadError(error.to_string()));
            }
            Some(Some(Ok(chunk))) => chunk,
        };
        received.bytes += chunk.len() as u64;
        gathered_bytes += chunk.len();
        reader.process_chunk_into(&chunk, unix_millis(), outcome);
    }
    Gathered::Drained
}

/// Reads `body` until it ends or `stop` is requested, handing the records to `outlet` in
/// batches (a chunk and whatever more is already readable) and waiting for each batch to be
/// accepted before reading on.
pub async fn read_stream(
    mut body: impl StreamBody,
    mut reader: Reader,
    outlet: RecordOutlet,
    liveness: Rc<Liveness>,
    rules_update: RulesUpdate,
    stop: Rc<StopReading>,
) -> Finished {
    let mut received = Received::default();
    let end = loop {
        // A stop request wins over a chunk that is ready too: what is not read is not lost,
        // it was never received. A frame cut short by the stop is dropped quietly.
        let next = tokio::select! {
            biased;
            _ = stop.requested() => break End::Stopped,
            next = body.next() => next,
        };
        let chunk = match next {
            None => {
                reader.finish();
                break End::Closed;
            }
            Some(Err(error)) => {
                reader.finish();
                break End::ReadError(error.to_string());
            }
            Some(Ok(chunk)) => chunk,
        };
        received.bytes += chunk.len() as u64;
        liveness.alive(Instant::now());
        if let Some(rules) = rules_update.borrow_mut().take() {
            reader.replace_rules(rules);
        }
        let mut outcome = reader.process_chunk(&chunk, unix_millis());
        let gathered = gather_ready_chunks(
            &mut body,
            &mut reader,
            &mut received,
            chunk.len(),
            &mut outcome,
        );
        if !outcome.records.is_empty() {
            let messages = outcome.records.len() as u64;
            let tweets = count_tweets(&outcome.records);
            let rest = outlet.write_directly(outcome.records);
            if !rest.is_empty() {
                let (rest_messages, rest_tweets) = (rest.len() as u64, count_tweets(&rest));
                received.messages += messages - rest_messages;
                received.tweets += tweets - rest_tweets;
                liveness.waiting_on_writer.set(true);
                // Never cancelled (a stop waits for it): the rest reaches the writer or is refused.
                let accepted = outlet.writer.send(WriteBatch(rest)).await;
                liveness.waiting_on_writer.set(false);
                liveness.alive(Instant::now());
                match accepted {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => break End::WriterGone(error.to_string()),
                    Err(error) => {
                        break End::WriterGone(format!("the writer is unreachable: {error}"))
                    }
                }
                received.messages += rest_messages;
                received.tweets += rest_tweets;
            } else {
                received.messages += messages;
                received.tweets += tweets;
            }
        }
        if let Some((code, reason)) = outcome.disconnect {
            break End::Disconnect { code, reason };
        }
        if let Gathered::Ended(end) = gathered {
            break end;
        }
    };
    Finished { end, received }
}

fn count_tweets(records: &[Record]) -> u64 {
    records.iter().filter(|r| r.kind.is_tweet()).count() as u64
}

/// Test-only fault injection: in a debug build, `TRAPTOR_TEST_PANIC_ON_FRAME_BYTES=N` makes the
/// reader panic on any frame of N bytes or more (outside the enrichment's own panic guard), as
/// a bug in stream processing would, so tests can check that only that stream is restarted.
/// The emulator's oversized-frame fault sends such a frame to one chosen key.
#[cfg(debug_assertions)]
fn panic_on_frames_of() -> Option<usize> {
    std::env::var("TRAPTOR_TEST_PANIC_ON_FRAME_BYTES")
        .ok()?
        .parse()
        .ok()
}

#[cfg(not(debug_assertions))]
fn panic_on_frames_of() -> Option<usize> {
    None
}

/// The tweet's top-level `timestamp_ms` (the last one in the frame: a retweeted or quoted
/// tweet inside comes before it), read without parsing the whole message. `None` when absent.
fn tweet_timestamp_ms(frame: &[u8]) -> Option<i64> {
    let at = memchr::memmem::rfind(frame, b"\"timestamp_ms\"")?;
    let rest = &frame[at + b"\"timestamp_ms\"".len()..];
    let rest = rest
        .trim_ascii_start()
        .strip_prefix(b":")?
        .trim_ascii_start();
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix::Recipient;
    use traptor_core::rules::parse_rule;
    use traptor_core::StreamType;

    use crate::messages::WriteError;

    fn slot() -> SlotId {
        SlotId::new(StreamType::Track, "0")
    }

    fn rules() -> Vec<Rule> {
        let fields = [("rule_id", "1"), ("value", "rust"), ("tag", "lang")];
        vec![parse_rule(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(StreamType::Track),
        )
        .unwrap()]
    }

    fn tweet(id: u64, text: &str) -> String {
        format!(
            r#"{{"created_at":"Mon Feb 22 01:34:53 +0000 2016","id":{id},"id_str":"{id}","text":"{text}","user":{{"id":7,"id_str":"7","screen_name":"someone"}}}}"#
        )
    }

    /// `delimited=length` framing: the length counts the message and its `\r\n`.
    fn delimited(message: &str) -> String {
        format!("{}\r\n{message}\r\n", message.len() + 2)
    }

    fn reader(stats: &Arc<StreamStats>) -> Reader {
        Reader::new("track:0".into(), slot(), rules(), 1 << 20, stats.clone())
    }

    #[test]
    fn the_tweet_timestamp_is_the_top_level_one() {
        let nested = br#"{"retweeted_status":{"timestamp_ms":"1"},"text":"x","timestamp_ms": "1456105293000"}"#;
        assert_eq!(tweet_timestamp_ms(nested), Some(1_456_105_293_000));
        assert_eq!(
            tweet_timestamp_ms(br#"{"timestamp_ms":1456105293001}"#),
            Some(1_456_105_293_001)
        );
        assert_eq!(tweet_timestamp_ms(br#"{"text":"no time"}"#), None);
        assert_eq!(tweet_timestamp_ms(br#"{"timestamp_ms":"soon"}"#), None);
    }

    #[test]
    fn matches_are_counted_per_rule_and_the_newest_tweet_time_kept() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        let with_time =
            tweet(1, "rust again").replace("}}", r#"},"timestamp_ms":"1456105293000"}"#);
        let body = [
            delimited(&tweet(1, "I like rust")),
            delimited(&with_time),
            delimited(&tweet(3, "other")),
        ]
        .concat();
        reader.process_chunk(body.as_bytes(), 1_000);
        let snap = stats.snapshot();
        assert_eq!(snap.rule_matches.get("1"), Some(&2));
        assert_eq!(snap.rule_matches.len(), 1);
        assert_eq!(snap.last_tweet_ms, Some(1_456_105_293_000));
    }

    #[test]
    fn tweets_control_messages_and_junk_all_become_records_in_order() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        let body = [
            delimited(&tweet(1, "I like rust")),
            "\r\n".to_owned(),
            delimited(&tweet(2, "nothing here")),
            delimited(r#"{"limit":{"track":42,"timestamp_ms":"1"}}"#),
            delimited("this is not json"),
            delimited(
                r#"{"delete":{"status":{"id":1,"id_str":"1","user_id":7,"user_id_str":"7"}}}"#,
            ),
        ]
        .concat();
        let outcome = reader.process_chunk(body.as_bytes(), 1_000);
        let kinds: Vec<MessageKind> = outcome.records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                MessageKind::Tweet,
                MessageKind::Tweet,
                MessageKind::Limit,
                MessageKind::Invalid,
                MessageKind::Delete
            ]
        );
        assert_eq!(outcome.records[3].payload, b"this is not json");
        assert!(outcome
            .records
            .iter()
            .all(|r| r.slot == Some(slot()) && r.received_at_ms == 1_000));
        assert!(outcome.disconnect.is_none());
        let snap = stats.snapshot();
        assert_eq!((snap.tweets_matched, snap.tweets_unmatched), (1, 1));
        assert_eq!(snap.keep_alives, 1);
        assert_eq!(snap.limit_undelivered, 42);
        assert_eq!(snap.frame_errors, 1, "the invalid message is counted");
        assert_eq!(snap.bytes, body.len() as u64);
    }

    #[test]
    fn frames_split_across_chunks_come_out_once_whole() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        let body = [
            delimited(&tweet(1, "rust one")),
            delimited(&tweet(2, "rust two")),
        ]
        .concat();
        let mut records = Vec::new();
        for piece in body.as_bytes().chunks(7) {
            records.extend(reader.process_chunk(piece, 0).records);
        }
        let keys: Vec<Option<String>> = records.iter().map(|r| r.key.clone()).collect();
        assert_eq!(keys, [Some("1".to_owned()), Some("2".to_owned())]);
    }

    #[test]
    fn a_disconnect_message_is_forwarded_and_flagged() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        let body =
            delimited(r#"{"disconnect":{"code":7,"stream_name":"x","reason":"admin logout"}}"#);
        let outcome = reader.process_chunk(body.as_bytes(), 0);
        assert_eq!(outcome.records.len(), 1);
        assert_eq!(outcome.records[0].kind, MessageKind::Disconnect);
        assert_eq!(
            outcome.disconnect,
            Some((Some(7), Some("admin logout".to_owned())))
        );
    }

    #[test]
    fn new_rules_change_what_matches() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        let fields = [("rule_id", "2"), ("value", "python"), ("tag", "lang")];
        let python = parse_rule(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(StreamType::Track),
        )
        .unwrap();
        reader.replace_rules(vec![python]);
        reader.process_chunk(delimited(&tweet(1, "rust")).as_bytes(), 0);
        reader.process_chunk(delimited(&tweet(2, "python")).as_bytes(), 0);
        let snap = stats.snapshot();
        assert_eq!((snap.tweets_matched, snap.tweets_unmatched), (1, 1));
    }

    type KeptBatches = Rc<RefCell<Vec<Vec<Option<String>>>>>;

    /// Keeps every record, and the keys of each batch apart; refuses every batch when `refuse`.
    struct TestWriter {
        records: Rc<RefCell<Vec<Record>>>,
        batches: KeptBatches,
        refuse: bool,
    }

    impl actix::Actor for TestWriter {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<WriteBatch> for TestWriter {
        type Result = Result<(), WriteError>;
        fn handle(&mut self, batch: WriteBatch, _: &mut Self::Context) -> Self::Result {
            if self.refuse {
                return Err(WriteError::ShuttingDown);
            }
            let keys = batch.0.iter().map(|r| r.key.clone()).collect();
            self.batches.borrow_mut().push(keys);
            self.records.borrow_mut().extend(batch.0);
            Ok(())
        }
    }

    /// A [`TestWriter`] adding to `records`.
    fn test_writer(records: &Rc<RefCell<Vec<Record>>>, refuse: bool) -> Recipient<WriteBatch> {
        use actix::Actor;
        TestWriter {
            records: records.clone(),
            batches: KeptBatches::default(),
            refuse,
        }
        .start()
        .recipient()
    }

    fn body_of(chunks: Vec<Result<bytes::Bytes, awc::error::PayloadError>>) -> impl StreamBody {
        futures_util::stream::iter(chunks)
    }

    /// Reads `chunks` to their end with a fresh liveness, no rule update and no stop request.
    async fn read_all(
        chunks: Vec<Result<bytes::Bytes, awc::error::PayloadError>>,
        stats: &Arc<StreamStats>,
        writer: Recipient<WriteBatch>,
    ) -> Finished {
        read_stream(
            body_of(chunks),
            reader(stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            StopReading::new(),
        )
        .await
    }

    #[actix_rt::test]
    async fn read_stream_delivers_every_record_and_reports_how_it_ended() {
        let records = Rc::new(RefCell::new(Vec::new()));
        let writer = test_writer(&records, false);
        let stats = Arc::new(StreamStats::default());
        let chunks = vec![
            Ok(bytes::Bytes::from(delimited(&tweet(1, "rust")))),
            Ok(bytes::Bytes::from("\r\n")),
            Ok(bytes::Bytes::from(delimited(&tweet(2, "rust")))),
        ];
        let liveness = Liveness::new(Instant::now());
        let end = read_stream(
            body_of(chunks),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            liveness,
            RulesUpdate::default(),
            StopReading::new(),
        )
        .await
        .end;
        assert_eq!(end, End::Closed);
        assert_eq!(records.borrow().len(), 2);
    }

    #[actix_rt::test]
    async fn read_stream_stops_at_a_disconnect_message_after_forwarding_it() {
        let records = Rc::new(RefCell::new(Vec::new()));
        let writer = test_writer(&records, false);
        let stats = Arc::new(StreamStats::default());
        let chunks = vec![
            Ok(bytes::Bytes::from(delimited(
                r#"{"disconnect":{"code":4,"stream_name":"x","reason":"stall"}}"#,
            ))),
            Ok(bytes::Bytes::from(delimited(&tweet(2, "never read")))),
        ];
        let end = read_all(chunks, &stats, writer).await.end;
        assert_eq!(
            end,
            End::Disconnect {
                code: Some(4),
                reason: Some("stall".into())
            }
        );
        assert_eq!(records.borrow().len(), 1);
        assert_eq!(records.borrow()[0].kind, MessageKind::Disconnect);
    }

    #[actix_rt::test]
    async fn read_stream_ends_when_the_writer_refuses() {
        let writer = test_writer(&Rc::default(), true);
        let stats = Arc::new(StreamStats::default());
        let chunks = vec![Ok(bytes::Bytes::from(delimited(&tweet(1, "rust"))))];
        let end = read_all(chunks, &stats, writer).await.end;
        assert!(matches!(end, End::WriterGone(reason) if reason.contains("shutting down")));
    }

    /// A direct path with room for `room` records in all; keeps the keys of those it takes.
    #[derive(Default)]
    struct TakesFirst {
        room: std::sync::Mutex<usize>,
        taken: std::sync::Mutex<Vec<Option<String>>>,
    }

    impl crate::sinks::DirectWrite for TakesFirst {
        fn try_write(&self, records: &[Record]) -> usize {
            let mut room = self.room.lock().unwrap();
            let n = records.len().min(*room);
            *room -= n;
            let keys = records[..n].iter().map(|r| r.key.clone());
            self.taken.lock().unwrap().extend(keys);
            n
        }
    }

    /// Reads one chunk of tweets 1..=5 with a direct path that takes `room` of them.
    async fn read_five_with_direct_room(room: usize, refuse: bool) -> (Finished, Vec<String>) {
        let records = Rc::new(RefCell::new(Vec::new()));
        let direct = Arc::new(TakesFirst::default());
        *direct.room.lock().unwrap() = room;
        let outlet = RecordOutlet {
            writer: test_writer(&records, refuse),
            direct: Some(direct.clone()),
        };
        let body: String = (1..=5).map(|id| delimited(&tweet(id, "rust"))).collect();
        let stats = Arc::new(StreamStats::default());
        let finished = read_stream(
            body_of(vec![Ok(bytes::Bytes::from(body))]),
            reader(&stats),
            outlet,
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            StopReading::new(),
        )
        .await;
        let mut keys: Vec<String> = direct
            .taken
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect();
        keys.extend(records.borrow().iter().filter_map(|r| r.key.clone()));
        (finished, keys)
    }

    #[actix_rt::test]
    async fn what_the_sink_takes_directly_skips_the_writer_and_the_rest_follows_in_order() {
        for room in [0, 3, 5] {
            let (finished, keys) = read_five_with_direct_room(room, false).await;
            assert_eq!(keys, ["1", "2", "3", "4", "5"], "room {room}");
            assert_eq!(finished.end, End::Closed);
            assert_eq!(
                (finished.received.messages, finished.received.tweets),
                (5, 5)
            );
        }
    }

    #[actix_rt::test]
    async fn records_taken_directly_count_as_delivered_when_the_writer_refuses_the_rest() {
        let (finished, keys) = read_five_with_direct_room(2, true).await;
        assert_eq!(keys, ["1", "2"]);
        assert!(
            matches!(finished.end, End::WriterGone(_)),
            "{:?}",
            finished.end
        );
        assert_eq!(
            (finished.received.messages, finished.received.tweets),
            (2, 2)
        );
    }

    #[actix_rt::test]
    async fn read_stream_reports_a_read_error() {
        let writer = test_writer(&Rc::default(), false);
        let stats = Arc::new(StreamStats::default());
        let chunks = vec![Err(awc::error::PayloadError::Incomplete(None))];
        let end = read_all(chunks, &stats, writer).await.end;
        assert!(matches!(end, End::ReadError(_)), "{end:?}");
    }

    #[actix_rt::test]
    async fn rules_sent_to_an_open_stream_apply_from_the_next_chunk() {
        let records = Rc::new(RefCell::new(Vec::new()));
        let writer = test_writer(&records, false);
        let stats = Arc::new(StreamStats::default());
        let update = RulesUpdate::default();
        let fields = [("rule_id", "1"), ("value", "rust"), ("tag", "renamed")];
        let retagged = parse_rule(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            Some(StreamType::Track),
        )
        .unwrap();
        *update.borrow_mut() = Some(vec![retagged]);
        let chunks = vec![Ok(bytes::Bytes::from(delimited(&tweet(1, "rust"))))];
        read_stream(
            body_of(chunks),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            update.clone(),
            StopReading::new(),
        )
        .await;
        let payload = String::from_utf8(records.borrow()[0].payload.clone()).unwrap();
        assert!(payload.contains("renamed"), "{payload}");
        assert!(update.borrow().is_none(), "the update was taken");
    }

    /// Accepts batches only after `delay`, like a sink under load.
    struct SlowWriter {
        records: Rc<RefCell<Vec<Record>>>,
        delay: std::time::Duration,
    }

    impl actix::Actor for SlowWriter {
        type Context = actix::Context<Self>;
    }

    impl actix::Handler<WriteBatch> for SlowWriter {
        type Result = actix::ResponseFuture<Result<(), WriteError>>;
        fn handle(&mut self, batch: WriteBatch, _: &mut Self::Context) -> Self::Result {
            let (records, delay) = (self.records.clone(), self.delay);
            Box::pin(async move {
                actix_rt::time::sleep(delay).await;
                records.borrow_mut().extend(batch.0);
                Ok(())
            })
        }
    }

    /// One chunk, then a stream that stays open and silent.
    fn one_chunk_then_silence(chunk: String) -> impl StreamBody {
        futures_util::stream::iter(vec![Ok(bytes::Bytes::from(chunk))])
            .chain(futures_util::stream::pending())
    }

    #[actix_rt::test]
    async fn a_stop_during_a_handover_waits_for_the_writer_and_loses_nothing() {
        use actix::Actor;
        let records = Rc::new(RefCell::new(Vec::new()));
        let writer = SlowWriter {
            records: records.clone(),
            delay: std::time::Duration::from_millis(200),
        }
        .start()
        .recipient();
        let stats = Arc::new(StreamStats::default());
        let body = [delimited(&tweet(1, "rust")), delimited(&tweet(2, "rust"))].concat();
        let stop = StopReading::new();
        let reading = actix_rt::spawn(read_stream(
            one_chunk_then_silence(body.clone()),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            stop.clone(),
        ));
        // The batch is with the writer, which has not answered yet.
        actix_rt::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(records.borrow().is_empty());
        stop.request();
        let finished = reading.await.unwrap();
        assert_eq!(finished.end, End::Stopped);
        assert_eq!(records.borrow().len(), 2, "the batch in hand was delivered");
        assert_eq!(
            finished.received,
            Received {
                bytes: body.len() as u64,
                messages: 2,
                tweets: 2
            }
        );
    }

    #[actix_rt::test]
    async fn a_stop_ends_a_silent_stream_at_once_and_reads_nothing_more() {
        let records = Rc::new(RefCell::new(Vec::new()));
        let writer = test_writer(&records, false);
        let stats = Arc::new(StreamStats::default());
        let stop = StopReading::new();
        stop.request();
        let finished = read_stream(
            one_chunk_then_silence(delimited(&tweet(1, "rust"))),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            stop,
        )
        .await;
        assert_eq!(finished.end, End::Stopped);
        assert_eq!(finished.received, Received::default());
        assert!(
            records.borrow().is_empty(),
            "a chunk not read is not received"
        );
    }

    #[actix_rt::test]
    async fn received_counts_only_what_the_writer_accepted() {
        let writer = test_writer(&Rc::default(), true);
        let stats = Arc::new(StreamStats::default());
        let chunk = delimited(&tweet(1, "rust"));
        let finished = read_stream(
            body_of(vec![Ok(bytes::Bytes::from(chunk.clone()))]),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            StopReading::new(),
        )
        .await;
        assert!(matches!(finished.end, End::WriterGone(_)));
        assert_eq!(finished.received.bytes, chunk.len() as u64);
        assert_eq!(
            (finished.received.messages, finished.received.tweets),
            (0, 0)
        );
    }

    /// The keys of each batch a writer was given, batch by batch.
    fn batch_keeper() -> (Recipient<WriteBatch>, KeptBatches) {
        use actix::Actor;
        let batches = Rc::new(RefCell::new(Vec::new()));
        let writer = TestWriter {
            records: Rc::default(),
            batches: batches.clone(),
            refuse: false,
        }
        .start()
        .recipient();
        (writer, batches)
    }

    fn key(id: u64) -> Option<String> {
        Some(id.to_string())
    }

    #[actix_rt::test]
    async fn chunks_already_readable_travel_in_one_batch() {
        let (writer, batches) = batch_keeper();
        let stats = Arc::new(StreamStats::default());
        let chunks = (1..=3)
            .map(|id| Ok(bytes::Bytes::from(delimited(&tweet(id, "rust")))))
            .collect();
        let finished = read_all(chunks, &stats, writer).await;
        assert_eq!(finished.end, End::Closed);
        assert_eq!(*batches.borrow(), [vec![key(1), key(2), key(3)]]);
        assert_eq!(finished.received.messages, 3);
    }

    #[actix_rt::test]
    async fn a_batch_is_handed_over_without_waiting_for_more_traffic() {
        let (writer, batches) = batch_keeper();
        let stats = Arc::new(StreamStats::default());
        let stop = StopReading::new();
        let reading = actix_rt::spawn(read_stream(
            one_chunk_then_silence(delimited(&tweet(1, "rust"))),
            reader(&stats),
            RecordOutlet::through_writer(writer),
            Liveness::new(Instant::now()),
            RulesUpdate::default(),
            stop.clone(),
        ));
        for _ in 0..100 {
            if !batches.borrow().is_empty() {
                break;
            }
            actix_rt::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            *batches.borrow(),
            [vec![key(1)]],
            "the stream is still open and silent, yet its tweet was handed over"
        );
        stop.request();
        assert_eq!(reading.await.unwrap().end, End::Stopped);
    }

    #[actix_rt::test]
    async fn a_batch_holds_at_most_about_gather_bytes() {
        let (writer, batches) = batch_keeper();
        let stats = Arc::new(StreamStats::default());
        let padding = "x".repeat(10_000);
        let chunks: Vec<_> = (1..=40)
            .map(|id| Ok(bytes::Bytes::from(delimited(&tweet(id, &padding)))))
            .collect();
        let chunk_len = delimited(&tweet(1, &padding)).len();
        read_all(chunks, &stats, writer).await;
        let batches = batches.borrow();
        let per_batch = GATHER_BYTES.div_ceil(chunk_len);
        assert!(batches.len() > 1, "{} batches", batches.len());
        assert!(
            batches.iter().all(|b| b.len() <= per_batch),
            "batch sizes {:?}, at most {per_batch} expected",
            batches.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let keys: Vec<_> = batches.iter().flatten().cloned().collect();
        assert_eq!(keys, (1..=40).map(key).collect::<Vec<_>>(), "all, in order");
    }

    #[actix_rt::test]
    async fn records_gathered_before_a_read_error_are_delivered_first() {
        let (writer, batches) = batch_keeper();
        let stats = Arc::new(StreamStats::default());
        let chunks = vec![
            Ok(bytes::Bytes::from(delimited(&tweet(1, "rust")))),
            Ok(bytes::Bytes::from(delimited(&tweet(2, "rust")))),
            Err(awc::error::PayloadError::Incomplete(None)),
        ];
        let finished = read_all(chunks, &stats, writer).await;
        assert!(matches!(finished.end, End::ReadError(_)), "{finished:?}");
        assert_eq!(*batches.borrow(), [vec![key(1), key(2)]]);
        assert_eq!(finished.received.messages, 2);
    }

    #[test]
    #[should_panic(expected = "fault injection")]
    fn the_injected_fault_panics_outside_the_enrichment_guard() {
        let stats = Arc::new(StreamStats::default());
        let mut reader = reader(&stats);
        reader.panic_on_frames_of = Some(50);
        reader.process_chunk(delimited(&tweet(1, "rust")).as_bytes(), 0);
    }

    #[test]
    fn waiting_on_the_writer_counts_as_alive() {
        let start = Instant::now();
        let liveness = Liveness::new(start);
        let later = start + std::time::Duration::from_secs(100);
        assert_eq!(liveness.last_sign_of_life(later), start);
        liveness.waiting_on_writer.set(true);
        assert_eq!(liveness.last_sign_of_life(later), later);
    }
}
