//! Inputs the fuzz targets (fuzz/) found, kept as regression tests. Each file under
//! tests/fuzz_cases/<target>/ is replayed the way its target runs it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use ingest::Container;
use ingest::fuzzing::{ChunkGuard, config, rtmp_connection};
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::messages::RtmpMessage;

fn cases(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_cases")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

/// Messages rml_rtmp frames, driven as its ServerSession drives the deserializer.
fn rml_frames(data: &[u8]) -> Vec<(u8, usize)> {
    let mut d = ChunkDeserializer::new();
    let mut out = Vec::new();
    let mut input = data;
    while let Ok(Ok(Some(p))) = catch_unwind(AssertUnwindSafe(|| d.get_next_message(input))) {
        input = &[];
        out.push((p.type_id, p.data.len()));
        if p.type_id == 1 {
            match p.to_rtmp_message() {
                Ok(RtmpMessage::SetChunkSize { size }) if d.set_max_chunk_size(size as usize).is_ok() => {}
                _ => break,
            }
        }
    }
    out
}

/// rtmp_chunks: the guard frames exactly as rml_rtmp. Found: a 2- or 3-byte basic header
/// (chunk stream id >= 64) was read as a 1-byte one.
#[test]
fn guard_frames_like_rml_rtmp() {
    for (path, data) in cases("rtmp_chunks") {
        let mut g = ChunkGuard::new(4096).recording();
        let _ = g.feed(&data);
        let r = rml_frames(&data);
        let n = g.framed().len().min(r.len());
        assert!(n > 0, "{}", path.display());
        assert_eq!(g.framed()[..n], r[..n], "{}", path.display());
    }
}

/// rtmp_session: whole connections. Found: rml_rtmp 0.8 panics on an AMF0 command with
/// fewer than three values (`drain(..3)` in amf0_command.rs); contained by catch_unwind,
/// the connection closes and nothing is published.
#[test]
fn hostile_connections_end_cleanly() {
    for (path, data) in cases("rtmp_session") {
        let Some((&mode, stream)) = data.split_first() else {
            continue;
        };
        let container = if mode & 1 == 1 { Container::Ts } else { Container::Fmp4 };
        let events = rtmp_connection(config(container), stream).unwrap();
        assert!(events.is_empty(), "{}: {events:?}", path.display());
    }
}
