//! The libp2p swarm: nodes carry each other's streams (docs/PROTOCOL.md §15.1).
//!
//! - Transports: TCP and QUIC, noise, yamux; a relay client with DCUtR hole punching and AutoNAT
//!   for nodes behind NAT. Connection limits and a block list bound what peers cost.
//! - Discovery: configured peers, the announce's hints, mDNS, and Kademlia provider records
//!   keyed by stream id (every node carrying a stream provides it).
//! - Gossipsub, one topic per stream: the signer's MANIFEST_ROOT and STREAM_ANNOUNCE, and each
//!   node's "have" (the newest manifest whose blobs it holds). Messages are validated before
//!   gossipsub forwards them; invalid ones are rejected, which lowers the sender's score.
//! - Request-response: a blob by hash, a peer's latest signed objects, or a chunk of a
//!   stream's Merkle log (the archive index; the replica checks it against a signed root).
//!
//! Scheduling: a node fetches each wanted blob from a peer that has it, preferring peers other
//! than the stream's origin and the least loaded; a node serves one blob to at most
//! `upload_slots` peers at a time and answers the rest "busy", so a new segment spreads as a
//! tree and the origin uploads about `upload_slots` copies however many seeders there are.
//! A blob no peer delivered in time comes from the HTTP origins of the hints. Bytes that fail
//! verification get the peer banned. Archive blobs (older than the live window) are fetched
//! after live ones, newest first, a few at a time.

mod assemble;
mod fallback;
pub mod identity;
mod part_glue;
pub mod parts;
pub mod proto;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport, ResponseChannel};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, autonat, connection_limits, dcutr, identify, kad, mdns, noise, ping, relay, yamux};
use manifest_signer::{Hash, StreamId};
use tokio::sync::mpsc;

use crate::catalog::{Catalog, StreamView};
use crate::config::SwarmConfig;
use crate::metrics::SwarmMetrics;
use crate::replica::{LOG_CHUNK, LogProgress, Offered, Replica, Wanted};
use proto::{Gossip, Request, Response};

/// Scheduler tick: wanted blobs are (re)assigned this often.
const TICK: Duration = Duration::from_millis(20);
/// A peer that answered "busy" is asked again for that blob after this long (sooner if
/// someone else announces it has it).
const BUSY_BACKOFF: Duration = Duration::from_millis(100);
/// The origin, once busy, is asked again for that blob only after this long: by then the
/// peers it did serve have it.
const ORIGIN_BUSY_BACKOFF: Duration = Duration::from_secs(1);
/// A node starts at most `upload_slots` uploads of one blob within this window (besides at most
/// that many at once), so a blob leaves each node a bounded number of times and spreads as a
/// tree.
const UPLOAD_WINDOW: Duration = Duration::from_secs(1);
const NOT_FOUND_BACKOFF: Duration = Duration::from_secs(1);
const FAILURE_BACKOFF: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Blob fetches from one peer at once.
const PER_PEER_FETCHES: usize = 4;
/// Blob uploads at once, all blobs together.
const MAX_UPLOADS: usize = 64;
/// HTTP fetches at once.
const HTTP_FETCHES: usize = 4;
/// A followed stream that heard nothing new for this long asks peers and origins for the latest.
const QUIET_POLL: Duration = Duration::from_secs(3);
/// Provider records are looked up this often per followed stream.
const PROVIDER_LOOKUP: Duration = Duration::from_secs(20);
/// Most peers whose "have" is remembered per stream.
const MAX_HAVES: usize = 1024;
/// Blobs read from disk for peers at once (each read holds the whole blob in memory).
const MAX_DISK_READS: usize = 8;
/// Archive blob fetches at once, all streams together: live segments go first.
const ARCHIVE_FETCHES: usize = 4;
/// Archive blobs taken from the replica into the scheduler per stream at a time.
const ARCHIVE_QUEUE: usize = 64;
/// Largest `log.jsonl` fetched from an HTTP origin (about 250,000 entries).
pub const MAX_HTTP_LOG_BYTES: u64 = 64 << 20;

#[derive(NetworkBehaviour)]
struct Behaviour {
    limits: connection_limits::Behaviour,
    blocked: libp2p::allow_block_list::Behaviour<libp2p::allow_block_list::BlockedPeers>,
    relay: relay::client::Behaviour,
    relay_server: Toggle<relay::Behaviour>,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    gossipsub: gossipsub::Behaviour,
    fetch: request_response::Behaviour<proto::Codec>,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

/// Test-only ways for a node to lie (`--misbehave`); never set in production.
#[derive(Debug, Clone, Copy, Default)]
pub struct Misbehave {
    /// Flip a byte of every blob served.
    pub flip: bool,
    /// Re-sign every manifest heard with another key and gossip it.
    pub forge: bool,
    /// Gossip and serve the first manifest heard, over and over.
    pub replay: bool,
    /// Change a segment hash in every log chunk served.
    pub flip_log: bool,
}

impl Misbehave {
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let mut m = Misbehave::default();
        for w in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match w {
                "flip" => m.flip = true,
                "forge" => m.forge = true,
                "replay" => m.replay = true,
                "flip-log" => m.flip_log = true,
                other => anyhow::bail!("unknown misbehaviour {other:?}"),
            }
        }
        Ok(m)
    }
}

/// A stream to follow, with where to look for it.
#[derive(Debug, Clone)]
pub struct Follow {
    pub stream: StreamId,
    pub http: Vec<String>,
    pub peers: Vec<Multiaddr>,
}

/// A running swarm: its peer id and the addresses it listens on.
#[derive(Debug)]
pub struct Started {
    pub peer_id: PeerId,
    pub listen: Vec<Multiaddr>,
    /// Addresses through the configured relays (`<relay>/p2p-circuit`).
    pub relayed: Vec<Multiaddr>,
    /// Public addresses from `[swarm] external` (without `/p2p/...`).
    pub external: Vec<Multiaddr>,
    node: Node,
}

impl Started {
    /// Hints for the announce, each with `/p2p/<peer id>`: the configured external addresses,
    /// the listen addresses, the relayed ones, loopback last.
    pub fn hint_addrs(&self) -> Vec<String> {
        let mut v: Vec<&Multiaddr> = self.external.iter().chain(&self.listen).chain(&self.relayed).collect();
        v.dedup();
        // A stable sort: external ones keep their lead within each class.
        v.sort_by_key(|a| {
            let loopback = a
                .iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_loopback()));
            let relayed = a.iter().any(|p| p == libp2p::multiaddr::Protocol::P2pCircuit);
            (loopback, relayed)
        });
        v.into_iter()
            .take(manifest_signer::objects::limits::MAX_HINTS_PER_KIND)
            .map(|a| format!("{a}/p2p/{}", self.peer_id))
            .collect()
    }

    /// Run until `stop` resolves.
    pub async fn run(self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        self.node.run(stop).await
    }
}

/// Build the swarm and bind its listeners (returns once each has an address).
pub async fn start(
    cfg: &SwarmConfig,
    key: libp2p::identity::Keypair,
    replica: Arc<Replica>,
    own: Option<StreamId>,
    follows: Vec<Follow>,
    misbehave: Misbehave,
) -> anyhow::Result<Started> {
    let peer_id = key.public().to_peer_id();
    let mdns_on = cfg.mdns;
    let relay_server = cfg.relay_server;
    let max_conns = cfg.max_connections;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(
            |key, relay| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                let id = key.public().to_peer_id();
                let gossip_cfg = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .validate_messages()
                    .max_transmit_size(manifest_signer::objects::limits::MAX_MANIFEST_BYTES + 1024)
                    .heartbeat_interval(Duration::from_millis(700))
                    // The author is part of the id: two nodes' "have" of one seq are two messages,
                    // and an old manifest re-published by someone else is validated (and refused).
                    .message_id_fn(|m: &gossipsub::Message| {
                        let mut h = blake3::Hasher::new();
                        if let Some(s) = &m.source {
                            h.update(&s.to_bytes());
                        }
                        h.update(&m.data);
                        gossipsub::MessageId::from(&h.finalize().as_bytes()[..20])
                    })
                    .build()?;
                let mut gossipsub =
                    gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Signed(key.clone()), gossip_cfg)?;
                let (params, thresholds) = score_params();
                gossipsub.with_peer_score(params, thresholds)?;
                let mut kad = kad::Behaviour::with_config(
                    id,
                    kad::store::MemoryStore::new(id),
                    kad::Config::new(proto::KAD_PROTOCOL),
                );
                kad.set_mode(Some(kad::Mode::Server));
                let mdns = if mdns_on {
                    Some(mdns::tokio::Behaviour::new(mdns::Config::default(), id)?)
                } else {
                    None
                };
                Ok(Behaviour {
                    limits: connection_limits::Behaviour::new(
                        connection_limits::ConnectionLimits::default()
                            .with_max_established(Some(max_conns))
                            .with_max_established_per_peer(Some(2))
                            .with_max_pending_incoming(Some(64)),
                    ),
                    blocked: Default::default(),
                    relay,
                    relay_server: relay_server.then(|| relay::Behaviour::new(id, relay_config())).into(),
                    dcutr: dcutr::Behaviour::new(id),
                    autonat: autonat::Behaviour::new(id, autonat::Config::default()),
                    identify: identify::Behaviour::new(identify::Config::new(
                        proto::IDENTIFY_VERSION.into(),
                        key.public(),
                    )),
                    ping: ping::Behaviour::default(),
                    kad,
                    gossipsub,
                    fetch: request_response::Behaviour::new(
                        [(proto::FETCH_PROTOCOL, ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(REQUEST_TIMEOUT)
                            .with_max_concurrent_streams(256),
                    ),
                    mdns: mdns.into(),
                })
            },
        )
        .map_err(|e| anyhow::anyhow!("building the swarm: {e}"))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();

    let mut pending = HashSet::new();
    for a in &cfg.listen {
        let mut addr: Multiaddr = a.parse().with_context(|| format!("swarm listen address {a}"))?;
        // libp2p listens with SO_REUSEPORT, so a second node on this machine would share the
        // port with the first and the kernel would split incoming connections between them.
        // Probe with a plain socket first.
        if !port_free(&addr) {
            let any = any_port(&addr);
            tracing::warn!(%addr, fallback = %any, "swarm port taken; listening on a free port");
            addr = any;
        }
        let id = match swarm.listen_on(addr.clone()) {
            Ok(id) => id,
            Err(e) => {
                // Another node on this machine has the port: any free port serves as well,
                // since peers learn addresses from the hints, identify and the DHT.
                let any = any_port(&addr);
                tracing::warn!(%addr, error = %e, fallback = %any, "swarm port taken; listening on a free port");
                swarm
                    .listen_on(any.clone())
                    .with_context(|| format!("listening on {addr} and on {any}"))?
            }
        };
        pending.insert(id);
    }
    for a in &cfg.external {
        if let Ok(addr) = a.parse() {
            swarm.add_external_address(addr);
        }
    }
    // Wait until every listener reported an address (or failed). A listener on 0.0.0.0 reports
    // one per interface, all at once.
    let mut listen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pending.is_empty() {
        let ev = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .context("swarm listeners did not come up within 10 s")?;
        match ev {
            SwarmEvent::NewListenAddr { address, listener_id } => {
                listen.push(address);
                pending.remove(&listener_id);
            }
            SwarmEvent::ListenerError { error, .. } => anyhow::bail!("swarm listener failed: {error}"),
            SwarmEvent::ListenerClosed { reason, addresses, .. } => {
                anyhow::bail!("swarm listener {addresses:?} closed: {reason:?}")
            }
            _ => {}
        }
    }
    // A listener on 0.0.0.0 reports one address per interface, one event each, loopback often
    // first: take the rest of that burst too, or the hints would name only 127.0.0.1.
    while let Ok(ev) = tokio::time::timeout(Duration::from_millis(100), swarm.select_next_some()).await {
        if let SwarmEvent::NewListenAddr { address, .. } = ev {
            listen.push(address);
        }
        if tokio::time::Instant::now() >= deadline {
            break;
        }
    }
    // A relay offers its service only at confirmed external addresses. A relay operator's node
    // is reachable where it listens unless `external` says otherwise.
    if cfg.relay_server && cfg.external.is_empty() {
        for a in listen.iter().filter(|a| {
            !a.iter()
                .any(|p| matches!(p, libp2p::multiaddr::Protocol::Ip4(ip) if ip.is_loopback()))
        }) {
            swarm.add_external_address(a.clone());
        }
    }
    let mut relayed = Vec::new();
    for r in &cfg.relays {
        if let Ok(addr) = r.parse::<Multiaddr>() {
            let circuit = addr.with(libp2p::multiaddr::Protocol::P2pCircuit);
            match swarm.listen_on(circuit.clone()) {
                Ok(_) => relayed.push(circuit),
                Err(e) => tracing::warn!(relay = %circuit, error = %e, "cannot reserve a relay slot"),
            }
        }
    }
    let (tx, rx) = mpsc::channel(1024);
    let catalog = replica.catalog().clone();
    let mut node = Node {
        swarm,
        updates: catalog.subscribe(),
        relay: parts::PartRelay::default(),
        part_fetches: HashMap::new(),
        part_uploads: part_glue::PartUploads::default(),
        awaiting: Vec::new(),
        parts_added: catalog.parts().added(),
        catalog,
        replica,
        own,
        streams: HashMap::new(),
        uploads: HashMap::new(),
        upload_count: HashMap::new(),
        upload_recent: HashMap::new(),
        disk_reads: 0,
        ticks: 0,
        outbound: HashMap::new(),
        peer_load: HashMap::new(),
        http_inflight: 0,
        bans: Vec::new(),
        connected: HashSet::new(),
        tx,
        rx,
        cfg: cfg.clone(),
        http: reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("HTTP client")?,
        misbehave,
        first_heard: HashMap::new(),
        forger: manifest_signer::StreamKey::from_seed(rand_seed()),
    };
    for p in &cfg.peers {
        if let Ok(addr) = p.parse::<Multiaddr>() {
            node.dial(addr);
        }
    }
    if let Some(id) = own {
        node.carry(id, Vec::new());
    }
    for f in follows {
        for a in f.peers {
            node.dial(a);
        }
        node.carry(f.stream, f.http);
    }
    let external = cfg
        .external
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .map(|mut a| {
            if matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(_))) {
                a.pop();
            }
            a
        })
        .collect();
    Ok(Started {
        peer_id,
        listen: listen.clone(),
        relayed,
        external,
        node,
    })
}

/// Whether a plain (non-SO_REUSEPORT) socket can bind `addr`'s IP and TCP or UDP port.
fn port_free(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) if port != 0 => {
                return ip.is_none_or(|ip| std::net::TcpListener::bind((ip, port)).is_ok());
            }
            Protocol::Udp(port) if port != 0 => {
                return ip.is_none_or(|ip| std::net::UdpSocket::bind((ip, port)).is_ok());
            }
            _ => {}
        }
    }
    true
}

/// `addr` with its TCP or UDP port set to 0.
fn any_port(addr: &Multiaddr) -> Multiaddr {
    use libp2p::multiaddr::Protocol;
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect()
}

/// Circuit relay v2 limits when this node relays for others: enough for segments (libp2p's
/// default stops a circuit after 128 KiB), bounded in count, time and bytes.
fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: 128,
        max_reservations_per_peer: 2,
        max_circuits: 64,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(30 * 60),
        max_circuit_bytes: 4 << 30,
        ..relay::Config::default()
    }
}

fn rand_seed() -> [u8; 32] {
    let mut s = [0u8; 32];
    let _ = getrandom::fill(&mut s);
    s
}

/// Peer scoring: a rejected message costs a lot (P4); slow or quiet mesh peers cost nothing,
/// because a stream's topic carries only a few messages per segment. Loopback peers (one
/// machine running several nodes) are exempt from the same-IP penalty.
fn score_params() -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut p = gossipsub::PeerScoreParams::default();
    p.ip_colocation_factor_whitelist
        .insert(std::net::IpAddr::from([127, 0, 0, 1]));
    p.ip_colocation_factor_whitelist
        .insert(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    (p, gossipsub::PeerScoreThresholds::default())
}

fn topic_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_cap: 20.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.9,
        ..Default::default()
    }
}

/// Per stream: who has what, and what this node still wants.
#[derive(Debug)]
struct Carried {
    http: crate::sources::HttpSources,
    /// Newest complete manifest seq per peer.
    haves: HashMap<PeerId, u64>,
    /// The author of the newest manifest gossiped (the signer's node).
    origin: Option<PeerId>,
    wants: HashMap<Hash, Want>,
    last_new: Instant,
    last_poll: Instant,
    last_lookup: Option<Instant>,
    have_published: Option<u64>,
    published_manifest: Option<Hash>,
    published_announce: Option<Hash>,
    /// A log chunk is being fetched or checked.
    log_busy: bool,
    /// Where the unverified log entries staged so far came from (`Some(None)`: HTTP).
    log_source: Option<Option<PeerId>>,
    log_backoff: HashMap<PeerId, Instant>,
    /// Since when the log has lacked entries with no peer to ask.
    log_stuck: Option<Instant>,
}

#[derive(Debug)]
struct Want {
    w: Wanted,
    /// The manifest seq that first listed it: a peer whose "have" is at least this holds it.
    /// For an archive blob, its log index instead.
    seq: u64,
    /// Older than the live window: any peer carrying the stream may hold it.
    archive: bool,
    since: Instant,
    inflight: bool,
    backoff: HashMap<PeerId, Instant>,
    /// HTTP sources that failed to deliver it since the fallback began.
    http_tried: Vec<String>,
}

/// Results from blocking work and HTTP fetches, back on the swarm task.
enum Internal {
    Serve(ResponseChannel<Response>, Response),
    Stored {
        stream: StreamId,
        hash: Hash,
        from: Option<PeerId>,
        len: usize,
        result: Result<(), manifest_signer::Error>,
    },
    Http(fallback::HttpEvent),
    /// A wanted segment made of parts held here, offered to the replica.
    Assembled {
        stream: StreamId,
        hash: Hash,
        result: Result<(), manifest_signer::Error>,
    },
    /// Log entries offered to the replica; `from` is the source (None: HTTP).
    LogTaken {
        stream: StreamId,
        from: Option<PeerId>,
        result: Result<LogProgress, manifest_signer::Error>,
    },
}

struct Node {
    swarm: libp2p::Swarm<Behaviour>,
    catalog: Arc<Catalog>,
    updates: tokio::sync::broadcast::Receiver<Arc<StreamView>>,
    replica: Arc<Replica>,
    own: Option<StreamId>,
    streams: HashMap<StreamId, Carried>,
    /// Inbound blob requests being answered: request id -> blob.
    uploads: HashMap<request_response::InboundRequestId, Hash>,
    upload_count: HashMap<Hash, usize>,
    /// Start times of this node's recent uploads of each blob (within `UPLOAD_WINDOW`).
    upload_recent: HashMap<Hash, Vec<Instant>>,
    disk_reads: usize,
    ticks: u64,
    /// Outbound requests: id -> (request, peer).
    outbound: HashMap<OutboundRequestId, (Request, PeerId)>,
    peer_load: HashMap<PeerId, usize>,
    http_inflight: usize,
    bans: Vec<(PeerId, Instant)>,
    connected: HashSet<PeerId>,
    tx: mpsc::Sender<Internal>,
    rx: mpsc::Receiver<Internal>,
    cfg: SwarmConfig,
    http: reqwest::Client,
    misbehave: Misbehave,
    first_heard: HashMap<StreamId, Vec<u8>>,
    forger: manifest_signer::StreamKey,
    /// LL-HLS parts in flight (swarm/parts.rs), and the fetches of their bytes.
    relay: parts::PartRelay<gossipsub::MessageId, PeerId>,
    part_fetches: HashMap<OutboundRequestId, (StreamId, Hash)>,
    part_uploads: part_glue::PartUploads,
    /// Wanted segments waiting for their last parts (swarm/assemble.rs).
    awaiting: Vec<assemble::Awaited>,
    parts_added: tokio::sync::broadcast::Receiver<(StreamId, Bytes)>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer_id", self.swarm.local_peer_id())
            .finish()
    }
}

impl Node {
    fn metrics(&self) -> &SwarmMetrics {
        &self.catalog.metrics().swarm
    }

    fn dial(&mut self, addr: Multiaddr) {
        if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
            if peer == *self.swarm.local_peer_id() {
                return;
            }
            self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
        }
        if let Err(e) = self.swarm.dial(addr.clone()) {
            tracing::debug!(%addr, error = %e, "dial failed");
        }
    }

    /// Start carrying a stream: subscribe to its topic and provide it in the DHT.
    fn carry(&mut self, stream: StreamId, http: Vec<String>) {
        let now = Instant::now();
        let ban = Duration::from_secs(self.cfg.ban_seconds);
        let c = self.streams.entry(stream).or_insert_with(|| Carried {
            http: crate::sources::HttpSources::new([], ban),
            haves: HashMap::new(),
            origin: None,
            wants: HashMap::new(),
            last_new: now,
            last_poll: now - QUIET_POLL,
            last_lookup: None,
            have_published: None,
            published_manifest: None,
            published_announce: None,
            log_busy: false,
            log_source: None,
            log_backoff: HashMap::new(),
            log_stuck: None,
        });
        for h in http {
            c.http.add(h);
        }
        let b = self.swarm.behaviour_mut();
        let topic = proto::topic(&stream);
        if let Err(e) = b.gossipsub.subscribe(&topic) {
            tracing::warn!(%stream, error = ?e, "cannot subscribe to the stream's topic");
        }
        if let Err(e) = b.gossipsub.set_topic_params(topic, topic_params()) {
            tracing::warn!(%stream, error = e, "cannot set topic score parameters");
        }
        if let Err(e) = b.kad.start_providing(proto::provider_key(&stream)) {
            tracing::warn!(%stream, error = ?e, "cannot provide the stream in the DHT");
        }
    }

    async fn run(mut self, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Streams already in the catalog (the node's own, or loaded from disk) are published.
        for v in self.catalog.list() {
            self.on_view(&v);
        }
        loop {
            tokio::select! {
                () = &mut stop => break,
                ev = self.swarm.select_next_some() => self.on_swarm(ev),
                Some(msg) = self.rx.recv() => self.on_internal(msg),
                up = self.updates.recv() => match up {
                    Ok(v) => self.on_view(&v),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        for v in self.catalog.list() {
                            self.on_view(&v);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = tick.tick() => self.on_tick(),
                added = self.parts_added.recv() => match added {
                    Ok((stream, wire)) => self.on_part_added(stream, wire),
                    // Missed parts are missed: followers take their segments whole.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
            }
        }
        Ok(())
    }

    /// A view the catalog accepted: the signer's node gossips the signed objects; every node
    /// that carries the stream gossips that it has this manifest's blobs.
    fn on_view(&mut self, v: &StreamView) {
        let id = v.id;
        if !self.streams.contains_key(&id) {
            // A stream loaded from disk: carry it too, so peers can fetch what is here.
            self.carry(id, Vec::new());
        }
        let own = self.own == Some(id);
        let seq = v.manifest.body.seq;
        let Some(c) = self.streams.get_mut(&id) else { return };
        let mut out = Vec::new();
        if own && c.published_manifest != Some(v.manifest.id) {
            c.published_manifest = Some(v.manifest.id);
            out.push(Gossip::Manifest(v.manifest_wire.to_vec()));
        }
        if own
            && let Some(a) = &v.announce
            && c.published_announce != Some(a.id)
        {
            c.published_announce = Some(a.id);
            out.push(Gossip::Announce(a.wire().to_vec()));
        }
        if !own && c.have_published.is_none_or(|s| s < seq) {
            c.have_published = Some(seq);
            out.push(Gossip::Have(seq));
        }
        let topic = proto::topic(&id);
        for g in out {
            if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic.clone(), g.encode()) {
                tracing::debug!(stream = %id, error = ?e, "gossip publish");
            }
        }
    }

    fn on_swarm(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::Fetch(e)) => self.on_fetch(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                for a in info.listen_addrs.into_iter().take(16) {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, a);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(list))) => {
                for (peer, addr) in list.into_iter().take(32) {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr.clone());
                    if !self.connected.contains(&peer) {
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                result: kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders { providers, .. })),
                ..
            })) => {
                for p in providers.into_iter().take(32) {
                    if p != *self.swarm.local_peer_id() && !self.connected.contains(&p) {
                        let _ = self.swarm.dial(p);
                    }
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } if self.connected.insert(peer_id) => {
                self.metrics()
                    .peers
                    .store(self.connected.len() as u64, Ordering::Relaxed);
                if self.connected.len() == 1 {
                    let _ = self.swarm.behaviour_mut().kad.bootstrap();
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.metrics()
                    .peers
                    .store(self.connected.len() as u64, Ordering::Relaxed);
                for c in self.streams.values_mut() {
                    c.haves.remove(&peer_id);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "swarm listening");
            }
            _ => {}
        }
    }

    fn on_gossip(&mut self, e: gossipsub::Event) {
        match e {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => {
                if message.data.first() == Some(&4)
                    && let Some(stream) = proto::topic_stream(message.topic.as_str())
                    && self.streams.contains_key(&stream)
                    && let Ok(Gossip::Part(wire)) = Gossip::decode(&message.data)
                {
                    return self.on_part_gossip(stream, &wire, message_id, propagation_source);
                }
                let verdict = self.validate(&message);
                if verdict == MessageAcceptance::Reject {
                    SwarmMetrics::add(&self.metrics().gossip_rejected, 1);
                }
                let _ = self.swarm.behaviour_mut().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    verdict,
                );
            }
            gossipsub::Event::Subscribed { peer_id, topic } => {
                // A peer joined a stream we carry: ask what it has (catching up after a start
                // or restart, and learning its "have").
                if let Some(stream) = proto::topic_stream(topic.as_str())
                    && self.streams.contains_key(&stream)
                    && self.own != Some(stream)
                {
                    self.request(peer_id, Request::Latest { stream });
                }
            }
            _ => {}
        }
    }

    fn validate(&mut self, m: &gossipsub::Message) -> MessageAcceptance {
        let Some(stream) = proto::topic_stream(m.topic.as_str()) else {
            return MessageAcceptance::Reject;
        };
        if !self.streams.contains_key(&stream) {
            return MessageAcceptance::Ignore;
        }
        let gossip = match Gossip::decode(&m.data) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(%stream, source = ?m.source, error = e, "malformed gossip rejected");
                return MessageAcceptance::Reject;
            }
        };
        match gossip {
            // Handled by on_part_gossip (a stream carried here); anything else is not ours.
            Gossip::Part(_) => MessageAcceptance::Ignore,
            Gossip::Have(seq) => {
                if let (Some(src), Some(c)) = (m.source, self.streams.get_mut(&stream))
                    && (c.haves.len() < MAX_HAVES || c.haves.contains_key(&src))
                {
                    let h = c.haves.entry(src).or_insert(seq);
                    *h = (*h).max(seq);
                }
                MessageAcceptance::Accept
            }
            Gossip::Announce(wire) => {
                if self.own == Some(stream) {
                    return MessageAcceptance::Ignore;
                }
                match self.replica.offer_announce_wire(&stream, &wire) {
                    Ok(()) => {
                        self.dial_hints(stream, &wire);
                        MessageAcceptance::Accept
                    }
                    Err(e) if matches!(e.code(), "replay" | "expired") => MessageAcceptance::Ignore,
                    Err(e) => {
                        tracing::warn!(%stream, source = ?m.source, code = e.code(), error = %e, "gossiped STREAM_ANNOUNCE rejected");
                        MessageAcceptance::Reject
                    }
                }
            }
            Gossip::Manifest(wire) => {
                if self.own == Some(stream) {
                    return MessageAcceptance::Ignore;
                }
                match self.offer_manifest(stream, &wire, m.source, true) {
                    Ok(()) => MessageAcceptance::Accept,
                    Err(e) => {
                        let harmless = e.code() == "replay" && is_recent_replay(&e);
                        tracing::warn!(%stream, source = ?m.source, code = e.code(), error = %e, "gossiped MANIFEST_ROOT rejected");
                        if harmless {
                            MessageAcceptance::Ignore
                        } else {
                            MessageAcceptance::Reject
                        }
                    }
                }
            }
        }
    }

    /// A manifest from a peer (gossip or a Latest answer): verified by the replica; its blobs
    /// become wants. `holder` has them all: the gossip author (the signer's node) or the
    /// node that answered "latest" (it serves only complete manifests).
    fn offer_manifest(
        &mut self,
        stream: StreamId,
        wire: &[u8],
        holder: Option<PeerId>,
        gossiped: bool,
    ) -> Result<(), manifest_signer::Error> {
        let offered = self.replica.offer_manifest_wire(&stream, wire)?;
        if self.misbehave.replay || self.misbehave.forge {
            self.lie_about(stream, wire);
        }
        let Some(c) = self.streams.get_mut(&stream) else {
            return Ok(());
        };
        let seq = match &offered {
            Offered::New { seq, .. } | Offered::Known { seq } => *seq,
        };
        if let Some(a) = holder {
            if gossiped {
                c.origin = Some(a);
            }
            let h = c.haves.entry(a).or_insert(seq);
            *h = (*h).max(seq);
        }
        if let Offered::New { seq, wanted } = offered {
            let from_parts = self.assemble_from_parts(stream, wire, &wanted);
            let Some(c) = self.streams.get_mut(&stream) else {
                return Ok(());
            };
            c.last_new = Instant::now();
            let now = Instant::now();
            for w in wanted {
                let want = c.wants.entry(w.hash).or_insert(Want {
                    w,
                    seq,
                    archive: false,
                    since: now,
                    inflight: false,
                    backoff: HashMap::new(),
                    http_tried: Vec::new(),
                });
                // An archive blob a live window lists again is live now.
                if want.archive {
                    want.archive = false;
                    want.seq = seq;
                }
                // Being stored from parts: fetched only if that fails.
                want.inflight |= from_parts.contains(&want.w.hash);
            }
            self.schedule();
        }
        Ok(())
    }

    /// `--misbehave forge|replay`: gossip a forged or an old manifest.
    fn lie_about(&mut self, stream: StreamId, wire: &[u8]) {
        let first = self.first_heard.entry(stream).or_insert_with(|| wire.to_vec()).clone();
        let topic = proto::topic(&stream);
        if self.misbehave.replay && first != wire {
            let _ = self
                .swarm
                .behaviour_mut()
                .gossipsub
                .publish(topic.clone(), Gossip::Manifest(first).encode());
        }
        if self.misbehave.forge
            && let Ok(m) = manifest_signer::Signed::<manifest_signer::ManifestRoot>::from_wire(wire)
        {
            let mut body = m.body.clone();
            body.seq += 1;
            body.prev = Some(m.id);
            if let Ok(forged) = forge(body, &self.forger) {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(topic, Gossip::Manifest(forged).encode());
            }
        }
    }

    fn on_fetch(&mut self, e: request_response::Event<Request, Response>) {
        match e {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => self.serve(peer, request_id, request, channel),
            request_response::Event::Message {
                peer,
                message: request_response::Message::Response { request_id, response },
                ..
            } => {
                if self.part_fetches.contains_key(&request_id) {
                    return self.on_part_response(request_id, peer, Some(response));
                }
                let Some((req, _)) = self.outbound.remove(&request_id) else {
                    return;
                };
                self.unload(peer);
                match (req, response) {
                    (Request::Blob { stream, hash }, Response::Blob(bytes)) => {
                        let replica = self.replica.clone();
                        let tx = self.tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let len = bytes.len();
                            let result = replica.put_blob(&stream, hash, Bytes::from(bytes));
                            let _ = tx.blocking_send(Internal::Stored {
                                stream,
                                hash,
                                from: Some(peer),
                                len,
                                result,
                            });
                        });
                    }
                    (Request::Blob { stream, hash }, Response::Busy) => {
                        let origin = self.streams.get(&stream).and_then(|c| c.origin) == Some(peer);
                        let backoff = if origin { ORIGIN_BUSY_BACKOFF } else { BUSY_BACKOFF };
                        self.release(stream, hash, Some((peer, backoff)));
                    }
                    (Request::Blob { stream, hash }, _) => self.release(stream, hash, Some((peer, NOT_FOUND_BACKOFF))),
                    (Request::Latest { stream }, Response::Latest { manifest, announce }) => {
                        self.take_latest(stream, &manifest, announce.as_deref(), Some(peer));
                    }
                    (Request::Log { stream, from }, Response::Log(lines)) => {
                        let replica = self.replica.clone();
                        let tx = self.tx.clone();
                        tokio::task::spawn_blocking(move || {
                            let result = replica.offer_log(&stream, from, &lines);
                            let _ = tx.blocking_send(Internal::LogTaken {
                                stream,
                                from: Some(peer),
                                result,
                            });
                        });
                    }
                    (Request::Log { stream, .. }, _) => self.log_failed(stream, peer, NOT_FOUND_BACKOFF),
                    (Request::Latest { .. }, _) => {}
                }
                self.schedule();
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if self.part_fetches.contains_key(&request_id) {
                    return self.on_part_response(request_id, peer, None);
                }
                if let Some((req, _)) = self.outbound.remove(&request_id) {
                    self.unload(peer);
                    tracing::debug!(%peer, error = %error, "swarm request failed");
                    match req {
                        Request::Blob { stream, hash } => self.release(stream, hash, Some((peer, FAILURE_BACKOFF))),
                        Request::Log { stream, .. } => self.log_failed(stream, peer, FAILURE_BACKOFF),
                        Request::Latest { .. } => {}
                    }
                }
            }
            request_response::Event::ResponseSent { request_id, .. }
            | request_response::Event::InboundFailure { request_id, .. } => self.upload_done(request_id),
        }
    }

    fn take_latest(&mut self, stream: StreamId, manifest: &[u8], announce: Option<&[u8]>, from: Option<PeerId>) {
        if self.own == Some(stream) {
            return;
        }
        // The announce first: its hints name the origin, which the scheduler then spares.
        if let Some(a) = announce {
            match self.replica.offer_announce_wire(&stream, a) {
                Ok(()) => self.dial_hints(stream, a),
                Err(e) if matches!(e.code(), "replay" | "expired") => {}
                Err(e) => tracing::debug!(%stream, code = e.code(), "latest STREAM_ANNOUNCE not used"),
            }
        }
        match self.offer_manifest(stream, manifest, from, false) {
            Ok(()) => {}
            Err(manifest_signer::Error::Replay { seq, .. }) => {
                // Older than ours, but complete: the peer holds that manifest's blobs.
                if let (Some(p), Some(c)) = (from, self.streams.get_mut(&stream)) {
                    let h = c.haves.entry(p).or_insert(seq);
                    *h = (*h).max(seq);
                }
            }
            Err(e) => {
                tracing::warn!(%stream, peer = ?from, code = e.code(), error = %e, "latest MANIFEST_ROOT from a peer refused");
                if let Some(p) = from
                    && matches!(e.code(), "bad_signature" | "wrong_key" | "malformed" | "non_canonical")
                {
                    self.ban(p, "sent a forged manifest");
                }
            }
        }
    }

    /// An announce the replica just accepted: its libp2p hints are the signer's node (the
    /// origin, which the scheduler spares) and are dialled.
    fn dial_hints(&mut self, stream: StreamId, wire: &[u8]) {
        let Ok(a) = manifest_signer::Signed::<manifest_signer::StreamAnnounce>::from_wire(wire) else {
            return;
        };
        let max = manifest_signer::objects::limits::MAX_HINTS_PER_KIND;
        for h in a.body.hints.libp2p.iter().take(max) {
            let Ok(addr) = h.parse::<Multiaddr>() else { continue };
            let Some(libp2p::multiaddr::Protocol::P2p(p)) = addr.iter().last() else {
                continue;
            };
            if let Some(c) = self.streams.get_mut(&stream) {
                c.origin.get_or_insert(p);
            }
            if !self.connected.contains(&p) {
                self.dial(addr);
            }
        }
    }

    fn serve(
        &mut self,
        peer: PeerId,
        request_id: request_response::InboundRequestId,
        request: Request,
        channel: ResponseChannel<Response>,
    ) {
        match request {
            Request::Latest { stream } => {
                let resp = match self.catalog.get(&stream) {
                    Some(v) => {
                        let manifest = match (self.misbehave.replay, self.first_heard.get(&stream)) {
                            (true, Some(old)) => old.clone(),
                            _ => v.manifest_wire.to_vec(),
                        };
                        Response::Latest {
                            manifest,
                            announce: v.announce_wire.as_ref().map(|a| a.to_vec()),
                        }
                    }
                    None => Response::NotFound,
                };
                let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
            }
            Request::Log { stream, from } => {
                let Some(view) = self.catalog.get(&stream) else {
                    return self.respond(channel, Response::NotFound);
                };
                if self.disk_reads >= MAX_DISK_READS {
                    SwarmMetrics::add(&self.metrics().busy_replies, 1);
                    return self.respond(channel, Response::Busy);
                }
                self.disk_reads += 1;
                let tx = self.tx.clone();
                let path = view.dir.join(manifest_signer::store::LOG_FILE);
                let flip = self.misbehave.flip_log;
                tokio::task::spawn_blocking(move || {
                    let resp = match read_log_chunk(&path, from) {
                        Some(lines) if flip => Response::Log(flip_log_line(lines)),
                        Some(lines) => Response::Log(lines),
                        None => Response::NotFound,
                    };
                    let _ = tx.blocking_send(Internal::Serve(channel, resp));
                });
            }
            Request::Blob { stream, hash } => {
                if let Some(bytes) = self.catalog.parts().bytes(&stream, &hash) {
                    return self.serve_part(peer, request_id, hash, bytes, channel);
                }
                if self.relay.pending(&stream, &hash) {
                    return self.park_part_request(peer, request_id, hash, channel);
                }
                let Some(view) = self.catalog.get(&stream) else {
                    return self.respond(channel, Response::NotFound);
                };
                let now = Instant::now();
                let cached = self.catalog.cache().get(&hash).map(|(_, b)| b);
                let recent = self.upload_recent.entry(hash).or_default();
                recent.retain(|t| now.duration_since(*t) < UPLOAD_WINDOW);
                let slots = self.upload_count.get(&hash).copied().unwrap_or(0);
                if slots >= self.cfg.upload_slots
                    || recent.len() >= self.cfg.upload_slots
                    || self.uploads.len() >= MAX_UPLOADS
                    || (cached.is_none() && self.disk_reads >= MAX_DISK_READS)
                {
                    tracing::trace!(%peer, %hash, "busy");
                    SwarmMetrics::add(&self.metrics().busy_replies, 1);
                    let _ = self.swarm.behaviour_mut().fetch.send_response(channel, Response::Busy);
                    return;
                }
                recent.push(now);
                self.uploads.insert(request_id, hash);
                *self.upload_count.entry(hash).or_default() += 1;
                let flip = self.misbehave.flip;
                if let Some(bytes) = cached {
                    let resp = blob_response(bytes.to_vec(), flip);
                    self.count_upload(&resp);
                    let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
                    return;
                }
                self.disk_reads += 1;
                let tx = self.tx.clone();
                let dir = view.dir.join(manifest_signer::store::SEGMENT_DIR);
                let catalog = self.catalog.clone();
                tokio::task::spawn_blocking(move || {
                    let resp = match read_verified(&dir, &hash) {
                        Ok(Some(b)) => blob_response(b, flip),
                        Ok(None) => Response::NotFound,
                        Err(()) => {
                            catalog
                                .metrics()
                                .verification_failure(crate::metrics::FailureSource::Disk);
                            Response::NotFound
                        }
                    };
                    let _ = tx.blocking_send(Internal::Serve(channel, resp));
                });
            }
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, resp: Response) {
        let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
    }

    fn count_upload(&self, resp: &Response) {
        if let Response::Blob(b) = resp {
            SwarmMetrics::add(&self.metrics().segments_served, 1);
            SwarmMetrics::add(&self.metrics().bytes_out, b.len() as u64);
        }
    }

    fn upload_done(&mut self, id: request_response::InboundRequestId) {
        if let Some(hash) = self.uploads.remove(&id)
            && let Some(n) = self.upload_count.get_mut(&hash)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.upload_count.remove(&hash);
            }
        }
    }

    fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::Serve(channel, resp) => {
                self.disk_reads = self.disk_reads.saturating_sub(1);
                self.count_upload(&resp);
                let _ = self.swarm.behaviour_mut().fetch.send_response(channel, resp);
            }
            Internal::Stored {
                stream,
                hash,
                from,
                len,
                result,
            } => match result {
                Ok(()) => {
                    let m = self.metrics();
                    match from {
                        Some(_) => {
                            SwarmMetrics::add(&m.fetched_peer, 1);
                            SwarmMetrics::add(&m.bytes_in_peer, len as u64);
                        }
                        None => {
                            SwarmMetrics::add(&m.fetched_http, 1);
                            SwarmMetrics::add(&m.bytes_in_http, len as u64);
                        }
                    }
                    if let Some(c) = self.streams.get_mut(&stream) {
                        c.wants.remove(&hash);
                    }
                    self.drop_stale_wants(stream);
                    self.schedule();
                }
                Err(e) => {
                    tracing::warn!(%stream, %hash, peer = ?from, code = e.code(), error = %e, "fetched blob refused");
                    if let Some(p) = from
                        && e.code() == "hash_mismatch"
                    {
                        self.ban(p, "sent bytes that do not match their hash");
                    }
                    self.release(stream, hash, from.map(|p| (p, FAILURE_BACKOFF)));
                    self.drop_stale_wants(stream);
                }
            },
            Internal::Http(ev) => self.on_http(ev),
            Internal::Assembled { stream, hash, result } => self.on_assembled(stream, hash, result),
            Internal::LogTaken { stream, from, result } => {
                let Some(c) = self.streams.get_mut(&stream) else { return };
                c.log_busy = false;
                match result {
                    Ok(LogProgress::Verified(size)) => {
                        tracing::debug!(%stream, size, peer = ?from, "log in step with the signed root");
                        c.log_source = None;
                        c.log_stuck = None;
                        self.queue_archive(stream);
                    }
                    Ok(LogProgress::Staged(0)) => match from {
                        Some(p) => self.log_failed(stream, p, NOT_FOUND_BACKOFF),
                        // The HTTP origin again only after another `http_fallback_ms`.
                        None => c.log_stuck = Some(Instant::now()),
                    },
                    Ok(LogProgress::Staged(_) | LogProgress::Stale) => {}
                    Err(e) => {
                        tracing::warn!(%stream, peer = ?from, code = e.code(), error = %e, "log entries refused");
                        c.log_source = None;
                        match from {
                            Some(p) => self.ban(p, "sent log entries that do not match the signed root"),
                            None => c.log_stuck = Some(Instant::now()),
                        }
                    }
                }
            }
        }
    }

    /// A log request that got nothing: ask someone else for a while.
    fn log_failed(&mut self, stream: StreamId, peer: PeerId, backoff: Duration) {
        if let Some(c) = self.streams.get_mut(&stream) {
            c.log_busy = false;
            c.log_backoff.insert(peer, Instant::now() + backoff);
        }
    }

    /// Fetch the next chunk of log entries the replica lacks: from a peer that carries the
    /// stream (the one already staged from first, then non-origin peers with the newest
    /// manifest), else, after `http_fallback_ms` with nobody to ask, from the HTTP origin.
    fn sync_log(&mut self, stream: StreamId) {
        let now = Instant::now();
        let fallback = Duration::from_millis(self.cfg.http_fallback_ms);
        let Some(c) = self.streams.get(&stream) else { return };
        if c.log_busy {
            return;
        }
        let Some(mut need) = self.replica.log_need(&stream) else {
            if let Some(c) = self.streams.get_mut(&stream) {
                c.log_stuck = None;
            }
            return;
        };
        let staged_from = c.log_source;
        let usable = |p: &PeerId| {
            self.connected.contains(p)
                && c.log_backoff.get(p).is_none_or(|t| *t <= now)
                && self.peer_load.get(p).copied().unwrap_or(0) < PER_PEER_FETCHES
        };
        let peer = match staged_from {
            Some(Some(p)) if usable(&p) => Some(p),
            // Peers that served the manifest whose log is wanted (or a newer one).
            _ => c
                .haves
                .iter()
                .filter(|(p, s)| **s >= need.seq && usable(p))
                .min_by_key(|(p, s)| (c.origin == Some(**p), std::cmp::Reverse(**s), p.to_bytes()))
                .map(|(p, _)| *p),
        };
        let source = match peer {
            Some(p) => Some(p),
            None => {
                let Some(c) = self.streams.get_mut(&stream) else { return };
                let stuck = *c.log_stuck.get_or_insert(now);
                if now.duration_since(stuck) < fallback || !c.http.any_usable(now) {
                    return;
                }
                None
            }
        };
        if staged_from.is_some_and(|s| s != source) {
            // Entries from two sources could not tell which one lied: start over.
            self.replica.reset_log_staging(&stream);
            match self.replica.log_need(&stream) {
                Some(n) => need = n,
                None => return,
            }
        }
        let Some(c) = self.streams.get_mut(&stream) else { return };
        c.log_busy = true;
        c.log_source = Some(source);
        match source {
            Some(p) => self.request(
                p,
                Request::Log {
                    stream,
                    from: need.from,
                },
            ),
            None => {
                if !self.fetch_http_log(stream, need)
                    && let Some(c) = self.streams.get_mut(&stream)
                {
                    c.log_busy = false;
                }
            }
        }
    }

    /// Archive blobs the replica wants become wants of the scheduler.
    fn queue_archive(&mut self, stream: StreamId) {
        let Some(c) = self.streams.get_mut(&stream) else { return };
        let mut room = ARCHIVE_QUEUE.saturating_sub(c.wants.values().filter(|w| w.archive).count());
        let now = Instant::now();
        for (index, w) in self.replica.archive_wanted(&stream, ARCHIVE_QUEUE) {
            if room == 0 {
                break;
            }
            if c.wants.contains_key(&w.hash) {
                continue;
            }
            room -= 1;
            c.wants.insert(
                w.hash,
                Want {
                    w,
                    seq: index,
                    archive: true,
                    since: now,
                    inflight: false,
                    backoff: HashMap::new(),
                    http_tried: Vec::new(),
                },
            );
        }
    }

    /// Wants the replica no longer has (superseded manifests, or stored by another path).
    fn drop_stale_wants(&mut self, stream: StreamId) {
        let replica = self.replica.clone();
        if let Some(c) = self.streams.get_mut(&stream) {
            c.wants.retain(|h, w| w.inflight || replica.is_wanted(&stream, h));
        }
    }

    fn release(&mut self, stream: StreamId, hash: Hash, backoff: Option<(PeerId, Duration)>) {
        if let Some(w) = self.streams.get_mut(&stream).and_then(|c| c.wants.get_mut(&hash)) {
            w.inflight = false;
            if let Some((p, d)) = backoff {
                w.backoff.insert(p, Instant::now() + d);
            }
        }
    }

    fn unload(&mut self, peer: PeerId) {
        if let Some(n) = self.peer_load.get_mut(&peer) {
            *n = n.saturating_sub(1);
        }
    }

    fn request(&mut self, peer: PeerId, req: Request) {
        let id = self.swarm.behaviour_mut().fetch.send_request(&peer, req);
        self.outbound.insert(id, (req, peer));
        *self.peer_load.entry(peer).or_default() += 1;
    }

    fn ban(&mut self, peer: PeerId, why: &str) {
        if self.swarm.behaviour_mut().blocked.block_peer(peer) {
            tracing::warn!(%peer, reason = why, "peer banned");
            SwarmMetrics::add(&self.metrics().peers_banned, 1);
            let until = Instant::now() + Duration::from_secs(self.cfg.ban_seconds);
            self.bans.push((peer, until));
            for c in self.streams.values_mut() {
                c.haves.remove(&peer);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        self.upload_recent
            .retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < UPLOAD_WINDOW));
        let expired: Vec<PeerId> = self.bans.iter().filter(|(_, t)| *t <= now).map(|(p, _)| *p).collect();
        if !expired.is_empty() {
            self.bans.retain(|(_, t)| *t > now);
            for p in expired {
                self.swarm.behaviour_mut().blocked.unblock_peer(p);
            }
        }
        self.ticks += 1;
        self.part_tick();
        let streams: Vec<StreamId> = self.streams.keys().copied().collect();
        for id in streams {
            if self.own == Some(id) {
                continue;
            }
            if self.ticks.is_multiple_of(50) {
                // Wants of manifests superseded while nobody could deliver them.
                self.drop_stale_wants(id);
                self.queue_archive(id);
            }
            if self.ticks.is_multiple_of(10) {
                self.sync_log(id);
            }
            let Some(c) = self.streams.get_mut(&id) else { continue };
            if c.last_lookup.is_none_or(|t| now.duration_since(t) >= PROVIDER_LOOKUP) {
                c.last_lookup = Some(now);
                self.swarm.behaviour_mut().kad.get_providers(proto::provider_key(&id));
            }
            let Some(c) = self.streams.get_mut(&id) else { continue };
            if now.duration_since(c.last_new) >= QUIET_POLL && now.duration_since(c.last_poll) >= QUIET_POLL {
                c.last_poll = now;
                let http = c.http.pick_for_poll(now);
                let peers: Vec<PeerId> = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .mesh_peers(&proto::topic(&id).hash())
                    .copied()
                    .take(2)
                    .collect();
                for p in peers {
                    self.request(p, Request::Latest { stream: id });
                }
                for base in http {
                    self.poll_http(id, base);
                }
            }
        }
        self.schedule();
    }

    /// Assign wanted blobs to peers (or to HTTP origins when no peer delivered in time).
    fn schedule(&mut self) {
        let now = Instant::now();
        let fallback = Duration::from_millis(self.cfg.http_fallback_ms);
        let mut inflight = self.outbound.len();
        let mut archive_inflight = self
            .streams
            .values()
            .flat_map(|c| c.wants.values())
            .filter(|w| w.archive && w.inflight)
            .count();
        let mut jobs: Vec<(StreamId, Hash, PeerId)> = Vec::new();
        let mut http_jobs: Vec<(StreamId, Wanted, String)> = Vec::new();
        for (id, c) in &mut self.streams {
            let mut wants: Vec<&mut Want> = c.wants.values_mut().filter(|w| !w.inflight).collect();
            // Live first, oldest manifest first (segments in order); then the archive, newest first.
            wants.sort_by_key(|w| (w.archive, if w.archive { u64::MAX - w.seq } else { w.seq }));
            for w in wants {
                if inflight >= self.cfg.fetch_concurrency {
                    break;
                }
                if w.archive && archive_inflight >= ARCHIVE_FETCHES {
                    break;
                }
                let candidates = c.haves.iter().filter(|(p, s)| {
                    (w.archive || **s >= w.seq)
                        && self.connected.contains(p)
                        && w.backoff.get(p).is_none_or(|t| *t <= now)
                        && self.peer_load.get(p).copied().unwrap_or(0) < PER_PEER_FETCHES
                });
                // Prefer peers other than the origin, then the least loaded; ties at random
                // (the hash of peer and blob), so seeders spread over different peers.
                let best = candidates.min_by_key(|(p, _)| {
                    let is_origin = c.origin == Some(**p);
                    let load = self.peer_load.get(p).copied().unwrap_or(0);
                    let mut h = blake3::Hasher::new();
                    h.update(&p.to_bytes());
                    h.update(&w.w.hash.0);
                    h.update(&self.swarm.local_peer_id().to_bytes());
                    (is_origin, load, h.finalize().as_bytes()[0])
                });
                if let Some((p, _)) = best {
                    w.inflight = true;
                    inflight += 1;
                    archive_inflight += usize::from(w.archive);
                    *self.peer_load.entry(*p).or_default() += 1;
                    jobs.push((*id, w.w.hash, *p));
                } else if now.duration_since(w.since) >= fallback && self.http_inflight + http_jobs.len() < HTTP_FETCHES
                {
                    let seq = (!w.archive).then_some(w.seq);
                    match c.http.pick_for_blob(now, seq, &w.http_tried) {
                        Some(base) => {
                            w.inflight = true;
                            archive_inflight += usize::from(w.archive);
                            http_jobs.push((*id, w.w, base));
                        }
                        // Every source tried: wait another `http_fallback_ms` before the next round.
                        None if !w.http_tried.is_empty() => {
                            w.http_tried.clear();
                            w.since = now;
                        }
                        None => {}
                    }
                }
            }
        }
        for (stream, hash, peer) in jobs {
            // `request` counts the load again; undo the provisional count above.
            self.unload(peer);
            self.request(peer, Request::Blob { stream, hash });
        }
        for (stream, w, base) in http_jobs {
            self.fetch_http_blob(stream, w, base);
        }
    }
}

/// Up to [`LOG_CHUNK`] lines (and [`proto::MAX_LOG_RESPONSE`] bytes) of a stream's log from
/// line `from`; None when the log has no such line.
fn read_log_chunk(path: &std::path::Path, from: u64) -> Option<Vec<u8>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let mut lines = std::io::BufReader::new(file).split(b'\n');
    for _ in 0..from {
        lines.next()?.ok()?;
    }
    let mut out = Vec::new();
    for line in lines.take(LOG_CHUNK) {
        let line = line.ok()?;
        if out.len() + line.len() + 1 > proto::MAX_LOG_RESPONSE {
            break;
        }
        out.extend_from_slice(&line);
        out.push(b'\n');
    }
    (!out.is_empty()).then_some(out)
}

/// The bytes after the first `n` lines.
pub(crate) fn skip_lines(b: &[u8], n: u64) -> &[u8] {
    let mut rest = b;
    for _ in 0..n {
        match rest.iter().position(|c| *c == b'\n') {
            Some(i) => rest = &rest[i + 1..],
            None => return &[],
        }
    }
    rest
}

/// `--misbehave flip-log`: the first segment hash named, one hex digit changed (still valid JSON).
fn flip_log_line(mut lines: Vec<u8>) -> Vec<u8> {
    let key = b"\"hash\":\"";
    if let Some(i) = lines.windows(key.len()).position(|w| w == key)
        && let Some(c) = lines.get_mut(i + key.len())
    {
        *c = if *c == b'0' { b'1' } else { b'0' };
    }
    lines
}

fn blob_response(mut b: Vec<u8>, flip: bool) -> Response {
    if flip && let Some(x) = b.last_mut() {
        *x ^= 0xff;
    }
    Response::Blob(b)
}

/// A blob from the stream's segment directory, re-hashed: a file that changed on disk is not
/// forwarded (`Err`: it is there but does not match its name).
fn read_verified(dir: &std::path::Path, hash: &Hash) -> Result<Option<Vec<u8>>, ()> {
    for ext in ["m4s", "ts", manifest_signer::objects::INIT_EXT] {
        let path = dir.join(format!("{hash}.{ext}"));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() <= manifest_signer::objects::limits::MAX_SEGMENT_BYTES => {}
            _ => continue,
        }
        let Ok(b) = std::fs::read(&path) else {
            return Ok(None);
        };
        if Hash::of(&b) == *hash {
            return Ok(Some(b));
        }
        tracing::error!(path = %path.display(), "blob on disk does not match its hash: not served to peers");
        return Err(());
    }
    Ok(None)
}

/// A replay only a little behind the latest: gossip reordering, not an attack.
fn is_recent_replay(e: &manifest_signer::Error) -> bool {
    matches!(e, manifest_signer::Error::Replay { seq, latest } if latest.saturating_sub(*seq) <= 16)
}

/// `--misbehave forge`: the manifest's body signed with a key that is not the stream's.
fn forge(body: manifest_signer::ManifestRoot, key: &manifest_signer::StreamKey) -> anyhow::Result<Vec<u8>> {
    let obj = manifest_signer::objects::to_envelope(&body)?;
    Ok(manifest_signer::objects::sign_raw::<manifest_signer::ManifestRoot>(
        obj, key,
    )?)
}

#[cfg(test)]
mod tests;
