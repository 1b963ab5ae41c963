//! End-to-end: real ffmpeg publishes over RTMP; segments must come out near the target
//! duration and decode cleanly with ffprobe/ffmpeg.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::*;
use ingest::{Container, EndReason, IngestConfig, IngestEvent, Refusal};

fn assert_duration(seg: &ingest::Segment, target_us: u64) {
    assert!(
        seg.duration_us.abs_diff(target_us) <= 60_000,
        "segment {} lasts {} us, target {} us",
        seg.sequence,
        seg.duration_us,
        target_us
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_aac_48k_two_second_segments_decode() {
    let mut h = start(config()).await;
    let ff = ffmpeg(&h.url(KEY), 7, 30, 60, 48_000);
    match h.event(15).await {
        IngestEvent::Publishing { stream, .. } => assert_eq!(stream, STREAM),
        other => panic!("expected Publishing, got {other:?}"),
    }
    let mut segs = Vec::new();
    for _ in 0..3 {
        segs.push(h.segment(15).await);
    }
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "ffmpeg failed: {err}");
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(s.sequence, i as u64);
        assert_eq!(s.stream, STREAM);
        assert_eq!(s.rendition, "source");
        assert_eq!(s.discontinuity, i == 0);
        assert_eq!(s.info.codecs, "avc1.64001e");
        assert_eq!((s.info.width, s.info.height), (640, 360));
        assert!((29_000..=31_000).contains(&s.info.frame_rate_milli), "{:?}", s.info);
        assert!(s.info.bandwidth > 0);
        assert_duration(s, 2_000_000);
        assert_decodes(s, &["h264", "aac"]).await;
    }
    // The init segment is the same allocation while unchanged.
    let init = segs[0].init.as_ref().unwrap();
    assert!(segs.iter().all(|s| s.init.as_ref().unwrap().as_ptr() == init.as_ptr()));
    // LL-HLS parts (200 ms by default): each segment is exactly its parts, which came first.
    for seg in segs.iter().chain(h.audio.iter()).take(4) {
        let mine: Vec<&ingest::Part> = h
            .parts
            .iter()
            .filter(|p| p.rendition == seg.rendition && p.sequence == seg.sequence)
            .collect();
        assert!(
            (9..=11).contains(&mine.len()),
            "{} {}: {} parts",
            seg.rendition,
            seg.sequence,
            mine.len()
        );
        let joined: Vec<u8> = mine.iter().flat_map(|p| p.data.to_vec()).collect();
        assert!(
            joined == seg.data[..],
            "{} {} is its parts",
            seg.rendition,
            seg.sequence
        );
        assert!(mine[0].independent);
    }
    // CMAF: the audio is its own rendition, cut with the video and numbered alike; the two
    // tracks decode together.
    let audio = std::mem::take(&mut h.audio);
    assert!(audio.len() >= 2, "{} audio segments", audio.len());
    for (a, v) in audio.iter().zip(&segs) {
        assert_eq!(
            (a.rendition.as_str(), a.sequence, a.discontinuity),
            ("audio", v.sequence, v.discontinuity)
        );
        assert_eq!(a.info.codecs, "mp4a.40.2");
        assert_eq!((a.info.audio_sample_rate, a.info.audio_channels), (48_000, 1));
        assert!(
            a.start_pts_us.abs_diff(v.start_pts_us) < 100_000,
            "{} vs {}",
            a.start_pts_us,
            v.start_pts_us
        );
        assert_decodes(a, &["h264", "aac"]).await;
        assert_decode_together(v, a).await;
    }
    // Publisher gone: the partial segment is flushed, then Unpublished.
    let mut saw_unpublished = false;
    while !saw_unpublished {
        match h.event(10).await {
            IngestEvent::Segment(s) => assert_decodes(&s, &["h264", "aac"]).await,
            IngestEvent::Unpublished { stream, .. } => {
                assert_eq!(stream, STREAM);
                saw_unpublished = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_44k_60fps_one_second_target() {
    // As after a node restart: the timeline resumes where the signed stream stood.
    let cfg = IngestConfig {
        target_duration: Duration::from_secs(1),
        resume_ms: [(STREAM.to_owned(), 60_000)].into(),
        ..config()
    };
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url(KEY), 5, 60, 60, 44_100);
    let mut segs = Vec::new();
    for _ in 0..3 {
        segs.push(h.segment(15).await);
    }
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "ffmpeg failed: {err}");
    assert!(segs[0].start_pts_us >= 60_000_000, "{}", segs[0].start_pts_us);
    for s in &segs {
        assert_duration(s, 1_000_000);
        assert!((59_000..=61_000).contains(&s.info.frame_rate_milli), "{:?}", s.info);
        assert_decodes(s, &["h264", "aac"]).await;
    }
    let audio = std::mem::take(&mut h.audio);
    assert!(!audio.is_empty());
    assert!(audio.iter().all(|a| a.info.audio_sample_rate == 44_100));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpeg_ts_container_decodes() {
    let cfg = IngestConfig {
        container: Container::Ts,
        target_duration: Duration::from_secs(1),
        ..config()
    };
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url(KEY), 4, 30, 30, 48_000);
    let mut segs = Vec::new();
    for _ in 0..2 {
        segs.push(h.segment(15).await);
    }
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "ffmpeg failed: {err}");
    for s in &segs {
        assert!(s.init.is_none());
        assert_eq!(s.data.len() % 188, 0);
        assert_duration(s, 1_000_000);
        assert_decodes(s, &["h264", "aac"]).await;
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused() {
    let cfg = config();
    let stats = cfg.stats.clone();
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url("not-the-key"), 3, 30, 60, 48_000);
    let (ok, _) = finish(ff, 20).await;
    assert!(!ok, "ffmpeg should fail with a wrong key");
    assert!(h.rx.try_recv().is_err(), "no event for a refused publish");
    assert_eq!(stats.refused(Refusal::UnknownKey), 1);
    assert_eq!(stats.publishes(), 0);
    let rest = h.stop().await;
    assert!(rest.is_empty(), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_continues_with_discontinuity() {
    let cfg = IngestConfig {
        target_duration: Duration::from_secs(1),
        ..config()
    };
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url(KEY), 3, 30, 30, 48_000);
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "{err}");
    let mut first = Vec::new();
    let session1 = loop {
        match h.event(10).await {
            IngestEvent::Segment(s) => first.push(s),
            IngestEvent::Unpublished { session, .. } => break session,
            IngestEvent::Publishing { .. } | IngestEvent::Part(_) => {}
        }
    };
    assert!(first.len() >= 2);
    let ff = ffmpeg(&h.url(KEY), 3, 30, 30, 48_000);
    let session2 = match h.event(15).await {
        IngestEvent::Publishing { session, .. } => session,
        other => panic!("expected Publishing, got {other:?}"),
    };
    assert_ne!(session1, session2);
    let s = h.segment(15).await;
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "{err}");
    assert!(s.discontinuity);
    assert_eq!(s.session, session2);
    let last = first.last().unwrap();
    assert_eq!(s.sequence, last.sequence + 1);
    assert!(s.start_pts_us >= last.start_pts_us + last.duration_us - 100_000);
    assert_decodes(&s, &["h264", "aac"]).await;
    h.stop().await;
}

/// The stream key is the publish secret: a second publisher with it takes the stream over at
/// once (the old one may be a half-open connection of the same broadcaster).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_with_the_key_takes_over_and_shutdown_flushes() {
    let cfg = IngestConfig {
        target_duration: Duration::from_secs(1),
        ..config()
    };
    let stats = cfg.stats.clone();
    let mut h = start(cfg).await;
    let owner = ffmpeg(&h.url(KEY), 20, 30, 30, 48_000);
    let owner_session = match h.event(15).await {
        IngestEvent::Publishing { session, .. } => session,
        other => panic!("expected Publishing, got {other:?}"),
    };
    let mut before = vec![h.segment(15).await];
    let newcomer = ffmpeg(&h.url(KEY), 20, 30, 30, 48_000);
    // The old publish flushes its partial segment and ends as taken over; then the new one
    // starts.
    let new_session = loop {
        match h.event(15).await {
            IngestEvent::Segment(s) => {
                assert_eq!(s.session, owner_session);
                before.push(s);
            }
            IngestEvent::Unpublished { session, reason, .. } => {
                assert_eq!((session, reason), (owner_session, EndReason::TakenOver));
            }
            IngestEvent::Publishing { session, .. } => break session,
            IngestEvent::Part(_) => {}
        }
    };
    assert_ne!(new_session, owner_session);
    let s = h.segment(15).await;
    assert_eq!(s.session, new_session);
    assert!(s.discontinuity, "the first segment after a takeover is a discontinuity");
    let last = before.last().unwrap();
    assert_eq!(s.sequence, last.sequence + 1);
    assert!(s.start_pts_us >= last.start_pts_us + last.duration_us - 100_000);
    assert_decodes(&s, &["h264", "aac"]).await;
    // The old connection was closed: its ffmpeg gives up.
    let (ok, _) = finish(owner, 20).await;
    assert!(!ok, "the taken-over ffmpeg sees its connection closed");
    assert_eq!((stats.takeovers(), stats.publishes()), (1, 2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while stats.connections() != (0, 1) {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", stats.connections());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Shutdown while live: the partial segment and Unpublished come out before serve returns.
    let rest = h.stop().await;
    let segs = rest.iter().filter(|e| matches!(e, IngestEvent::Segment(_))).count();
    assert!(segs >= 1, "{rest:?}");
    assert!(matches!(
        rest.last(),
        Some(IngestEvent::Unpublished { session, reason: EndReason::Shutdown, .. }) if *session == new_session
    ));
    if let Some(IngestEvent::Segment(s)) = rest.iter().rev().find(|e| matches!(e, IngestEvent::Segment(_))) {
        assert_decodes(s, &["h264", "aac"]).await;
    }
    let (_ok, _) = finish(newcomer, 20).await;
}
