//! The tracker with real clients: the npm `bittorrent-tracker` client (WebRTC from
//! node-datachannel) in two Node processes' worth of peers, meeting through `hlswarm tracker`
//! and through the tracker embedded in `hlswarm run`, and exchanging a message over WebRTC.
//! Needs `scripts/setup.sh` (it runs `npm ci` in tracker/interop).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Node, stdout_within};

fn interop_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tracker/interop");
    assert!(
        dir.join("node_modules/bittorrent-tracker").is_dir(),
        "run scripts/setup.sh (npm ci in tracker/interop) first"
    );
    dir
}

/// Run exchange.mjs against `url`; its one JSON line of output.
fn exchange(url: &str) -> serde_json::Value {
    let mut child = Command::new("node")
        .arg("exchange.mjs")
        .arg(url)
        .arg("30000")
        .current_dir(interop_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = stdout_within(&mut child, Duration::from_secs(60)).expect("exchange.mjs finishes within 60 s");
    let status = child.wait().unwrap();
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}")).unwrap();
    assert!(status.success() && v["ok"] == true, "exchange failed: {out}");
    v
}

fn get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn webrtc_peers_meet_through_the_standalone_tracker() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .args(["tracker", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("tracker listening on ").unwrap().to_string();

    let v = exchange(&format!("ws://{addr}/"));
    assert_eq!(v["got"]["a"], "hello from b");
    let m = get(&addr, "/metrics");
    assert!(metric(&m, "hlswarm_tracker_offers_relayed_total") >= 1, "{m}");
    assert!(metric(&m, "hlswarm_tracker_answers_relayed_total") >= 1, "{m}");

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn webrtc_peers_meet_through_the_tracker_embedded_in_the_node() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-rtmp"]);
    let http = node.http.clone().unwrap();
    let addr = http.trim_start_matches("http://");
    exchange(&format!("ws://{addr}/tracker"));
    let m = get(addr, "/metrics");
    assert!(metric(&m, "hlswarm_tracker_answers_relayed_total") >= 1, "{m}");
    assert!(node.stop().success());

    // --no-tracker: no WebSocket at /tracker.
    let node = Node::start(data.path(), &["--no-rtmp", "--no-tracker"]);
    let addr = node.http.clone().unwrap();
    let r = get(addr.trim_start_matches("http://"), "/tracker");
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(node.stop().success());
}

/// A message far over the limit (the WebSocket library refuses to buffer it) still gets a
/// `failure reason` and is counted, as does an out-of-range numwant; found by a hostile client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_out_of_range_messages_get_a_failure_reason_and_are_counted() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-rtmp"]);
    let http = node.http.clone().unwrap();
    let addr = http.trim_start_matches("http://").to_owned();
    let url = format!("ws://{addr}/tracker");
    let reply = |text: String| {
        let url = url.clone();
        async move {
            let host = url
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let tcp = tokio::net::TcpStream::connect(host).await.unwrap();
            let (mut ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp).await.unwrap();
            // The send may fail once the server has refused and closed: the reply is what counts.
            let _ = ws.send(Message::Text(text.into())).await;
            let next = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
            match next.expect("a reply within 10 s") {
                Some(Ok(Message::Text(t))) => serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap(),
                other => panic!("no failure reply: {other:?}"),
            }
        }
    };
    let big = format!(r#"{{"action":"announce","pad":"{}"}}"#, "x".repeat(300 * 1024));
    assert_eq!(reply(big).await["failure reason"], "message too large");
    let id = "a".repeat(20);
    let bad = format!(r#"{{"action":"announce","info_hash":"{id}","peer_id":"{id}","numwant":-5}}"#);
    let why = reply(bad).await["failure reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(why.contains("numwant must be a whole number"), "{why}");
    let m = tokio::task::spawn_blocking(move || get(&addr, "/metrics"))
        .await
        .unwrap();
    assert!(
        metric(&m, "hlswarm_tracker_rejected_total{reason=\"too_large\"}") >= 1,
        "{m}"
    );
    assert!(
        metric(&m, "hlswarm_tracker_rejected_total{reason=\"malformed\"}") >= 1,
        "{m}"
    );
    assert!(node.stop().success());
}
