//! Shared by the fuzz targets (each includes it with `mod common;`).

#![allow(dead_code)]

use std::sync::Once;

use std::collections::HashMap;

use ingest::{Container, IngestEvent, Part};

/// libfuzzer-sys turns every panic into an abort, even one the code under test catches. The
/// ingest calls rml_rtmp only inside `catch_unwind` (ingest/src/rtmp.rs) because rml_rtmp 0.8
/// has known reachable panics; those are contained by design and cost one connection. So a
/// panic raised in rml_rtmp or rml_amf0 code, or anywhere under `ingest::rtmp::guarded`,
/// unwinds to that `catch_unwind`; every other panic is a finding and aborts.
pub fn contain_rml_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_rml = info
                .location()
                .is_some_and(|l| l.file().contains("/rml_rtmp-") || l.file().contains("/rml_amf0-"));
            if in_rml || inside_guarded() {
                return;
            }
            default(info);
            std::process::abort();
        }));
    });
}

/// Whether the panicking call runs under `ingest::rtmp::guarded` (its file is on the stack;
/// with line tables only, inlined frames show the file but not always the module path).
fn inside_guarded() -> bool {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    bt.contains("rtmp::guarded") || bt.contains("/ingest/src/rtmp.rs:")
}

/// What every stream of parts and segments must satisfy, whatever the input: per rendition,
/// increasing sequence numbers; well-formed TS or CMAF; and each fMP4 segment that had parts
/// is exactly their concatenation, in order.
pub fn check_media<'a>(events: impl IntoIterator<Item = &'a IngestEvent>) {
    let mut next_seq: HashMap<&str, u64> = HashMap::new();
    let mut parts: HashMap<(&str, u64), Vec<&Part>> = HashMap::new();
    for ev in events {
        let s = match ev {
            IngestEvent::Part(p) => {
                assert!(!p.data.is_empty(), "empty part");
                let list = parts.entry((p.rendition.as_str(), p.sequence)).or_default();
                assert_eq!(usize::from(p.index), list.len(), "part indices are consecutive");
                let boxes: &[[u8; 4]] = if p.index == 0 { &[*b"styp", *b"moof", *b"mdat"] } else { &[*b"moof", *b"mdat"] };
                assert_boxes(&p.data, boxes);
                list.push(p);
                continue;
            }
            IngestEvent::Segment(s) => s,
            _ => continue,
        };
        assert!(!s.data.is_empty(), "empty segment {}", s.sequence);
        // A cut numbers the segments of every rendition alike; a rendition with no samples in
        // a cut (audio that stalled) has no segment for it, so numbers only increase.
        if let Some(n) = next_seq.get(s.rendition.as_str()) {
            assert!(s.sequence >= *n, "segment sequence numbers increase per rendition");
        }
        next_seq.insert(&s.rendition, s.sequence + 1);
        match s.container {
            Container::Ts => {
                assert!(s.init.is_none());
                assert_eq!(s.data.len() % 188, 0, "TS segments are whole packets");
                assert!(s.data.chunks(188).all(|p| p[0] == 0x47), "TS sync bytes");
            }
            Container::Fmp4 => {
                let init = s.init.as_ref().expect("fMP4 segments carry their init segment");
                assert_boxes(init, &[*b"ftyp", *b"moov"]);
                let mine = parts.remove(&(s.rendition.as_str(), s.sequence)).unwrap_or_default();
                if mine.is_empty() {
                    assert_boxes(&s.data, &[*b"styp", *b"moof", *b"mdat"]);
                } else {
                    let joined: Vec<u8> = mine.iter().flat_map(|p| p.data.iter().copied()).collect();
                    assert!(joined == s.data[..], "a segment is the concatenation of its parts");
                }
            }
        }
    }
}

/// `data` is exactly a sequence of top-level ISO BMFF boxes with these types.
fn assert_boxes(data: &[u8], types: &[[u8; 4]]) {
    let mut rest = data;
    for t in types {
        assert!(rest.len() >= 8, "box {} truncated", String::from_utf8_lossy(t));
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert_eq!(&rest[4..8], t, "box order");
        assert!(
            size >= 8 && size <= rest.len(),
            "box {} size {size}",
            String::from_utf8_lossy(t)
        );
        rest = &rest[size..];
    }
    assert!(rest.is_empty(), "{} bytes after the last box", rest.len());
}

/// Events of one connection: segments are well formed and framed by Publishing/Unpublished.
pub fn check_events(events: &[IngestEvent]) {
    let mut publishing = false;
    for ev in events {
        match ev {
            IngestEvent::Publishing { .. } => {
                assert!(!publishing, "one publish per connection");
                publishing = true;
            }
            IngestEvent::Segment(_) | IngestEvent::Part(_) => assert!(publishing, "media outside a publish"),
            IngestEvent::Unpublished { .. } => {
                assert!(publishing, "unpublish without publish");
                publishing = false;
            }
        }
    }
    assert!(!publishing, "a publish that never ended");
    check_media(events);
}
