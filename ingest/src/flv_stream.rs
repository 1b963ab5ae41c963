//! FLV as a byte stream (the file format): a 9-byte header, then tags of an 11-byte header,
//! a body and a 4-byte back pointer. The ABR ladder writes the source to ffmpeg's stdin in
//! this form and reads each rendition back in it. Tag bodies are the same as RTMP message
//! payloads, so [`crate::flv`] parses them.

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

/// Tag type of audio data.
pub(crate) const TAG_AUDIO: u8 = 8;
/// Tag type of video data.
pub(crate) const TAG_VIDEO: u8 = 9;
/// Tag type of script data (`onMetaData`).
#[cfg(test)]
pub(crate) const TAG_SCRIPT: u8 = 18;

const HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
/// The largest body the 24-bit size field can describe.
const MAX_BODY: usize = (1 << 24) - 1;

/// The file header plus the first (zero) back pointer.
pub(crate) fn header(audio: bool, video: bool) -> Bytes {
    let flags = (u8::from(audio) << 2) | u8::from(video);
    let mut b = BytesMut::with_capacity(HEADER_LEN + 4);
    b.put_slice(b"FLV");
    b.put_u8(1);
    b.put_u8(flags);
    b.put_u32(HEADER_LEN as u32);
    b.put_u32(0);
    b.freeze()
}

/// One tag with its back pointer. `ts_ms` is the decode time in milliseconds (32 bits, the
/// high byte in the extension field).
pub(crate) fn tag(kind: u8, ts_ms: u32, body: &[u8]) -> Result<Bytes> {
    if body.len() > MAX_BODY {
        return Err(Error::Limit {
            what: "FLV tag body",
            got: body.len(),
            max: MAX_BODY,
        });
    }
    let len = body.len() as u32;
    let mut b = BytesMut::with_capacity(TAG_HEADER_LEN + body.len() + 4);
    b.put_u8(kind);
    b.put_slice(&len.to_be_bytes()[1..]);
    b.put_slice(&ts_ms.to_be_bytes()[1..]);
    b.put_u8((ts_ms >> 24) as u8);
    b.put_slice(&[0, 0, 0]);
    b.put_slice(body);
    b.put_u32(TAG_HEADER_LEN as u32 + len);
    Ok(b.freeze())
}

/// One tag read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub kind: u8,
    pub ts_ms: u32,
    pub body: Bytes,
}

/// Reads FLV tags from a byte stream, refusing bodies above `max_body`.
#[derive(Debug)]
pub(crate) struct Reader<R> {
    inner: R,
    max_body: usize,
    started: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub(crate) fn new(inner: R, max_body: usize) -> Self {
        Self {
            inner,
            max_body,
            started: false,
        }
    }

    /// The next tag; `None` at a clean end of stream (between tags).
    pub(crate) async fn next(&mut self) -> Result<Option<Tag>> {
        if !self.started {
            let mut h = [0u8; HEADER_LEN];
            if !read_or_eof(&mut self.inner, &mut h).await? {
                return Ok(None);
            }
            if &h[..3] != b"FLV" {
                return Err(Error::invalid("FLV header", "no FLV signature"));
            }
            let offset = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) as usize;
            // Skip any header extension, then the first back pointer.
            let skip = offset
                .checked_sub(HEADER_LEN)
                .filter(|n| *n <= 1024)
                .ok_or_else(|| Error::invalid("FLV header", format!("data offset {offset}")))?
                + 4;
            let mut sink = vec![0u8; skip];
            self.inner.read_exact(&mut sink).await?;
            self.started = true;
        }
        let mut h = [0u8; TAG_HEADER_LEN];
        if !read_or_eof(&mut self.inner, &mut h).await? {
            return Ok(None);
        }
        let kind = h[0] & 0x1f;
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        if len > self.max_body {
            return Err(Error::Limit {
                what: "FLV tag body",
                got: len,
                max: self.max_body,
            });
        }
        let ts_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let mut body = vec![0u8; len + 4];
        self.inner.read_exact(&mut body).await?;
        body.truncate(len);
        Ok(Some(Tag {
            kind,
            ts_ms,
            body: Bytes::from(body),
        }))
    }
}

/// Fills `buf`; `false` when the stream ended before its first byte.
async fn read_or_eof<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = r.read(&mut buf[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(Error::Truncated {
                what: "FLV stream",
                need: buf.len() - got,
            });
        }
        got += n;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let mut stream = header(true, true).to_vec();
        let tags = [
            (TAG_VIDEO, 0u32, vec![0x17, 0, 0, 0, 0, 1, 2]),
            (TAG_AUDIO, 23, vec![0xaf, 1, 9]),
            (TAG_VIDEO, 0x0123_4567, vec![]),
            (TAG_SCRIPT, u32::MAX, vec![2, 0, 0]),
        ];
        for (k, ts, body) in &tags {
            stream.extend_from_slice(&tag(*k, *ts, body).unwrap());
        }
        let mut r = Reader::new(&stream[..], 1024);
        for (k, ts, body) in &tags {
            let t = r.next().await.unwrap().unwrap();
            assert_eq!((t.kind, t.ts_ms, &t.body[..]), (*k, *ts, &body[..]));
        }
        assert!(r.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn bounded_and_strict() {
        let mut stream = header(false, true).to_vec();
        stream.extend_from_slice(&tag(TAG_VIDEO, 0, &[0; 100]).unwrap());
        let mut r = Reader::new(&stream[..], 99);
        assert!(matches!(r.next().await, Err(Error::Limit { got: 100, .. })));
        // Every truncation is an error or a clean end, never a panic.
        for n in 0..stream.len() {
            let mut r = Reader::new(&stream[..n], 1024);
            let res = r.next().await;
            let clean_end = n == 0 || n == HEADER_LEN + 4;
            assert!(
                clean_end && matches!(res, Ok(None)) || res.is_err(),
                "prefix {n}: {res:?}"
            );
        }
        let mut r = Reader::new(&b"GIF89a\0\0\0\0\0\0\0"[..], 1024);
        assert!(r.next().await.is_err());
        assert!(tag(TAG_VIDEO, 0, &vec![0; MAX_BODY + 1]).is_err());
    }
}
