//! A node behind NAT reached through a relay. Three network namespaces this test creates: the
//! origin's and the seeder's networks each meet only the relay's, and the relay forwards
//! nothing, so the origin and the seeder have no route to each other. The relay is an
//! `hlswarm run --relay-server`; the origin reserves a slot on it (`--relay`) and announces
//! the relayed address; the seeder, given that address, must carry the whole stream through
//! the relay: every segment and the archive, verified.
//!
//! Needs root (CI runs the tests as root) and iproute2.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::time::Duration;

use common::netns::Netns;
use common::{Launch, Node, RUN, SECRET, ended, manifest_file, publish_in, verify_in, wait_until};
use manifest_signer::StreamId;

/// The relay's one address, on its loopback device: both networks route it to the relay,
/// which delivers it locally and forwards nothing.
const RELAY_IP: &str = "10.78.0.1";
const ORIGIN_IP: &str = "10.78.1.2";

#[tokio::test(flavor = "multi_thread")]
async fn a_seeder_carries_a_stream_from_a_node_it_can_reach_only_through_a_relay() {
    let net = Netns::new(&["relay", "origin", "seeder"]);
    net.link(("relay", "hlr-o", "10.78.1.1"), ("origin", "hlo-r", ORIGIN_IP));
    net.link(("relay", "hlr-s", "10.78.2.1"), ("seeder", "hls-r", "10.78.2.2"));
    net.ip("relay", &["addr", "add", &format!("{RELAY_IP}/32"), "dev", "lo"]);
    net.ip("origin", &["route", "add", RELAY_IP, "via", "10.78.1.1"]);
    net.ip("seeder", &["route", "add", RELAY_IP, "via", "10.78.2.1"]);
    assert!(
        !net.routes_to("seeder", ORIGIN_IP),
        "the seeder has no route to the origin"
    );

    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let in_ns = |label: &str| Launch {
        netns: Some(net.ns(label)),
        ..Launch::default()
    };
    let relay = Node::launch_with(
        dirs[0].path(),
        &RUN,
        &[
            "--relay-server",
            "--p2p",
            &format!("/ip4/{RELAY_IP}/tcp/0"),
            "--no-moq",
            "--no-mdns",
        ],
        true,
        in_ns("relay"),
    );
    let relay_addr = relay.p2p[0].clone();
    let origin = Node::launch_with(
        dirs[1].path(),
        &RUN,
        &[
            "--relay",
            &relay_addr,
            "--p2p",
            &format!("/ip4/{ORIGIN_IP}/tcp/0"),
            "--segment-seconds",
            "1",
            "--window",
            "4",
            "--no-moq",
            "--no-mdns",
        ],
        true,
        in_ns("origin"),
    );
    let id: StreamId = origin.stream_id.parse().unwrap();
    let relayed = origin
        .relayed
        .first()
        .cloned()
        .expect("the origin prints its relayed address");
    assert!(
        relayed.starts_with(&format!("{relay_addr}/p2p-circuit/p2p/")),
        "{relayed}"
    );

    let mut push = publish_in(Some(net.ns("origin")), &origin.rtmp_url(SECRET), 10, "320x240", 440);
    let seeder = Node::launch_with(
        dirs[2].path(),
        &["seed", &id.to_string(), "--http", "127.0.0.1:0"],
        &[
            "--peer",
            &relayed,
            "--p2p",
            "/ip4/10.78.2.2/tcp/0",
            "--no-moq",
            "--no-mdns",
        ],
        false,
        in_ns("seeder"),
    );
    assert!(push.wait().unwrap().success(), "ffmpeg push");
    let (odata, sdata) = (dirs[1].path(), dirs[2].path());
    wait_until(
        "the origin signs the end of the stream",
        Duration::from_secs(30),
        || std::future::ready(manifest_file(odata, &id).is_some_and(|m| ended(&m))),
    )
    .await;
    let last = manifest_file(odata, &id).unwrap();
    assert!(last.body.log.size >= 8, "{} segments", last.body.log.size);
    // Through the relay: the last manifest, then every archived segment and the log.
    wait_until("the seeder serves the last manifest", Duration::from_secs(60), || {
        std::future::ready(manifest_file(sdata, &id).is_some_and(|m| m.id == last.id))
    })
    .await;
    let sdir = sdata.to_str().unwrap();
    let mut report = String::new();
    wait_until("the seeder holds the archive", Duration::from_secs(60), || {
        report = verify_in(None, sdir, &["--archive"]).unwrap_or_else(|e| e);
        std::future::ready(
            report.contains(&format!("log of {} entries matches", last.body.log.size)) && report.contains(", 0 pruned"),
        )
    })
    .await;
    assert!(verify_in(None, sdir, &["--archive"]).is_ok(), "{report}");
    drop((seeder, origin, relay));
}
