//! A pre-scan of the RTMP chunk stream that enforces our bounds before rml_rtmp sees a byte.
//!
//! rml_rtmp 0.8 reassembles each message before we see it, applies Set Chunk Size silently,
//! and decodes AMF0 recursively. So the guard reads the same bytes first, following rml_rtmp's
//! `ChunkDeserializer` step for step (its quirks included: one payload buffer shared by all
//! chunk streams, a chunk of a message no longer than the chunk size is read whole), and
//! refuses the connection when
//! - a chunk header declares a message longer than `max_message_size`,
//! - a Set Chunk Size asks for 0 or more than [`MAX_CHUNK_SIZE`] (nginx-rtmp's bound),
//! - an AMF message (command, data) is longer than [`MAX_AMF_MESSAGE`] or nests deeper than
//!   [`amf::MAX_DEPTH`](crate::amf::MAX_DEPTH),
//! - or the header sequence is one rml_rtmp would panic or fail on.
//!
//! Memory per connection is then bounded by about twice `max_message_size` (rml_rtmp's input
//! buffer and its payload copy) plus [`MAX_AMF_MESSAGE`] here.

use std::collections::HashMap;

use crate::amf;
use crate::error::{Error, Result};

/// Largest Set Chunk Size accepted: nginx-rtmp's `NGX_RTMP_MAX_CHUNK_SIZE`.
pub const MAX_CHUNK_SIZE: u32 = 10 * 1024 * 1024;
/// Largest AMF command or data message (`connect`, `publish`, `onMetaData` are < 4 KiB).
pub const MAX_AMF_MESSAGE: usize = 1024 * 1024;

/// rml_rtmp's chunk size before any Set Chunk Size.
const INITIAL_CHUNK_SIZE: usize = 128;
/// A 24-bit timestamp field of this value means a 4-byte extended timestamp follows.
const EXTENDED_TIMESTAMP: u32 = 0x00ff_ffff;

const SET_CHUNK_SIZE: u8 = 1;
const AMF3_DATA: u8 = 15;
const AMF3_COMMAND: u8 = 17;
const AMF0_DATA: u8 = 18;
const AMF0_COMMAND: u8 = 20;

/// Message types whose payload the guard must read: the chunk size and AMF.
fn inspected(type_id: u8) -> bool {
    matches!(
        type_id,
        SET_CHUNK_SIZE | AMF3_DATA | AMF3_COMMAND | AMF0_DATA | AMF0_COMMAND
    )
}

/// What rml_rtmp keeps per chunk stream (`ChunkHeader`), as far as framing needs it.
#[derive(Debug, Clone, Copy, Default)]
struct Header {
    csid: u32,
    timestamp_field: u32,
    message_length: u32,
    type_id: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Full,
    NoStreamId,
    DeltaOnly,
    Empty,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    BasicHeader,
    Timestamp,
    Length,
    TypeId,
    StreamId,
    ExtendedTimestamp,
    Payload,
}

/// One completed message as the guard framed it: `(type id, payload length)`.
pub type Framed = (u8, usize);

/// The pre-scan; feed it every byte after the handshake, in order, before rml_rtmp.
#[derive(Debug)]
pub struct ChunkGuard {
    max_message: usize,
    chunk_size: usize,
    stage: Stage,
    format: Format,
    header: Header,
    previous: HashMap<u32, Header>,
    /// Length of rml_rtmp's (shared) payload buffer.
    payload_len: usize,
    /// The current message's payload while it may be inspected; `None` once it is known not
    /// to be (a media chunk) or it grew past [`MAX_AMF_MESSAGE`].
    payload: Option<Vec<u8>>,
    /// Payload length of the current chunk, and the bytes of it still to come.
    chunk_len: usize,
    chunk_left: usize,
    /// Header bytes not yet complete.
    pending: Vec<u8>,
    /// Offsets in the slice last fed where a message ended.
    ends: Vec<usize>,
    completed: bool,
    framed: Option<Vec<Framed>>,
    failed: bool,
}

impl ChunkGuard {
    /// A guard refusing messages longer than `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self {
            max_message,
            chunk_size: INITIAL_CHUNK_SIZE,
            stage: Stage::BasicHeader,
            format: Format::Full,
            header: Header::default(),
            previous: HashMap::new(),
            payload_len: 0,
            payload: Some(Vec::new()),
            chunk_len: 0,
            chunk_left: 0,
            pending: Vec::with_capacity(16),
            ends: Vec::new(),
            completed: false,
            framed: None,
            failed: false,
        }
    }

    /// Also records every completed message (for differential fuzzing against rml_rtmp).
    #[doc(hidden)]
    pub fn recording(mut self) -> Self {
        self.framed = Some(Vec::new());
        self
    }

    /// Messages completed so far, when [`recording`](Self::recording).
    #[doc(hidden)]
    pub fn framed(&self) -> &[Framed] {
        self.framed.as_deref().unwrap_or_default()
    }

    /// Scans `bytes`; an error means the connection must be closed (every later call fails too).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.ends.clear();
        if self.failed {
            return Err(Error::Rtmp("chunk stream already refused".into()));
        }
        let mut at = 0;
        while at < bytes.len() {
            match self.step(&bytes[at..]) {
                Ok(used) => at += used,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
            if std::mem::take(&mut self.completed) {
                self.ends.push(at);
            }
        }
        Ok(())
    }

    /// Where in the slice last passed to [`feed`](Self::feed) each message completed
    /// (offsets just past its last byte, ascending).
    pub fn message_ends(&self) -> &[usize] {
        &self.ends
    }

    /// Consumes a prefix of `bytes` (at least one byte) and returns its length.
    fn step(&mut self, bytes: &[u8]) -> Result<usize> {
        if self.stage == Stage::Payload {
            let n = self.chunk_left.min(bytes.len());
            if let Some(p) = &mut self.payload {
                p.extend_from_slice(&bytes[..n]);
            }
            self.chunk_left -= n;
            if self.chunk_left == 0 {
                self.end_chunk()?;
            }
            return Ok(n);
        }
        let need = self.header_bytes_needed();
        let take = need.saturating_sub(self.pending.len()).min(bytes.len());
        self.pending.extend_from_slice(&bytes[..take]);
        // Asked again: a basic header's first byte says whether 1 or 2 more follow.
        if self.pending.len() == self.header_bytes_needed() {
            let field = std::mem::take(&mut self.pending);
            self.header_field(&field)?;
            self.pending = field;
            self.pending.clear();
        }
        Ok(take)
    }

    /// Bytes the current header field needs (the basic header's length depends on its first byte).
    fn header_bytes_needed(&self) -> usize {
        match self.stage {
            Stage::BasicHeader => match self.pending.first().map(|b| b & 0x3f) {
                None => 1,
                Some(0) => 2,
                Some(1) => 3,
                Some(_) => 1,
            },
            Stage::Timestamp | Stage::Length => 3,
            Stage::TypeId => 1,
            Stage::StreamId | Stage::ExtendedTimestamp => 4,
            Stage::Payload => 0,
        }
    }

    fn header_field(&mut self, f: &[u8]) -> Result<()> {
        match self.stage {
            Stage::BasicHeader => {
                self.format = match f[0] >> 6 {
                    0 => Format::Full,
                    1 => Format::NoStreamId,
                    2 => Format::DeltaOnly,
                    _ => Format::Empty,
                };
                let csid = match f.len() {
                    1 => u32::from(f[0] & 0x3f),
                    2 => u32::from(f[1]) + 64,
                    _ => u32::from(f[2]) * 256 + u32::from(f[1]) + 64,
                };
                self.header = if self.format == Format::Full {
                    Header {
                        csid,
                        ..Header::default()
                    }
                } else {
                    self.previous
                        .remove(&csid)
                        .ok_or_else(|| Error::Rtmp(format!("chunk on stream {csid} without a previous header")))?
                };
                self.stage = Stage::Timestamp;
                self.skip_absent_fields()
            }
            Stage::Timestamp => {
                self.header.timestamp_field = u24(f);
                self.stage = Stage::Length;
                self.skip_absent_fields()
            }
            Stage::Length => {
                let length = u24(f);
                if length as usize > self.max_message {
                    return Err(Error::Limit {
                        what: "RTMP message length",
                        got: length as usize,
                        max: self.max_message,
                    });
                }
                self.header.message_length = length;
                self.stage = Stage::TypeId;
                Ok(())
            }
            Stage::TypeId => {
                self.header.type_id = f[0];
                self.stage = Stage::StreamId;
                self.skip_absent_fields()
            }
            Stage::StreamId => {
                self.stage = Stage::ExtendedTimestamp;
                self.skip_absent_fields()
            }
            Stage::ExtendedTimestamp => self.start_payload(),
            Stage::Payload => Ok(()),
        }
    }

    /// Moves past the fields this header format does not carry, as rml_rtmp does.
    fn skip_absent_fields(&mut self) -> Result<()> {
        loop {
            let absent = match self.stage {
                Stage::Timestamp => self.format == Format::Empty,
                Stage::Length | Stage::TypeId => matches!(self.format, Format::DeltaOnly | Format::Empty),
                Stage::StreamId => self.format != Format::Full,
                Stage::ExtendedTimestamp => self.header.timestamp_field < EXTENDED_TIMESTAMP,
                Stage::BasicHeader | Stage::Payload => return Ok(()),
            };
            if !absent {
                return Ok(());
            }
            self.stage = match self.stage {
                Stage::Timestamp => Stage::Length,
                Stage::Length => Stage::TypeId,
                Stage::TypeId => Stage::StreamId,
                Stage::StreamId => Stage::ExtendedTimestamp,
                _ => return self.start_payload(),
            };
        }
    }

    /// The header is complete: work out the chunk's payload length as rml_rtmp does.
    fn start_payload(&mut self) -> Result<()> {
        let length = self.header.message_length as usize;
        // rml_rtmp computes `length - payload` unchecked: it panics where this fails.
        let remaining = length.checked_sub(self.payload_len).ok_or_else(|| {
            Error::Rtmp(format!(
                "message length {length} below the {} bytes already received",
                self.payload_len
            ))
        })?;
        let chunk = if length > self.chunk_size {
            remaining.min(self.chunk_size)
        } else {
            length
        };
        if !inspected(self.header.type_id) && self.payload_len == 0 {
            // A media message: never buffered.
            self.payload = None;
        }
        self.chunk_len = chunk;
        self.chunk_left = chunk;
        self.stage = Stage::Payload;
        if chunk == 0 {
            self.end_chunk()?;
        }
        Ok(())
    }

    fn end_chunk(&mut self) -> Result<()> {
        self.payload_len += self.chunk_len;
        if self.payload.as_ref().is_some_and(|p| p.len() > MAX_AMF_MESSAGE) {
            self.payload = None;
        }
        let header = self.header;
        if self.payload_len == header.message_length as usize {
            let payload = self.payload.replace(Vec::new());
            let len = std::mem::take(&mut self.payload_len);
            self.completed = true;
            if let Some(f) = &mut self.framed {
                f.push((header.type_id, len));
            }
            self.message(header.type_id, len, payload)?;
        }
        self.previous.insert(header.csid, header);
        self.stage = Stage::BasicHeader;
        Ok(())
    }

    /// A message is complete; check what rml_rtmp is about to decode.
    fn message(&mut self, type_id: u8, len: usize, payload: Option<Vec<u8>>) -> Result<()> {
        if !inspected(type_id) {
            return Ok(());
        }
        let Some(payload) = payload.filter(|p| p.len() == len) else {
            // Larger than MAX_AMF_MESSAGE, or its first chunk was not an AMF chunk.
            return Err(Error::Limit {
                what: "RTMP command or data message",
                got: len,
                max: MAX_AMF_MESSAGE,
            });
        };
        match type_id {
            SET_CHUNK_SIZE => {
                let size = payload
                    .get(..4)
                    .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .ok_or_else(|| Error::Rtmp("short Set Chunk Size".into()))?;
                if size == 0 || size > MAX_CHUNK_SIZE {
                    return Err(Error::Limit {
                        what: "RTMP chunk size",
                        got: size as usize,
                        max: MAX_CHUNK_SIZE as usize,
                    });
                }
                self.chunk_size = size as usize;
            }
            _ => {
                // rml_rtmp drops one leading zero byte of an AMF3 command.
                let body = match (type_id, payload.first()) {
                    (AMF3_COMMAND, Some(0)) => &payload[1..],
                    _ => &payload[..],
                };
                if !amf::depth_ok(body) {
                    return Err(Error::Limit {
                        what: "AMF nesting depth",
                        got: amf::MAX_DEPTH + 1,
                        max: amf::MAX_DEPTH,
                    });
                }
            }
        }
        Ok(())
    }
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk0(csid: u8, type_id: u8, len: u32, payload: &[u8]) -> Vec<u8> {
        let mut c = vec![csid & 0x3f, 0, 0, 0];
        c.extend_from_slice(&len.to_be_bytes()[1..]);
        c.push(type_id);
        c.extend_from_slice(&[0, 0, 0, 0]);
        c.extend_from_slice(payload);
        c
    }

    #[test]
    fn frames_messages_across_chunks_and_chunk_sizes() {
        let mut g = ChunkGuard::new(1 << 20).recording();
        // 300-byte video message in 128-byte chunks: type 0, then two type 3 continuations.
        let mut bytes = chunk0(4, 9, 300, &[0x17; 128]);
        bytes.push(0xc4);
        bytes.extend_from_slice(&[0x27; 128]);
        bytes.push(0xc4);
        bytes.extend_from_slice(&[0x27; 44]);
        // Set Chunk Size 4096, then a 1000-byte message in one chunk, then a type 1 header.
        bytes.extend(chunk0(2, 1, 4, &4096u32.to_be_bytes()));
        bytes.extend(chunk0(6, 8, 1000, &[0xaf; 1000]));
        bytes.extend_from_slice(&[0x46, 0, 0, 23, 0, 0, 10, 8]);
        bytes.extend_from_slice(&[0xaf; 10]);
        // Fed one byte at a time and all at once: the same framing.
        for piece in [1, bytes.len()] {
            let mut g2 = ChunkGuard::new(1 << 20).recording();
            for part in bytes.chunks(piece) {
                g2.feed(part).unwrap();
            }
            assert_eq!(g2.framed(), [(9, 300), (1, 4), (8, 1000), (8, 10)]);
        }
        g.feed(&bytes).unwrap();
        assert_eq!(g.chunk_size, 4096);
        let c0 = 12 + 128 + 1 + 128 + 1 + 44;
        assert_eq!(g.message_ends(), [c0, c0 + 16, c0 + 16 + 1012, bytes.len()]);
    }

    #[test]
    fn refuses_what_would_cost_memory_or_the_process() {
        let mut g = ChunkGuard::new(8 << 20);
        let err = g.feed(&chunk0(4, 9, 0x00ff_ffff, &[])).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "RTMP message length",
                    ..
                }
            ),
            "{err}"
        );
        assert!(g.feed(&[0]).is_err(), "stays refused");

        for size in [0u32, MAX_CHUNK_SIZE + 1, 0x7fff_ffff] {
            let mut g = ChunkGuard::new(8 << 20);
            let err = g.feed(&chunk0(2, 1, 4, &size.to_be_bytes())).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::Limit {
                        what: "RTMP chunk size",
                        ..
                    }
                ),
                "{size}: {err}"
            );
        }
        let mut g = ChunkGuard::new(8 << 20);
        g.feed(&chunk0(2, 1, 4, &MAX_CHUNK_SIZE.to_be_bytes())).unwrap();

        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&[0x03, 0, 1, b'a']);
        }
        let mut g = ChunkGuard::new(8 << 20);
        let err = g.feed(&chunk0(3, 20, deep.len() as u32, &deep[..128])).and_then(|()| {
            let mut rest = vec![0xc3];
            rest.extend_from_slice(&deep[128..]);
            g.feed(&rest)
        });
        assert!(
            matches!(
                err,
                Err(Error::Limit {
                    what: "AMF nesting depth",
                    ..
                })
            ),
            "{err:?}"
        );

        let mut g = ChunkGuard::new(8 << 20);
        g.feed(&chunk0(2, 1, 4, &MAX_CHUNK_SIZE.to_be_bytes())).unwrap();
        let big = vec![0x05; MAX_AMF_MESSAGE + 1];
        let err = g.feed(&chunk0(3, 18, big.len() as u32, &big)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "RTMP command or data message",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_what_rml_rtmp_panics_or_fails_on() {
        // A type 1 header that shrinks the length below what is already received.
        let mut g = ChunkGuard::new(1 << 20);
        let mut bytes = chunk0(3, 9, 300, &[0x27; 128]);
        bytes.extend_from_slice(&[0x40 | 3, 0, 0, 0, 0, 0, 10, 9]);
        assert!(g.feed(&bytes).is_err());
        // A continuation on a chunk stream that never had a header.
        assert!(ChunkGuard::new(1 << 20).feed(&[0xc5, 1, 2]).is_err());
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        // Chunk stream 64 (0x00, 0) and 320 (0x01, 0, 1), each with a 2-byte message, then a
        // type 3 continuation-free second message on 320 via a type 2 header (0x80 | 1, 0, 1).
        let mut c = vec![0x00, 0, 0, 0, 0, 0, 0, 2, 8, 1, 0, 0, 0, 0xaf, 1];
        c.extend_from_slice(&[0x01, 0, 1, 0, 0, 0, 0, 0, 3, 9, 1, 0, 0, 0, 0x27, 1, 2]);
        c.extend_from_slice(&[0x81, 0, 1, 0, 0, 33, 0x27, 1, 3]);
        for piece in [1, 2, c.len()] {
            let mut g = ChunkGuard::new(1 << 20).recording();
            for part in c.chunks(piece) {
                g.feed(part).unwrap();
            }
            assert_eq!(g.framed(), [(8, 2), (9, 3), (9, 3)], "fed {piece} at a time");
        }
    }

    #[test]
    fn extended_timestamps_are_skipped() {
        let mut g = ChunkGuard::new(1 << 20).recording();
        let mut c = vec![4, 0xff, 0xff, 0xff, 0, 0, 2, 9, 1, 0, 0, 0];
        c.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]); // extended timestamp
        c.extend_from_slice(&[0x17, 0x01]);
        // A type 3 chunk inherits the extended timestamp field: 4 more bytes, then payload.
        c.extend_from_slice(&[0xc4, 0x01, 0x00, 0x00, 0x00, 0x27, 0x01]);
        g.feed(&c).unwrap();
        assert_eq!(g.framed(), [(9, 2), (9, 2)]);
    }
}
