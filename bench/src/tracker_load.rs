//! `tracker-load`: WebTorrent tracker load generator. Opens `--peers` WebSocket connections to one
//! tracker (each a simulated peer in one of `--swarms` swarms), has each announce once
//! (`event: started`), then runs every peer in a closed loop for `--secs` seconds: announce with
//! one offer and `numwant: 1` (so the tracker relays one offer per announce, as it does for
//! p2p-media-loader), wait for the tracker's announce reply, repeat. Relayed offers that arrive
//! are read and counted, never answered.
//!
//! Prints one JSON line: peers connected, announces answered per second in the steady phase, the
//! tracker's RSS (VmRSS after the connect phase and at the end, VmHWM) and the CPU seconds the
//! tracker and this generator used in the steady phase, so it shows which side was the limit.
//!
//! Everything is bounded: the number of connections, the connect phase (`--connect-timeout-s`),
//! the steady phase (`--secs`), each wait for a reply (10 s), and the whole run.
//!
//! ```text
//! tracker-load --url ws://127.0.0.1:8000/tracker --pid 1234 --peers 10000 --swarms 100 --secs 20
//! ```
//! bench/tracker.sh drives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::borrow::Cow;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// A small but SDP-shaped offer, the same for every announce.
const SDP: &str = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:bench\r\na=ice-pwd:benchbenchbenchbenchbench\r\na=fingerprint:sha-256 00:11:22:33\r\n\
a=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

struct Args {
    url: String,
    pid: u32,
    peers: usize,
    swarms: usize,
    secs: u64,
    connect_timeout: Duration,
    concurrency: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        pid: 0,
        peers: 10_000,
        swarms: 100,
        secs: 20,
        connect_timeout: Duration::from_secs(120),
        concurrency: 256,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("bad {k}: {v}"));
        match k.as_str() {
            "--url" => a.url = v,
            "--pid" => a.pid = num(&v)? as u32,
            "--peers" => a.peers = num(&v)? as usize,
            "--swarms" => a.swarms = num(&v)?.max(1) as usize,
            "--secs" => a.secs = num(&v)?,
            "--connect-timeout-s" => a.connect_timeout = Duration::from_secs(num(&v)?),
            "--concurrency" => a.concurrency = num(&v)?.max(1) as usize,
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.url.is_empty() || a.pid == 0 {
        return Err("--url and --pid are required".into());
    }
    if a.peers == 0 || a.peers > 50_000 || a.secs == 0 || a.secs > 600 {
        return Err("--peers must be 1..=50000 and --secs 1..=600".into());
    }
    Ok(a)
}

/// A 20-character id, one ASCII character per byte, from a prefix and a number.
fn id20(prefix: &str, n: usize) -> String {
    format!("{prefix}{n:0>width$}", width = 20 - prefix.len())
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (in parentheses, may contain spaces) start at field 3
    // (state); utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    announces: AtomicU64,
    offers_relayed: AtomicU64,
    errors: AtomicU64,
}

/// One simulated peer's announce, in two fixed halves built once around the offer id (the
/// same text, byte for byte, as serializing a `json!` object per announce).
struct Peer {
    head: String,
    tail: String,
}

impl Peer {
    fn new(info_hash: &str, peer_id: &str) -> Peer {
        let head = format!(
            ",\"info_hash\":{},\"left\":0,\"numwant\":1,\"offers\":[{{\"offer\":{},\"offer_id\":\"",
            Value::from(info_hash),
            json!({ "type": "offer", "sdp": SDP }),
        );
        let tail = format!("\"}}],\"peer_id\":{},\"uploaded\":0}}", Value::from(peer_id));
        Peer { head, tail }
    }

    /// The announce text: one offer, `numwant` 1, `event: started` the first time.
    fn announce(&self, n: u64, started: bool) -> String {
        let mut m = String::with_capacity(self.head.len() + self.tail.len() + 80);
        m.push_str("{\"action\":\"announce\",\"downloaded\":0");
        if started {
            m.push_str(",\"event\":\"started\"");
        }
        m.push_str(&self.head);
        m.push_str(&id20("o", n as usize % 1_000_000_000));
        m.push_str(&self.tail);
        m
    }
}

/// The fields of a tracker message that tell its kind; the rest is skipped, not built.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(rename = "failure reason", default)]
    failure: Option<IgnoredAny>,
    #[serde(default)]
    offer: Option<IgnoredAny>,
}

/// Tracker messages are under 1 KiB. The library's default 128 KiB read buffer is zeroed up to
/// its capacity before every read (a fifth of this generator's CPU) and held per connection; it
/// still grows for a larger message.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(4 * 1024)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Wait for this peer's announce reply, counting relayed offers on the way.
async fn reply(ws: &mut Ws, c: &Counters) -> Result<(), String> {
    loop {
        let msg = tokio::time::timeout(REPLY_TIMEOUT, ws.next())
            .await
            .map_err(|_| "reply timeout".to_string())?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        let Message::Text(t) = msg else { continue };
        let kind: Kind = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
        if kind.failure.is_some() {
            return Err(format!("tracker refused: {}", t.as_str()));
        }
        if kind.offer.is_some() {
            c.offers_relayed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if kind.action.as_deref() == Some("announce") {
            return Ok(());
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tracker-load: {e}");
            std::process::exit(64);
        }
    };
    // One worker thread: the generator takes at most one of the machine's cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = rt.block_on(run(args));
    println!("{out}");
}

async fn run(a: Args) -> Value {
    let c = Arc::new(Counters::default());
    let go = Arc::new(tokio::sync::Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let limit = Arc::new(Semaphore::new(a.concurrency));
    let connect_start = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(a.peers);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..a.peers {
        let peer = Peer::new(&id20("bench-swarm-", i % a.swarms), &id20("-BENCH-", i));
        let (c, go, stop, limit, url, ready) = (
            Arc::clone(&c),
            Arc::clone(&go),
            Arc::clone(&stop),
            Arc::clone(&limit),
            a.url.clone(),
            ready_tx.clone(),
        );
        tasks.spawn(async move {
            let ws = {
                let _permit = limit.acquire().await.ok()?;
                let (mut ws, _) = tokio::time::timeout(
                    REPLY_TIMEOUT,
                    tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true),
                )
                .await
                .ok()?
                .ok()?;
                ws.send(Message::text(peer.announce(0, true))).await.ok()?;
                reply(&mut ws, &c).await.ok()?;
                ws
            };
            c.connected.fetch_add(1, Ordering::Relaxed);
            let notified = go.notified();
            let _ = ready.send(()).await;
            notified.await;
            let mut ws = ws;
            let mut n = 1u64;
            while !stop.load(Ordering::Relaxed) {
                if ws.send(Message::text(peer.announce(n, false))).await.is_err() {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                match reply(&mut ws, &c).await {
                    Ok(()) if !stop.load(Ordering::Relaxed) => {
                        c.announces.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(()) => {}
                    Err(_) => {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                n += 1;
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
            Some(())
        });
    }
    drop(ready_tx);
    // Connect phase: until every peer has announced once, all connect attempts ended, or the limit.
    let deadline = tokio::time::Instant::now() + a.connect_timeout;
    let mut ready = 0;
    while ready < a.peers {
        match tokio::time::timeout_at(deadline, ready_rx.recv()).await {
            Ok(Some(())) => ready += 1,
            Ok(None) | Err(_) => break,
        }
    }
    let connect_s = connect_start.elapsed().as_secs_f64();
    let rss_idle = proc_status_kib(a.pid, "VmRSS:");
    let pid = a.pid.to_string();
    let (srv0, gen0) = (cpu_ticks(&pid), cpu_ticks("self"));
    let steady = Instant::now();
    go.notify_waiters();
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let announces = c.announces.load(Ordering::Relaxed);
    let secs = steady.elapsed().as_secs_f64();
    let (srv1, gen1) = (cpu_ticks(&pid), cpu_ticks("self"));
    let rss_load = proc_status_kib(a.pid, "VmRSS:");
    let hwm = proc_status_kib(a.pid, "VmHWM:");
    stop.store(true, Ordering::Relaxed);
    // Let the peers finish their last round trip (bounded), then drop the rest.
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let tck = 100.0; // USER_HZ on Linux
    json!({
        "peers": a.peers,
        "swarms": a.swarms,
        "connected": c.connected.load(Ordering::Relaxed),
        "connect_s": (connect_s * 100.0).round() / 100.0,
        "steady_s": (secs * 100.0).round() / 100.0,
        "announces": announces,
        "per_sec": (announces as f64 / secs).round(),
        "offers_relayed": c.offers_relayed.load(Ordering::Relaxed),
        "errors": c.errors.load(Ordering::Relaxed),
        "rss_idle_kib": rss_idle,
        "rss_load_kib": rss_load,
        "hwm_kib": hwm,
        "server_cpu_s": (srv1 - srv0) as f64 / tck,
        "generator_cpu_s": (gen1 - gen0) as f64 / tck,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_are_the_json_they_stand_for() {
        let p = Peer::new(&id20("bench-swarm-", 7), &id20("-BENCH-", 42));
        for (n, started) in [(0, true), (12, false)] {
            let mut want = json!({
                "action": "announce", "info_hash": id20("bench-swarm-", 7), "peer_id": id20("-BENCH-", 42),
                "numwant": 1, "uploaded": 0, "downloaded": 0, "left": 0,
                "offers": [{ "offer": { "type": "offer", "sdp": SDP }, "offer_id": id20("o", n as usize) }],
            });
            if started {
                want["event"] = "started".into();
            }
            assert_eq!(p.announce(n, started), want.to_string());
        }
    }

    #[test]
    fn replies_are_told_apart() {
        let kind = |t: &str| {
            serde_json::from_str::<Kind>(t)
                .map(|k| (k.action.map(|a| a.into_owned()), k.failure.is_some(), k.offer.is_some()))
        };
        assert_eq!(
            kind(r#"{"action":"announce","interval":30}"#).ok(),
            Some((Some("announce".into()), false, false))
        );
        assert_eq!(
            kind(r#"{"offer":{"sdp":"x"},"action":"announce"}"#).ok(),
            Some((Some("announce".into()), false, true))
        );
        assert_eq!(kind(r#"{"failure reason":"no"}"#).ok(), Some((None, true, false)));
    }
}
