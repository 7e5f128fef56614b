//! The spool: a bounded queue of records on disk, in front of the Kafka producer, so an outage
//! longer than the producer can hold in memory costs disk space instead of records.
//!
//! # Layout
//! `[kafka.spool] dir` holds segment files `<id>.seg` (ids increase with time), each a magic
//! header followed by records framed with length and CRC (see [`frame`]), and for segments being
//! replayed `<id>.acked`, the offset up to which every record was delivered. A `lock` file keeps
//! a second process from using the same directory.
//!
//! # Life of a spooled record
//! appended (by the writer, or by the retrier for a record the producer failed) → read back by
//! the replayer once Kafka answers ([`Spool::next`]) → handed to the producer
//! ([`Spool::handed_over`]) → delivered, or spooled again ([`Spool::settle`]). A segment is
//! deleted only when it is sealed (no more appends), fully read, and every record read from it
//! is settled.
//!
//! # Crashes
//! Appends go straight to the file (no user-space buffer), so a record the writer accepted
//! survives a SIGKILL of the process; a power loss may lose what the OS had not yet written:
//! the records appended since the last fsync, which comes about once a second while records are
//! appended ([`Spool::sync_appended`], called by the replayer), when a segment is sealed and at
//! shutdown. A write torn by the crash is detected by
//! its CRC when the segment is scanned at start and the tail is skipped. Replay progress is saved
//! about once a second: after a crash, records delivered since the last save are sent again
//! (duplicates, never losses).
//!
//! # Full
//! When `max_bytes` is reached, [`Spool::append_waiting`] blocks until replay frees a segment:
//! the writer, and so the streams, wait. Nothing is dropped.

mod frame;
mod segment;

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

pub use frame::{read_frame, Frame, SpooledRecord};

use super::WriterStats;

/// Where the spool lives and how big it may grow (from `[kafka.spool]`).
#[derive(Debug, Clone)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub segment_bytes: u64,
}

/// Names one record handed out for replay, so its delivery can be reported back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    segment: u64,
    index: u64,
}

/// The replayer's reading position: an open segment and where in it.
#[derive(Default)]
pub struct ReplayCursor {
    open: Option<(u64, BufReader<File>, u64)>,
}

/// The spool of one writer. Shared by the writer, the retrier and the replayer threads.
pub struct Spool {
    settings: SpoolSettings,
    state: Mutex<State>,
    /// Signalled when a segment is deleted, for appends waiting for room.
    room: Condvar,
    stats: Arc<WriterStats>,
    /// Held (locked) for the spool's life.
    _lock: File,
}

struct State {
    segments: BTreeMap<u64, Segment>,
    /// The segment being appended to.
    active: Option<(u64, File)>,
    next_id: u64,
    /// Bytes of all segment files.
    bytes: u64,
    /// Records on disk not yet read back.
    unread: u64,
    /// Records read back but not yet handed to the producer.
    handing: u64,
    /// Records on disk not yet settled.
    pending: u64,
    /// Whether "spool full" was logged since there last was room.
    full_told: bool,
    /// Records were appended to the active segment since it was last fsynced.
    unsynced: bool,
}

struct Segment {
    file_bytes: u64,
    /// Where the intact records end; nothing past it is ever read.
    end: u64,
    /// No more appends: the segment may go once read and settled.
    sealed: bool,
    /// Where the next record to hand out starts.
    read_at: u64,
    /// Records not yet read back.
    unread: u64,
    /// Every record before this offset is settled.
    settled_to: u64,
    /// `settled_to` as last saved in `<id>.acked`.
    saved_to: u64,
    /// Records read back and not yet all settled, in order: (end offset, settled).
    window: VecDeque<(u64, bool)>,
    /// The index of `window`'s first entry.
    window_start: u64,
}

impl Segment {
    fn new(start: u64, file_bytes: u64) -> Segment {
        Segment {
            file_bytes,
            end: start,
            sealed: false,
            read_at: start,
            unread: 0,
            settled_to: start,
            saved_to: start,
            window: VecDeque::new(),
            window_start: 0,
        }
    }

    fn finished(&self) -> bool {
        self.sealed && self.unread == 0 && self.read_at >= self.end && self.window.is_empty()
    }
}

/// Why an append did not take every record.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The spool stayed full until shutdown began.
    #[error("the spool is full ({max_bytes} bytes) and the writer is shutting down")]
    Full { appended: usize, max_bytes: u64 },
    /// The disk refused the write (full disk, permissions, I/O error).
    #[error("cannot write to the spool: {source}")]
    Io { appended: usize, source: io::Error },
}

impl AppendError {
    /// How many records were appended before the error.
    pub fn appended(&self) -> usize {
        match self {
            AppendError::Full { appended, .. } | AppendError::Io { appended, .. } => *appended,
        }
    }
}

impl Spool {
    /// Opens (creating) the spool directory, takes its lock, and finds the records an
    /// earlier run left, which are logged (count and bytes) and become the first to replay.
    pub fn open(settings: SpoolSettings, stats: Arc<WriterStats>) -> io::Result<Spool> {
        let dir = &settings.dir;
        std::fs::create_dir_all(dir)?;
        let lock = File::create(dir.join("lock"))?;
        lock.try_lock().map_err(|_| {
            io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "{} is used by another traptor process: give each process its own \
                     [kafka.spool] dir",
                    dir.display()
                ),
            )
        })?;
        let mut state = State {
            segments: BTreeMap::new(),
            active: None,
            next_id: 1,
            bytes: 0,
            unread: 0,
            handing: 0,
            pending: 0,
            full_told: false,
            unsynced: false,
        };
        for id in segment::list_segments(dir)? {
            state.next_id = state.next_id.max(id + 1);
            let found = segment::scan(dir, id)?;
            if let Some(why) = found.torn {
                tracing::warn!(spool = %dir.display(), segment = id, why,
                    ignored_bytes = found.file_bytes.saturating_sub(found.end),
                    "spool segment ends with a torn or damaged record (the process likely died \
                     mid-write); the records before it are kept, the rest is skipped");
            }
            if found.records == 0 {
                segment::remove_segment(dir, id)?;
                continue;
            }
            let mut seg = Segment::new(found.start, found.file_bytes);
            seg.end = found.end;
            seg.sealed = true;
            seg.unread = found.records;
            state.unread += found.records;
            state.pending += found.records;
            state.bytes += found.file_bytes;
            state.segments.insert(id, seg);
        }
        if state.pending > 0 {
            tracing::warn!(spool = %dir.display(), records = state.pending, bytes = state.bytes,
                "the spool holds records from an earlier run; they are sent to Kafka before new \
                 records once Kafka answers");
        }
        let spool = Spool {
            settings,
            state: Mutex::new(state),
            room: Condvar::new(),
            stats,
            _lock: lock,
        };
        spool.publish(&spool.lock());
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    /// Whether records wait in the spool: new records must then be appended after them, so
    /// that what was spooled first is sent first.
    pub fn is_spooling(&self) -> bool {
        let state = self.lock();
        state.unread + state.handing > 0
    }

    /// (records not yet delivered, bytes on disk).
    pub fn pending(&self) -> (u64, u64) {
        let state = self.lock();
        (state.pending, state.bytes)
    }

    /// Appends as many of `records` as fit; returns how many. Never waits.
    pub fn try_append(&self, records: &[SpooledRecord]) -> io::Result<usize> {
        let mut state = self.lock();
        let mut appended = 0;
        let mut frame = Vec::new();
        for record in records {
            let len = record.frame_len();
            if len + segment::FIRST_RECORD > self.settings.max_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "a record of {len} bytes can never fit a spool of max_bytes = {}",
                        self.settings.max_bytes
                    ),
                ));
            }
            let room_needed = len
                + if self.needs_new_segment(&state) {
                    segment::FIRST_RECORD
                } else {
                    0
                };
            if state.bytes + room_needed > self.settings.max_bytes {
                break;
            }
            frame.clear();
            record.encode(&mut frame);
            if let Err(e) = self.write_frame(&mut state, &frame) {
                self.publish(&state);
                return Err(e);
            }
            appended += 1;
        }
        if appended < records.len() && !state.full_told {
            state.full_told = true;
            tracing::error!(spool = %self.settings.dir.display(), max_bytes = self.settings.max_bytes,
                "the spool is full: the writer waits for Kafka to take spooled records \
                 (streams are held back meanwhile; nothing is dropped)");
        }
        self.publish(&state);
        Ok(appended)
    }

    /// Appends every record, waiting for room while the spool is full; gives up waiting only
    /// once `closing` is set.
    pub fn append_waiting(
        &self,
        records: &[SpooledRecord],
        closing: &AtomicBool,
    ) -> Result<(), AppendError> {
        let mut done = 0;
        loop {
            done += self
                .try_append(&records[done..])
                .map_err(|source| AppendError::Io {
                    appended: done,
                    source,
                })?;
            if done == records.len() {
                return Ok(());
            }
            if closing.load(Ordering::Acquire) {
                return Err(AppendError::Full {
                    appended: done,
                    max_bytes: self.settings.max_bytes,
                });
            }
            let state = self.lock();
            let _ = self
                .room
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The next record to replay, oldest first, or `None` when every record was read back.
    pub fn next(&self, cursor: &mut ReplayCursor) -> io::Result<Option<(Ticket, SpooledRecord)>> {
        loop {
            if cursor.open.is_none() {
                let start = {
                    let state = self.lock();
                    state
                        .segments
                        .iter()
                        .find(|(_, seg)| seg.unread > 0 || seg.read_at < seg.end || !seg.sealed)
                        .map(|(id, seg)| (*id, seg.read_at))
                };
                let Some((id, at)) = start else {
                    return Ok(None);
                };
                cursor.open = Some((id, segment::open_at(&self.settings.dir, id, at)?, at));
            }
            let (id, reader, at) = cursor.open.as_mut().expect("opened above");
            let (id, at_now) = (*id, *at);
            {
                let mut state = self.lock();
                let Some(seg) = state.segments.get_mut(&id) else {
                    cursor.open = None;
                    continue;
                };
                if at_now >= seg.end {
                    if !seg.sealed && state.unread == 0 {
                        // Caught up with the writer: seal, so the segment can go once settled
                        // and the next spill starts a fresh one.
                        self.seal_active(&mut state);
                    }
                    let Some(seg) = state.segments.get_mut(&id) else {
                        // Sealed, settled and deleted on the spot.
                        cursor.open = None;
                        self.publish(&state);
                        continue;
                    };
                    if !seg.sealed {
                        return Ok(None);
                    }
                    seg.unread = 0;
                    cursor.open = None;
                    self.remove_if_finished(&mut state, id);
                    self.publish(&state);
                    continue;
                }
            }
            match read_frame(reader)? {
                Frame::Record(record, len) => {
                    *at += len;
                    let mut state = self.lock();
                    let seg = state
                        .segments
                        .get_mut(&id)
                        .expect("segments go only once read");
                    let index = seg.window_start + seg.window.len() as u64;
                    seg.window.push_back((at_now + len, false));
                    seg.read_at = at_now + len;
                    seg.unread = seg.unread.saturating_sub(1);
                    let caught_up = !seg.sealed && seg.read_at >= seg.end;
                    state.unread = state.unread.saturating_sub(1);
                    state.handing += 1;
                    if caught_up && state.unread == 0 {
                        // The last record the writer appended: seal, so the segment goes once
                        // settled, and the next spill starts a new one.
                        self.seal_active(&mut state);
                        self.publish(&state);
                    }
                    return Ok(Some((Ticket { segment: id, index }, record)));
                }
                Frame::End | Frame::Torn(_) => {
                    // The scan or the writer vouched for these bytes: the disk changed under us.
                    tracing::error!(spool = %self.settings.dir.display(), segment = id, offset = at_now,
                        "a spooled record cannot be read back; skipping the rest of its segment");
                    let mut state = self.lock();
                    let seg = state
                        .segments
                        .get_mut(&id)
                        .expect("segments go only once read");
                    let lost = seg.unread;
                    seg.end = at_now;
                    seg.unread = 0;
                    state.unread = state.unread.saturating_sub(lost);
                    state.pending = state.pending.saturating_sub(lost);
                    cursor.open = None;
                    self.remove_if_finished(&mut state, id);
                    self.publish(&state);
                }
            }
        }
    }

    /// A record from [`Spool::next`] is now in the producer's hands.
    pub fn handed_over(&self) {
        let mut state = self.lock();
        state.handing = state.handing.saturating_sub(1);
    }

    /// A replayed record is delivered (or safely spooled again, or refused for good).
    pub fn settle(&self, ticket: Ticket) {
        let mut state = self.lock();
        let Some(seg) = state.segments.get_mut(&ticket.segment) else {
            return;
        };
        let Some(position) = ticket.index.checked_sub(seg.window_start) else {
            return;
        };
        let Some(entry) = seg.window.get_mut(position as usize) else {
            return;
        };
        if entry.1 {
            return;
        }
        entry.1 = true;
        while let Some(&(end, true)) = seg.window.front() {
            seg.window.pop_front();
            seg.window_start += 1;
            seg.settled_to = end;
        }
        state.pending = state.pending.saturating_sub(1);
        self.remove_if_finished(&mut state, ticket.segment);
        self.publish(&state);
    }

    /// Saves each segment's replay progress, so a restart skips what was delivered.
    pub fn save_progress(&self) {
        let changed: Vec<(u64, u64)> = {
            let state = self.lock();
            state
                .segments
                .iter()
                .filter(|(_, seg)| seg.settled_to != seg.saved_to)
                .map(|(id, seg)| (*id, seg.settled_to))
                .collect()
        };
        for (id, offset) in changed {
            match segment::write_progress(&self.settings.dir, id, offset) {
                Ok(()) => {
                    if let Some(seg) = self.lock().segments.get_mut(&id) {
                        seg.saved_to = offset;
                    }
                }
                // Only costs duplicates after a crash; the next save tries again.
                Err(error) => tracing::warn!(spool = %self.settings.dir.display(), segment = id,
                    %error, "cannot save the spool's replay progress"),
            }
        }
    }

    /// Forces what was appended to the disk (at shutdown).
    pub fn sync(&self) -> io::Result<()> {
        let mut state = self.lock();
        state.unsynced = false;
        match &state.active {
            Some((_, file)) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Forces the records appended since the last sync to the disk, if there are any. Called
    /// about once a second by the replayer, so that a power loss during an outage costs at most
    /// the last second of spooled records rather than the whole active segment. The fsync runs
    /// outside the lock: appends go on meanwhile.
    pub fn sync_appended(&self) -> io::Result<()> {
        let file = {
            let mut state = self.lock();
            if !state.unsynced {
                return Ok(());
            }
            state.unsynced = false;
            match &state.active {
                Some((_, file)) => file.try_clone()?,
                None => return Ok(()),
            }
        };
        file.sync_data()
    }

    /// Whether records were appended since the last sync (for tests).
    #[cfg(test)]
    fn has_unsynced_appends(&self) -> bool {
        self.lock().unsynced
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn needs_new_segment(&self, state: &State) -> bool {
        match &state.active {
            None => true,
            Some((id, _)) => state.segments[id].end >= self.settings.segment_bytes,
        }
    }

    /// Writes one frame to the active segment (starting a new one when needed).
    fn write_frame(&self, state: &mut State, frame: &[u8]) -> io::Result<()> {
        if self.needs_new_segment(state) {
            self.seal_active(state);
            let id = state.next_id;
            state.next_id += 1;
            let file = segment::create_segment(&self.settings.dir, id)?;
            let start = segment::FIRST_RECORD;
            state.segments.insert(id, Segment::new(start, start));
            state.bytes += start;
            state.active = Some((id, file));
        }
        let (id, file) = state.active.as_mut().expect("created above");
        let id = *id;
        if let Err(error) = file.write_all(frame) {
            // Part of the frame may be on disk: seal so nothing is written after it; readers
            // stop at the last whole frame.
            let seg = state
                .segments
                .get_mut(&id)
                .expect("the active segment is listed");
            let on_disk = std::fs::metadata(segment::segment_path(&self.settings.dir, id))
                .map(|m| m.len())
                .unwrap_or(seg.file_bytes);
            state.bytes += on_disk.saturating_sub(seg.file_bytes);
            seg.file_bytes = on_disk;
            self.seal_active(state);
            return Err(error);
        }
        let len = frame.len() as u64;
        let seg = state
            .segments
            .get_mut(&id)
            .expect("the active segment is listed");
        seg.end += len;
        seg.file_bytes += len;
        seg.unread += 1;
        state.unsynced = true;
        state.bytes += len;
        state.unread += 1;
        state.pending += 1;
        Ok(())
    }

    fn seal_active(&self, state: &mut State) {
        let Some((id, file)) = state.active.take() else {
            return;
        };
        state.unsynced = false;
        if let Err(error) = file.sync_data() {
            tracing::warn!(spool = %self.settings.dir.display(), segment = id, %error,
                "cannot sync a spool segment to disk");
        }
        if let Some(seg) = state.segments.get_mut(&id) {
            seg.sealed = true;
        }
        self.remove_if_finished(state, id);
    }

    fn remove_if_finished(&self, state: &mut State, id: u64) {
        let Some(seg) = state.segments.get(&id) else {
            return;
        };
        if !seg.finished() {
            return;
        }
        let bytes = seg.file_bytes;
        if let Err(error) = segment::remove_segment(&self.settings.dir, id) {
            tracing::warn!(spool = %self.settings.dir.display(), segment = id, %error,
                "cannot delete a delivered spool segment; its records may be sent again after \
                 a restart");
        }
        state.segments.remove(&id);
        state.bytes = state.bytes.saturating_sub(bytes);
        state.full_told = false;
        self.room.notify_all();
    }

    /// Mirrors the spool's size into the writer's counters.
    fn publish(&self, state: &State) {
        self.stats.set_spool(state.pending, state.bytes);
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.save_progress();
        if let Err(error) = self.sync() {
            tracing::warn!(spool = %self.settings.dir.display(), %error, "cannot sync the spool");
        }
    }
}

#[cfg(test)]
mod tests;
