//! When the playlist gets `EXT-X-ENDLIST`, with real ffmpeg pushing RTMP into `hlswarm run`:
//! a clean stop ends the stream at once; a dropped publisher (SIGKILL, no unpublish) that
//! comes back within the grace period continues the same playlist after a discontinuity and
//! no ENDLIST is ever served in between; one that does not come back, or a node restarted
//! with an unended stream and no publisher, ends after the grace period. And the master
//! playlist's BANDWIDTH is the RFC 8216 peak with AVERAGE-BANDWIDTH beside it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Node, SECRET, ended, manifest, manifest_file, publish, publish_in, verify_in, wait_for};
use manifest_signer::{ManifestRoot, Signed, StreamId};

fn flags(grace: &'static str) -> [&'static str; 7] {
    [
        "--segment-seconds",
        "1",
        "--window",
        "60",
        "--no-moq",
        "--end-grace-seconds",
        grace,
    ]
}

fn stream_of(node: &Node) -> StreamId {
    node.stream_id.parse().unwrap()
}

async fn wait_manifest(
    node: &Node,
    id: &StreamId,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Signed<ManifestRoot>) -> bool,
) -> Signed<ManifestRoot> {
    wait_for(what, limit, || async { manifest(node, id).await.filter(|m| cond(m)) }).await
}

/// Fetches the media playlist every 50 ms until stopped; returns how many it read and the
/// first one that had `EXT-X-ENDLIST`.
struct PlaylistWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Option<String>)>,
}

impl PlaylistWatch {
    fn start(url: String) -> PlaylistWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut read = 0;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(r) = client.get(&url).send().await
                    && r.status().is_success()
                    && let Ok(text) = r.text().await
                {
                    read += 1;
                    if text.contains("#EXT-X-ENDLIST") {
                        return (read, Some(text));
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (read, None)
        });
        PlaylistWatch { stop, task }
    }

    async fn finish(self) -> (u32, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the playlist watch stops")
            .unwrap()
    }
}

/// `BANDWIDTH=` and `AVERAGE-BANDWIDTH=` of the master playlist's first variant.
fn bandwidths(master: &str) -> (u64, u64) {
    let inf = master
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-STREAM-INF:"))
        .expect("a variant");
    let attr = |name: &str| -> u64 {
        inf.split(',')
            .find_map(|a| a.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("{name} missing in {inf}"))
            .parse()
            .unwrap()
    };
    (attr("BANDWIDTH"), attr("AVERAGE-BANDWIDTH"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_killed_and_back_within_the_grace_never_sees_endlist() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &flags("30"));
    let id = stream_of(&node);
    let mut first = publish(&node.rtmp_url(SECRET), 120, "320x240");
    let before = wait_manifest(&node, &id, "3 segments signed", Duration::from_secs(40), |m| {
        m.body.log.size >= 3
    })
    .await;
    let watch = PlaylistWatch::start(node.url(&format!("/streams/{id}/source.m3u8")));
    first.kill().unwrap(); // SIGKILL: the connection drops, no unpublish
    first.wait().unwrap();

    // The broadcaster's encoder comes back (as OBS does after a network drop).
    let mut second = publish_in(None, &node.rtmp_url(SECRET), 4, "320x240", 660);
    let resumed = wait_manifest(
        &node,
        &id,
        "the returning publisher's segments",
        Duration::from_secs(30),
        |m| {
            let r = &m.body.renditions[0];
            r.segments
                .iter()
                .any(|s| s.seq > before.body.renditions[0].segments.last().unwrap().seq && s.disc)
                && r.segments.last().is_some_and(|s| !s.disc)
        },
    )
    .await;
    let (read, endlist) = watch.finish().await;
    assert!(read >= 10, "the playlist was read all along ({read} times)");
    assert_eq!(endlist, None, "ENDLIST served between the drop and the return");
    assert!(!ended(&resumed));
    // One playlist spans the drop: segments of both publishers, numbered on, one discontinuity.
    let r = &resumed.body.renditions[0];
    let disc: Vec<_> = r.segments.iter().filter(|s| s.disc).collect();
    assert_eq!(disc.len(), 1, "one discontinuity at the return");
    assert!(r.segments.first().unwrap().seq < disc[0].seq);

    // A clean stop (ffmpeg's normal exit unpublishes) ends the stream at once.
    assert!(second.wait().unwrap().success());
    let stopped = Instant::now();
    let last = wait_manifest(&node, &id, "the end after a clean stop", Duration::from_secs(10), ended).await;
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "not held for the grace period"
    );
    let media = reqwest::get(node.url(&format!("/streams/{id}/source.m3u8")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(media.ends_with("#EXT-X-ENDLIST\n"), "{media}");

    // BANDWIDTH is the RFC 8216 peak over runs of segments, AVERAGE-BANDWIDTH the mean: the
    // last, short segment of each publish does not blow the peak up.
    let master = reqwest::get(node.url(&format!("/streams/{id}/master.m3u8")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (peak, avg) = bandwidths(&master);
    let r = &last.body.renditions[0];
    // The variant's figures cover the audio rendition it plays with (RFC 8216bis §4.4.6.2).
    let audio = last.body.rendition("audio").expect("the audio rendition");
    let sum = |a: Option<u64>, b: Option<u64>| Some(a? + b?);
    assert_eq!(
        (Some(peak), Some(avg)),
        (
            sum(r.bandwidth, audio.bandwidth),
            sum(r.average_bandwidth, audio.average_bandwidth)
        )
    );
    assert!(avg > 0 && peak >= avg, "{master}");
    assert!(peak < avg * 3, "peak {peak} vs average {avg}: {master}");
    verify_in(None, &node.url(&format!("/streams/{id}/")), &[]).unwrap();
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_publisher_that_stays_away_ends_after_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &flags("3"));
    let id = stream_of(&node);
    let mut push = publish(&node.rtmp_url(SECRET), 120, "320x240");
    wait_manifest(&node, &id, "2 segments signed", Duration::from_secs(40), |m| {
        m.body.log.size >= 2
    })
    .await;
    push.kill().unwrap();
    push.wait().unwrap();
    let dropped = Instant::now();
    wait_manifest(&node, &id, "the end after the grace", Duration::from_secs(20), ended).await;
    let took = dropped.elapsed();
    assert!(took >= Duration::from_millis(2500), "ended {took:?} after the drop");
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_restarted_mid_broadcast_ends_the_stream_only_after_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &flags("3"));
    let id = stream_of(&node);
    let mut push = publish(&node.rtmp_url(SECRET), 120, "320x240");
    wait_manifest(&node, &id, "2 segments signed", Duration::from_secs(40), |m| {
        m.body.log.size >= 2
    })
    .await;
    // The node stops while the publisher is live: it restarts and continues, so no ENDLIST.
    assert!(node.stop().success());
    let _ = push.kill();
    push.wait().unwrap();
    let stored = manifest_file(data.path(), &id).unwrap();
    assert!(!ended(&stored), "a shutdown signed ENDLIST");

    // Back up with no publisher: after the grace the stream is ended.
    let node = Node::start(data.path(), &flags("3"));
    let started = Instant::now();
    let m = wait_manifest(&node, &id, "the end after the grace", Duration::from_secs(20), ended).await;
    assert!(started.elapsed() >= Duration::from_millis(2500));
    assert_eq!(m.body.log.size, stored.body.log.size, "only the end was signed");
    assert!(node.stop().success());
}
