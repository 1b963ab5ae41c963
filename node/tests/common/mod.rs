//! Shared helpers for the node's end-to-end tests: start `hlswarm run` on loopback with
//! OS-chosen ports and read what it prints, publish with real ffmpeg, stop by SIGTERM.

#![allow(dead_code, clippy::unwrap_used)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const SECRET: &str = "s3cret";

/// Swarm flags every test node gets unless it passes its own: loopback only, OS-chosen ports,
/// no mDNS (which would multicast on the machine's real interfaces).
pub const LOOPBACK_SWARM: [&str; 5] = [
    "--p2p",
    "/ip4/127.0.0.1/tcp/0",
    "--p2p",
    "/ip4/127.0.0.1/udp/0/quic-v1",
    "--no-mdns",
];

/// A running `hlswarm run` or `hlswarm seed`.
pub struct Node {
    pub child: Child,
    /// The swarm's listen addresses with `/p2p/<peer id>`, if the swarm runs.
    pub p2p: Vec<String>,
    /// `127.0.0.1:PORT` of the RTMP listener, if ingest runs.
    pub rtmp: Option<String>,
    /// `http://127.0.0.1:PORT` of the HTTP origin, if it runs.
    pub http: Option<String>,
    /// `127.0.0.1:PORT` of the MoQ (QUIC) listener, if it runs.
    pub moq: Option<String>,
    pub stream_id: String,
    lines: mpsc::Receiver<String>,
}

impl Node {
    /// Start `hlswarm --data-dir DATA run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --stream-key s3cret EXTRA`
    /// and wait (30 s at most) for it to print its addresses.
    pub fn start(data: &Path, extra: &[&str]) -> Node {
        let base = [
            "run",
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--stream-key",
            SECRET,
        ];
        Self::launch(data, &base, extra, !extra.contains(&"--no-rtmp"))
    }

    /// Start `hlswarm --data-dir DATA seed SOURCE --http 127.0.0.1:0 EXTRA` (loopback swarm).
    pub fn seed(data: &Path, source: &str, extra: &[&str]) -> Node {
        Self::launch(data, &["seed", source, "--http", "127.0.0.1:0"], extra, false)
    }

    pub fn launch(data: &Path, base: &[&str], extra: &[&str], want_rtmp: bool) -> Node {
        let want_swarm = !extra.contains(&"--no-swarm");
        let own_swarm_flags = extra.contains(&"--p2p");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
            .arg("--data-dir")
            .arg(data)
            .args(base)
            .args(if want_swarm && !own_swarm_flags {
                &LOOPBACK_SWARM[..]
            } else {
                &[]
            })
            .args(if extra.contains(&"--no-moq") || extra.contains(&"--moq") {
                &[][..]
            } else {
                &["--moq", "127.0.0.1:0"][..]
            })
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
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
        let want_http = !extra.contains(&"--no-http");
        let want_moq = !extra.contains(&"--no-moq");
        let (mut rtmp, mut http, mut moq, mut id, mut p2p) = (None, None, None, None, Vec::new());
        let deadline = Instant::now() + Duration::from_secs(30);
        while (want_rtmp && rtmp.is_none())
            || (want_http && http.is_none())
            || (want_swarm && p2p.is_empty())
            || (want_moq && moq.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).expect("node prints its addresses");
            if let Some(a) = line.strip_prefix("rtmp listening on ") {
                rtmp = Some(a.to_string());
            }
            if let Some(a) = line.strip_prefix("http listening on ") {
                http = Some(format!("http://{a}"));
            }
            if let Some(a) = line.strip_prefix("moq listening on ") {
                moq = Some(a.to_string());
            }
            if let Some(i) = line.trim().strip_prefix("stream id") {
                id = Some(i.trim().to_string());
            }
            if let Some(i) = line.trim().strip_prefix("seeding") {
                id = id.or(Some(i.trim().to_string()));
            }
            if let Some(a) = line.strip_prefix("p2p listening on ") {
                p2p.push(a.to_string());
            }
        }
        Node {
            child,
            p2p,
            rtmp,
            http,
            moq,
            stream_id: id.expect("prints the stream id"),
            lines,
        }
    }

    pub fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp.as_ref().unwrap())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http.as_ref().unwrap())
    }

    /// SIGTERM (to the process this test started) and wait for it to exit.
    pub fn stop(mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM");
        self.child.wait().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// All of a child's stdout, read until it closes, or `None` (and the child killed) when that
/// takes longer than `limit`. The child is reaped either way.
pub fn stdout_within(child: &mut Child, limit: Duration) -> Option<String> {
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(limit).ok();
    if text.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    text
}

/// `hlswarm verify DATA --archive`: asserts it passes and returns its report.
pub fn verify_archive(data: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .arg("--data-dir")
        .arg(data)
        .args(["verify", data.to_str().unwrap(), "--archive"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{report}");
    report
}

/// ffmpeg publishing `seconds` of a test pattern with a tone, paced in real time.
pub fn publish(url: &str, seconds: u32, size: &str) -> Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t"])
        .arg(seconds.to_string())
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-bf", "2", "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-f", "flv",
        ])
        .arg(url)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Wait for `cond` to hold, checking every 100 ms, failing after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
