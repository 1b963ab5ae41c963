//! Swarms inside one test process, on loopback TCP: a signing node and seeders, each with its
//! own data directory, catalog and replica. Protocol-level checks that need no ffmpeg.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use manifest_signer::signer::{NewSegment, RenditionInfo, SignerConfig, StreamSigner};
use manifest_signer::{Container, Signed, StreamKey};

use super::*;
use crate::metrics::Metrics;

struct TestNode {
    _dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    addr: Multiaddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn cfg(peers: Vec<String>) -> SwarmConfig {
    SwarmConfig {
        listen: vec!["/ip4/127.0.0.1/tcp/0".into()],
        peers,
        mdns: false,
        http_fallback_ms: 60_000,
        ..SwarmConfig::default()
    }
}

async fn node(own: Option<StreamId>, follows: Vec<Follow>, peers: Vec<String>, misbehave: Misbehave) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    node_in(dir, own, follows, peers, misbehave).await
}

async fn node_in(
    dir: tempfile::TempDir,
    own: Option<StreamId>,
    follows: Vec<Follow>,
    peers: Vec<String>,
    misbehave: Misbehave,
) -> TestNode {
    let catalog = Arc::new(Catalog::new(dir.path(), 8 << 20, Arc::new(Metrics::default())));
    catalog.load_from_disk();
    let replica = Arc::new(Replica::new(dir.path(), catalog.clone(), 0));
    let key = identity::load_or_create(dir.path()).unwrap();
    let started = start(&cfg(peers), key, replica, own, follows, misbehave).await.unwrap();
    let addr: Multiaddr = started.hint_addrs()[0].parse().unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(started.run(async move {
        let mut rx = rx;
        let _ = rx.wait_for(|v| *v).await;
    }));
    TestNode {
        _dir: dir,
        catalog,
        addr,
        stop,
        task,
    }
}

fn segment(i: u8) -> NewSegment {
    NewSegment {
        rendition: "source".into(),
        container: Container::Fmp4,
        data: Arc::from(vec![i; 20_000 + usize::from(i)]),
        init: Some(Arc::from(vec![0xAA; 500])),
        duration_us: 1_000_000,
        discontinuity: false,
        independent: true,
        pdt_ms: None,
        info: RenditionInfo::default(),
    }
}

/// The signing side: a signer writing into the origin's data directory, its manifests offered
/// to the origin's catalog (as `hlswarm run` does).
struct Origin {
    signer: StreamSigner,
    node: TestNode,
}

async fn origin() -> Origin {
    let dir = tempfile::tempdir().unwrap();
    let key = StreamKey::from_seed(rand_seed());
    let id = key.stream_id();
    let signer = StreamSigner::open(
        key,
        dir.path(),
        SignerConfig {
            window: 8,
            retain_segments: None,
            target_duration: 1,
            parts: false,
        },
    )
    .unwrap();
    let node = node_in(dir, Some(id), Vec::new(), Vec::new(), Misbehave::default()).await;
    Origin { signer, node }
}

impl Origin {
    fn publish(&mut self, i: u8) -> Signed<manifest_signer::ManifestRoot> {
        let seg = segment(i);
        let data = Bytes::copy_from_slice(&seg.data);
        let m = self.signer.publish(vec![seg]).unwrap();
        let r = &m.body.renditions[0];
        self.node
            .catalog
            .cache()
            .put(r.segments.last().unwrap().hash, "m4s", data);
        self.node.catalog.offer_manifest(m.clone()).unwrap();
        if m.body.seq == 0 {
            // The announce names the origin's swarm address, as `hlswarm run`'s does.
            let hints = manifest_signer::Hints {
                libp2p: vec![self.node.addr.to_string()],
                ..Default::default()
            };
            let a = self.signer.announce("test", hints, None, 3_600_000).unwrap();
            self.node.catalog.offer_announce_wire(&a.body.stream, a.wire()).unwrap();
        }
        m
    }

    fn id(&self) -> StreamId {
        self.signer.stream_id()
    }
}

async fn served(node: &TestNode, id: &StreamId, seq: u64, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut updates = node.catalog.subscribe();
    loop {
        if node.catalog.get(id).is_some_and(|v| v.manifest.body.seq >= seq) {
            return true;
        }
        match tokio::time::timeout_at(deadline, updates.recv()).await {
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

/// Whether `cond` holds within `limit`, checked every 20 ms (for counters, which have no event
/// to wait on).
async fn eventually(limit: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tick.tick().await;
    }
    cond()
}

fn follow(id: StreamId, peer: &TestNode) -> Vec<Follow> {
    vec![Follow {
        stream: id,
        http: Vec::new(),
        peers: vec![peer.addr.clone()],
    }]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seeder_catches_up_and_follows_by_gossip() {
    let mut o = origin().await;
    let id = o.id();
    for i in 0..3 {
        o.publish(i);
    }
    let s = node(None, follow(id, &o.node), Vec::new(), Misbehave::default()).await;
    // Caught up from the "latest" answer, then every new manifest by gossip.
    assert!(served(&s, &id, 2, Duration::from_secs(20)).await, "caught up");
    for i in 3..6 {
        o.publish(i);
    }
    assert!(served(&s, &id, 5, Duration::from_secs(20)).await, "followed");
    let v = s.catalog.get(&id).unwrap();
    let origin_view = o.node.catalog.get(&id).unwrap();
    assert_eq!(v.manifest.id, origin_view.manifest.id);
    assert_eq!(v.master.bytes, origin_view.master.bytes, "identical playlists");
    // Every blob the window lists is on the seeder's disk under its hash.
    for seg in &v.manifest.body.renditions[0].segments {
        let b = std::fs::read(v.dir.join("seg").join(format!("{}.m4s", seg.hash))).unwrap();
        assert_eq!(Hash::of(&b), seg.hash);
    }
    let _ = s.stop.send(true);
    let _ = o.node.stop.send(true);
}

/// A liar that followed the origin honestly (archive included) and now lies as `lies` says,
/// and a victim that can ask only the liar: the origin has gone away.
async fn liar_and_victim(lies: Misbehave) -> (StreamId, TestNode, TestNode) {
    let mut o = origin().await;
    let id = o.id();
    for i in 0..20 {
        o.publish(i);
    }
    let liar = node(None, follow(id, &o.node), Vec::new(), lies).await;
    assert!(served(&liar, &id, 19, Duration::from_secs(20)).await);
    let r = archive_complete(&liar, &id, Duration::from_secs(30)).await;
    assert!(r.ok() && r.archive_missing == 0, "the liar holds the true stream: {r}");
    let _ = o.node.stop.send(true);
    o.node.task.await.unwrap().unwrap();
    let victim = node(None, follow(id, &liar), Vec::new(), Misbehave::default()).await;
    (id, liar, victim)
}

#[tokio::test(flavor = "multi_thread")]
async fn flipped_bytes_are_refused_never_served_and_the_peer_banned() {
    let flip = Misbehave {
        flip: true,
        ..Misbehave::default()
    };
    let (id, liar, victim) = liar_and_victim(flip).await;
    let m = &victim.catalog.metrics().swarm;
    assert!(
        eventually(Duration::from_secs(20), || m.peers_banned.load(Ordering::Relaxed) >= 1).await,
        "liar banned"
    );
    let text = victim.catalog.metrics().render(&[], 0, 0);
    let refused: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("hlswarm_verification_failures_total{source=\"peer\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "refusals are counted: {text}");
    assert!(victim.catalog.get(&id).is_none(), "nothing served from refused bytes");
    let seg_dir = manifest_signer::store::stream_dir(victim._dir.path(), &id).join("seg");
    let stored = std::fs::read_dir(&seg_dir).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "no refused blob stored");
    for x in [&liar, &victim] {
        let _ = x.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_replayed_manifests_are_refused() {
    let mut o = origin().await;
    let id = o.id();
    o.publish(0);
    let lies = Misbehave {
        forge: true,
        replay: true,
        ..Misbehave::default()
    };
    let liar = node(None, follow(id, &o.node), Vec::new(), lies).await;
    assert!(served(&liar, &id, 0, Duration::from_secs(20)).await);
    let honest = node(
        None,
        follow(id, &liar),
        vec![o.node.addr.to_string()],
        Misbehave::default(),
    )
    .await;
    assert!(served(&honest, &id, 0, Duration::from_secs(20)).await);
    // The liar forges a copy of every manifest it hears; copies sent before the honest node was
    // known to it are lost, so publish (bounded) until one has reached it and been refused.
    let m = &honest.catalog.metrics().swarm;
    let refused = || m.gossip_rejected.load(Ordering::Relaxed) + m.peers_banned.load(Ordering::Relaxed);
    let mut seq = 0;
    while refused() == 0 && seq < 30 {
        seq += 1;
        o.publish(u8::try_from(seq).unwrap());
        assert!(served(&honest, &id, seq, Duration::from_secs(20)).await, "seq {seq}");
    }
    assert!(
        eventually(Duration::from_secs(10), || refused() >= 1).await,
        "forgeries refused"
    );
    assert_eq!(
        honest.catalog.get(&id).unwrap().manifest.id,
        o.node.catalog.get(&id).unwrap().manifest.id,
        "only the signer's manifests"
    );
    for x in [&liar, &honest, &o.node] {
        let _ = x.stop.send(true);
    }
}

/// The seeder's stream directory, verified as `hlswarm verify --archive` would.
async fn verify_archive(node: &TestNode, id: &StreamId) -> manifest_signer::verify::Report {
    use manifest_signer::verify::{DirSource, VerifyOptions, verify_stream};
    let dir = manifest_signer::store::stream_dir(node._dir.path(), id);
    verify_stream(&DirSource(dir), id, VerifyOptions { archive: true }).await
}

/// Until the node's stream verifies with its whole archive present, or `limit` passes.
async fn archive_complete(node: &TestNode, id: &StreamId, limit: Duration) -> manifest_signer::verify::Report {
    let deadline = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        let r = verify_archive(node, id).await;
        if r.ok() && r.log_entries.is_some() && r.archive_missing == 0 || tokio::time::Instant::now() >= deadline {
            return r;
        }
        tick.tick().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_seeder_replicates_the_log_and_the_archive() {
    let mut o = origin().await;
    let id = o.id();
    // 20 segments through a window of 8: 12 are archive only when the seeder joins.
    for i in 0..20 {
        o.publish(i);
    }
    let s = node(None, follow(id, &o.node), Vec::new(), Misbehave::default()).await;
    assert!(served(&s, &id, 19, Duration::from_secs(20)).await, "caught up");
    let r = archive_complete(&s, &id, Duration::from_secs(30)).await;
    assert!(r.ok(), "{r}");
    assert_eq!(r.log_entries, Some(20), "{r}");
    assert_eq!((r.archive_verified, r.archive_missing), (12, 0), "{r}");
    // Live manifests then extend the log without a fetch (rebuilt from the window).
    for i in 20..25 {
        o.publish(i);
    }
    assert!(served(&s, &id, 24, Duration::from_secs(20)).await, "followed");
    let r = archive_complete(&s, &id, Duration::from_secs(20)).await;
    assert!(r.ok(), "{r}");
    assert_eq!(r.log_entries, Some(25), "{r}");
    assert_eq!((r.archive_verified, r.archive_missing), (17, 0), "{r}");
    let _ = s.stop.send(true);
    let _ = o.node.stop.send(true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_log_is_refused_and_the_peer_banned() {
    let lies = Misbehave {
        flip_log: true,
        ..Misbehave::default()
    };
    let (id, liar, victim) = liar_and_victim(lies).await;
    let m = &victim.catalog.metrics().swarm;
    assert!(
        eventually(Duration::from_secs(20), || m.peers_banned.load(Ordering::Relaxed) >= 1).await,
        "liar banned"
    );
    let log = manifest_signer::store::stream_dir(victim._dir.path(), &id).join("log.jsonl");
    let kept = std::fs::read(&log).map(|b| b.len()).unwrap_or(0);
    assert_eq!(kept, 0, "no tampered entry stored");
    for x in [&liar, &victim] {
        let _ = x.stop.send(true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hints_lead_with_external_then_relayed_addresses_and_loopback_last() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::new(dir.path(), 1 << 20, Arc::new(Metrics::default())));
    let replica = Arc::new(Replica::new(dir.path(), catalog, 0));
    let relay = "/ip4/198.51.100.7/tcp/9/p2p/12D3KooWFeiSanQ4ZNN2FQuJYMe1zpNGLCjYWiKab8t2FHfXb6Qo";
    let cfg = SwarmConfig {
        external: vec!["/ip4/203.0.113.5/tcp/4001".into()],
        relays: vec![relay.into()],
        ..cfg(Vec::new())
    };
    let key = identity::load_or_create(dir.path()).unwrap();
    let started = start(&cfg, key, replica, None, Vec::new(), Misbehave::default())
        .await
        .unwrap();
    let me = started.peer_id;
    let hints = started.hint_addrs();
    assert_eq!(hints[0], format!("/ip4/203.0.113.5/tcp/4001/p2p/{me}"), "{hints:?}");
    assert_eq!(hints[1], format!("{relay}/p2p-circuit/p2p/{me}"), "{hints:?}");
    assert!(hints[2].starts_with("/ip4/127.0.0.1/tcp/"), "{hints:?}");
}
