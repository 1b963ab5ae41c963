//! The fuzzing entry point reaches the whole pipeline: a recorded ffmpeg publish (the
//! rtmp_session seed) replayed through `ingest::fuzzing::rtmp_connection` yields a publish
//! with segments in both containers, and the chunk guard frames it without complaint.
//!
//! The replay sends everything at once, so it is also a client that pipelines connect,
//! createStream and publish without waiting for replies: served in order, message by message.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use ingest::fuzzing::{ChunkGuard, config, rtmp_connection};
use ingest::{Container, IngestEvent};

fn seed(path: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(path);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e} (fuzz/seeds/make-seeds.sh makes it)", p.display()))
}

#[test]
fn recorded_publish_replays_into_segments() {
    for (file, container) in [("av-fmp4.bin", Container::Fmp4), ("av-ts.bin", Container::Ts)] {
        let input = seed(&format!("rtmp_session/{file}"));
        let events = rtmp_connection(config(container), &input[1..]).unwrap();
        assert!(
            matches!(events.first(), Some(IngestEvent::Publishing { .. })),
            "{events:?}"
        );
        assert!(matches!(events.last(), Some(IngestEvent::Unpublished { .. })));
        let segments: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                IngestEvent::Segment(s) => Some(s),
                _ => None,
            })
            .collect();
        assert!(segments.len() >= 4, "{file}: {} segments", segments.len());
        assert!(segments.iter().all(|s| s.container == container));
        // MPEG-TS muxes the audio into every segment; CMAF has it as a rendition of its own.
        let with_audio = |s: &&&ingest::Segment| s.info.codecs.contains("mp4a");
        match container {
            Container::Ts => assert!(segments.iter().all(|s| with_audio(&s))),
            Container::Fmp4 => {
                let audio: Vec<_> = segments.iter().filter(|s| s.audio_group).collect();
                assert!(audio.len() * 2 == segments.len(), "{file}: one audio segment per cut");
                assert!(audio.iter().all(with_audio));
            }
        }
    }
}

#[test]
fn guard_frames_a_real_publish() {
    let mut g = ChunkGuard::new(8 << 20).recording();
    g.feed(&seed("rtmp_chunks/av.bin")).unwrap();
    let types: Vec<u8> = g.framed().iter().map(|&(t, _)| t).collect();
    // Set Chunk Size, connect/createStream/publish commands, metadata, then audio and video.
    for t in [1, 20, 18, 8, 9] {
        assert!(types.contains(&t), "type {t} missing from {types:?}");
    }
}
