//! Segment files: naming, the magic header, the saved replay progress, and the scan that
//! finds what an earlier run left behind.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::frame::{read_frame, Frame};

/// The first bytes of every segment file, so a stray file is never replayed as records.
pub const MAGIC: &[u8; 8] = b"TRSPOOL1";
/// Where the first record of a segment starts.
pub const FIRST_RECORD: u64 = MAGIC.len() as u64;

/// A segment file: `<id>.seg`, ids increasing with time, zero-padded so names sort by age.
pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

/// The replay progress of segment `id`: `<id>.acked` holds the offset up to which every
/// record was delivered, so a restart does not send them again.
pub fn progress_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.acked"))
}

/// The segment ids in `dir`, oldest first.
pub fn list_segments(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(id) = name
            .strip_suffix(".seg")
            .and_then(|s| s.parse::<u64>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates segment `id` with its header; fails if it already exists.
pub fn create_segment(dir: &Path, id: u64) -> io::Result<File> {
    let mut file = fs::OpenOptions::new()
        .append(true)
        .create_new(true)
        .open(segment_path(dir, id))?;
    file.write_all(MAGIC)?;
    Ok(file)
}

/// Opens segment `id` for reading at `offset`.
pub fn open_at(dir: &Path, id: u64, offset: u64) -> io::Result<BufReader<File>> {
    let mut file = File::open(segment_path(dir, id))?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(BufReader::with_capacity(256 * 1024, file))
}

/// The saved progress of segment `id`, if any and readable.
pub fn read_progress(dir: &Path, id: u64) -> Option<u64> {
    let bytes = fs::read(progress_path(dir, id)).ok()?;
    let (offset, crc) = (bytes.get(..8)?, bytes.get(8..12)?);
    (crc32fast::hash(offset).to_le_bytes() == crc)
        .then(|| u64::from_le_bytes(offset.try_into().expect("8 bytes")))
}

/// Saves the progress of segment `id` (written aside, then renamed, so it is never torn).
pub fn write_progress(dir: &Path, id: u64, offset: u64) -> io::Result<()> {
    let mut bytes = offset.to_le_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    let path = progress_path(dir, id);
    let aside = path.with_extension("acked.tmp");
    fs::write(&aside, bytes)?;
    fs::rename(aside, path)
}

/// Deletes segment `id` and its progress file.
pub fn remove_segment(dir: &Path, id: u64) -> io::Result<()> {
    match fs::remove_file(progress_path(dir, id)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::remove_file(segment_path(dir, id))
}

/// What an earlier run left in one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where replay starts: after the records already delivered.
    pub start: u64,
    /// Where the intact records end (a torn frame after it is ignored).
    pub end: u64,
    /// Intact records between `start` and `end`.
    pub records: u64,
    /// The file's size on disk.
    pub file_bytes: u64,
    /// Why the scan stopped before the end of the file, if it did.
    pub torn: Option<&'static str>,
}

/// Reads segment `id` from its saved progress to its end, counting intact records.
pub fn scan(dir: &Path, id: u64) -> io::Result<Found> {
    let path = segment_path(dir, id);
    let file_bytes = fs::metadata(&path)?.len();
    let mut magic = [0u8; MAGIC.len()];
    let header_ok = File::open(&path)?.read_exact(&mut magic).is_ok() && &magic == MAGIC;
    if !header_ok {
        return Ok(Found {
            start: 0,
            end: 0,
            records: 0,
            file_bytes,
            torn: Some("the file does not start with the spool's header"),
        });
    }
    let start = read_progress(dir, id)
        .filter(|offset| (FIRST_RECORD..=file_bytes).contains(offset))
        .unwrap_or(FIRST_RECORD);
    let mut input = open_at(dir, id, start)?;
    let (mut end, mut records) = (start, 0);
    let torn = loop {
        match read_frame(&mut input)? {
            Frame::Record(_, len) => {
                end += len;
                records += 1;
            }
            Frame::End => break None,
            Frame::Torn(why) => break Some(why),
        }
    };
    Ok(Found {
        start,
        end,
        records,
        file_bytes,
        torn,
    })
}
