//! JSON lines: one document per line on standard output or appended to a file, so
//! `traptor ... | jq .` works live.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use traptor_core::{MessageKind, Record};

use super::{Sink, SinkError, WriterStats};

/// Writes each record's payload as one line. Output is flushed after every batch, so a reader
/// sees records as they arrive and a crash loses at most the batch being written.
pub struct LineSink<W: Write + Send + Unpin + 'static> {
    name: &'static str,
    out: BufWriter<W>,
    /// Makes flushed data durable (`fsync` for files; nothing for a pipe).
    sync: fn(&mut W) -> io::Result<()>,
    stats: Arc<WriterStats>,
}

impl LineSink<io::Stdout> {
    pub fn stdout(stats: Arc<WriterStats>) -> Self {
        LineSink::new("stdout", io::stdout(), |_| Ok(()), stats)
    }
}

impl LineSink<File> {
    /// Appends to `path`, creating it (and its directory) when missing.
    pub fn file(path: &Path, stats: Arc<WriterStats>) -> Result<Self, SinkError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                SinkError::Setup(format!(
                    "cannot create the directory of the sink file {}: {e}",
                    path.display()
                ))
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                SinkError::Setup(format!(
                    "cannot open the sink file {} for appending: {e}",
                    path.display()
                ))
            })?;
        // A device or a FIFO (`/dev/null`, a named pipe) has nothing to make durable, and
        // `fsync` on it fails with EINVAL: only a regular file is synced.
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(true);
        let sync: fn(&mut File) -> io::Result<()> = if regular {
            |file| file.sync_data()
        } else {
            |_| Ok(())
        };
        Ok(LineSink::new("file", file, sync, stats))
    }
}

impl<W: Write + Send + Unpin + 'static> LineSink<W> {
    pub fn new(
        name: &'static str,
        out: W,
        sync: fn(&mut W) -> io::Result<()>,
        stats: Arc<WriterStats>,
    ) -> Self {
        LineSink {
            name,
            out: BufWriter::with_capacity(256 * 1024, out),
            sync,
            stats,
        }
    }

    /// The underlying writer (tests read back what was written).
    pub fn get_ref(&self) -> &W {
        self.out.get_ref()
    }

    fn error(&self, e: io::Error) -> SinkError {
        if e.kind() == io::ErrorKind::BrokenPipe {
            SinkError::Closed(format!("{} was closed by its reader", self.name))
        } else {
            SinkError::Io(format!("writing to {} failed: {e}", self.name))
        }
    }
}

impl<W: Write + Send + Unpin + 'static> Sink for LineSink<W> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn write(&mut self, records: &[Record]) -> Result<(), SinkError> {
        self.stats.record_queued(records.len() as u64);
        let written = records
            .iter()
            .try_for_each(|record| write_line(&mut self.out, record))
            .and_then(|()| self.out.flush());
        match written {
            Ok(()) => {
                self.stats.record_delivered(records.len() as u64);
                Ok(())
            }
            Err(e) => {
                // The writer retries the whole batch (or gives it up), so none stays in flight.
                self.stats.record_given_up(records.len() as u64);
                Err(self.error(e))
            }
        }
    }

    fn flush(&mut self, _timeout: Duration) -> usize {
        let flushed = self
            .out
            .flush()
            .and_then(|()| (self.sync)(self.out.get_mut()));
        match flushed {
            Ok(()) => {}
            // Already reported by the write that found the reader gone.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                tracing::debug!(sink = self.name, "nothing to flush to: the reader is gone");
            }
            Err(e) => tracing::error!(sink = self.name, error = %e, "flushing the sink failed"),
        }
        self.stats.in_flight() as usize
    }
}

/// One output line: the payload and `\n`. A payload must not break the one-document-per-line
/// framing, so a frame that is not JSON is wrapped as `{"traptor_invalid_frame": "<text>"}`,
/// and line breaks in a JSON payload (only possible as whitespace between tokens) become spaces.
pub fn encode_line(record: &Record) -> Vec<u8> {
    let mut line = Vec::with_capacity(record.payload.len() + 1);
    write_line(&mut line, record).expect("writing to a Vec cannot fail");
    line
}

/// [`encode_line`] written straight to `out`: a payload without line breaks (nearly all of
/// them) is written as it is, without a copy.
fn write_line(out: &mut impl Write, record: &Record) -> io::Result<()> {
    if record.kind == MessageKind::Invalid {
        let text = String::from_utf8_lossy(&record.payload);
        serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "traptor_invalid_frame": text }),
        )?;
    } else if memchr::memchr2(b'\n', b'\r', &record.payload).is_none() {
        out.write_all(&record.payload)?;
    } else {
        let mut payload = record.payload.clone();
        for byte in payload.iter_mut().filter(|b| **b == b'\n' || **b == b'\r') {
            *byte = b' ';
        }
        out.write_all(&payload)?;
    }
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: MessageKind, payload: &str) -> Record {
        Record {
            kind,
            key: None,
            payload: payload.as_bytes().to_vec(),
            slot: None,
            received_at_ms: 0,
        }
    }

    fn vec_sink() -> LineSink<Vec<u8>> {
        LineSink::new("memory", Vec::new(), |_| Ok(()), Arc::default())
    }

    #[test]
    fn writes_one_line_per_record_and_counts_them() {
        let mut sink = vec_sink();
        sink.write(&[
            record(MessageKind::Tweet, r#"{"id":1}"#),
            record(MessageKind::Limit, r#"{"limit":{}}"#),
        ])
        .unwrap();
        sink.write(&[record(MessageKind::Tweet, r#"{"id":2}"#)])
            .unwrap();
        let text = String::from_utf8(sink.get_ref().clone()).unwrap();
        assert_eq!(text, "{\"id\":1}\n{\"limit\":{}}\n{\"id\":2}\n");
        let stats = sink.stats.snapshot();
        assert_eq!((stats.queued, stats.delivered, stats.in_flight), (3, 3, 0));
        assert_eq!(sink.flush(Duration::from_secs(1)), 0);
    }

    #[test]
    fn every_line_is_one_json_document() {
        let pretty = record(MessageKind::Tweet, "{\n  \"text\": \"a\\nb\"\r\n}");
        let invalid = Record {
            payload: b"not json\n\xff".to_vec(),
            ..record(MessageKind::Invalid, "")
        };
        for record in [pretty, invalid] {
            let line = encode_line(&record);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            assert_eq!(line.last(), Some(&b'\n'));
            let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert!(value.is_object());
        }
        let value: serde_json::Value =
            serde_json::from_slice(&encode_line(&record(MessageKind::Invalid, "oops\n"))).unwrap();
        assert_eq!(value["traptor_invalid_frame"], "oops\n");
    }

    /// A reader that went away: every write fails with EPIPE.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn a_broken_pipe_closes_the_sink_instead_of_panicking() {
        let mut sink = LineSink::new("stdout", ClosedPipe, |_| Ok(()), Arc::default());
        let error = sink.write(&[record(MessageKind::Tweet, "{}")]).unwrap_err();
        assert!(
            matches!(error, SinkError::Closed(ref m) if m.contains("stdout")),
            "{error:?}"
        );
        assert_eq!(sink.stats.snapshot().in_flight, 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_device_as_the_file_sink_is_written_and_flushed_without_an_error() {
        let mut sink = LineSink::file(Path::new("/dev/null"), Arc::default()).unwrap();
        sink.write(&[record(MessageKind::Tweet, "{}")]).unwrap();
        // fsync(2) on /dev/null fails with EINVAL; the flush must not try it.
        assert!((sink.sync)(sink.out.get_mut()).is_ok());
        assert_eq!(sink.flush(Duration::from_secs(1)), 0);
    }

    #[test]
    fn the_file_sink_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/records.jsonl");
        for id in [1, 2] {
            let mut sink = LineSink::file(&path, Arc::default()).unwrap();
            sink.write(&[record(MessageKind::Tweet, &format!("{{\"id\":{id}}}"))])
                .unwrap();
            assert_eq!(sink.flush(Duration::from_secs(1)), 0);
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":1}\n{\"id\":2}\n"
        );
    }
}
