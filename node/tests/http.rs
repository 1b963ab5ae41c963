//! The HTTP origin as players, browsers and CDNs use it: one real ffmpeg push into `hlswarm run`,
//! then playlists byte-identical to the rendering of the signed manifest, immutable segments
//! with ETag/Range/HEAD, CORS, the API, metrics, a stock player reading the node's URL, hostile
//! paths answered with 4xx, and a node restarted without ingest refusing a segment tampered on
//! disk while serving the rest.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use common::{Node, SECRET, publish, wait_until};
use manifest_signer::playlist::{render_master, render_media};
use manifest_signer::{ManifestRoot, Signed, StreamId};
use serde_json::Value;

async fn get(url: &str) -> reqwest::Response {
    reqwest::get(url).await.unwrap()
}

async fn api(node: &Node) -> Value {
    let text = get(&node.url("/api/streams")).await.text().await.unwrap();
    serde_json::from_str(&text).unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers().get(name).map_or("", |v| v.to_str().unwrap())
}

/// A request sent byte for byte (no client-side path normalisation); returns the status line
/// and the whole response.
fn raw(node: &Node, path: &str) -> String {
    let addr = node.http.as_ref().unwrap().trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn origin_serves_signed_stream_to_players() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--segment-seconds", "1", "--title", "origin test"]);
    let id = node.stream_id.clone();
    let base = node.url(&format!("/streams/{id}/"));

    let mut push = publish(&node.rtmp_url(SECRET), 5, "320x240");
    wait_until("three signed segments", Duration::from_secs(30), || async {
        let v = api(&node).await;
        v["streams"][0]["renditions"][0]["segments"].as_u64().unwrap_or(0) >= 3
    })
    .await;

    // Playlists are exactly the rendering of the signed manifest.
    let r = get(&format!("{base}manifest.json")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert_eq!(header(&r, "content-type"), "application/json");
    let wire = r.bytes().await.unwrap();
    let sid: StreamId = id.parse().unwrap();
    let m = Signed::<ManifestRoot>::verify(&wire, &sid).unwrap();
    let r = get(&format!("{base}master.m3u8")).await;
    assert_eq!(header(&r, "content-type"), "application/vnd.apple.mpegurl");
    assert!(header(&r, "cache-control").contains("max-age=1"));
    let served_master = r.text().await.unwrap();
    // The manifest may have moved on between the two requests: compare with the right one.
    let m = if served_master == render_master(&m.body) {
        m
    } else {
        let wire = get(&format!("{base}manifest.json")).await.bytes().await.unwrap();
        Signed::<ManifestRoot>::verify(&wire, &sid).unwrap()
    };
    assert_eq!(served_master, render_master(&m.body));
    let rendition = &m.body.renditions[0];
    let media = get(&format!("{base}{}.m3u8", rendition.name))
        .await
        .text()
        .await
        .unwrap();
    assert!(media.starts_with("#EXTM3U\n#EXT-X-VERSION:6\n"), "{media}");
    let seg = rendition.segments.last().unwrap();
    if media != render_media(rendition) {
        // A newer manifest was signed in between; the segment must still be listed.
        assert!(media.contains(&seg.hash.to_hex()), "{media}");
    }

    // Segments: immutable, verified bytes, conditional and partial requests.
    let seg_url = format!("{base}seg/{}.m4s", seg.hash);
    let r = get(&seg_url).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "cache-control"), "public, max-age=31536000, immutable");
    assert_eq!(header(&r, "content-type"), "video/iso.segment");
    assert_eq!(header(&r, "etag"), format!("\"{}\"", seg.hash));
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len() as u64, seg.size);
    assert_eq!(blake3::hash(&body).as_bytes(), &seg.hash.0);
    let client = reqwest::Client::new();
    let r = client.head(&seg_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-length"), seg.size.to_string());
    assert!(r.bytes().await.unwrap().is_empty());
    let r = client
        .get(&seg_url)
        .header("range", "bytes=10-109")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(header(&r, "content-range"), format!("bytes 10-109/{}", seg.size));
    assert_eq!(r.bytes().await.unwrap(), body.slice(10..110));
    let r = client
        .get(&seg_url)
        .header("if-none-match", format!("\"{}\"", seg.hash))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    let init = rendition.init.unwrap();
    let r = get(&format!("{base}seg/{}.mp4", init.hash)).await;
    assert_eq!(header(&r, "content-type"), "video/mp4");
    assert_eq!(r.bytes().await.unwrap().len() as u64, init.size);
    // The same hash under another container's extension is not that file.
    assert_eq!(get(&format!("{base}seg/{}.ts", seg.hash)).await.status(), 404);

    // CORS preflight from a page on another origin.
    let r = client
        .request(reqwest::Method::OPTIONS, &seg_url)
        .header("origin", "http://elsewhere.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "range")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(header(&r, "access-control-allow-origin"), "*");
    assert!(header(&r, "access-control-allow-headers").contains("Range"));

    // Hostile and unknown paths: 4xx, and nothing leaks.
    let other = "QrrDCurHBG1eUHCx4vk_epka-QPqFaAqfgDoMhBIN0w";
    assert_eq!(
        get(&node.url(&format!("/streams/{other}/master.m3u8"))).await.status(),
        404
    );
    assert_eq!(get(&node.url("/streams/not-an-id/master.m3u8")).await.status(), 400);
    assert_eq!(get(&format!("{base}seg/ZZZ.m4s")).await.status(), 400);
    assert_eq!(get(&format!("{base}seg/{}.m4s", "0".repeat(64))).await.status(), 404);
    assert_eq!(get(&format!("{base}nope.m3u8")).await.status(), 404);
    assert_eq!(get(&format!("{base}.manifest.json.1.tmp")).await.status(), 404);
    let key_pem = std::fs::read_to_string(data.path().join("keys/stream.key")).unwrap();
    for path in [
        format!("/streams/{id}/../../keys/stream.key"),
        format!("/streams/{id}/%2e%2e%2f%2e%2e%2fkeys%2fstream.key"),
        format!("/streams/{id}/seg/..%2f..%2f..%2fkeys%2fstream.key"),
        "/assets/..%2f..%2fCargo.toml".to_string(),
        "/streams/..%2fkeys/stream.key".to_string(),
    ] {
        let resp = raw(&node, &path);
        let status = resp.split_whitespace().nth(1).unwrap_or("");
        assert!(status.starts_with('4'), "{path}: {resp}");
        assert!(
            !resp.contains("PRIVATE KEY") && !resp.contains(key_pem.trim()),
            "{path} leaked"
        );
    }

    // The dashboard API, health and metrics.
    let v = api(&node).await;
    assert_eq!(v["streams"][0]["id"], id.as_str());
    assert_eq!(v["streams"][0]["title"], "origin test");
    assert!(v["streams"][0]["viewers"].as_u64().unwrap() >= 1, "{v}");
    assert!(v["streams"][0]["bytes_out"].as_u64().unwrap() >= seg.size, "{v}");
    assert!(v["node"]["rtmp_url"].as_str().unwrap().starts_with("rtmp://127.0.0.1:"));
    assert_eq!(get(&node.url("/healthz")).await.status(), 200);
    let metrics = get(&node.url("/metrics")).await.text().await.unwrap();
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{metrics}"))
    };
    assert!(counter("hlswarm_bytes_out_total{transport=\"http\",route=\"segment\"}") >= seg.size);
    assert!(counter("hlswarm_segments_served_total{transport=\"http\"}") >= 1);
    assert!(counter("hlswarm_segments_signed_total") >= 3);
    assert!(counter(&format!("hlswarm_viewers{{stream=\"{id}\"}}")) >= 1);

    // The announce: signed, and it names this origin in its hints.
    let a = get(&format!("{base}announce.json")).await.bytes().await.unwrap();
    let a = Signed::<manifest_signer::StreamAnnounce>::verify(&a, &sid).unwrap();
    assert_eq!(a.body.hints.http, vec![node.url("/")]);

    // After the publisher stops, the stream ends and a stock player reads the node's URL.
    assert!(push.wait().unwrap().success());
    wait_until("the stream to end", Duration::from_secs(20), || async {
        api(&node).await["streams"][0]["ended"] == Value::Bool(true)
    })
    .await;
    let play = Command::new("ffmpeg")
        .args(["-v", "error", "-i", &format!("{base}master.m3u8"), "-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        play.status.success() && play.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&play.stderr)
    );
    assert!(node.stop().success());

    // Restarted without ingest: serves what the data directory holds, verifying each segment.
    let wire = std::fs::read(data.path().join(format!("streams/{id}/manifest.json"))).unwrap();
    let m = Signed::<ManifestRoot>::verify(&wire, &sid).unwrap();
    let segs = &m.body.renditions[0].segments;
    let (bad, good) = (&segs[0], &segs[1]);
    let path = data.path().join(format!("streams/{id}/seg/{}.m4s", bad.hash));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let node = Node::start(data.path(), &["--no-rtmp"]);
    let base = node.url(&format!("/streams/{id}/"));
    let r = get(&format!("{base}seg/{}.m4s", bad.hash)).await;
    assert_eq!(r.status(), 500, "a tampered file is not served");
    let r = get(&format!("{base}seg/{}.m4s", good.hash)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(blake3::hash(&r.bytes().await.unwrap()).as_bytes(), &good.hash.0);
    let metrics = get(&node.url("/metrics")).await.text().await.unwrap();
    assert!(
        metrics.contains("hlswarm_verification_failures_total{source=\"disk\"} 1"),
        "{metrics}"
    );
    assert!(node.stop().success());
}

/// The watch page's script (~840 KB) goes out compressed to browsers that accept it: brotli
/// first, then gzip, identical to the plain file once decoded; plain to everyone else.
#[tokio::test(flavor = "multi_thread")]
async fn web_client_is_served_precompressed() {
    let data = tempfile::tempdir().unwrap();
    let node = Node::start(data.path(), &["--no-rtmp"]);
    let url = node.url("/assets/watch.js");
    let client = reqwest::Client::new();
    let fetch = |accept: Option<&'static str>| {
        let mut req = client.get(&url);
        if let Some(a) = accept {
            req = req.header("accept-encoding", a);
        }
        req.send()
    };
    let plain = fetch(None).await.unwrap();
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(header(&plain, "vary"), "accept-encoding");
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 100_000, "the bundle: {} bytes", plain.len());

    let br = fetch(Some("gzip, deflate, br, zstd")).await.unwrap();
    assert_eq!(header(&br, "content-encoding"), "br");
    let br_tag = header(&br, "etag").to_owned();
    let br = br.bytes().await.unwrap();
    assert!(
        br.len() * 2 < plain.len(),
        "brotli: {} of {} bytes",
        br.len(),
        plain.len()
    );

    let gz = fetch(Some("gzip")).await.unwrap();
    assert_eq!(header(&gz, "content-encoding"), "gzip");
    assert_ne!(header(&gz, "etag"), br_tag, "each encoding has its own ETag");
    let gz = gz.bytes().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.js.gz"), &gz).unwrap();
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(dir.path().join("w.js.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, plain, "gzip decodes to the plain file");

    let refused = fetch(Some("br;q=0, gzip;q=0")).await.unwrap();
    assert_eq!(header(&refused, "content-encoding"), "");
    let page = client
        .get(node.url("/"))
        .header("accept-encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&page, "content-encoding"), "br", "the dashboard page too");
    assert!(node.stop().success());
}
