//! The WebTorrent tracker's message handling: arbitrary text frames from three connections (the
//! first byte of each NUL-separated chunk picks the connection) through `Connection::handle_text`
//! on one `Tracker` with small limits. Every reply and every relayed message must be a JSON
//! object, and the swarm and peer counts must stay within the configured limits.

#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use tracker::{Tracker, TrackerConfig};

fn is_json_object(text: &str) -> bool {
    matches!(serde_json::from_str::<serde_json::Value>(text), Ok(serde_json::Value::Object(_)))
}

fuzz_target!(|data: &[u8]| {
    let cfg = TrackerConfig {
        max_message_bytes: 4096,
        max_swarms: 4,
        max_peers_per_swarm: 3,
        outbound_queue: 4,
        ..TrackerConfig::default()
    };
    let (max_swarms, max_peers) = (cfg.max_swarms, cfg.max_peers_per_swarm);
    let tracker = Tracker::new(cfg);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut conns: Vec<_> = (0..3).filter_map(|_| tracker.connect(ip).ok()).collect();
    for chunk in data.split(|&b| b == 0) {
        let Some((&pick, frame)) = chunk.split_first() else { continue };
        let Ok(text) = std::str::from_utf8(frame) else { continue };
        let Some((conn, _)) = conns.get(usize::from(pick) % 3) else { continue };
        if let Some(reply) = conn.handle_text(text) {
            assert!(is_json_object(&reply), "reply is not a JSON object: {reply}");
        }
        for (_, rx) in conns.iter_mut() {
            while let Ok(msg) = rx.try_recv() {
                assert!(is_json_object(&msg), "relayed message is not a JSON object: {msg}");
            }
        }
        let (swarms, peers) = tracker.counts();
        assert!(swarms <= max_swarms && peers <= max_swarms * max_peers, "{swarms} swarms, {peers} peers");
    }
});
