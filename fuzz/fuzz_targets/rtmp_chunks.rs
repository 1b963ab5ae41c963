//! Differential: the chunk guard must frame the chunk stream exactly as rml_rtmp's
//! ChunkDeserializer does (driven as rml_rtmp's ServerSession drives it, Set Chunk Size
//! included), up to where either stops. If they ever disagreed, the guard's bounds would be
//! checked on messages rml_rtmp never builds, and the real ones would go unchecked.

#![no_main]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use ingest::fuzzing::ChunkGuard;
use libfuzzer_sys::fuzz_target;
use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::messages::RtmpMessage;

/// Small, so the length bound is reachable with short inputs.
const MAX_MESSAGE: usize = 4096;

/// Messages rml_rtmp frames from `data`, and whether it stopped on an error or a panic.
fn rml_frames(data: &[u8]) -> (Vec<(u8, usize)>, bool) {
    let mut d = ChunkDeserializer::new();
    let mut out = Vec::new();
    let mut input = data;
    loop {
        let next = catch_unwind(AssertUnwindSafe(|| d.get_next_message(input)));
        input = &[];
        match next {
            Ok(Ok(Some(payload))) => {
                out.push((payload.type_id, payload.data.len()));
                if payload.type_id == 1 {
                    // As ServerSession::handle_set_chunk_size.
                    match payload.to_rtmp_message() {
                        Ok(RtmpMessage::SetChunkSize { size }) => {
                            if d.set_max_chunk_size(size as usize).is_err() {
                                return (out, true);
                            }
                        }
                        _ => return (out, true),
                    }
                }
            }
            Ok(Ok(None)) => return (out, false),
            Ok(Err(_)) | Err(_) => return (out, true),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    common::contain_rml_panics();
    let mut guard = ChunkGuard::new(MAX_MESSAGE).recording();
    let accepted = guard.feed(data).is_ok();
    let g = guard.framed();
    let (r, rml_stopped) = rml_frames(data);
    let n = g.len().min(r.len());
    assert_eq!(g[..n], r[..n], "guard and rml_rtmp frame differently");
    if accepted {
        // Everything rml_rtmp built, the guard saw and checked.
        assert!(
            r.len() <= g.len(),
            "rml_rtmp built a message the guard did not see: {r:?} vs {g:?}"
        );
        if !rml_stopped {
            assert_eq!(g, &r[..], "both read the whole input");
        }
    }
    for &(_, len) in &g[..n] {
        assert!(len <= MAX_MESSAGE);
    }
});
