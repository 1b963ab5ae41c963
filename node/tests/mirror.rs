//! HTTP mirrors that route around stale and lying sources (`hlswarm seed --no-swarm`), and
//! `hlswarm verify` telling how old a snapshot is. Real processes: an origin `hlswarm run` with
//! ffmpeg pushing, a seeder, and HTTP servers in the test that play the bad mirrors:
//! - a stale mirror: a frozen copy of the origin's early manifest, announce, log and segments;
//! - a byte-flipping mirror: a proxy to the origin that flips one byte of every segment body.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use common::{ChainWatch, Launch, Node, SECRET, manifest, metric, publish};
use manifest_signer::verify::iso8601_utc;
use manifest_signer::{ManifestRoot, Signed, StreamId};

/// Origin flags: one-second segments; HTTP only (the mirror under test needs nothing else).
const ORIGIN: [&str; 4] = ["--segment-seconds", "1", "--no-swarm", "--no-moq"];

/// A test HTTP server on 127.0.0.1:0, serving until dropped.
struct Server {
    base: String,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(app: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Server { base, task }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A frozen copy of a stream: path under the stream directory -> bytes.
struct Snapshot {
    manifest: Signed<ManifestRoot>,
    files: HashMap<String, Bytes>,
}

impl Snapshot {
    /// The origin's manifest now, then its announce, the log up to that manifest, the playlists
    /// it renders and every blob its windows list.
    async fn take(origin: &Node, id: &StreamId) -> Snapshot {
        let get = |rel: String| async move {
            let r = reqwest::get(origin.url(&format!("/streams/{id}/{rel}"))).await.unwrap();
            assert!(r.status().is_success(), "{rel}: {}", r.status());
            r.bytes().await.unwrap()
        };
        let wire = get("manifest.json".into()).await;
        let manifest = Signed::<ManifestRoot>::verify(&wire, id).unwrap();
        let m = &manifest.body;
        let mut files = HashMap::new();
        files.insert("manifest.json".to_string(), wire);
        files.insert("announce.json".to_string(), get("announce.json".into()).await);
        let log = get("log.jsonl".into()).await;
        let lines: Vec<&[u8]> = log.split_inclusive(|b| *b == b'\n').take(m.log.size as usize).collect();
        files.insert("log.jsonl".to_string(), Bytes::from(lines.concat()));
        files.insert(
            manifest_signer::playlist::MASTER.to_string(),
            Bytes::from(manifest_signer::playlist::render_master(m)),
        );
        for r in &m.renditions {
            files.insert(
                manifest_signer::playlist::media_playlist_name(&r.name),
                Bytes::from(manifest_signer::playlist::render_media(r)),
            );
            let mut paths: Vec<String> = r
                .init
                .iter()
                .map(|i| manifest_signer::playlist::init_path(&i.hash))
                .collect();
            for s in &r.segments {
                paths.extend(s.init.map(|h| manifest_signer::playlist::init_path(&h)));
                paths.push(manifest_signer::playlist::segment_path(&s.hash, r.container));
            }
            for p in paths {
                let b = get(p.clone()).await;
                files.insert(p, b);
            }
        }
        Snapshot { manifest, files }
    }

    /// Serve it as a static mirror would, at `/streams/<id>/...`.
    async fn serve(&self, id: &StreamId) -> Server {
        let prefix = format!("/streams/{id}/");
        let files: Arc<HashMap<String, Bytes>> = Arc::new(
            self.files
                .iter()
                .map(|(k, v)| (format!("{prefix}{k}"), v.clone()))
                .collect(),
        );
        let app = axum::Router::new().fallback(
            |State(files): State<Arc<HashMap<String, Bytes>>>, uri: Uri| async move {
                match files.get(uri.path()) {
                    Some(b) => b.clone().into_response(),
                    None => StatusCode::NOT_FOUND.into_response(),
                }
            },
        );
        Server::start(app.with_state(files)).await
    }

    /// Write it out as a stream directory `dir/streams/<id>/`.
    fn write(&self, dir: &Path, id: &StreamId) -> std::path::PathBuf {
        let root = common::stream_dir(dir, id);
        std::fs::create_dir_all(root.join("seg")).unwrap();
        for (rel, b) in &self.files {
            std::fs::write(root.join(rel), b).unwrap();
        }
        root
    }
}

/// A proxy to `origin` that flips the last byte of every blob under `seg/` (and counts them).
async fn proxy(origin: String, flipped: Arc<AtomicU64>) -> Server {
    #[derive(Clone)]
    struct P {
        origin: String,
        client: reqwest::Client,
        flipped: Arc<AtomicU64>,
    }
    let state = P {
        origin,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap(),
        flipped,
    };
    let app = axum::Router::new().fallback(|State(p): State<P>, uri: Uri| async move {
        let path = uri.path_and_query().map_or(uri.path(), |x| x.as_str());
        let Ok(r) = p.client.get(format!("{}{path}", p.origin)).send().await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
        let Ok(body) = r.bytes().await else {
            return StatusCode::BAD_GATEWAY.into_response();
        };
        let mut body = body.to_vec();
        if status.is_success() && uri.path().contains("/seg/") && !body.is_empty() {
            let last = body.len() - 1;
            body[last] ^= 0x01;
            p.flipped.fetch_add(1, Ordering::Relaxed);
        }
        Response::builder()
            .status(status)
            .body(axum::body::Body::from(body))
            .unwrap()
    });
    Server::start(app.with_state(state)).await
}

/// How the seeder under test follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `hlswarm seed --no-swarm`: the HTTP-only mirror.
    HttpOnly,
    /// A swarm seeder with no peer to ask (the origin runs without the swarm): every blob
    /// comes through the HTTP fallback, after 300 ms.
    SwarmFallback,
}

/// `hlswarm seed` of the watch URLs `bases` (in this order), HTTP on loopback.
fn seed(data: &Path, id: &StreamId, bases: &[&str], mode: Mode) -> Node {
    let mut args = vec!["seed".to_string()];
    args.extend(bases.iter().map(|b| format!("{}/watch/{id}", b.trim_end_matches('/'))));
    args.extend(["--http".into(), "127.0.0.1:0".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config = data.join("seed.toml");
    std::fs::write(&config, "[swarm]\nhttp_fallback_ms = 300\n").unwrap();
    let extra: Vec<&str> = match mode {
        Mode::HttpOnly => vec!["--no-swarm", "--no-moq"],
        Mode::SwarmFallback => vec!["--no-moq", "--config", config.to_str().unwrap()],
    };
    Node::launch_with(data, &args, &extra, false, Launch::default())
}

async fn seq(node: &Node, id: &StreamId) -> Option<u64> {
    manifest(node, id).await.map(|m| m.body.seq)
}

fn hlswarm_verify(target: &Path, extra: &[&str]) -> (bool, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hlswarm"))
        .args(["verify", target.to_str().unwrap()])
        .args(extra)
        .output()
        .unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_mirror_listed_first_does_not_hold_a_seeder_back_and_verify_tells_its_age() {
    stale_mirror_beside_the_origin(Mode::HttpOnly).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_mirror_does_not_hold_the_swarm_fallback_back() {
    stale_mirror_beside_the_origin(Mode::SwarmFallback).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_byte_flipping_mirror_is_banned_and_every_segment_comes_from_the_good_origin() {
    flipping_mirror_beside_the_origin(Mode::HttpOnly).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_swarm_fallback_bans_a_byte_flipping_mirror_and_uses_the_good_origin() {
    flipping_mirror_beside_the_origin(Mode::SwarmFallback).await;
}

async fn stale_mirror_beside_the_origin(mode: Mode) {
    let (odata, sdata, snap_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let origin = Node::start(odata.path(), &ORIGIN);
    let id: StreamId = origin.stream_id.parse().unwrap();
    let mut push = publish(&origin.rtmp_url(SECRET), 120, "320x180");

    // The stale mirror: what the origin served early on, frozen.
    common::wait_until("the origin's manifest 2", Duration::from_secs(60), || async {
        seq(&origin, &id).await.is_some_and(|s| s >= 2)
    })
    .await;
    let snap = Snapshot::take(&origin, &id).await;
    let frozen = snap.manifest.body.seq;
    let stale = snap.serve(&id).await;
    common::wait_until("the origin to move on", Duration::from_secs(60), || async {
        seq(&origin, &id).await.is_some_and(|s| s >= frozen + 5)
    })
    .await;

    // The stale mirror first: before, the seeder took its manifest and never asked the origin.
    let seeder = seed(sdata.path(), &id, &[&stale.base, origin.http.as_deref().unwrap()], mode);
    let watch = ChainWatch::start(seeder.url(&format!("/streams/{id}/manifest.json")), id);
    for round in 0..2 {
        let target = seq(&origin, &id).await.unwrap();
        common::wait_until(
            &format!("the seeder to follow the origin to seq {target} (round {round})"),
            Duration::from_secs(60),
            || async { seq(&seeder, &id).await.is_some_and(|s| s >= target) },
        )
        .await;
    }
    let report = watch.finish().await;
    assert!(report.refused.is_empty(), "the seeder went back: {:?}", report.refused);
    let first = report.accepted.first().unwrap().body.seq;
    if mode == Mode::HttpOnly {
        // Both are asked at once and the freshest taken: the old manifest is never served. (The
        // swarm takes each source's answer as it comes, so it may serve it for a moment.)
        assert!(
            first > frozen,
            "the seeder served the stale manifest {frozen} (first served: {first})"
        );
    }
    common::wait_until("the stale mirror reported behind", Duration::from_secs(30), || async {
        metric(&seeder, "hlswarm_http_source_behind_total").await >= 1.0
    })
    .await;
    assert_eq!(
        metric(&seeder, "hlswarm_http_source_bans_total").await,
        0.0,
        "stale is not lying"
    );
    assert_eq!(
        metric(&seeder, "hlswarm_verification_failures_total").await,
        0.0,
        "an old manifest is not a verification failure"
    );

    if mode == Mode::HttpOnly {
        verify_tells_the_age(&snap, &id, snap_dir.path());
    }
    let _ = push.kill();
    let _ = push.wait();
    assert!(seeder.stop().success());
    assert!(origin.stop().success());
}

/// `hlswarm verify` of the frozen snapshot: valid, signed long ago, and it says so.
fn verify_tells_the_age(snap: &Snapshot, id: &StreamId, snap_dir: &Path) {
    let dir = snap.write(snap_dir, id);
    let signed = iso8601_utc(snap.manifest.body.time_ms);
    let (ok, out) = hlswarm_verify(&dir, &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("signed      {signed} (")), "{out}");
    assert!(out.contains(" ago)"), "{out}");
    let (ok, out) = hlswarm_verify(&dir, &["--max-age-seconds", "3600"]);
    assert!(ok && !out.contains("WARNING"), "younger than an hour: {out}");
    let (ok, out) = hlswarm_verify(&dir, &["--max-age-seconds", "2"]);
    assert!(ok, "old is a warning, not a failure: {out}");
    assert!(out.contains("age         WARNING: older than 2.0 s"), "{out}");
    let (ok, out) = hlswarm_verify(&dir, &["--max-age-seconds", "2", "--fail-if-old"]);
    assert!(!ok, "--fail-if-old fails an old live stream: {out}");
}

async fn flipping_mirror_beside_the_origin(mode: Mode) {
    let (odata, sdata) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let origin = Node::start(odata.path(), &ORIGIN);
    let id: StreamId = origin.stream_id.parse().unwrap();
    let mut push = publish(&origin.rtmp_url(SECRET), 120, "320x180");
    common::wait_until("the origin's first manifest", Duration::from_secs(60), || async {
        seq(&origin, &id).await.is_some()
    })
    .await;
    let flipped = Arc::new(AtomicU64::new(0));
    let base = origin.http.clone().unwrap();
    let liar = proxy(base.clone(), flipped.clone()).await;

    // The liar first (so it is asked first; the origin is also named by the announce's
    // hints): before, it was asked again every poll and the origin never.
    let seeder = seed(sdata.path(), &id, &[&liar.base, &base], mode);
    common::wait_until("the flipping mirror banned", Duration::from_secs(60), || async {
        metric(&seeder, "hlswarm_http_source_bans_total").await >= 1.0
    })
    .await;
    let target = manifest(&origin, &id).await.unwrap();
    let want = target.body.seq + 3;
    common::wait_until(
        &format!("the seeder to go on to seq {want} from the origin"),
        Duration::from_secs(60),
        || async { seq(&seeder, &id).await.is_some_and(|s| s >= want) },
    )
    .await;
    assert!(flipped.load(Ordering::Relaxed) >= 1);
    assert_eq!(
        metric(&seeder, "hlswarm_http_source_bans_total").await,
        1.0,
        "banned once"
    );
    assert!(metric(&seeder, "hlswarm_verification_failures_total{source=\"http\"}").await >= 1.0);
    assert_eq!(
        metric(&seeder, "hlswarm_verification_failures_total{source=\"peer\"}").await,
        0.0,
        "HTTP failures are not a peer's"
    );

    // Every segment: the seeder's log is the origin's, and it holds each segment's verified bytes.
    let size = target.body.log.size as usize;
    let sdir = common::stream_dir(sdata.path(), &id);
    common::wait_until("the seeder to hold every segment", Duration::from_secs(60), || async {
        let log = std::fs::read_to_string(sdir.join("log.jsonl")).unwrap_or_default();
        let entries: Vec<manifest_signer::merkle::LogEntry> =
            log.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let held: Vec<String> = std::fs::read_dir(sdir.join("seg"))
            .map(|d| {
                d.flatten()
                    .map(|f| f.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        entries.len() >= size
            && entries
                .iter()
                .all(|e| held.iter().any(|f| f.starts_with(&e.segment.hash.to_string())))
    })
    .await;
    let (mine, theirs) = (
        common::log_entries(sdata.path(), &id),
        common::log_entries(odata.path(), &id),
    );
    assert_eq!(mine[..size], theirs[..size], "the same log");
    let _ = push.kill();
    let _ = push.wait();
    assert!(seeder.stop().success());
    let report = common::verify_archive(sdata.path());
    assert!(report.contains("result      OK"), "{report}");
    assert!(origin.stop().success());
}

/// A proxy to `origin` that answers 404 for every blob while `block` is set (a mirror that has
/// the manifests but not yet the segments).
async fn gate(origin: String, block: Arc<std::sync::atomic::AtomicBool>) -> Server {
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (client, origin, block) = (client.clone(), origin.clone(), block.clone());
        async move {
            if block.load(Ordering::Relaxed) && uri.path().contains("/seg/") {
                return StatusCode::NOT_FOUND.into_response();
            }
            let path = uri.path_and_query().map_or(uri.path(), |x| x.as_str());
            let Ok(r) = client.get(format!("{origin}{path}")).send().await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            let body = r.bytes().await.unwrap_or_default();
            (status, body).into_response()
        }
    });
    Server::start(app).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeder_that_cannot_fetch_a_newer_manifests_segments_stops_serving_the_old_one_as_live() {
    let (odata, sdata) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The origin's own URL in the hints leads nowhere: the gate is the seeder's only source.
    let mut flags = ORIGIN.to_vec();
    flags.extend(["--public-url", "http://127.0.0.1:9"]);
    let origin = Node::start(odata.path(), &flags);
    let id: StreamId = origin.stream_id.parse().unwrap();
    let mut push = publish(&origin.rtmp_url(SECRET), 120, "320x180");
    common::wait_until("the origin's first manifest", Duration::from_secs(60), || async {
        seq(&origin, &id).await.is_some()
    })
    .await;
    let block = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let via = gate(origin.http.clone().unwrap(), block.clone()).await;
    let seeder = seed(sdata.path(), &id, &[&via.base], Mode::HttpOnly);
    common::wait_until("the seeder to follow", Duration::from_secs(60), || async {
        seq(&seeder, &id).await.is_some_and(|s| s >= 2)
    })
    .await;

    // Segments stop coming: the seeder knows newer manifests but cannot serve them.
    block.store(true, Ordering::Relaxed);
    let get = |path: String| {
        let url = seeder.url(&format!("/streams/{id}/{path}"));
        async move { reqwest::get(url).await.unwrap() }
    };
    common::wait_until(
        "the seeder to refuse its stale manifest",
        Duration::from_secs(60),
        || async { get("manifest.json".into()).await.status() == StatusCode::SERVICE_UNAVAILABLE },
    )
    .await;
    let r = get("manifest.json".into()).await;
    assert_eq!(r.headers()["retry-after"], "2");
    assert!(r.text().await.unwrap().contains("this node is behind the stream"));
    let media = manifest_signer::playlist::media_playlist_name("source");
    assert_eq!(get(media.clone()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get("master.m3u8".into()).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        get("announce.json".into()).await.status().is_success(),
        "the announce is not live state"
    );
    assert!(metric(&seeder, "hlswarm_http_stale_refusals_total").await >= 1.0);

    // Segments come again: it catches up and serves the live edge.
    block.store(false, Ordering::Relaxed);
    let target = seq(&origin, &id).await.unwrap();
    common::wait_until(
        &format!("the seeder back at seq {target}"),
        Duration::from_secs(60),
        || async { seq(&seeder, &id).await.is_some_and(|s| s >= target) },
    )
    .await;
    assert!(get(media).await.status().is_success());
    let _ = push.kill();
    let _ = push.wait();
    assert!(seeder.stop().success());
    assert!(origin.stop().success());
}
