//! FLV video/audio tag bodies (classic and Enhanced RTMP) through the demuxer and segmenter.
//! The input is an FLV file (so `ffmpeg -f flv` output is a seed): 9-byte header, then
//! tags of an 11-byte header + body + 4-byte previous size. Header byte 4 bit 7 (reserved in
//! FLV) picks MPEG-TS; tag type 8 is audio, 9 video, 18 script data (its first bytes set an
//! `onMetaData` size). Truncated tags are cut to what is there.

#![no_main]

mod common;

use std::time::Duration;

use ingest::{Container, IngestEvent};
use ingest::fuzzing::FlvSegmenter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let container = if data[4] & 0x80 != 0 {
        Container::Ts
    } else {
        Container::Fmp4
    };
    let mut seg = FlvSegmenter::new(container, Duration::from_millis(200), 256 * 1024);
    let mut events = Vec::new();
    let mut rest = &data[9.min(data.len())..];
    rest = &rest[4.min(rest.len())..];
    while rest.len() >= 11 {
        let kind = rest[0] & 0x1f;
        let size = u32::from_be_bytes([0, rest[1], rest[2], rest[3]]) as usize;
        let ts = u32::from_be_bytes([rest[7], rest[4], rest[5], rest[6]]);
        let body = &rest[11..(11 + size).min(rest.len())];
        let result = match kind {
            8 => seg.audio(ts, body),
            9 => seg.video(ts, body),
            18 => {
                if body.len() >= 4 {
                    let w = u32::from(u16::from_be_bytes([body[0], body[1]]));
                    let h = u32::from(u16::from_be_bytes([body[2], body[3]]));
                    seg.metadata_size(w, h);
                }
                Ok(Vec::new())
            }
            _ => Ok(Vec::new()),
        };
        events.extend(seg.parts().into_iter().map(IngestEvent::Part));
        match result {
            Ok(out) => events.extend(out.into_iter().map(IngestEvent::Segment)),
            // The connection would close here: flush, as end_publish does.
            Err(_) => break,
        }
        rest = &rest[(11 + size + 4).min(rest.len())..];
    }
    if let Ok(last) = seg.flush() {
        events.extend(seg.parts().into_iter().map(IngestEvent::Part));
        events.extend(last.into_iter().map(IngestEvent::Segment));
    }
    common::check_media(&events);
});
