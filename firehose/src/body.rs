//! The body of one streaming response: frames queued messages, sends keep-alives, and carries
//! out what the control lane says (stall, close, drop, injected bytes).
//!
//! Two lanes feed it: a bounded data queue (tweets and compliance messages, in order; its fill
//! is what "falling behind" means) and an unbounded control lane polled first, so warnings,
//! disconnects and faults overtake the backlog.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant, Sleep};

use crate::batch::{FramedRun, LengthPrefix};
use crate::messages::MessageKind;
use crate::state::Shared;
use crate::stats::ConnectionStats;

/// One message for a connection: its kind (for the counters), its tweet id, and its JSON.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub kind: MessageKind,
    pub tweet_id: Option<u64>,
    pub json: Bytes,
}

impl Outgoing {
    pub fn new(kind: MessageKind, json: impl Into<Bytes>) -> Outgoing {
        Outgoing {
            kind,
            tweet_id: None,
            json: json.into(),
        }
    }
}

/// What a connection's data queue carries.
#[derive(Debug)]
pub enum Data {
    /// One message, framed by the connection.
    Message(Outgoing),
    /// Messages the pump already framed for this connection (load mode), sent as one chunk.
    Framed(FramedRun),
}

/// Orders for a connection that overtake its queue.
#[derive(Debug)]
pub enum Control {
    /// A message framed like any other, sent before the queued ones.
    Message(Outgoing),
    /// Bytes written exactly as given (no framing): malformed input for the client.
    Raw {
        kind: MessageKind,
        bytes: Bytes,
    },
    Stall(Option<Duration>),
    Resume,
    /// End the response cleanly after what was already ordered.
    Close,
    /// Drop the TCP connection now.
    Abort,
    /// Send the first half of this message's frame, then drop the connection.
    CloseMidFrame(Bytes),
}

/// Most bytes handed to the server in one chunk.
const CHUNK_BYTES: usize = 64 * 1024;
/// Time given to the server to flush a partial frame before the connection is dropped.
const MID_FRAME_FLUSH: Duration = Duration::from_millis(200);

enum Ending {
    Running,
    AfterFlush,
    Abort,
    AbortAfter(Pin<Box<Sleep>>),
    Done,
}

/// What was framed since the last update of the shared counters.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) counts: Vec<(MessageKind, u64)>,
    pub(crate) ids: Vec<u64>,
    pub(crate) bytes: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, kind: MessageKind, tweet_id: Option<u64>, bytes: usize) {
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((kind, 1)),
        }
        self.ids.extend(tweet_id);
        self.bytes += bytes as u64;
    }

    /// Adds what another tally counted (a batch framed elsewhere), taking its ids.
    fn merge(&mut self, other: Tally) {
        for (kind, n) in other.counts {
            match self.counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, total)) => *total += n,
                None => self.counts.push((kind, n)),
            }
        }
        if self.ids.is_empty() {
            self.ids = other.ids;
        } else {
            self.ids.extend_from_slice(&other.ids);
        }
        self.bytes += other.bytes;
    }

    fn apply(&mut self, stats: &Mutex<ConnectionStats>, max_ids: usize) {
        let mut stats = stats.lock().unwrap_or_else(|e| e.into_inner());
        for (kind, n) in self.counts.drain(..) {
            *stats.messages.entry(kind.as_str().to_owned()).or_default() += n;
        }
        let room = max_ids
            .saturating_sub(stats.tweet_ids.len())
            .min(self.ids.len());
        stats.tweet_ids.extend_from_slice(&self.ids[..room]);
        stats.tweet_ids_not_recorded += (self.ids.len() - room) as u64;
        self.ids.clear();
        stats.bytes += self.bytes;
        self.bytes = 0;
    }
}

/// The `Stream` actix-web sends as the chunked response body.
pub struct ConnectionBody {
    pub(crate) id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) stats: Arc<Mutex<ConnectionStats>>,
    pub(crate) data: mpsc::Receiver<Data>,
    pub(crate) control: mpsc::UnboundedReceiver<Control>,
    pub(crate) delimited: bool,
    pub(crate) keepalive: Duration,
    pub(crate) max_ids: usize,
    keepalive_timer: Pin<Box<Sleep>>,
    stall: Option<Option<Pin<Box<Sleep>>>>,
    ending: Ending,
    buf: BytesMut,
    tally: Tally,
}

impl ConnectionBody {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        shared: Arc<Shared>,
        stats: Arc<Mutex<ConnectionStats>>,
        data: mpsc::Receiver<Data>,
        control: mpsc::UnboundedReceiver<Control>,
        delimited: bool,
        keepalive: Duration,
        max_ids: usize,
    ) -> ConnectionBody {
        ConnectionBody {
            id,
            shared,
            stats,
            data,
            control,
            delimited,
            keepalive,
            max_ids,
            keepalive_timer: Box::pin(sleep(keepalive)),
            stall: None,
            ending: Ending::Running,
            buf: BytesMut::with_capacity(CHUNK_BYTES),
            tally: Tally::default(),
        }
    }

    fn frame(&mut self, message: &Outgoing) {
        let start = self.buf.len();
        if self.delimited {
            self.buf
                .extend_from_slice(LengthPrefix::of(message.json.len()).as_bytes());
        }
        self.buf.extend_from_slice(&message.json);
        self.buf.extend_from_slice(b"\r\n");
        self.tally
            .add(message.kind, message.tweet_id, self.buf.len() - start);
    }

    fn apply_control(&mut self, control: Control) {
        match control {
            Control::Message(message) => {
                self.frame(&message);
                // Nothing follows a disconnect message on its connection, as on the real
                // stream. The `Close` sent after it may arrive a poll later, and tweets still
                // queued for the connection would otherwise be framed in between.
                if message.kind == MessageKind::Disconnect {
                    self.ending = Ending::AfterFlush;
                }
            }
            Control::Raw { kind, bytes } => {
                self.buf.extend_from_slice(&bytes);
                self.tally.add(kind, None, bytes.len());
            }
            Control::Stall(duration) => self.stall = Some(duration.map(|d| Box::pin(sleep(d)))),
            Control::Resume => self.stall = None,
            Control::Close => self.ending = Ending::AfterFlush,
            Control::Abort => self.ending = Ending::Abort,
            Control::CloseMidFrame(json) => {
                let mut framed = Vec::with_capacity(json.len() + 16);
                if self.delimited {
                    framed.extend_from_slice(LengthPrefix::of(json.len()).as_bytes());
                }
                framed.extend_from_slice(&json);
                framed.truncate(framed.len() / 2);
                self.buf.extend_from_slice(&framed);
                self.tally
                    .add(MessageKind::PartialFrame, None, framed.len());
                self.ending = Ending::AbortAfter(Box::pin(sleep(MID_FRAME_FLUSH)));
            }
        }
    }

    fn emit(&mut self) -> Bytes {
        let chunk = self.buf.split().freeze();
        self.emit_chunk(chunk)
    }

    fn emit_chunk(&mut self, chunk: Bytes) -> Bytes {
        self.tally.apply(&self.stats, self.max_ids);
        let deadline = Instant::now() + self.keepalive;
        self.keepalive_timer.as_mut().reset(deadline);
        chunk
    }
}

fn dropped() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by the emulator",
    )
}

impl Stream for ConnectionBody {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if matches!(this.ending, Ending::Done) {
            return Poll::Ready(None);
        }
        loop {
            match this.control.poll_recv(cx) {
                Poll::Ready(Some(control)) => this.apply_control(control),
                Poll::Ready(None) => {
                    if matches!(this.ending, Ending::Running) {
                        this.ending = Ending::AfterFlush;
                    }
                    break;
                }
                Poll::Pending => break,
            }
        }
        if matches!(this.ending, Ending::Abort) {
            this.ending = Ending::Done;
            this.tally.apply(&this.stats, this.max_ids);
            return Poll::Ready(Some(Err(dropped())));
        }
        if let Some(stall) = &mut this.stall {
            let over = match stall {
                Some(timer) => timer.as_mut().poll(cx).is_ready(),
                None => false,
            };
            if !over {
                return Poll::Pending;
            }
            this.stall = None;
            let deadline = Instant::now() + this.keepalive;
            this.keepalive_timer.as_mut().reset(deadline);
        }
        if matches!(this.ending, Ending::Running) {
            while this.buf.len() < CHUNK_BYTES {
                match this.data.poll_recv(cx) {
                    Poll::Ready(Some(Data::Message(message))) => this.frame(&message),
                    // Already framed: handed on as it is unless something waits before it.
                    Poll::Ready(Some(Data::Framed(run))) if this.buf.is_empty() => {
                        this.tally.merge(run.tally);
                        return Poll::Ready(Some(Ok(this.emit_chunk(run.bytes))));
                    }
                    Poll::Ready(Some(Data::Framed(run))) => {
                        this.buf.extend_from_slice(&run.bytes);
                        this.tally.merge(run.tally);
                    }
                    _ => break,
                }
            }
        }
        if !this.buf.is_empty() {
            return Poll::Ready(Some(Ok(this.emit())));
        }
        match &mut this.ending {
            Ending::AfterFlush => {
                this.ending = Ending::Done;
                return Poll::Ready(None);
            }
            Ending::AbortAfter(timer) => {
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.ending = Ending::Done;
                return Poll::Ready(Some(Err(dropped())));
            }
            _ => {}
        }
        if this.keepalive_timer.as_mut().poll(cx).is_ready() {
            this.buf.extend_from_slice(b"\r\n");
            this.tally.add(MessageKind::Keepalive, None, 2);
            return Poll::Ready(Some(Ok(this.emit())));
        }
        Poll::Pending
    }
}

impl Drop for ConnectionBody {
    fn drop(&mut self) {
        self.tally.apply(&self.stats, self.max_ids);
        self.shared.connection_ended(self.id, "client_closed");
    }
}
