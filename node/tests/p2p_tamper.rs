//! A peer that serves tampered bytes: two viewers of one live stream; the first runs with the
//! browser driver's `--tamper-uploads` (a test-only init script that flips a byte in every segment
//! chunk the page sends over WebRTC; the page itself has no such switch). It leads, so the second
//! viewer asks it for segments: every one fails the BLAKE3 check, is refused and counted, the bad
//! peer is dropped, and the segment comes over HTTP instead. Playback goes on, and no tampered
//! byte is counted as verified or reaches hls.js.
//!
//! Needs node, web-client/node_modules (`npm ci`) and /usr/bin/chromium: scripts/test.sh sets
//! them up.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::browser::{Browser, num};
use common::{Node, SECRET, publish};
use serde_json::Value;

fn playing(s: &Value) -> bool {
    num(s, "verifiedSegments") >= 3.0 && num(s, "currentTime") > 0.0 && s["fatalError"].is_null()
}

#[test]
fn a_peer_serving_tampered_segments_is_refused_and_playback_continues() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--title", "tamper test"]);
    let id = node.stream_id.clone();
    let mut push = publish(&node.rtmp_url(SECRET), 120, "640x360");
    let watch = node.url(&format!("/watch/{id}?ll=0"));

    let mut bad = Browser::open(&watch, &["--timeout-s", "240", "--tamper-uploads"]);
    bad.wait("the tampering viewer to play", Duration::from_secs(60), playing);
    let mut good = Browser::open(&watch, &["--timeout-s", "240"]);
    good.wait("the honest viewer to play", Duration::from_secs(60), playing);

    // The honest viewer asks its peer for segments and refuses what comes back.
    let refused = good.wait("a refused segment from the peer", Duration::from_secs(60), |s| {
        num(s, "p2pRejected") >= 1.0
    });
    assert_eq!(
        num(&refused, "bytesP2p"),
        0.0,
        "tampered bytes counted as verified: {refused}"
    );
    assert_eq!(num(&refused, "unverifiedLoaded"), 0.0, "{refused}");
    // The bad peer's own stats say it sent those bytes, tampered (its next lines show it).
    bad.wait("the bad peer's tampered uploads", Duration::from_secs(10), |s| {
        num(s, "tamperedSends") >= 1.0 && num(s, "bytesUploaded") > 0.0
    });

    // Playback continues: ten more verified segments and ten more seconds played, no player error.
    let (segs, t) = (num(&refused, "verifiedSegments"), num(&refused, "currentTime"));
    let later = good.wait("playback to continue", Duration::from_secs(60), |s| {
        num(s, "verifiedSegments") >= segs + 10.0 && num(s, "currentTime") >= t + 10.0
    });
    assert!(later["fatalError"].is_null(), "{later}");
    assert_eq!(num(&later, "unverifiedLoaded"), 0.0, "{later}");
    // Every refusal was of a peer's bytes; nothing from HTTP was refused.
    assert_eq!(num(&later, "segmentFailures"), num(&later, "p2pRejected"), "{later}");
    assert_eq!(num(&later, "bytesP2p"), 0.0, "a tampered segment passed: {later}");
    eprintln!(
        "tamper: {} segments from the bad peer refused; {} verified over HTTP; played to {:.1} s",
        num(&later, "p2pRejected"),
        num(&later, "verifiedSegments"),
        num(&later, "currentTime")
    );

    drop(good);
    drop(bad);
    let _ = push.kill();
    let _ = push.wait();
    assert!(node.stop().success());
}
