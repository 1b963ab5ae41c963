//! MoQ bridge end to end, with a real `moq-relay` on loopback (scripts/setup.sh --test
//! installs it): `hlswarm run` publishes through the relay, `hlswarm moq-watch` verifies what
//! arrives and gets the HTTP origin's bytes exactly, and `hlswarm seed --moq-source` serves it
//! as HLS that ffprobe decodes; a tampered object from a test publisher is refused; a relay
//! restart mid-stream is survived by both ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, SECRET, publish};

/// The moq-relay binary: `$MOQ_RELAY`, else on PATH, else in cargo's bin directory.
fn relay_bin() -> String {
    if let Ok(p) = std::env::var("MOQ_RELAY") {
        return p;
    }
    let on_path = Command::new("moq-relay")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return "moq-relay".into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let p = home.join("bin").join("moq-relay");
    assert!(
        p.exists(),
        "moq-relay 0.17.10 is not installed: run scripts/setup.sh --test (cargo install moq-relay --version 0.17.10)"
    );
    p.to_string_lossy().into_owned()
}

/// A UDP port free on loopback now (the relay binds it right after).
fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().port()
}

/// A running moq-relay on 127.0.0.1:PORT (QUIC, self-signed for localhost, everything public).
struct Relay {
    child: Child,
    port: u16,
}

impl Relay {
    /// Start it and wait (30 s at most) for it to log its QUIC listener.
    fn start(port: u16) -> Relay {
        let mut child = Command::new(relay_bin())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--listen-tls-generate", "localhost", "--auth-public", "**"])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep draining so the relay never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("moq-relay logs that it is listening");
            if line.contains("listening") && line.contains("quic") {
                break;
            }
        }
        Relay { child, port }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}/", self.port)
    }

    /// SIGTERM and wait for it to exit (it stops within ~2 s).
    fn stop(mut self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM moq-relay");
        self.child.wait().unwrap();
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hlswarm moq-watch URL --tls-insecure EXTRA`, its stdout lines on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(url: &str, extra: &[&str]) -> Watch {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
            .args(["moq-watch", url, "--tls-insecure"])
            .args(extra)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next line starting with `prefix`, within `limit`; every line read is returned too.
    fn until(&self, prefix: &str, limit: Duration, seen: &mut Vec<String>) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("moq-watch printed no {prefix:?} line in {limit:?}; saw {seen:#?}"));
            seen.push(line.clone());
            if line.starts_with(prefix) {
                return line;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a moq-watch line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Every verified segment's bytes are the HTTP origin's bytes for that hash.
async fn same_as_http(node: &Node, line: &str) {
    let (hash, size) = (field(line, "hash"), field(line, "size"));
    let url = node.url(&format!("/streams/{}/seg/{hash}.m4s", node.stream_id));
    let body = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert_eq!(body.len().to_string(), size, "{url}");
    assert_eq!(blake3::hash(&body).to_hex().as_str(), hash, "{url}");
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_publishes_through_the_relay_and_moq_watch_verifies_the_http_bytes() {
    let relay = Relay::start(free_port());
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(
        data.path(),
        &[
            "--moq-relay",
            &relay.url(),
            "--moq-relay-insecure",
            "--segment-seconds",
            "1",
        ],
    );
    let mut ffmpeg = publish(&node.rtmp_url(SECRET), 30, "640x360");

    // Through the relay.
    let via_relay = Watch::start(&format!("{}{}", relay.url(), node.stream_id), &[]);
    let mut seen = Vec::new();
    via_relay.until("manifest ", Duration::from_secs(30), &mut seen);
    let mut delays = Vec::new();
    let mut renditions = std::collections::BTreeMap::new();
    // The video and the audio are renditions (tracks) of their own.
    while renditions.get("source").is_none_or(|n| *n < 3) || !renditions.contains_key("audio") {
        assert!(delays.len() < 12, "{renditions:?}");
        let line = via_relay.until("segment ", Duration::from_secs(20), &mut seen);
        let rendition = field(&line, "rendition").to_owned();
        assert!(["source", "audio"].contains(&rendition.as_str()), "{line}");
        *renditions.entry(rendition).or_insert(0) += 1;
        assert!(
            field(&line, "init").parse::<u64>().unwrap() > 0,
            "fMP4 groups carry the init segment"
        );
        same_as_http(&node, &line).await;
        delays.push(field(&line, "delay_ms").parse::<i64>().unwrap());
    }
    assert!(
        delays.iter().all(|d| (0..5_000).contains(d)),
        "delays since signing: {delays:?}"
    );
    assert!(!seen.iter().any(|l| l.starts_with("refused")), "{seen:#?}");

    // Straight from the node's own MoQ server, pinned by the printed fingerprint is not
    // needed: every object is verified against the stream id either way.
    let direct = Watch::start(
        &format!(
            "https://localhost:{}/{}",
            node.moq.as_ref().unwrap().rsplit(':').next().unwrap(),
            node.stream_id
        ),
        &["--count", "2", "--timeout", "30"],
    );
    let mut seen = Vec::new();
    let line = direct.until("segment ", Duration::from_secs(30), &mut seen);
    same_as_http(&node, &line).await;

    // A second node takes the stream from the relay (MoQ in, verified, into its replica) and
    // serves it as HLS that ffprobe decodes.
    let gw_data = tempfile::tempdir().unwrap();
    let source = format!("{}{}", relay.url(), node.stream_id);
    let gateway = Node::seed(
        gw_data.path(),
        &node.stream_id,
        &["--moq-source", &source, "--moq-source-insecure", "--no-swarm"],
    );
    let playlist = gateway.url(&format!("/streams/{}/source.m3u8", node.stream_id));
    common::wait_until("the gateway's HLS playlist", Duration::from_secs(30), || async {
        let Ok(r) = reqwest::get(&playlist).await else {
            return false;
        };
        r.status().is_success() && r.text().await.is_ok_and(|t| t.matches("#EXTINF").count() >= 2)
    })
    .await;
    let master = gateway.url(&format!("/streams/{}/master.m3u8", node.stream_id));
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type",
            "-of",
            "csv=p=0",
            &master,
        ])
        .output()
        .unwrap();
    let kinds = String::from_utf8_lossy(&probe.stdout);
    assert!(
        probe.status.success() && kinds.contains("video") && kinds.contains("audio"),
        "{kinds}"
    );
    let gw_metrics = reqwest::get(gateway.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        gw_metrics.contains("hlswarm_moq_refused_total{reason=\"hash\"} 0"),
        "{gw_metrics}"
    );
    assert!(gateway.stop().success());

    let metrics = reqwest::get(node.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hlswarm_moq_relay_up 1"), "{metrics}");
    let published = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hlswarm_moq_published_segments_total "))
        .unwrap();
    assert!(published.parse::<u64>().unwrap() >= 3, "{metrics}");

    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    drop(direct);
    drop(via_relay);
    assert!(node.stop().success());
    relay.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_relay_restart_mid_stream_is_survived() {
    let port = free_port();
    let relay = Relay::start(port);
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(
        data.path(),
        &[
            "--moq-relay",
            &relay.url(),
            "--moq-relay-insecure",
            "--segment-seconds",
            "1",
        ],
    );
    let mut ffmpeg = publish(&node.rtmp_url(SECRET), 60, "320x240");
    let watch = Watch::start(&format!("{}{}", relay.url(), node.stream_id), &[]);
    let mut seen = Vec::new();
    let before = watch.until("segment ", Duration::from_secs(30), &mut seen);
    let seq_before: u64 = field(&before, "seq").parse().unwrap();

    relay.stop();
    let relay = Relay::start(port);

    // Both the node (publisher) and moq-watch (subscriber) redial; segments flow again.
    watch.until("connected session=2", Duration::from_secs(30), &mut seen);
    let after = loop {
        let line = watch.until("segment ", Duration::from_secs(30), &mut seen);
        if field(&line, "seq").parse::<u64>().unwrap() > seq_before + 1 {
            break line;
        }
    };
    same_as_http(&node, &after).await;
    assert!(!seen.iter().any(|l| l.starts_with("refused")), "{seen:#?}");
    let metrics = reqwest::get(node.url("/metrics")).await.unwrap().text().await.unwrap();
    let connects: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hlswarm_moq_relay_connects_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(connects >= 2, "the node redialed the relay: {metrics}");

    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    drop(watch);
    assert!(node.stop().success());
    relay.stop();
}

/// A publisher that is not the broadcaster: it republishes a real signed manifest through the
/// relay, with one segment intact and one with a flipped byte. moq-watch passes the first and
/// refuses the second with a clear reason.
#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_segment_from_a_rogue_publisher_is_refused() {
    let relay = Relay::start(free_port());
    // A real signed stream, from a node without MoQ.
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-moq", "--segment-seconds", "1"]);
    let mut ffmpeg = publish(&node.rtmp_url(SECRET), 30, "320x240");
    let manifest_url = node.url(&format!("/streams/{}/manifest.json", node.stream_id));
    common::wait_until("two signed segments", Duration::from_secs(30), || async {
        let Ok(r) = reqwest::get(&manifest_url).await else {
            return false;
        };
        let Ok(body) = r.bytes().await else { return false };
        let Ok(m) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return false;
        };
        m["renditions"][0]["segments"].as_array().is_some_and(|s| s.len() >= 2)
    })
    .await;
    let wire = reqwest::get(&manifest_url).await.unwrap().bytes().await.unwrap();
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
    let m: serde_json::Value = serde_json::from_slice(&wire).unwrap();
    let r = &m["renditions"][0];
    let segs = r["segments"].as_array().unwrap();
    let get = |hash: &str, ext: &str| {
        let url = node.url(&format!("/streams/{}/seg/{hash}.{ext}", node.stream_id));
        async move { reqwest::get(url).await.unwrap().bytes().await.unwrap() }
    };
    let mut groups = Vec::new();
    for (i, s) in segs.iter().rev().take(2).enumerate() {
        let init = get(s["init"].as_str().unwrap(), "mp4").await;
        let mut media = get(s["hash"].as_str().unwrap(), "m4s").await.to_vec();
        if i == 0 {
            let mid = media.len() / 2;
            media[mid] ^= 0x01; // the newest segment is tampered with
        }
        groups.push((s["seq"].as_u64().unwrap(), init, bytes::Bytes::from(media)));
    }

    // The rogue publisher: moq-tokio straight to the relay.
    node::moq::init_crypto();
    let origin = moq_tokio::origin::spawn();
    let b = origin.create_broadcast(node.stream_id.as_str()).unwrap();
    let manifest = b.create_track("manifest", None).unwrap();
    let rendition = b.create_track("rendition/source", None).unwrap();
    b.announce(Default::default()).unwrap();
    let client = node::moq::serve::client_config(true, &[])
        .init(moq_tokio::quic::Config::default())
        .unwrap();
    let conn = client
        .with_publisher(origin.consume())
        .connect(url::Url::parse(&relay.url()).unwrap());
    let conn = tokio::time::timeout(Duration::from_secs(20), conn.established())
        .await
        .unwrap()
        .unwrap();

    let watch = Watch::start(&format!("{}{}", relay.url(), node.stream_id), &[]);
    let mut seen = Vec::new();
    watch.until("broadcast ", Duration::from_secs(30), &mut seen);
    let mut g = manifest.create_group(m["seq"].as_u64().unwrap().into()).unwrap();
    g.write_frame(moq_net::Timestamp::now(), wire.clone()).unwrap();
    g.finish().unwrap();
    watch.until("manifest ", Duration::from_secs(20), &mut seen);
    // Oldest (intact) first, then the tampered one.
    for (seq, init, media) in groups.iter().rev() {
        let mut g = rendition.create_group((*seq).into()).unwrap();
        g.write_frame(moq_net::Timestamp::now(), init.clone()).unwrap();
        g.write_frame(moq_net::Timestamp::now(), media.clone()).unwrap();
        g.finish().unwrap();
    }
    let mut verified = Vec::new();
    let refused = loop {
        let line = watch.until("", Duration::from_secs(20), &mut seen);
        if line.starts_with("segment ") {
            verified.push(field(&line, "seq").parse::<u64>().unwrap());
        }
        if line.starts_with("refused ") {
            break line;
        }
    };
    let tampered_seq = groups[0].0;
    assert!(refused.contains(&format!("#{tampered_seq}")), "{refused}");
    assert!(
        refused.contains("reason=hash") && refused.contains("hashes to"),
        "{refused}"
    );
    // The intact one verified (it may arrive after the refusal: groups travel independently).
    if verified.is_empty() {
        let line = watch.until("segment ", Duration::from_secs(20), &mut seen);
        verified.push(field(&line, "seq").parse::<u64>().unwrap());
    }
    assert_eq!(verified, vec![groups[1].0], "{seen:#?}");
    let _ = rendition.finish();
    drop(conn);
    drop(watch);
    assert!(node.stop().success());
    relay.stop();
}
