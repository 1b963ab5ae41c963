//! A real network partition between an origin and a seeder. Each runs in a network namespace
//! of its own that this test creates, joined by a veth pair; the partition is the seeder's
//! end of the link going down, the heal is it coming back up. The host's interfaces are never
//! touched. The seeder must have missed what was signed while cut off, then catch up and serve
//! every segment of the broadcast, verified, and a stock player must play it from the seeder.
//!
//! Needs root (CI runs the tests as root) and iproute2.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::netns::Netns;
use common::{Launch, Node, SECRET, ended, ffmpeg_decodes, manifest_file, publish_in, verify_in, wait_for};
use manifest_signer::{ManifestRoot, Signed, StreamId};

const ORIGIN_IP: &str = "10.77.0.1";
const SEEDER_IP: &str = "10.77.0.2";
/// The seeder's end of the link, inside its namespace.
const SEEDER_LINK: &str = "hlsw-s";

async fn wait_file(
    data: &Path,
    id: &StreamId,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Signed<ManifestRoot>) -> bool,
) -> Signed<ManifestRoot> {
    wait_for(what, limit, || {
        std::future::ready(manifest_file(data, id).filter(|m| cond(m)))
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_seeder_catches_up_after_the_heal_and_serves_every_segment() {
    let net = Netns::new(&["origin", "seeder"]);
    net.link(("origin", "hlsw-o", ORIGIN_IP), ("seeder", SEEDER_LINK, SEEDER_IP));
    let (odata, sdata) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let swarm = |ip: &str| {
        [
            "--p2p".to_string(),
            format!("/ip4/{ip}/tcp/0"),
            "--p2p".to_string(),
            format!("/ip4/{ip}/udp/0/quic-v1"),
        ]
    };
    let oswarm = swarm(ORIGIN_IP);
    let ohttp = format!("{ORIGIN_IP}:0");
    let mut oflags = vec!["--segment-seconds", "1", "--window", "60", "--no-moq", "--no-mdns"];
    oflags.extend(oswarm.iter().map(String::as_str));
    let origin = Node::launch_with(
        odata.path(),
        &["run", "--rtmp", "127.0.0.1:0", "--http", &ohttp, "--stream-key", SECRET],
        &oflags,
        true,
        Launch {
            netns: Some(net.ns("origin")),
            keep_log: false,
        },
    );
    let id: StreamId = origin.stream_id.parse().unwrap();
    let mut push = publish_in(Some(net.ns("origin")), &origin.rtmp_url(SECRET), 22, "320x240", 440);
    wait_file(
        odata.path(),
        &id,
        "the origin signs 2 segments",
        Duration::from_secs(40),
        |m| m.body.log.size >= 2,
    )
    .await;

    let sswarm = swarm(SEEDER_IP);
    let shttp = format!("{SEEDER_IP}:0");
    let mut sflags = vec!["--no-moq", "--no-mdns"];
    sflags.extend(sswarm.iter().map(String::as_str));
    let watch = origin.url(&format!("/watch/{id}"));
    let seeder = Node::launch_with(
        sdata.path(),
        &["seed", &watch, "--http", &shttp],
        &sflags,
        false,
        Launch {
            netns: Some(net.ns("seeder")),
            keep_log: false,
        },
    );
    // Following live: the seeder holds what the origin signed a moment ago.
    let followed = manifest_file(odata.path(), &id).unwrap().body.seq + 2;
    wait_file(
        sdata.path(),
        &id,
        "the seeder follows live",
        Duration::from_secs(30),
        |m| m.body.seq >= followed,
    )
    .await;

    net.ip("seeder", &["link", "set", SEEDER_LINK, "down"]);
    let cut = manifest_file(odata.path(), &id).unwrap();
    wait_file(
        odata.path(),
        &id,
        "the origin signs 6 more segments",
        Duration::from_secs(30),
        |m| m.body.seq >= cut.body.seq + 6,
    )
    .await;
    let behind = manifest_file(sdata.path(), &id).unwrap();
    assert!(
        behind.body.seq <= cut.body.seq + 1,
        "the partition holds: the seeder has seq {} while the origin went from {} on",
        behind.body.seq,
        cut.body.seq
    );
    net.ip("seeder", &["link", "set", SEEDER_LINK, "up"]);
    let healed = Instant::now();
    let missed = manifest_file(odata.path(), &id).unwrap().body.seq;
    let catch_up = Duration::from_secs(60);
    wait_file(sdata.path(), &id, "the seeder catches up", catch_up, |m| {
        m.body.seq >= missed
    })
    .await;
    eprintln!("the seeder caught up {:?} after the heal", healed.elapsed());

    assert!(push.wait().unwrap().success(), "ffmpeg push");
    let end = Duration::from_secs(30);
    let last = wait_file(odata.path(), &id, "the origin signs the end", end, ended).await;
    wait_file(sdata.path(), &id, "the seeder has the end", end, |m| m.id == last.id).await;

    // Every segment of the broadcast (the window holds them all) is served by the seeder and
    // verifies against the stream's key; a stock player plays it from there.
    let segments: usize = last.body.renditions.iter().map(|r| r.segments.len()).sum();
    assert_eq!(
        segments as u64, last.body.log.size,
        "the window spans the whole broadcast"
    );
    let served = seeder.url(&format!("/streams/{id}/"));
    let report = verify_in(Some(net.ns("seeder")), &served, &[]).unwrap();
    assert!(
        report.contains(&format!("manifest    seq {},", last.body.seq)),
        "{report}"
    );
    assert!(report.contains(&format!("live window {segments} segments")), "{report}");
    ffmpeg_decodes(Some(net.ns("seeder")), &format!("{served}master.m3u8")).unwrap();
    drop((seeder, origin));
}
