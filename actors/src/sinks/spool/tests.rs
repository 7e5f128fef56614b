//! The spool on a temporary directory: order, deletion after delivery, restarts, torn tails,
//! the size bound.

use std::fs::OpenOptions;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use traptor_core::MessageKind;

use super::*;

fn record(n: u32) -> SpooledRecord {
    SpooledRecord {
        kind: Some(MessageKind::Tweet),
        topic: "tweets".to_owned(),
        // Fixed width, so every record has the same size on disk.
        key: Some(format!("{n:05}").into_bytes()),
        headers: vec![("traptor.message_type".to_owned(), Some(b"tweet".to_vec()))],
        payload: format!("{{\"id\":{n:05},\"text\":\"{}\"}}", "x".repeat(200)).into_bytes(),
    }
}

fn records(range: std::ops::Range<u32>) -> Vec<SpooledRecord> {
    range.map(record).collect()
}

fn open(dir: &Path, max_bytes: u64, segment_bytes: u64) -> (Spool, Arc<WriterStats>) {
    let stats = Arc::new(WriterStats::default());
    let settings = SpoolSettings {
        dir: dir.to_owned(),
        max_bytes,
        segment_bytes,
    };
    (Spool::open(settings, stats.clone()).unwrap(), stats)
}

/// Reads everything back: the records and their tickets, in order.
fn drain(spool: &Spool, cursor: &mut ReplayCursor) -> Vec<(Ticket, SpooledRecord)> {
    let mut out = Vec::new();
    while let Some(next) = spool.next(cursor).unwrap() {
        spool.handed_over();
        out.push(next);
    }
    out
}

fn keys(read: &[(Ticket, SpooledRecord)]) -> Vec<u32> {
    read.iter()
        .map(|(_, r)| {
            String::from_utf8(r.key.clone().unwrap())
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

fn segment_files(dir: &Path) -> usize {
    segment::list_segments(dir).unwrap().len()
}

#[test]
fn records_come_back_in_order_and_segments_go_once_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments, so the records span several files.
    let (spool, stats) = open(dir.path(), 1 << 20, 4096);
    assert!(!spool.is_spooling());
    assert_eq!(spool.try_append(&records(0..100)).unwrap(), 100);
    assert!(spool.is_spooling());
    assert!(segment_files(dir.path()) > 3);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.spool_records, 100);
    assert!(snapshot.spool_bytes > 100 * 200, "{snapshot:?}");

    let mut cursor = ReplayCursor::default();
    let read = drain(&spool, &mut cursor);
    assert_eq!(keys(&read), (0..100).collect::<Vec<_>>());
    assert!(!spool.is_spooling());
    assert_eq!(read[5].1, record(5), "records come back whole");

    // Delivered out of order (as across partitions): nothing goes before its segment is done.
    for (ticket, _) in read.iter().skip(1).rev() {
        spool.settle(*ticket);
    }
    assert_eq!(spool.pending().0, 1);
    assert!(
        segment_files(dir.path()) >= 1,
        "the first segment waits for its last record"
    );
    spool.settle(read[0].0);
    assert_eq!(spool.pending(), (0, 0));
    assert_eq!(segment_files(dir.path()), 0);
    assert_eq!(stats.snapshot().spool_bytes, 0);
}

#[test]
fn records_appended_during_replay_follow_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
    spool.try_append(&records(0..3)).unwrap();
    let mut cursor = ReplayCursor::default();
    let mut read = vec![spool.next(&mut cursor).unwrap().unwrap()];
    spool.try_append(&records(3..6)).unwrap();
    read.extend(drain(&spool, &mut cursor));
    assert_eq!(keys(&read), [0, 1, 2, 3, 4, 5]);
    for (ticket, _) in &read {
        spool.settle(*ticket);
    }
    // Caught up: the segment was sealed and, once settled, deleted; a new spill starts afresh.
    assert_eq!(segment_files(dir.path()), 0);
    spool.try_append(&records(6..7)).unwrap();
    assert_eq!(keys(&drain(&spool, &mut cursor)), [6]);
}

#[test]
fn the_last_segment_goes_once_settled_without_another_read() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
    spool.try_append(&records(0..2)).unwrap();
    let mut cursor = ReplayCursor::default();
    let tickets: Vec<Ticket> = (0..2)
        .map(|_| spool.next(&mut cursor).unwrap().unwrap().0)
        .collect();
    // The replayer stops asking once nothing is unread; settling alone must free the disk.
    for ticket in tickets {
        spool.settle(ticket);
    }
    assert_eq!(spool.pending(), (0, 0));
    assert_eq!(segment_files(dir.path()), 0);
}

#[test]
fn a_restart_replays_what_was_not_delivered_and_skips_what_was() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
        spool.try_append(&records(0..10)).unwrap();
        let mut cursor = ReplayCursor::default();
        let read: Vec<_> = (0..4)
            .map(|_| spool.next(&mut cursor).unwrap().unwrap())
            .collect();
        // 0, 1 and 3 delivered; 2 still in flight when the process dies.
        for i in [0, 1, 3] {
            spool.settle(read[i].0);
        }
        spool.save_progress();
        // Dropped without any further care, as a killed process would leave it.
    }
    let (spool, stats) = open(dir.path(), 1 << 20, 1 << 20);
    assert_eq!(
        stats.snapshot().spool_records,
        8,
        "2 and everything after it"
    );
    assert!(spool.is_spooling());
    let read = drain(&spool, &mut ReplayCursor::default());
    assert_eq!(keys(&read), [2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn a_torn_tail_is_skipped_and_the_records_before_it_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
        spool.try_append(&records(0..5)).unwrap();
    }
    let ids = segment::list_segments(dir.path()).unwrap();
    let path = segment::segment_path(dir.path(), ids[0]);
    let full = std::fs::metadata(&path).unwrap().len();
    // Cut the last record in the middle, as a SIGKILL during its write would.
    let last = record(4).frame_len();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(full - last / 2).unwrap();
    drop(file);

    let (spool, stats) = open(dir.path(), 1 << 20, 1 << 20);
    assert_eq!(stats.snapshot().spool_records, 4);
    let mut cursor = ReplayCursor::default();
    let read = drain(&spool, &mut cursor);
    assert_eq!(keys(&read), [0, 1, 2, 3]);
    // New records go to a new segment, never after the torn bytes.
    spool.try_append(&records(10..12)).unwrap();
    let more = drain(&spool, &mut cursor);
    assert_eq!(keys(&more), [10, 11]);
    for (ticket, _) in read.iter().chain(&more) {
        spool.settle(*ticket);
    }
    assert_eq!(
        segment_files(dir.path()),
        0,
        "the torn segment goes once its records are delivered"
    );
}

#[test]
fn a_damaged_record_ends_its_segment_but_not_the_next() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (spool, _) = open(dir.path(), 1 << 20, 4096);
        spool.try_append(&records(0..40)).unwrap();
    }
    let ids = segment::list_segments(dir.path()).unwrap();
    assert!(ids.len() >= 2);
    let path = segment::segment_path(dir.path(), ids[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let (spool, _) = open(dir.path(), 1 << 20, 4096);
    let got = keys(&drain(&spool, &mut ReplayCursor::default()));
    assert!(got.len() < 40 && got.len() > 20, "{got:?}");
    assert_eq!(got.last(), Some(&39), "later segments are intact");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "still in order: {got:?}"
    );
}

#[test]
fn a_full_spool_makes_appends_wait_until_replay_frees_room() {
    let dir = tempfile::tempdir().unwrap();
    let one = record(0).frame_len();
    let segment = segment::FIRST_RECORD + 4 * one;
    let (spool, _) = open(dir.path(), 2 * segment, segment);
    let spool = Arc::new(spool);
    assert_eq!(
        spool.try_append(&records(0..20)).unwrap(),
        8,
        "two segments of four"
    );

    let closing = Arc::new(AtomicBool::new(false));
    let appender = {
        let (spool, closing) = (spool.clone(), closing.clone());
        std::thread::spawn(move || spool.append_waiting(&records(8..12), &closing))
    };
    std::thread::sleep(Duration::from_millis(300));
    assert!(!appender.is_finished(), "no room: the append waits");

    let mut cursor = ReplayCursor::default();
    for _ in 0..4 {
        let (ticket, _) = spool.next(&mut cursor).unwrap().unwrap();
        spool.handed_over();
        spool.settle(ticket);
    }
    // Reading into the second segment seals the first, which then goes.
    let _ = spool.next(&mut cursor).unwrap().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !appender.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    appender.join().unwrap().unwrap();
    assert_eq!(spool.pending().0, 8);

    // At shutdown a full spool stops waiting and says how many records it took.
    closing.store(true, std::sync::atomic::Ordering::Release);
    let error = spool
        .append_waiting(&records(20..30), &closing)
        .unwrap_err();
    assert_eq!(error.appended(), 0);
}

#[test]
fn a_second_process_cannot_share_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (_first, _) = open(dir.path(), 1 << 20, 4096);
    let settings = SpoolSettings {
        dir: dir.path().to_owned(),
        max_bytes: 1 << 20,
        segment_bytes: 4096,
    };
    let error = Spool::open(settings, Arc::default())
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("another traptor process"),
        "{error}"
    );
}

#[test]
fn appends_are_synced_once_until_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = open(dir.path(), 1 << 20, 1 << 20);
    assert!(!spool.has_unsynced_appends(), "nothing appended yet");
    spool.sync_appended().unwrap();
    assert_eq!(spool.try_append(&records(0..3)).unwrap(), 3);
    assert!(spool.has_unsynced_appends());
    spool.sync_appended().unwrap();
    assert!(!spool.has_unsynced_appends());
    spool.sync_appended().unwrap();
    assert_eq!(spool.try_append(&records(3..4)).unwrap(), 1);
    assert!(
        spool.has_unsynced_appends(),
        "a new append needs a new sync"
    );
    spool.sync().unwrap();
    assert!(
        !spool.has_unsynced_appends(),
        "the shutdown sync counts too"
    );
    // What was synced reads back whole.
    let mut cursor = ReplayCursor::default();
    assert_eq!(keys(&drain(&spool, &mut cursor)), [0, 1, 2, 3]);
}
