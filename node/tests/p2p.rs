//! Peer-assisted playback: one `hlswarm run` node with its embedded WebTorrent tracker, ffmpeg
//! pushing live video with 1 s segments, and three separate headless Chromium processes opening
//! the watch page one after another (each once the previous one plays). The first viewer leads
//! (fetches new segments over HTTP, near live); the later ones follow a little further behind
//! and take most segments from peers over WebRTC. Every byte from a peer passes the page's
//! BLAKE3 check before hls.js gets it, and hls.js never loads a segment the verifier did not pass.
//!
//! Needs node, web-client/node_modules (`npm ci`) and /usr/bin/chromium: scripts/test.sh sets
//! them up.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, num, wait_all};
use common::{Node, SECRET, publish};
use serde_json::Value;

/// The share of the viewers' segment bytes that must come from peers in the measured window.
/// The best possible with three viewers is 2/3 (someone fetches each segment over HTTP); most
/// runs measure 61-67 % (docs/BENCHMARKS.md, P2P share). On a machine loaded by other work a
/// follower loses the race against its high-demand window more often and fetches over HTTP
/// instead: one run in about ten measured 34 % while other builds shared the 2 cores. The
/// threshold is set for that machine; the benchmark, not this test, holds the 0.8 x (n-1)/n goal.
const MIN_SHARE: f64 = 0.25;
/// Segments the leader verifies while the share is measured (1 s each).
const WINDOW_SEGMENTS: f64 = 25.0;
const BROWSER_ARGS: &[&str] = &["--timeout-s", "300"];

fn sound(s: &Value) {
    assert_eq!(num(s, "segmentFailures"), 0.0, "a segment was refused: {s}");
    assert_eq!(
        num(s, "unverifiedLoaded"),
        0.0,
        "hls.js loaded a segment the verifier did not pass: {s}"
    );
}

fn playing(s: &Value) -> bool {
    num(s, "verifiedSegments") >= 3.0 && num(s, "currentTime") > 0.0 && s["fatalError"].is_null()
}

#[test]
fn later_viewers_get_most_segments_from_peers_and_verify_all() {
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--title", "p2p test"]);
    let id = node.stream_id.clone();
    let mut push = publish(&node.rtmp_url(SECRET), 150, "640x360");
    let watch = node.url(&format!("/watch/{id}?ll=0"));

    // Each viewer opens once the previous one plays, so the first one is the oldest (the leader).
    let mut viewers: Vec<Browser> = Vec::new();
    for i in 0..3 {
        let mut b = Browser::open(&watch, BROWSER_ARGS);
        let s = b.wait(&format!("viewer {} to play", i + 1), Duration::from_secs(60), playing);
        sound(&s);
        viewers.push(b);
    }

    // Roles settle: the first is the leader, the others follow at their lag (rate back to 1x).
    let settled = wait_all(&mut viewers, "roles to settle", Duration::from_secs(60), |all| {
        all.iter().for_each(sound);
        all[0]["p2pRole"] == "leader"
            && all[1..]
                .iter()
                .all(|s| s["p2pRole"] == "follower" && num(s, "playbackRate") == 1.0)
    });

    // The measured window: the next WINDOW_SEGMENTS segments the leader verifies.
    let until = num(&settled[0], "verifiedSegments") + WINDOW_SEGMENTS;
    let end = wait_all(&mut viewers, "the measured window", Duration::from_secs(90), |all| {
        all.iter().for_each(sound);
        num(&all[0], "verifiedSegments") >= until
    });

    let delta = |k: &str, i: usize| num(&end[i], k) - num(&settled[i], k);
    let (mut p2p, mut http) = (0.0, 0.0);
    for i in 0..3 {
        p2p += delta("bytesP2p", i);
        http += delta("bytesHttp", i);
    }
    let share = p2p / (p2p + http);
    let followers_share: Vec<f64> = (1..3)
        .map(|i| delta("bytesP2p", i) / (delta("bytesP2p", i) + delta("bytesHttp", i)))
        .collect();
    eprintln!(
        "p2p: {:.0}% of segment bytes from peers over {WINDOW_SEGMENTS} segments (followers {:.0}%, {:.0}%); \
         leader uploaded {} B; latency {:?}; {:.1} s",
        share * 100.0,
        followers_share[0] * 100.0,
        followers_share[1] * 100.0,
        delta("bytesUploaded", 0),
        end.iter().map(|s| s["latency"].as_f64()).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    for s in &end {
        assert_eq!(s["streamId"], id.as_str());
        assert!(s["fatalError"].is_null(), "{s}");
        assert!(num(s, "verifiedSegments") >= WINDOW_SEGMENTS, "{s}");
    }
    assert!(
        share >= MIN_SHARE,
        "only {:.0}% of segment bytes came from peers: {end:#?}",
        share * 100.0
    );
    // The leader served what the followers got: nothing came from nowhere.
    assert!(delta("bytesUploaded", 0) > 0.0, "{end:#?}");
    // Each browser reports every 250 ms on its own clock, so an uploader's report can lag the
    // receiver's: wait (bounded) until the reported uploads cover what was received.
    wait_all(
        &mut viewers,
        "uploads to cover what peers received",
        Duration::from_secs(15),
        |all| {
            let uploaded: f64 = all.iter().map(|s| num(s, "bytesUploaded")).sum();
            let received: f64 = all.iter().map(|s| num(s, "bytesP2p")).sum();
            uploaded >= received
        },
    );

    drop(viewers);
    let _ = push.kill();
    let _ = push.wait();
    assert!(node.stop().success());
}
