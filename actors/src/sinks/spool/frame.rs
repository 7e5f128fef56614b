//! One spooled record on disk, framed so that a torn write is detected rather than misread.
//!
//! ```text
//! frame = body length (u32 LE) | CRC-32 of the body (u32 LE) | body
//! body  = version (u8 = 1) | kind (u8, 255 = none)
//!       | topic length (u16) | topic
//!       | has key (u8) | key length (u32) | key            (length and key only when present)
//!       | header count (u16) | per header: name length (u16) | name
//!                                         | has value (u8) | value length (u32) | value
//!       | payload length (u32) | payload
//! ```
//! All integers are little-endian. A frame cut short (the process died mid-write) or whose
//! CRC does not match reads as [`Frame::Torn`], never as a record.

use std::io::{self, Read};

use traptor_core::MessageKind;

/// The bytes before a frame's body: its length and its CRC.
pub const FRAME_HEAD_BYTES: usize = 8;
/// Longest body accepted when reading: a longer length field can only be garbage.
const MAX_BODY_BYTES: u32 = 64 << 20;
const BODY_VERSION: u8 = 1;
const NO_KIND: u8 = u8::MAX;

/// A record as the producer sends it: everything needed to send it again after a restart.
/// Kept apart from [`traptor_core::Record`] because records that failed in the producer come
/// back as Kafka messages (topic and headers, no slot), not as records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledRecord {
    /// `None` when the kind could not be told (a message without traptor's kind header).
    pub kind: Option<MessageKind>,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub payload: Vec<u8>,
}

/// What reading one frame gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole, intact record and the frame's length in bytes.
    Record(SpooledRecord, u64),
    /// No byte left: the end of the segment.
    End,
    /// A frame cut short or damaged; nothing after it can be trusted.
    Torn(&'static str),
}

impl SpooledRecord {
    /// Appends this record's frame to `out`; returns the frame's length.
    pub fn encode(&self, out: &mut Vec<u8>) -> u64 {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEAD_BYTES]);
        out.push(BODY_VERSION);
        out.push(self.kind.map_or(NO_KIND, kind_code));
        put_short(out, self.topic.as_bytes());
        put_optional(out, self.key.as_deref());
        out.extend_from_slice(&(self.headers.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for (name, value) in self.headers.iter().take(u16::MAX as usize) {
            put_short(out, name.as_bytes());
            put_optional(out, value.as_deref());
        }
        put_long(out, &self.payload);
        let body = &out[start + FRAME_HEAD_BYTES..];
        let length = body.len() as u32;
        let crc = crc32fast::hash(body);
        out[start..start + 4].copy_from_slice(&length.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        (out.len() - start) as u64
    }

    /// The bytes this record takes on disk.
    pub fn frame_len(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| 2 + name.len() + 1 + value.as_ref().map_or(0, |v| 4 + v.len()))
            .sum();
        (FRAME_HEAD_BYTES
            + 2
            + 2
            + self.topic.len()
            + 1
            + self.key.as_ref().map_or(0, |k| 4 + k.len())
            + 2
            + headers
            + 4
            + self.payload.len()) as u64
    }
}

/// Reads the next frame from `input`.
pub fn read_frame(input: &mut impl Read) -> io::Result<Frame> {
    let mut head = [0u8; FRAME_HEAD_BYTES];
    let got = read_full(input, &mut head)?;
    if got == 0 {
        return Ok(Frame::End);
    }
    if got < FRAME_HEAD_BYTES {
        return Ok(Frame::Torn("the frame's head is cut short"));
    }
    let length = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if length > MAX_BODY_BYTES {
        return Ok(Frame::Torn("the frame's length is implausible"));
    }
    let mut body = vec![0u8; length as usize];
    if read_full(input, &mut body)? < body.len() {
        return Ok(Frame::Torn("the frame's body is cut short"));
    }
    if crc32fast::hash(&body) != crc {
        return Ok(Frame::Torn("the frame's CRC does not match"));
    }
    Ok(match decode_body(&body) {
        Some(record) => Frame::Record(record, (FRAME_HEAD_BYTES + body.len()) as u64),
        None => Frame::Torn("the frame's body is malformed"),
    })
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn kind_code(kind: MessageKind) -> u8 {
    MessageKind::ALL
        .iter()
        .position(|k| *k == kind)
        .expect("every kind is in MessageKind::ALL") as u8
}

fn put_short(out: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_long(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.push(1);
            put_long(out, bytes);
        }
        None => out.push(0),
    }
}

/// A cursor over a body that answers `None` instead of reading past its end.
struct Body<'a>(&'a [u8]);

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(taken)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn short(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    fn long(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn optional(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.long()?.to_vec())),
            _ => None,
        }
    }
}

fn decode_body(body: &[u8]) -> Option<SpooledRecord> {
    let mut body = Body(body);
    if body.u8()? != BODY_VERSION {
        return None;
    }
    let kind = match body.u8()? {
        NO_KIND => None,
        code => Some(*MessageKind::ALL.get(code as usize)?),
    };
    let topic = String::from_utf8(body.short()?.to_vec()).ok()?;
    let key = body.optional()?;
    let count = body.u16()?;
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let name = String::from_utf8(body.short()?.to_vec()).ok()?;
        headers.push((name, body.optional()?));
    }
    let payload = body.long()?.to_vec();
    body.0.is_empty().then_some(SpooledRecord {
        kind,
        topic,
        key,
        headers,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(n: u32) -> SpooledRecord {
        SpooledRecord {
            kind: Some(MessageKind::Tweet),
            topic: "tweets".to_owned(),
            key: Some(n.to_string().into_bytes()),
            headers: vec![
                ("traptor.message_type".to_owned(), Some(b"tweet".to_vec())),
                ("empty".to_owned(), None),
            ],
            payload: format!("{{\"id\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn records_read_back_as_written() {
        let mut bytes = Vec::new();
        let first = sample(1);
        let control = SpooledRecord {
            kind: None,
            key: None,
            headers: Vec::new(),
            ..sample(2)
        };
        let len = first.encode(&mut bytes);
        assert_eq!(len, first.frame_len());
        assert_eq!(control.encode(&mut bytes), control.frame_len());
        let mut input = bytes.as_slice();
        assert_eq!(read_frame(&mut input).unwrap(), Frame::Record(first, len));
        assert!(matches!(read_frame(&mut input).unwrap(), Frame::Record(r, _) if r == control));
        assert_eq!(read_frame(&mut input).unwrap(), Frame::End);
    }

    #[test]
    fn every_cut_of_a_frame_reads_as_torn() {
        let mut bytes = Vec::new();
        sample(7).encode(&mut bytes);
        for cut in 1..bytes.len() {
            let frame = read_frame(&mut &bytes[..cut]).unwrap();
            assert!(matches!(frame, Frame::Torn(_)), "cut at {cut}: {frame:?}");
        }
    }

    #[test]
    fn a_flipped_bit_reads_as_torn() {
        let mut bytes = Vec::new();
        sample(7).encode(&mut bytes);
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert_eq!(
            read_frame(&mut bytes.as_slice()).unwrap(),
            Frame::Torn("the frame's CRC does not match")
        );
    }
}
