//! The ABR ladder end to end with real ffmpeg: rungs below the source come out as their own
//! renditions, cut at the source's keyframes, and decode; a rung above the source is skipped;
//! ffmpeg dying mid-stream is restarted without touching the source; a missing ffmpeg is a
//! start-up error.

#![cfg(unix)]
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ingest::{IngestConfig, IngestEvent, Segment, parse_ladder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Start times and durations must match the source's within this (AAC frames are ~21 ms).
const ALIGN_US: u64 = 50_000;

/// Collects segments until the session's Unpublished (which comes after the rungs' last ones).
async fn until_unpublished(h: &mut Harness, secs: u64) -> Vec<Segment> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut segs = Vec::new();
    loop {
        let ev = tokio::time::timeout_at(deadline, h.rx.recv())
            .await
            .expect("timed out waiting for Unpublished")
            .expect("event channel closed");
        match ev {
            IngestEvent::Segment(s) => segs.push(s),
            IngestEvent::Unpublished { .. } => return segs,
            IngestEvent::Publishing { .. } | IngestEvent::Part(_) => {}
        }
    }
}

fn rendition<'a>(segs: &'a [Segment], name: &str) -> Vec<&'a Segment> {
    segs.iter().filter(|s| s.rendition == name).collect()
}

/// The rung segment cut at the same instant as `src`, if any.
fn same_cut<'a>(rung: &[&'a Segment], src: &Segment) -> Option<&'a Segment> {
    rung.iter()
        .copied()
        .find(|s| s.start_pts_us.abs_diff(src.start_pts_us) <= ALIGN_US)
}

fn ladder_config(list: &str) -> IngestConfig {
    IngestConfig {
        target_duration: Duration::from_secs(1),
        ladder: parse_ladder(list).unwrap(),
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rungs_below_the_source_are_aligned_and_decode() {
    let cfg = ladder_config("720p,240p,144p");
    let stats = Arc::clone(&cfg.stats);
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url(KEY), 8, 30, 30, 48_000);
    let segs = until_unpublished(&mut h, 40).await;
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "ffmpeg failed: {err}");

    assert!(
        segs.iter()
            .all(|s| ["source", "audio", "240p", "144p"].contains(&s.rendition.as_str())),
        "720p is not below the 360p source: skipped"
    );
    let source = rendition(&segs, "source");
    assert!(source.len() >= 7, "8 s at 1 s: {} source segments", source.len());
    for (name, width, height) in [("240p", 426, 240), ("144p", 256, 144)] {
        let rung = rendition(&segs, name);
        assert!(
            rung.len().abs_diff(source.len()) <= 1,
            "{name}: {} segments, source {}",
            rung.len(),
            source.len()
        );
        for (i, s) in rung.iter().enumerate() {
            assert_eq!(s.sequence, i as u64, "{name}");
            assert_eq!(s.session, source[0].session);
            assert_eq!(s.discontinuity, i == 0, "{name} {i}");
            assert_eq!((s.info.width, s.info.height), (width, height), "{name}");
            // Video only: every rung plays with the source's audio rendition.
            assert!(
                s.info.codecs.starts_with("avc1.") && !s.info.codecs.contains("mp4a"),
                "{:?}",
                s.info
            );
            assert_eq!(s.info.audio_sample_rate, 0);
            assert!(s.info.bandwidth > 0);
        }
        // Cut at the source's keyframes: every full source segment has a rung twin.
        for src in &source[..source.len() - 1] {
            let twin = same_cut(&rung, src).unwrap_or_else(|| panic!("{name}: no segment at {}", src.start_pts_us));
            assert!(
                twin.duration_us.abs_diff(src.duration_us) <= ALIGN_US,
                "{name}: {} us vs source {} us",
                twin.duration_us,
                src.duration_us
            );
        }
        assert_decodes(rung[1], &["h264"]).await;
        let audio = rendition(&segs, "audio");
        let with = audio
            .iter()
            .find(|a| a.sequence == rung[1].sequence)
            .expect("audio of the same cut");
        assert_decode_together(rung[1], with).await;
    }
    assert_eq!(
        rendition(&segs, "audio").len(),
        source.len(),
        "one audio segment per source cut"
    );
    assert_eq!(stats.ladder_ffmpeg_failures(), 0);
    let rest = h.stop().await;
    assert!(rest.is_empty(), "nothing after Unpublished: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_dying_mid_stream_is_restarted_and_the_source_is_untouched() {
    // An ffmpeg whose first transcoding run is killed after 3 s; later runs are the real one.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("ffmpeg");
    let marker = dir.path().join("ran-once");
    let script = format!(
        "#!/bin/sh\ncase \"$2\" in -encoders|-protocols) exec ffmpeg \"$@\";; esac\n\
         if [ ! -e '{m}' ]; then : > '{m}'; exec timeout -s KILL 3 ffmpeg \"$@\"; fi\n\
         exec ffmpeg \"$@\"\n",
        m = marker.display()
    );
    write_script(&wrapper, &script);
    let cfg = IngestConfig {
        ffmpeg: wrapper,
        ..ladder_config("240p")
    };
    let stats = Arc::clone(&cfg.stats);
    let mut h = start(cfg).await;
    let ff = ffmpeg(&h.url(KEY), 8, 30, 30, 48_000);
    let segs = until_unpublished(&mut h, 40).await;
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "ffmpeg failed: {err}");
    assert!(marker.exists(), "the wrapper ran");
    assert_eq!(stats.ladder_ffmpeg_failures(), 1);

    // The source never noticed.
    let source = rendition(&segs, "source");
    assert!(source.len() >= 7, "{} source segments", source.len());
    for (i, s) in source.iter().enumerate() {
        assert_eq!(s.sequence, i as u64);
        assert_eq!(s.discontinuity, i == 0);
    }
    // The rung: segments before the kill, a discontinuity, segments after, still cut at the
    // source's keyframes.
    let rung = rendition(&segs, "240p");
    let restart = rung
        .iter()
        .skip(1)
        .position(|s| s.discontinuity)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no restart in {rung:?}"));
    assert!(
        restart >= 1 && rung.len() > restart,
        "{} segments, restart at {restart}",
        rung.len()
    );
    assert!(
        rung.windows(2).all(|w| w[1].sequence == w[0].sequence + 1),
        "sequence continues"
    );
    let resumed = rung[restart];
    assert!(
        source
            .iter()
            .any(|src| src.start_pts_us.abs_diff(resumed.start_pts_us) <= ALIGN_US),
        "resumed at a source keyframe"
    );
    assert_decodes(resumed, &["h264"]).await;
    h.stop().await;
}

#[tokio::test]
async fn configured_ladder_without_ffmpeg_is_a_start_up_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = IngestConfig {
        ffmpeg: "/nonexistent/ffmpeg".into(),
        ..ladder_config("240p")
    };
    let (tx, _rx) = mpsc::channel(1);
    let served = tokio::time::timeout(
        Duration::from_secs(10),
        ingest::serve(listener, cfg, tx, std::future::pending()),
    )
    .await
    .expect("serve refuses at once");
    let err = served.unwrap_err();
    assert!(matches!(err, ingest::Error::Ffmpeg(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/ffmpeg") && msg.contains("ladder"), "{msg}");

    // An ffmpeg without libx264 is refused just as clearly.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ffmpeg");
    write_script(
        &fake,
        "#!/bin/sh\necho ' A..... aac                  AAC (Advanced Audio Coding)'\n",
    );
    let err = ingest::check_ladder(&parse_ladder("240p").unwrap(), &fake)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("libx264"), "{err}");
    // No ladder: ffmpeg is not needed at all.
    ingest::check_ladder(&[], Path::new("/nonexistent/ffmpeg"))
        .await
        .unwrap();
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
