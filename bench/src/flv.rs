//! Reads the tags of an FLV file (as `ffmpeg -f flv` writes it).

use bytes::Bytes;

/// One FLV tag.
#[derive(Debug, Clone)]
pub struct Tag {
    /// 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Milliseconds.
    pub ts: u32,
    pub body: Bytes,
}

impl Tag {
    /// An H.264 keyframe (not the sequence header): where both systems cut segments.
    pub fn is_keyframe(&self) -> bool {
        self.kind == 9 && self.body.len() > 1 && self.body[0] == 0x17 && self.body[1] == 1
    }
}

pub fn read(data: &[u8]) -> Result<Vec<Tag>, String> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        return Err("not an FLV file".into());
    }
    let header = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut at = header + 4;
    let mut tags = Vec::new();
    while at + 11 <= data.len() {
        let h = &data[at..at + 11];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let end = at + 11 + size;
        if end > data.len() {
            return Err(format!("tag at {at} truncated"));
        }
        tags.push(Tag {
            kind: h[0] & 0x1f,
            ts,
            body: Bytes::copy_from_slice(&data[at + 11..end]),
        });
        at = end + 4;
    }
    Ok(tags)
}
