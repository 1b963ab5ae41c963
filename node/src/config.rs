//! `hlswarm run` configuration: built-in defaults, then the TOML file, then environment variables
//! and flags (clap reads both into the same `Option`s), each overriding the one before.
//!
//! The documented example is `hlswarm.example.toml` at the repository root; a test parses it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::cli::RunArgs;

/// The config file read when `--config` is not given and the file exists.
pub const DEFAULT_FILE: &str = "hlswarm.toml";
/// Largest config file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Longest end-of-stream grace period (one day).
const MAX_END_GRACE_SECONDS: u64 = 86_400;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub rtmp: RtmpConfig,
    pub http: HttpConfig,
    pub stream: StreamConfig,
    pub tracker: TrackerSection,
    pub swarm: SwarmConfig,
    /// `[moq]`: the MoQ server and relay link (node/src/moq).
    pub moq: crate::moq::MoqConfig,
}

/// `[swarm]`: the libp2p swarm through which nodes carry each other's streams.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwarmConfig {
    pub enabled: bool,
    /// libp2p listen multiaddrs (TCP and QUIC).
    pub listen: Vec<String>,
    /// Peers to dial at start (`/ip4/.../tcp/.../p2p/<peer id>`), besides the announce's hints.
    pub peers: Vec<String>,
    /// Addresses to advertise (a public address behind port forwarding).
    pub external: Vec<String>,
    /// Find nodes on the local network by mDNS.
    pub mdns: bool,
    /// Relays to reserve a slot on when this node is not reachable (`.../p2p/<relay id>`):
    /// peers then reach it through them, and its announce names the relayed addresses.
    pub relays: Vec<String>,
    /// Relay for nodes that cannot be reached directly (circuit relay v2, bounded: 128
    /// reservations, 64 circuits, 30 min and 4 GiB per circuit). Costs this node's bandwidth.
    pub relay_server: bool,
    /// Established connections, in and out.
    pub max_connections: u32,
    /// Blob fetches in flight at once.
    pub fetch_concurrency: usize,
    /// Concurrent uploads of one blob; more askers are told to fetch from someone who has it.
    pub upload_slots: usize,
    /// A blob no peer delivered within this time is fetched from the HTTP origins in the hints.
    pub http_fallback_ms: u64,
    /// Peers whose bytes fail verification are banned this long.
    pub ban_seconds: u64,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            enabled: true,
            listen: vec!["/ip4/0.0.0.0/tcp/4001".into(), "/ip4/0.0.0.0/udp/4001/quic-v1".into()],
            peers: Vec::new(),
            external: Vec::new(),
            mdns: true,
            relays: Vec::new(),
            relay_server: false,
            max_connections: 256,
            fetch_concurrency: 16,
            upload_slots: 2,
            http_fallback_ms: 3000,
            ban_seconds: 600,
        }
    }
}

/// `[tracker]`: the WebTorrent tracker embedded in the HTTP origin at `/tracker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerSection {
    pub enabled: bool,
    pub limits: tracker::TrackerConfig,
}

impl Default for TrackerSection {
    fn default() -> Self {
        TrackerSection {
            enabled: true,
            limits: tracker::TrackerConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    /// Set to false to run without ingest (serve what the data directory holds).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Publish secret OBS uses as its stream key; generated once into DATA_DIR/keys/publish.secret if unset.
    pub stream_key: Option<String>,
    pub segment_seconds: u64,
    /// LL-HLS part target in milliseconds (fMP4 only): each part is signed and served as it
    /// completes. 0 turns parts (and LL-HLS) off.
    pub part_ms: u64,
    /// MPEG-TS instead of fMP4/CMAF.
    pub ts: bool,
    /// ABR ladder presets transcoded by ffmpeg besides the source, e.g. "720p,480p"; "" for none.
    pub ladder: String,
    /// The ffmpeg the ladder runs.
    pub ffmpeg: PathBuf,
    /// Connections that have not published yet, in all; at the bound the oldest is closed.
    pub max_connections: usize,
    /// Connections that have not published yet, from one address (IPv6: one /64).
    pub max_connections_per_address: usize,
    /// Time from accept (TLS handshake included) to a started publish.
    pub handshake_timeout_ms: u64,
    /// RTMPS (RTMP over TLS) listen address; unset: no RTMPS.
    pub rtmps_listen: Option<SocketAddr>,
    /// RTMPS certificate chain and key (PEM). Unset: a self-signed certificate kept in
    /// DATA_DIR/keys/rtmps.crt and rtmps.key.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 1935)),
            stream_key: None,
            segment_seconds: 2,
            part_ms: 200,
            ts: false,
            ladder: String::new(),
            ffmpeg: PathBuf::from("ffmpeg"),
            max_connections: 16,
            max_connections_per_address: 4,
            handshake_timeout_ms: 5000,
            rtmps_listen: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl RtmpConfig {
    /// Flags and environment for `[rtmp]`.
    fn apply(&mut self, a: &RunArgs) {
        if let Some(l) = a.rtmp {
            self.listen = l;
        }
        if a.no_rtmp {
            self.enabled = false;
        }
        if a.stream_key.is_some() {
            self.stream_key = a.stream_key.clone();
        }
        if let Some(s) = a.segment_seconds {
            self.segment_seconds = s;
        }
        if let Some(ms) = a.part_ms {
            self.part_ms = ms;
        }
        if a.ts {
            self.ts = true;
        }
        if let Some(l) = &a.ladder {
            self.ladder = l.clone();
        }
        if let Some(n) = a.rtmp_max_connections {
            self.max_connections = n;
        }
        if let Some(n) = a.rtmp_max_connections_per_address {
            self.max_connections_per_address = n;
        }
        if let Some(ms) = a.rtmp_handshake_timeout_ms {
            self.handshake_timeout_ms = ms;
        }
        if a.rtmps.is_some() {
            self.rtmps_listen = a.rtmps;
        }
        if a.rtmps_cert.is_some() {
            self.tls_cert = a.rtmps_cert.clone();
        }
        if a.rtmps_key.is_some() {
            self.tls_key = a.rtmps_key.clone();
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=60).contains(&self.segment_seconds),
            "rtmp.segment_seconds must be 1-60, not {}",
            self.segment_seconds
        );
        anyhow::ensure!(
            self.part_ms == 0
                || ((50..=5000).contains(&self.part_ms) && self.part_ms * 2 <= self.segment_seconds * 1000),
            "rtmp.part_ms must be 0 (off) or 50-5000 and at most half a segment, not {}",
            self.part_ms
        );
        anyhow::ensure!(
            (1..=4096).contains(&self.max_connections),
            "rtmp.max_connections must be 1-4096, not {}",
            self.max_connections
        );
        anyhow::ensure!(
            (1..=self.max_connections).contains(&self.max_connections_per_address),
            "rtmp.max_connections_per_address must be 1-{} (rtmp.max_connections), not {}",
            self.max_connections,
            self.max_connections_per_address
        );
        anyhow::ensure!(
            (500..=60_000).contains(&self.handshake_timeout_ms),
            "rtmp.handshake_timeout_ms must be 500-60000, not {}",
            self.handshake_timeout_ms
        );
        anyhow::ensure!(
            self.tls_cert.is_some() == self.tls_key.is_some(),
            "rtmp.tls_cert and rtmp.tls_key go together"
        );
        if let Some(key) = &self.stream_key {
            anyhow::ensure!(
                !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic() && b != b'/'),
                "rtmp.stream_key must be 1-128 printable characters without '/'"
            );
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// The URL viewers reach this node at (`https://node.example/`): printed as the watch link and
    /// put in the STREAM_ANNOUNCE's HTTP hints. Unset: derived from `listen` when it is not 0.0.0.0.
    pub public_url: Option<String>,
    /// Bytes of recent segments kept in memory for serving.
    pub cache_mib: u64,
    /// Reverse proxies in front of this node: from these peers, `X-Forwarded-For` names the
    /// client (tracker limits per address, viewer counts). Empty: the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            public_url: None,
            cache_mib: 32,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Signing key; created there if missing. Default: DATA_DIR/keys/stream.key.
    pub key: Option<PathBuf>,
    pub title: String,
    /// Segments per rendition in the signed live window.
    pub window: usize,
    /// Segments kept on disk for the archive (DVR); 0 keeps all.
    pub retain: usize,
    /// Lightning address (`name@host`) for tips, put in the STREAM_ANNOUNCE.
    pub tip: Option<String>,
    /// Seconds a publisher whose connection dropped (no unpublish) has to come back before
    /// the stream is signed ended (EXT-X-ENDLIST); also after a restart with an unended stream.
    pub end_grace_seconds: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            key: None,
            title: "hlswarm stream".into(),
            window: 8,
            retain: 1800,
            tip: None,
            end_grace_seconds: 30,
        }
    }
}

impl Config {
    /// Parse a config file's text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        Ok(toml::from_str(text)?)
    }

    /// Load the file named by `--config`, or DATA_DIR/hlswarm.toml when it exists, or the
    /// defaults; then apply environment variables and flags.
    pub fn load(data_dir: &Path, args: &RunArgs) -> anyhow::Result<Config> {
        let path = match &args.config {
            Some(p) => Some(p.clone()),
            None => Some(data_dir.join(DEFAULT_FILE)).filter(|p| p.exists()),
        };
        let mut cfg = match &path {
            Some(p) => Self::read(p)?,
            None => Config::default(),
        };
        cfg.apply(args);
        cfg.check()?;
        Ok(cfg)
    }

    fn read(path: &Path) -> anyhow::Result<Config> {
        let meta = std::fs::metadata(path).with_context(|| format!("reading config {}", path.display()))?;
        anyhow::ensure!(
            meta.len() <= MAX_FILE_BYTES,
            "config {} is larger than {MAX_FILE_BYTES} bytes",
            path.display()
        );
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in config {}", path.display()))
    }

    fn apply(&mut self, a: &RunArgs) {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        self.rtmp.apply(a);
        set(&mut self.http.listen, &a.http);
        if a.no_http {
            self.http.enabled = false;
        }
        if a.no_tracker {
            self.tracker.enabled = false;
        }
        if a.public_url.is_some() {
            self.http.public_url = a.public_url.clone();
        }
        self.http.trusted_proxies.extend(a.trusted_proxy.iter().copied());
        if a.key.is_some() {
            self.stream.key = a.key.clone();
        }
        set(&mut self.stream.title, &a.title);
        set(&mut self.stream.window, &a.window);
        set(&mut self.stream.retain, &a.retain);
        set(&mut self.stream.end_grace_seconds, &a.end_grace_seconds);
        if a.tip.is_some() {
            self.stream.tip = a.tip.clone();
        }
        if !a.p2p.is_empty() {
            self.swarm.listen = a.p2p.clone();
        }
        self.swarm.peers.extend(a.peer.iter().cloned());
        self.swarm.relays.extend(a.relay.iter().cloned());
        self.swarm.external.extend(a.external.iter().cloned());
        if a.relay_server {
            self.swarm.relay_server = true;
        }
        if a.no_swarm {
            self.swarm.enabled = false;
        }
        if a.no_mdns {
            self.swarm.mdns = false;
        }
        self.apply_moq(a);
    }

    /// `--moq`, `--no-moq`, `--moq-relay*`.
    fn apply_moq(&mut self, a: &RunArgs) {
        if let Some(l) = a.moq {
            self.moq.listen = l;
        }
        if a.no_moq {
            self.moq.enabled = false;
        }
        if let Some(url) = &a.moq_relay {
            let relay = self.moq.relay.get_or_insert_with(Default::default);
            relay.url = url.clone();
        }
        if let Some(relay) = self.moq.relay.as_mut() {
            if a.moq_relay_jwt.is_some() {
                relay.jwt = a.moq_relay_jwt.clone();
            }
            if a.moq_relay_insecure {
                relay.tls_insecure = true;
            }
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        self.rtmp.check()?;
        anyhow::ensure!(
            (1..=manifest_signer::objects::limits::MAX_WINDOW_SEGMENTS).contains(&self.stream.window),
            "stream.window must be 1-{}, not {}",
            manifest_signer::objects::limits::MAX_WINDOW_SEGMENTS,
            self.stream.window
        );
        anyhow::ensure!(
            self.stream.title.len() <= manifest_signer::objects::limits::MAX_TITLE_BYTES,
            "stream.title is longer than {} bytes",
            manifest_signer::objects::limits::MAX_TITLE_BYTES
        );
        anyhow::ensure!(
            self.stream.end_grace_seconds <= MAX_END_GRACE_SECONDS,
            "stream.end_grace_seconds must be 0-{MAX_END_GRACE_SECONDS}, not {}",
            self.stream.end_grace_seconds
        );
        self.tracker.limits.check().map_err(anyhow::Error::msg)?;
        let s = &self.swarm;
        for a in s.listen.iter().chain(&s.peers).chain(&s.external).chain(&s.relays) {
            a.parse::<libp2p::Multiaddr>()
                .map_err(|e| anyhow::anyhow!("swarm address {a:?} is not a multiaddr: {e}"))?;
        }
        anyhow::ensure!(
            s.fetch_concurrency >= 1 && s.upload_slots >= 1 && s.max_connections >= 1,
            "swarm.fetch_concurrency, upload_slots and max_connections must be at least 1"
        );
        self.moq.check()?;
        if let Some(url) = &self.http.public_url {
            anyhow::ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "http.public_url must start with http:// or https://, not {url:?}"
            );
        }
        Ok(())
    }

    /// The embedded tracker's URL for a node whose HTTP base is `http_base`.
    pub fn tracker_url(http_base: &str) -> Option<String> {
        let rest = http_base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| http_base.strip_prefix("http://").map(|r| format!("ws://{r}")))?;
        Some(format!("{rest}tracker"))
    }

    /// The HTTP base URL to print and to hint, ending in `/`.
    pub fn http_base(&self, bound: SocketAddr) -> Option<String> {
        if let Some(u) = &self.http.public_url {
            return Some(if u.ends_with('/') { u.clone() } else { format!("{u}/") });
        }
        (!bound.ip().is_unspecified()).then(|| format!("http://{bound}/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_the_defaults_it_documents() {
        let text = include_str!("../../hlswarm.example.toml");
        let cfg = Config::parse(text).expect("the example config parses");
        let def = Config::default();
        assert_eq!(cfg.rtmp.listen, def.rtmp.listen);
        assert_eq!(cfg.rtmp.max_connections, def.rtmp.max_connections);
        assert_eq!(
            cfg.rtmp.max_connections_per_address,
            def.rtmp.max_connections_per_address
        );
        assert_eq!(cfg.rtmp.handshake_timeout_ms, def.rtmp.handshake_timeout_ms);
        assert_eq!(cfg.rtmp.rtmps_listen, def.rtmp.rtmps_listen);
        assert_eq!(cfg.http.listen, def.http.listen);
        assert_eq!(cfg.stream.window, def.stream.window);
        assert_eq!(cfg.stream.retain, def.stream.retain);
        assert_eq!(cfg.stream.end_grace_seconds, def.stream.end_grace_seconds);
        assert_eq!(cfg.http.cache_mib, def.http.cache_mib);
        assert_eq!(cfg.tracker.enabled, def.tracker.enabled);
        assert_eq!(cfg.tracker.limits, def.tracker.limits);
        assert_eq!(cfg.swarm.listen, def.swarm.listen);
        assert_eq!(cfg.swarm.upload_slots, def.swarm.upload_slots);
        assert_eq!(cfg.moq.enabled, def.moq.enabled);
        assert_eq!(cfg.moq.listen, def.moq.listen);
        assert_eq!(cfg.moq.websocket, def.moq.websocket);
        cfg.check().expect("the example config is valid");
    }

    #[test]
    fn rtmp_limits_are_checked() {
        for (text, what) in [
            (
                "[rtmp]\nmax_connections_per_address = 17\n",
                "max_connections_per_address",
            ),
            ("[rtmp]\nmax_connections = 0\n", "max_connections"),
            ("[rtmp]\nhandshake_timeout_ms = 10\n", "handshake_timeout_ms"),
            ("[rtmp]\ntls_cert = \"c.pem\"\n", "go together"),
        ] {
            let err = Config::parse(text).expect("parses").check().expect_err(text);
            assert!(err.to_string().contains(what), "{text}: {err}");
        }
        let ok = Config::parse("[rtmp]\nrtmps_listen = \"127.0.0.1:1936\"\nmax_connections_per_address = 2\n")
            .expect("parses");
        ok.check().expect("valid");
        assert_eq!(ok.rtmp.rtmps_listen, Some(SocketAddr::from(([127, 0, 0, 1], 1936))));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::parse("[http]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n").expect_err("typo refused");
        assert!(err.to_string().contains("listn"), "{err}");
    }

    #[test]
    fn tracker_url_follows_the_http_base() {
        assert_eq!(
            Config::tracker_url("http://127.0.0.1:9/").as_deref(),
            Some("ws://127.0.0.1:9/tracker")
        );
        assert_eq!(
            Config::tracker_url("https://n.example/live/").as_deref(),
            Some("wss://n.example/live/tracker")
        );
    }

    #[test]
    fn http_base_prefers_the_public_url() {
        let mut cfg = Config::default();
        let any = SocketAddr::from(([0, 0, 0, 0], 8080));
        assert_eq!(cfg.http_base(any), None);
        assert_eq!(
            cfg.http_base(SocketAddr::from(([127, 0, 0, 1], 9))).as_deref(),
            Some("http://127.0.0.1:9/")
        );
        cfg.http.public_url = Some("https://n.example".into());
        assert_eq!(cfg.http_base(any).as_deref(), Some("https://n.example/"));
    }
}
