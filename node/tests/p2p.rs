//! Peer-assisted playback: one `hlswarm run` node with its embedded WebTorrent tracker, ffmpeg
//! pushing a minute of live video, and three separate headless Chromium processes opening the
//! watch page a few seconds apart. The later viewers fetch part of the stream from the earlier
//! ones over WebRTC (p2p-media-loader), and every byte from a peer passes the page's BLAKE3 check
//! before hls.js gets it.
//!
//! Needs node, web-client/node_modules (`npm ci`) and /usr/bin/chromium: scripts/test.sh sets
//! them up.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, num};
use common::{Node, SECRET, publish};
use serde_json::Value;

fn healthy(s: &Value) -> bool {
    num(s, "verifiedSegments") >= 5.0 && s["fatalError"].is_null() && num(s, "segmentFailures") == 0.0
}

#[test]
fn later_viewers_get_verified_segments_from_earlier_ones() {
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--title", "p2p test"]);
    let id = node.stream_id.clone();
    let mut push = publish(&node.rtmp_url(SECRET), 60, "640x360");
    let watch = node.url(&format!("/watch/{id}"));

    let mut viewers = vec![Browser::open(&watch, &[])];
    std::thread::sleep(Duration::from_secs(4));
    viewers.push(Browser::open(&watch, &[]));
    std::thread::sleep(Duration::from_secs(4));
    viewers.push(Browser::open(&watch, &[]));

    let deadline = Instant::now() + Duration::from_secs(80);
    loop {
        let stats: Vec<Value> = viewers.iter_mut().map(Browser::poll).collect();
        for s in &stats {
            assert_eq!(num(s, "segmentFailures"), 0.0, "a segment was refused: {s}");
        }
        let done = stats.iter().all(healthy) && stats[1..].iter().all(|s| num(s, "bytesP2p") > 0.0);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for p2p playback; last stats: {stats:#?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Let the swarm run a little longer, then measure what the later viewers got from peers.
    std::thread::sleep(Duration::from_secs(15));
    let stats: Vec<Value> = viewers.iter_mut().map(Browser::poll).collect();
    for s in &stats {
        assert!(healthy(s), "{s}");
        assert_eq!(s["streamId"], id.as_str());
    }
    let (p2p, http) = stats[1..].iter().fold((0.0, 0.0), |(p, h), s| {
        (p + num(s, "bytesP2p"), h + num(s, "bytesHttp"))
    });
    let share = p2p / (p2p + http);
    let uploaded: f64 = stats.iter().map(|s| num(s, "bytesUploaded")).sum();
    let all_p2p: f64 = stats.iter().map(|s| num(s, "bytesP2p")).sum();
    eprintln!(
        "p2p: viewers 2+3 got {p2p} B from peers and {http} B over HTTP ({:.1}% p2p); uploaded {uploaded} B in all; \
         peers {:?}; {:.1} s",
        share * 100.0,
        stats.iter().map(|s| num(s, "peers")).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );
    // Measured: about 30% for viewers 2 and 3 (the rest is HTTP: whoever reaches a new segment
    // first fetches it from the node). The exact share depends on timing, so only require some.
    assert!(share > 0.0, "{stats:#?}");
    // Every byte a peer sent was counted by the viewer that received it.
    assert!(uploaded > 0.0 && all_p2p > 0.0, "{stats:#?}");

    drop(viewers);
    let _ = push.kill();
    let _ = push.wait();
    assert!(node.stop().success());
}
