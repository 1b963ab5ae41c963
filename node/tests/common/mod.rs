//! Shared helpers for the node's end-to-end tests: start `hlswarm run` on loopback with
//! OS-chosen ports and read what it prints, publish with real ffmpeg, stop by SIGTERM, and
//! check what a consumer would: the manifest chain, the segment log, `hlswarm verify`, ffmpeg.

#![allow(dead_code, clippy::unwrap_used)]

pub mod browser;
pub mod netns;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use manifest_signer::merkle::LogEntry;
use manifest_signer::{ManifestChain, ManifestRoot, Signed, StreamId};

pub const SECRET: &str = "s3cret";

/// `hlswarm run` on loopback with OS-chosen ports and the test's publish secret.
pub const RUN: [&str; 7] = [
    "run",
    "--rtmp",
    "127.0.0.1:0",
    "--http",
    "127.0.0.1:0",
    "--stream-key",
    SECRET,
];

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
    /// Addresses through the relays given with `--relay`.
    pub relayed: Vec<String>,
    /// `127.0.0.1:PORT` of the RTMP listener, if ingest runs.
    pub rtmp: Option<String>,
    /// `127.0.0.1:PORT` of the RTMPS listener, when started with `--rtmps`.
    pub rtmps: Option<String>,
    /// `http://127.0.0.1:PORT` of the HTTP origin, if it runs.
    pub http: Option<String>,
    /// `127.0.0.1:PORT` of the MoQ (QUIC) listener, if it runs.
    pub moq: Option<String>,
    pub stream_id: String,
    lines: mpsc::Receiver<String>,
    /// The node's stderr lines, when launched with `Launch::keep_log`.
    log: Arc<Mutex<Vec<String>>>,
}

/// How `Node::launch_with` starts the process, beyond its arguments.
#[derive(Debug, Default, Clone, Copy)]
pub struct Launch<'a> {
    /// Run inside this network namespace: `ip netns exec NS` execs the node, so the child's
    /// pid is the node's own.
    pub netns: Option<&'a str>,
    /// Keep the node's stderr (its log) for `Node::log_has`; it is still echoed.
    pub keep_log: bool,
}

/// `program`, run inside the network namespace `netns` when set (`ip netns exec` execs it, so
/// the child's pid is the program's own).
pub fn command(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

/// Most log lines kept per node.
const LOG_LINES: usize = 10_000;

impl Node {
    /// Start `hlswarm --data-dir DATA run --rtmp 127.0.0.1:0 --http 127.0.0.1:0 --stream-key s3cret EXTRA`
    /// and wait (30 s at most) for it to print its addresses.
    pub fn start(data: &Path, extra: &[&str]) -> Node {
        Self::launch(data, &RUN, extra, !extra.contains(&"--no-rtmp"))
    }

    /// Start `hlswarm --data-dir DATA seed SOURCE --http 127.0.0.1:0 EXTRA` (loopback swarm).
    pub fn seed(data: &Path, source: &str, extra: &[&str]) -> Node {
        Self::launch(data, &["seed", source, "--http", "127.0.0.1:0"], extra, false)
    }

    pub fn launch(data: &Path, base: &[&str], extra: &[&str], want_rtmp: bool) -> Node {
        Self::launch_with(data, base, extra, want_rtmp, Launch::default())
    }

    pub fn launch_with(data: &Path, base: &[&str], extra: &[&str], want_rtmp: bool, how: Launch) -> Node {
        let want_swarm = !extra.contains(&"--no-swarm");
        let own_swarm_flags = extra.contains(&"--p2p");
        let mut cmd = command(how.netns, env!("CARGO_BIN_EXE_hlswarm"));
        let mut child = cmd
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
            .stderr(if how.keep_log { Stdio::piped() } else { Stdio::inherit() })
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(err) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    let mut log = log.lock().unwrap();
                    if log.len() < LOG_LINES {
                        log.push(line);
                    }
                }
            });
        }
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
        let want_relayed = want_swarm && extra.contains(&"--relay");
        let (mut rtmp, mut http, mut moq, mut id, mut p2p) = (None, None, None, None, Vec::new());
        let (want_rtmps, mut rtmps) = (extra.contains(&"--rtmps"), None);
        let mut relayed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (want_rtmp && rtmp.is_none())
            || (want_http && http.is_none())
            || (want_swarm && p2p.is_empty())
            || (want_relayed && relayed.is_empty())
            || (want_moq && moq.is_none())
            || (want_rtmps && rtmps.is_none())
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines.recv_timeout(left).expect("node prints its addresses");
            if let Some(a) = line.strip_prefix("rtmp listening on ") {
                rtmp = Some(a.to_string());
            }
            if let Some(a) = line.strip_prefix("rtmps listening on ") {
                rtmps = Some(a.to_string());
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
            if let Some(a) = line.strip_prefix("p2p reachable via relay ") {
                relayed.push(a.to_string());
            }
        }
        Node {
            child,
            p2p,
            relayed,
            rtmp,
            rtmps,
            http,
            moq,
            stream_id: id.expect("prints the stream id"),
            lines,
            log,
        }
    }

    /// True when a line of the node's log (`Launch::keep_log`) contains every one of `parts`.
    pub fn log_has(&self, parts: &[&str]) -> bool {
        self.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| parts.iter().all(|p| l.contains(p)))
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), 0 if it cannot be read.
    pub fn status_kib(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
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

    /// SIGKILL: the node gets no chance to finish anything.
    pub fn kill9(&mut self) {
        let ok = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -KILL");
        let _ = self.child.wait();
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
    publish_in(None, url, seconds, size, 440)
}

/// `publish`, run inside a network namespace when `netns` is set, with a tone of `hz`: pushes
/// with different tones never produce byte-identical segments (the test pattern restarts at
/// 0 with each ffmpeg), so a segment logged twice is a real duplicate.
pub fn publish_in(netns: Option<&str>, url: &str, seconds: u32, size: &str, hz: u32) -> Child {
    let mut cmd = command(netns, "ffmpeg");
    cmd.args(["-v", "error", "-nostdin", "-re", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=30"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency={hz}:sample_rate=48000"))
        .arg("-t")
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
    wait_for(what, limit, || {
        let c = cond();
        async move { c.await.then_some(()) }
    })
    .await
}

/// Wait for `get` to give something, checking every 100 ms, failing after `limit`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = get().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The node's current manifest over HTTP, verified against the stream id; `None` while it has
/// none or cannot be reached.
pub async fn manifest(node: &Node, id: &StreamId) -> Option<Signed<ManifestRoot>> {
    let r = reqwest::get(node.url(&format!("/streams/{id}/manifest.json")))
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    Signed::<ManifestRoot>::verify(&r.bytes().await.ok()?, id).ok()
}

/// The manifest a data directory holds (the signer's and the replica's commit point), verified.
pub fn manifest_file(data: &Path, id: &StreamId) -> Option<Signed<ManifestRoot>> {
    let bytes = std::fs::read(stream_dir(data, id).join("manifest.json")).ok()?;
    Some(Signed::<ManifestRoot>::verify(&bytes, id).unwrap())
}

pub fn stream_dir(data: &Path, id: &StreamId) -> std::path::PathBuf {
    data.join("streams").join(id.to_string())
}

/// Sum of the samples of a metric family whose line starts with `prefix`.
pub async fn metric(node: &Node, prefix: &str) -> f64 {
    let text = reqwest::get(node.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// True when every rendition of the manifest is ended (the publisher went away and the node
/// signed `EXT-X-ENDLIST`).
pub fn ended(m: &Signed<ManifestRoot>) -> bool {
    !m.body.renditions.is_empty() && m.body.renditions.iter().all(|r| r.ended)
}

/// What a `ChainWatch` saw.
#[derive(Debug, Default)]
pub struct ChainReport {
    /// Every distinct manifest accepted, in order.
    pub accepted: Vec<Signed<ManifestRoot>>,
    /// What the chain rules refused, as text.
    pub refused: Vec<String>,
}

/// Follows a stream's manifest.json, by HTTP (`http://...`) or from a file, every 50 ms, and
/// puts each new one through the protocol's chain rules (`ManifestChain`: a successor names its
/// predecessor, no replay, the log never shrinks or is rewritten) as a consumer would. The
/// source may be unreachable for a while (a node restarting): fetch errors are retried.
pub struct ChainWatch {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ChainReport>,
}

impl ChainWatch {
    pub fn start(source: String, id: StreamId) -> ChainWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            let mut chain = ManifestChain::new(id);
            let mut report = ChainReport::default();
            loop {
                let last = flag.load(Ordering::Relaxed);
                let bytes = if source.starts_with("http") {
                    match client.get(&source).send().await {
                        Ok(r) if r.status().is_success() => r.bytes().await.ok().map(|b| b.to_vec()),
                        _ => None,
                    }
                } else {
                    std::fs::read(&source).ok()
                };
                if let Some(b) = bytes
                    && chain.latest().is_none_or(|m| m.wire() != &b[..])
                {
                    match chain.accept_wire(&b) {
                        Ok(m) => report.accepted.push(m),
                        Err(e) if report.refused.len() < 100 => report.refused.push(e.to_string()),
                        Err(_) => {}
                    }
                }
                if last {
                    return report;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        ChainWatch { stop, task }
    }

    /// One last look at the source, then the report.
    pub async fn finish(self) -> ChainReport {
        self.stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the chain watch stops")
            .unwrap()
    }
}

/// The stream's segment log (`log.jsonl`), every line parsed.
pub fn log_entries(data: &Path, id: &StreamId) -> Vec<LogEntry> {
    let text = std::fs::read_to_string(stream_dir(data, id).join("log.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line in log.jsonl");
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// No segment is logged twice and every rendition's media sequence numbers strictly increase:
/// nothing duplicated, no number reused.
pub fn assert_log_sound(entries: &[LogEntry]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    let mut hashes = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        assert!(
            hashes.insert(e.segment.hash),
            "log entry {i}: segment {} logged twice",
            e.segment.hash
        );
        if let Some(prev) = last.insert(&e.rendition, e.segment.seq) {
            assert!(
                e.segment.seq > prev,
                "log entry {i}: {} seq {} after {prev}",
                e.rendition,
                e.segment.seq
            );
        }
    }
}

/// `hlswarm verify TARGET EXTRA` (inside `netns` when set): its report if it passes.
pub fn verify_in(netns: Option<&str>, target: &str, extra: &[&str]) -> Result<String, String> {
    let mut cmd = command(netns, env!("CARGO_BIN_EXE_hlswarm"));
    let o = cmd.args(["verify", target]).args(extra).output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if o.status.success() { Ok(report) } else { Err(report) }
}

/// ffmpeg (inside `netns` when set) decodes every segment an ended playlist lists, with no error.
pub fn ffmpeg_decodes(netns: Option<&str>, input: &str) -> Result<(), String> {
    let mut cmd = command(netns, "ffmpeg");
    let o = cmd
        .args(["-v", "error", "-nostdin", "-i", input, "-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    if o.status.success() && err.is_empty() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Fail with a clear message unless the test runs as root (mounts, network namespaces).
pub fn require_root(what: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?");
    assert_eq!(euid, "0", "this test needs root ({what}); CI runs the tests as root");
}
