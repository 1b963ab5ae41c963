//! Load on loopback against one `hlswarm run`: 1,000 concurrent HTTP viewers of a live stream
//! (ffmpeg pushing; one connection pool, so about a connection per viewer in flight),
//! playlists and the newest segments for a few rounds, every segment checked against its
//! BLAKE3 name; and 1,000 WebTorrent tracker clients
//! announcing to the node's `/tracker` with offers relayed between them. Both with zero errors
//! and the node's peak RSS under a ceiling. Every loop is bounded in count and in time.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use manifest_signer::{Hash, StreamId};
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use common::{Node, SECRET, manifest, metric, publish, wait_until};

const CLIENTS: usize = 1_000;
/// Peak resident memory the node may reach under either load (VmHWM).
const RSS_CEILING_MIB: u64 = 300;
/// The whole load phase of each test, however the machine is loaded.
const LOAD_LIMIT: Duration = Duration::from_secs(120);
/// Connections opened at once (a burst larger than the listen backlog would only test the kernel).
const CONNECTING: usize = 200;

/// Raise this process's open-file limit (inherited by the node it starts) to what the test
/// needs: about two descriptors per client on each side.
fn ensure_fd_limit(need: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let mut f = line.split_whitespace().skip(3);
    let soft: u64 = f.next().unwrap().parse().unwrap_or(u64::MAX);
    let hard: u64 = f.next().unwrap().parse().unwrap_or(u64::MAX);
    if soft >= need {
        return;
    }
    assert!(
        hard >= need,
        "this test needs {need} open files; the hard limit is {hard} (ulimit -Hn)"
    );
    let ok = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={hard}:{hard}"),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "cannot raise the open-file limit to {need}: run `ulimit -n {need}` first"
    );
}

fn peak_rss_mib(node: &Node) -> u64 {
    node.status_kib("VmHWM") / 1024
}

/// The URIs of a playlist (lines that are not tags) and its `EXT-X-MAP` init.
fn uris(playlist: &str) -> (Vec<String>, Option<String>) {
    let init = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .and_then(|l| l.split('"').next())
        .map(str::to_string);
    let list = playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    (list, init)
}

/// One viewer: `rounds` times the master and media playlists, then the newest two segments it
/// has not fetched yet (and the init once), each checked against the hash in its name. The
/// connecting permit is held through the first round only.
async fn viewer(
    client: reqwest::Client,
    base: String,
    n: usize,
    rounds: usize,
    mut connecting: Option<OwnedSemaphorePermit>,
) -> Result<u64, String> {
    let who = format!("load-viewer-{n}");
    let get = |path: String| {
        let req = client.get(format!("{base}{path}")).header("X-Hlswarm-Viewer", &who);
        async move {
            let r = req.send().await.map_err(|e| format!("{path}: {e}"))?;
            if !r.status().is_success() {
                return Err(format!("{path}: {}", r.status()));
            }
            r.bytes().await.map_err(|e| format!("{path}: {e}"))
        }
    };
    let mut fetched = std::collections::HashSet::new();
    let mut bytes = 0;
    for round in 0..rounds {
        if round > 0 {
            connecting.take();
            // A player reloads a live playlist about once a target duration.
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        let master = get("master.m3u8".into()).await?;
        let (variants, _) = uris(&String::from_utf8_lossy(&master));
        let variant = variants.first().ok_or("master playlist lists no rendition")?;
        let media = get(variant.clone()).await?;
        let (segments, init) = uris(&String::from_utf8_lossy(&media));
        let wanted = segments.iter().rev().take(2).chain(init.iter());
        for uri in wanted.filter(|u| !fetched.contains(*u)).cloned().collect::<Vec<_>>() {
            let body = get(uri.clone()).await?;
            let name = uri.rsplit('/').next().unwrap_or_default();
            let hash = name.split('.').next().unwrap_or_default();
            if Hash::of(&body).to_string() != hash {
                return Err(format!("{uri}: bytes do not match their name"));
            }
            bytes += body.len() as u64;
            fetched.insert(uri);
        }
    }
    Ok(bytes)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_http_viewers_get_intact_segments_with_bounded_memory() {
    ensure_fd_limit(4 * CLIENTS as u64 + 256);
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1"]);
    let id: StreamId = node.stream_id.parse().unwrap();
    let mut push = publish(&node.rtmp_url(SECRET), 60, "320x240");
    wait_until("3 segments in the live window", Duration::from_secs(40), || async {
        manifest(&node, &id)
            .await
            .is_some_and(|m| m.body.renditions.iter().any(|r| r.segments.len() >= 3))
    })
    .await;

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = node.url(&format!("/streams/{id}/"));
    let gate = Arc::new(Semaphore::new(CONNECTING));
    let mut viewers = tokio::task::JoinSet::new();
    // Viewers in the middle of their rounds at once: they must really overlap.
    let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    for n in 0..CLIENTS {
        let (client, base, gate) = (client.clone(), base.clone(), gate.clone());
        let (active, peak) = (active.clone(), peak.clone());
        viewers.spawn(async move {
            let permit = gate.acquire_owned().await.unwrap();
            peak.fetch_max(active.fetch_add(1, Ordering::Relaxed) + 1, Ordering::Relaxed);
            let res = viewer(client, base, n, 4, Some(permit)).await;
            active.fetch_sub(1, Ordering::Relaxed);
            res
        });
    }
    let mut errors = Vec::new();
    let mut bytes = 0;
    let all = async {
        while let Some(r) = viewers.join_next().await {
            match r.unwrap() {
                Ok(b) => bytes += b,
                Err(e) => errors.push(e),
            }
        }
    };
    tokio::time::timeout(LOAD_LIMIT, all)
        .await
        .expect("the viewers finish in time");
    assert!(
        errors.is_empty(),
        "{} of {CLIENTS} viewers failed, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    assert!(bytes > 0);
    let peak = peak.load(Ordering::Relaxed);
    assert!(peak >= CLIENTS * 9 / 10, "only {peak} viewers were watching at once");
    assert_eq!(
        metric(&node, &format!("hlswarm_viewers{{stream=\"{id}\"}}")).await,
        (CLIENTS + 1) as f64,
        "the node counted every viewer (and this test, which polled the manifest)"
    );
    let rss = peak_rss_mib(&node);
    eprintln!(
        "{CLIENTS} viewers, {peak} at once: {} MiB of segments, node peak RSS {rss} MiB",
        bytes >> 20
    );
    assert!(rss < RSS_CEILING_MIB, "node peak RSS {rss} MiB");
    let _ = push.kill();
    push.wait().unwrap();
    assert!(node.stop().success());
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A 20-character "binary string" id.
fn id20(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:0>width$}", width = 20 - prefix.len())
}

fn announce(swarm: usize, peer: usize, round: usize, event: Option<&str>) -> String {
    let offers: Vec<Value> = (0..2)
        .map(|k| {
            json!({
                "offer": { "type": "offer", "sdp": format!("v=0\r\no=- {peer} {round} IN IP4 127.0.0.1\r\n") },
                "offer_id": id20("o", peer * 10 + round * 2 + k),
            })
        })
        .collect();
    let mut m = json!({
        "action": "announce",
        "info_hash": id20("load-swarm-", swarm),
        "peer_id": id20("-LOAD-", peer),
        "numwant": 2,
        "uploaded": 0,
        "downloaded": 0,
        "offers": offers,
    });
    if let Some(e) = event {
        m["event"] = e.into();
    }
    m.to_string()
}

/// Read until the tracker answers this client's announce, counting offers relayed to it.
async fn reply(ws: &mut Ws, offers: &AtomicU64) -> Result<(), String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .map_err(|_| "no announce reply within 20 s".to_string())?
            .ok_or("connection closed")?
            .map_err(|e| e.to_string())?;
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(&t).map_err(|e| e.to_string())?;
        if v.get("failure reason").is_some() {
            return Err(format!("tracker refused: {v}"));
        }
        if v.get("offer").is_some() {
            offers.fetch_add(1, Ordering::Relaxed);
        } else if v["action"] == "announce" {
            return Ok(());
        }
    }
}

/// Connect from `127.1.x.y` (the tracker allows 64 connections per address, like from 64
/// viewers behind one NAT) and announce once.
async fn join(url_host: std::net::SocketAddr, n: usize, swarms: usize, offers: &AtomicU64) -> Result<Ws, String> {
    let source = std::net::Ipv4Addr::new(127, 1, (n / 16) as u8, (n % 16 + 1) as u8);
    let sock = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    sock.bind((source, 0).into())
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = tokio::time::timeout(Duration::from_secs(20), sock.connect(url_host))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    let url = format!("ws://{url_host}/tracker");
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(20), tokio_tungstenite::client_async(url, tcp))
        .await
        .map_err(|_| "handshake timeout".to_string())?
        .map_err(|e| format!("handshake: {e}"))?;
    ws.send(Message::text(announce(n % swarms, n, 0, Some("started"))))
        .await
        .map_err(|e| e.to_string())?;
    reply(&mut ws, offers).await?;
    Ok(ws)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_tracker_clients_announce_with_bounded_memory() {
    ensure_fd_limit(4 * CLIENTS as u64 + 256);
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-rtmp", "--no-swarm", "--no-moq"]);
    let addr: std::net::SocketAddr = node
        .http
        .as_ref()
        .unwrap()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let swarms = 10;
    let offers = Arc::new(AtomicU64::new(0));

    // Everyone joins (100 peers in each of 10 swarms), then everyone announces again with
    // offers, which the tracker relays to other peers of the same swarm.
    let load = async {
        let gate = Arc::new(Semaphore::new(CONNECTING));
        let mut joins = tokio::task::JoinSet::new();
        for n in 0..CLIENTS {
            let (gate, offers) = (gate.clone(), offers.clone());
            joins.spawn(async move {
                let _permit = gate.acquire_owned().await.unwrap();
                join(addr, n, swarms, &offers).await.map(|ws| (n, ws))
            });
        }
        let mut clients = Vec::new();
        let mut errors = Vec::new();
        while let Some(r) = joins.join_next().await {
            match r.unwrap() {
                Ok(c) => clients.push(c),
                Err(e) => errors.push(e),
            }
        }
        assert!(
            errors.is_empty(),
            "{} joins failed, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        assert_eq!(metric(&node, "hlswarm_tracker_connections ").await, CLIENTS as f64);

        let mut again = tokio::task::JoinSet::new();
        for (n, mut ws) in clients {
            let offers = offers.clone();
            again.spawn(async move {
                ws.send(Message::text(announce(n % swarms, n, 1, None)))
                    .await
                    .map_err(|e| e.to_string())?;
                reply(&mut ws, &offers).await?;
                let _ = ws.close(None).await;
                Ok::<(), String>(())
            });
        }
        while let Some(r) = again.join_next().await {
            if let Err(e) = r.unwrap() {
                errors.push(e);
            }
        }
        assert!(
            errors.is_empty(),
            "{} announces failed, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
    };
    tokio::time::timeout(LOAD_LIMIT, load)
        .await
        .expect("the tracker clients finish in time");

    assert!(metric(&node, "hlswarm_tracker_announces_total").await >= 2.0 * CLIENTS as f64);
    let relayed = metric(&node, "hlswarm_tracker_offers_relayed_total").await;
    let received = offers.load(Ordering::Relaxed);
    assert!(relayed >= CLIENTS as f64, "offers relayed: {relayed}");
    assert!(
        received > 0 && received as f64 <= relayed,
        "offers received {received}, relayed {relayed}"
    );
    assert_eq!(metric(&node, "hlswarm_tracker_rejected_total").await, 0.0);
    wait_until("every tracker connection closed", Duration::from_secs(20), || async {
        metric(&node, "hlswarm_tracker_connections ").await == 0.0
    })
    .await;
    let rss = peak_rss_mib(&node);
    eprintln!("{CLIENTS} tracker clients: {relayed} offers relayed, node peak RSS {rss} MiB");
    assert!(rss < RSS_CEILING_MIB, "node peak RSS {rss} MiB");
    assert!(node.stop().success());
}
