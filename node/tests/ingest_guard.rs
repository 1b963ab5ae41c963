//! Broadcasters can always get in: a reconnect behind a half-open old connection takes the
//! stream over at once, an idle-connection flood (from one address and from many) does not
//! lock the publisher out, and RTMPS works. Real ffmpeg, real sockets on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Node, SECRET, assert_log_sound, log_entries, metric, publish, publish_in, wait_until};
use manifest_signer::StreamId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// A small picture: the tests are about connections, not encoding.
const SIZE: &str = "320x180";

fn stream_id(node: &Node) -> StreamId {
    node.stream_id.parse().unwrap()
}

fn rtmp_addr(node: &Node) -> SocketAddr {
    node.rtmp.as_ref().unwrap().parse().unwrap()
}

/// Copies `from` to `to` until `frozen` turns true, then holds both sockets open without
/// reading or writing: to either end it looks like a network that dropped every packet.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            () = async { let _ = frozen.wait_for(|f| *f).await; } => break,
            n = from.read(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if to.write_all(&buf[..n]).await.is_err() { return },
            },
        }
    }
    // Frozen: keep both halves alive until the test aborts this task.
    std::future::pending::<()>().await;
    drop((from, to));
}

/// A TCP proxy on 127.0.0.1:0 to `target` for one connection, frozen by `freeze`.
async fn half_open_proxy(target: SocketAddr) -> (SocketAddr, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (freeze, frozen) = watch::channel(false);
    let task = tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let up = tokio::spawn(forward(cr, sw, frozen.clone()));
        let down = tokio::spawn(forward(sr, cw, frozen));
        let _ = tokio::join!(up, down);
    });
    (addr, freeze, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_behind_a_half_open_connection_takes_over_at_once() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-swarm", "--no-moq", "--segment-seconds", "1"]);
    let id = stream_id(&node);
    let (proxy, freeze, proxy_task) = half_open_proxy(rtmp_addr(&node)).await;

    let mut first = publish_in(None, &format!("rtmp://{proxy}/live/{SECRET}"), 60, SIZE, 440);
    wait_until("segments through the proxy", Duration::from_secs(30), || async {
        metric(&node, "hlswarm_segments_signed_total").await >= 6.0
    })
    .await;
    // The network drops: neither side sees a close.
    freeze.send(true).unwrap();
    let before = metric(&node, "hlswarm_segments_signed_total").await;
    let dropped_at = Instant::now();

    let mut second = publish_in(None, &node.rtmp_url(SECRET), 60, SIZE, 660);
    wait_until("the takeover", Duration::from_secs(8), || async {
        metric(&node, "hlswarm_rtmp_takeovers_total").await >= 1.0
    })
    .await;
    let took = dropped_at.elapsed();
    // The old connection is silent, not closed: only the takeover lets the new one in, well
    // before the 10 s idle timeout would have noticed the old one.
    assert!(took < Duration::from_secs(6), "takeover took {took:?}");
    wait_until("segments from the new publisher", Duration::from_secs(30), || async {
        metric(&node, "hlswarm_segments_signed_total").await >= before + 6.0
    })
    .await;

    assert_eq!(metric(&node, "hlswarm_rtmp_takeovers_total").await, 1.0);
    assert_eq!(metric(&node, "hlswarm_rtmp_publishes_total").await, 2.0);
    assert_eq!(metric(&node, "hlswarm_rtmp_refused_total").await, 0.0);
    assert_eq!(
        metric(&node, "hlswarm_rtmp_connections{state=\"publishing\"}").await,
        1.0,
        "the old connection is closed"
    );
    let _ = second.kill();
    let _ = second.wait();
    let _ = first.kill();
    let _ = first.wait();
    proxy_task.abort();
    let _ = proxy_task.await;
    assert!(node.stop().success());

    let entries = log_entries(data.path(), &id);
    assert_log_sound(&entries);
    let source: Vec<_> = entries.iter().filter(|e| e.rendition == "source").collect();
    let breaks: Vec<usize> = (1..source.len()).filter(|&i| source[i].segment.disc).collect();
    assert_eq!(breaks.len(), 1, "one discontinuity, at the takeover: {breaks:?}");
    let k = breaks[0];
    assert!(
        k >= 3 && source.len() >= k + 3,
        "segments on both sides of the takeover: {k} of {}",
        source.len()
    );
    assert_eq!(
        source[k].segment.seq,
        source[k - 1].segment.seq + 1,
        "the media sequence continues"
    );
}

/// A connection from `ip` to `to` that never sends a byte.
async fn idle_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((ip, 0))).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_flood_does_not_lock_the_publisher_out() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-swarm", "--no-moq", "--segment-seconds", "1"]);
    let rtmp = rtmp_addr(&node);
    // One each from 127.0.0.2..=127.0.0.20, then 16 from the publisher's own address (the
    // measured lockout): more than the 16 pending slots in all.
    let mut idle = Vec::new();
    for last in 2..=20u8 {
        idle.push(idle_from([127, 0, 0, last], rtmp).await);
    }
    for _ in 0..16 {
        idle.push(idle_from([127, 0, 0, 1], rtmp).await);
    }
    // Defaults: 4 pending per address, 16 in all, oldest evicted first. The 17th to 19th of
    // the others and the first 4 from 127.0.0.1 each pushed out the oldest in the full pool;
    // the other 12 from 127.0.0.1 each pushed out the oldest from that address.
    wait_until("the flood admitted", Duration::from_secs(10), || async {
        metric(&node, "hlswarm_rtmp_refused_total{reason=\"per_address\"}").await == 12.0
            && metric(&node, "hlswarm_rtmp_refused_total{reason=\"evicted\"}").await == 7.0
            && metric(&node, "hlswarm_rtmp_connections{state=\"pending\"}").await == 16.0
    })
    .await;
    // The evicted ones are really closed: the oldest sees end of file.
    let mut oldest = idle.remove(0);
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), oldest.read(&mut b)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "evicted connection still open: {n:?}"
    );

    let mut ff = publish(&node.rtmp_url(SECRET), 30, SIZE);
    wait_until("signed segments despite the flood", Duration::from_secs(30), || async {
        metric(&node, "hlswarm_segments_signed_total").await >= 2.0
    })
    .await;
    assert_eq!(metric(&node, "hlswarm_rtmp_publishes_total").await, 1.0);
    // ffmpeg came from 127.0.0.1 too, which had 4 idle connections: it pushed out the oldest.
    assert_eq!(
        metric(&node, "hlswarm_rtmp_refused_total{reason=\"per_address\"}").await,
        13.0
    );
    assert_eq!(
        metric(&node, "hlswarm_rtmp_refused_total{reason=\"evicted\"}").await,
        7.0
    );
    // The rest of the flood hits the 5 s handshake-and-publish deadline.
    wait_until("idle connections timed out", Duration::from_secs(15), || async {
        metric(&node, "hlswarm_rtmp_refused_total{reason=\"handshake_timeout\"}").await >= 15.0
            && metric(&node, "hlswarm_rtmp_connections{state=\"pending\"}").await == 0.0
    })
    .await;
    assert_eq!(
        metric(&node, "hlswarm_rtmp_connections{state=\"publishing\"}").await,
        1.0
    );
    let _ = ff.kill();
    let _ = ff.wait();
    drop(idle);
    assert!(node.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_over_rtmps_with_the_generated_certificate_is_signed() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(
        data.path(),
        &[
            "--no-swarm",
            "--no-moq",
            "--segment-seconds",
            "1",
            "--rtmps",
            "127.0.0.1:0",
        ],
    );
    assert!(data.path().join("keys/rtmps.crt").exists());
    let url = format!("rtmps://{}/live/{SECRET}", node.rtmps.as_ref().unwrap());
    let mut ff = publish(&url, 30, SIZE);
    wait_until("segments over RTMPS", Duration::from_secs(30), || async {
        metric(&node, "hlswarm_segments_signed_total").await >= 2.0
    })
    .await;
    assert_eq!(metric(&node, "hlswarm_rtmp_publishes_total").await, 1.0);
    assert_eq!(metric(&node, "hlswarm_rtmp_refused_total").await, 0.0);
    // Plain RTMP on the TLS port is refused by the TLS handshake and counted.
    let mut plain = TcpStream::connect(node.rtmps.as_ref().unwrap()).await.unwrap();
    plain.write_all(&[3u8; 1537]).await.unwrap();
    wait_until("the TLS refusal", Duration::from_secs(10), || async {
        metric(&node, "hlswarm_rtmp_refused_total{reason=\"tls\"}").await == 1.0
    })
    .await;
    let _ = ff.kill();
    let _ = ff.wait();
    let id = stream_id(&node);
    assert!(node.stop().success());
    assert_log_sound(&log_entries(data.path(), &id));
}
