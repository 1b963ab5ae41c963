//! Malformed clients cost only their own connection: garbage, truncated and stalled
//! handshakes, a huge chunk size, an oversized message, deeply nested AMF, and inputs that
//! make rml_rtmp 0.8 panic. After all of them the server still accepts a good ffmpeg publisher.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::time::Duration;

use common::*;
use ingest::IngestConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Waits until the server closes the connection (EOF or reset), at most `secs`.
async fn assert_closed(mut s: TcpStream, secs: u64) {
    let mut buf = [0u8; 4096];
    let closed = timeout(Duration::from_secs(secs), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server kept a bad connection open");
}

/// Performs a plain (non-digest) RTMP handshake by hand.
async fn handshaken(port: u16) -> TcpStream {
    let mut s = connect(port).await;
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| if i < 8 { 0 } else { (i * 7) as u8 }));
    s.write_all(&c0c1).await.unwrap();
    let mut s0s1s2 = vec![0u8; 1 + 1536 + 1536];
    timeout(Duration::from_secs(5), s.read_exact(&mut s0s1s2))
        .await
        .unwrap()
        .unwrap();
    s.write_all(&s0s1s2[1..1537]).await.unwrap();
    s
}

/// A chunk with a type-0 header on `csid` (< 64) carrying `payload` as one message.
fn chunk0(csid: u8, type_id: u8, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut c = vec![csid & 0x3f, 0, 0, 0];
    c.extend_from_slice(&len.to_be_bytes()[1..]);
    c.push(type_id);
    c.extend_from_slice(&[0, 0, 0, 0]);
    c.extend_from_slice(payload);
    c
}

async fn good_publisher_still_works(h: &mut Harness) {
    let ff = ffmpeg(&h.url(KEY), 3, 30, 30, 48_000);
    let seg = h.segment(20).await;
    assert_decodes(&seg, &["h264", "aac"]).await;
    let (ok, err) = finish(ff, 20).await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_clients_cost_only_their_connection() {
    let cfg = IngestConfig {
        handshake_timeout: Duration::from_secs(2),
        target_duration: Duration::from_secs(1),
        ..config()
    };
    let mut h = start(cfg).await;

    // Garbage instead of a handshake.
    let mut s = connect(h.port).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    assert_closed(s, 5).await;

    // Truncated handshake, then the client goes away.
    let mut s = connect(h.port).await;
    s.write_all(&[3u8; 600]).await.unwrap();
    drop(s);

    // Stalled handshake: dropped after handshake_timeout.
    let mut s = connect(h.port).await;
    s.write_all(&[3u8; 600]).await.unwrap();
    assert_closed(s, 6).await;

    // Handshake done but never publishes: dropped after handshake_timeout.
    let s = handshaken(h.port).await;
    assert_closed(s, 6).await;

    // Set Chunk Size to 2^31 - 1: refused by the chunk pre-scan.
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(2, 1, 4, &0x7fff_ffffu32.to_be_bytes()))
        .await
        .unwrap();
    assert_closed(s, 5).await;

    // A 16 MiB message header with a little data, then the client vanishes.
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(2, 1, 4, &0x00ff_ffffu32.to_be_bytes()))
        .await
        .unwrap();
    s.write_all(&chunk0(4, 9, 0x00ff_ffff, &[0x17; 1000])).await.unwrap();
    drop(s);

    // rml_rtmp 0.8 panics on "@setDataFrame" with no further values (indexes data[0]).
    let mut s = handshaken(h.port).await;
    let mut amf = vec![0x02, 0x00, 13];
    amf.extend_from_slice(b"@setDataFrame");
    s.write_all(&chunk0(3, 18, amf.len() as u32, &amf)).await.unwrap();
    assert_closed(s, 5).await;

    // rml_rtmp 0.8 subtracts without a check when a type-1 header shrinks the message
    // length in the middle of a message (`length - current_payload_length`).
    let mut s = handshaken(h.port).await;
    let mut bytes = chunk0(3, 9, 300, &[0x27; 128]);
    bytes.extend_from_slice(&[0x40 | 3, 0, 0, 0, 0, 0, 10, 9]);
    bytes.extend_from_slice(&[0u8; 64]);
    s.write_all(&bytes).await.unwrap();
    assert_closed(s, 5).await;

    // Non-zero chunk type on a fresh chunk stream, and random bytes after the handshake.
    let mut s = handshaken(h.port).await;
    s.write_all(&[0xc5, 1, 2, 3, 4, 5, 6, 7]).await.unwrap();
    assert_closed(s, 5).await;
    for seed in 1..20u32 {
        let mut s = handshaken(h.port).await;
        let mut x = seed.wrapping_mul(2_654_435_761);
        let junk: Vec<u8> = (0..4000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let _ = s.write_all(&junk).await;
        drop(s);
    }

    assert!(h.rx.try_recv().is_err(), "no events from malformed clients");
    good_publisher_still_works(&mut h).await;
    h.stop().await;
}

/// `chunk0` for a payload longer than the initial 128-byte chunk size: type-3 continuation
/// chunks every 128 bytes.
fn message(csid: u8, type_id: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = chunk0(csid, type_id, payload.len() as u32, &payload[..payload.len().min(128)]);
    for part in payload[payload.len().min(128)..].chunks(128) {
        out.push(0xc0 | (csid & 0x3f));
        out.extend_from_slice(part);
    }
    out
}

/// AMF0 `connect` whose command object nests `depth` objects: {"a":{"a":{...}}}.
fn deep_amf_connect(depth: usize) -> Vec<u8> {
    let mut amf = vec![0x02, 0x00, 7];
    amf.extend_from_slice(b"connect");
    amf.push(0x00);
    amf.extend_from_slice(&1f64.to_be_bytes());
    for _ in 0..depth {
        amf.extend_from_slice(&[0x03, 0x00, 0x01, b'a']);
    }
    amf.push(0x05);
    for _ in 0..depth {
        amf.extend_from_slice(&[0x00, 0x00, 0x09]);
    }
    amf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_declarations_are_refused_at_the_header() {
    // Default config: a 10 s publish deadline, so a close within 2 s is the pre-scan's doing.
    let mut h = start(config()).await;

    // A chunk header declaring a 16 MiB message (above max_message_size): closed before any
    // payload is buffered, while the client keeps the connection open.
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(4, 9, 0x00ff_ffff, &[0x17; 100])).await.unwrap();
    assert_closed(s, 2).await;

    // Set Chunk Size 2^31 - 1 (rml_rtmp accepts it silently; nginx-rtmp refuses > 10 MiB).
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(2, 1, 4, &0x7fff_ffffu32.to_be_bytes()))
        .await
        .unwrap();
    assert_closed(s, 2).await;

    // Set Chunk Size 0.
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(2, 1, 4, &[0, 0, 0, 0])).await.unwrap();
    assert_closed(s, 2).await;

    // A 2 MiB AMF data message (at a legal chunk size): above the 1 MiB AMF bound.
    let mut s = handshaken(h.port).await;
    s.write_all(&chunk0(2, 1, 4, &(4u32 << 20).to_be_bytes()))
        .await
        .unwrap();
    let _ = s.write_all(&chunk0(3, 18, 2 << 20, &vec![0x05; 2 << 20])).await;
    assert_closed(s, 2).await;

    assert!(h.rx.try_recv().is_err(), "no events from refused clients");
    good_publisher_still_works(&mut h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_amf_is_refused_without_crashing_the_node() {
    let mut h = start(config()).await;
    // rml_amf0 0.3 decodes nested AMF0 values recursively without a depth limit: 200 KiB of
    // nesting overflowed the stack of the task's thread, which aborts the whole process.
    let mut s = handshaken(h.port).await;
    let _ = s.write_all(&message(3, 20, &deep_amf_connect(50_000))).await;
    assert_closed(s, 5).await;
    good_publisher_still_works(&mut h).await;
    h.stop().await;
}
