//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// hlswarm: an ownerless P2P HLS node with signed manifests.
#[derive(Debug, Parser)]
#[command(name = "hlswarm", version, about, long_about = None)]
pub struct Cli {
    /// Data directory: keys, signed manifests, segments.
    #[arg(long, global = true, env = "HLSWARM_DATA_DIR", default_value = "hlswarm-data")]
    pub data_dir: PathBuf,
    /// Log output format.
    #[arg(long, global = true, env = "HLSWARM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node: RTMP ingest in, signed HLS out, served over HTTP with the watch page.
    Run(RunArgs),
    /// Carry other streams: follow them through the swarm (and HTTP origins), verify every
    /// byte, store it and serve it over HTTP and to peers, like the origin does.
    Seed(SeedArgs),
    /// Create a broadcaster key (the stream's identity). Never overwrites a key.
    Keygen(KeygenArgs),
    /// Sign the HLS output of an external packager (ffmpeg, nginx-rtmp, MediaMTX) as it is written.
    Sign(SignArgs),
    /// Check every segment of a stored or served stream against its signed manifests.
    Verify(VerifyArgs),
    /// Run only the WebTorrent tracker (WebSocket at ws://ADDR/ and ws://ADDR/tracker).
    Tracker(TrackerArgs),
    /// Follow a stream over MoQ and print each verified segment with its delay since signing.
    MoqWatch(MoqWatchArgs),
}

#[derive(Debug, Args)]
pub struct MoqWatchArgs {
    /// A relay or node URL ending in the stream id, e.g. https://relay.example/<stream_id>
    /// (WebTransport; `http://` fetches a self-signed relay's fingerprint first, `ws://` is the
    /// WebSocket fallback).
    pub url: String,
    /// The stream id, when the URL does not end in it.
    #[arg(long)]
    pub stream: Option<String>,
    /// A JWT for the relay (sent as the `jwt` query parameter).
    #[arg(long, env = "HLSWARM_MOQ_JWT")]
    pub jwt: Option<String>,
    /// Skip TLS verification (every object is still verified against the stream's signature).
    #[arg(long)]
    pub tls_insecure: bool,
    /// Pin the server certificate by SHA-256 fingerprint (hex; repeatable).
    #[arg(long)]
    pub tls_fingerprint: Vec<String>,
    /// Exit after this many verified segments.
    #[arg(long)]
    pub count: Option<u64>,
    /// Exit with failure after this many seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TrackerArgs {
    /// Listen address.
    #[arg(long, env = "HLSWARM_TRACKER_LISTEN", default_value = "0.0.0.0:8000")]
    pub listen: std::net::SocketAddr,
    /// Most simultaneous connections from one IP address, loopback included. Default 64.
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Runtime worker threads. Every message takes the tracker's one state lock and most of its
    /// cost is the socket write, so more threads mostly add cross-thread wake-ups: on 2 cores
    /// shared with the load generator one thread answered 1.6x the announces of two
    /// (bench/tracker.sh).
    #[arg(long, env = "HLSWARM_TRACKER_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#8 PEM, mode 0600). Default: DATA_DIR/keys/stream.key.
    #[arg(long)]
    pub key: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// The packager's HLS output directory to watch.
    #[arg(long)]
    pub watch: PathBuf,
    /// Private key; created there if missing. Default: DATA_DIR/keys/stream.key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Title for the STREAM_ANNOUNCE.
    #[arg(long, default_value = "hlswarm stream")]
    pub title: String,
    /// Segments per rendition in the signed live window.
    #[arg(long, default_value_t = 8)]
    pub window: usize,
    /// Segments kept on disk for the archive (DVR); 0 keeps all.
    #[arg(long, default_value_t = 1800)]
    pub retain: usize,
    /// Rendition name when the directory holds a single media playlist.
    #[arg(long, default_value = "source")]
    pub rendition: String,
    /// HTTP origin base URL to put in the announce's hints (repeatable).
    #[arg(long = "http-hint")]
    pub http_hints: Vec<String>,
    /// Lightning address for tips, put in the announce.
    #[arg(long)]
    pub tip: Option<String>,
    /// Scan once, sign what is complete, and exit (instead of watching).
    #[arg(long)]
    pub once: bool,
    /// Fallback rescan period in milliseconds (file-system events trigger scans immediately).
    #[arg(long, default_value_t = 1000)]
    pub rescan_ms: u64,
    /// Sign the end of the stream (EXT-X-ENDLIST) after this many seconds with no new segment,
    /// for packagers that never write ENDLIST (nginx-rtmp). A later segment reopens the stream
    /// after a discontinuity. 0: only the packager's ENDLIST ends it.
    #[arg(long, env = "HLSWARM_IDLE_END_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub idle_end_seconds: u64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A stream directory (DATA_DIR/streams/<id>), a data directory, or a URL
    /// (http://host/streams/<id>/ or a watch link http://host/watch/<id>).
    pub target: String,
    /// The stream id to trust; required when the target does not name one.
    #[arg(long)]
    pub stream: Option<String>,
    /// Also verify every archived segment still present, not only the live window.
    #[arg(long)]
    pub archive: bool,
    /// Warn when a live (not ended) stream's newest manifest was signed longer ago than this:
    /// an old snapshot, or a mirror that stopped following.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub max_age_seconds: u64,
    /// Exit non-zero when that warning is given (a valid but old live stream).
    #[arg(long)]
    pub fail_if_old: bool,
}

#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// TOML config file (see hlswarm.example.toml). Default: DATA_DIR/hlswarm.toml if it exists.
    #[arg(long, env = "HLSWARM_CONFIG")]
    pub config: Option<PathBuf>,
    /// RTMP listen address for OBS (`rtmp://HOST:PORT/live/<stream key>`). Default 0.0.0.0:1935.
    #[arg(long, env = "HLSWARM_RTMP")]
    pub rtmp: Option<std::net::SocketAddr>,
    /// Run without RTMP ingest.
    #[arg(long)]
    pub no_rtmp: bool,
    /// RTMPS (RTMP over TLS) listen address for OBS (`rtmps://HOST:PORT/live`). Default: off.
    #[arg(long, env = "HLSWARM_RTMPS")]
    pub rtmps: Option<std::net::SocketAddr>,
    /// RTMPS certificate chain (PEM). Default: a self-signed one kept in DATA_DIR/keys/rtmps.crt.
    #[arg(long, env = "HLSWARM_RTMPS_CERT", requires = "rtmps_key")]
    pub rtmps_cert: Option<PathBuf>,
    /// RTMPS private key (PEM), with --rtmps-cert.
    #[arg(long, env = "HLSWARM_RTMPS_KEY", requires = "rtmps_cert")]
    pub rtmps_key: Option<PathBuf>,
    /// RTMP/RTMPS connections that have not published yet; at the bound the oldest is closed. Default 16.
    #[arg(long)]
    pub rtmp_max_connections: Option<usize>,
    /// Of those, from one address (IPv6: one /64). Default 4.
    #[arg(long)]
    pub rtmp_max_connections_per_address: Option<usize>,
    /// Milliseconds from accept to a started publish (TLS handshake included). Default 5000.
    #[arg(long)]
    pub rtmp_handshake_timeout_ms: Option<u64>,
    /// Publish secret OBS must use as its stream key. Default: generated once and kept in
    /// DATA_DIR/keys/publish.secret. Not the signing key.
    #[arg(long, env = "HLSWARM_STREAM_KEY")]
    pub stream_key: Option<String>,
    /// HTTP listen address (playlists, segments, watch page, dashboard). Default 0.0.0.0:8080.
    #[arg(long, env = "HLSWARM_HTTP")]
    pub http: Option<std::net::SocketAddr>,
    /// Run without the HTTP origin.
    #[arg(long)]
    pub no_http: bool,
    /// Run without the embedded WebTorrent tracker (`ws://HOST:PORT/tracker`).
    #[arg(long)]
    pub no_tracker: bool,
    /// The URL viewers reach this node at; printed and put in the announce's hints.
    #[arg(long, env = "HLSWARM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// A reverse proxy in front of this node whose `X-Forwarded-For` is believed (repeatable),
    /// e.g. 127.0.0.1 for nginx on the same machine.
    #[arg(long, value_name = "IP")]
    pub trusted_proxy: Vec<std::net::IpAddr>,
    /// Signing key; created there if missing. Default: DATA_DIR/keys/stream.key.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Title for the STREAM_ANNOUNCE. Default "hlswarm stream".
    #[arg(long, env = "HLSWARM_TITLE")]
    pub title: Option<String>,
    /// Lightning address (`name@host`) for tips, put in the announce.
    #[arg(long, env = "HLSWARM_TIP")]
    pub tip: Option<String>,
    /// Target segment duration in seconds (cut at the first keyframe after it). Default 2.
    #[arg(long)]
    pub segment_seconds: Option<u64>,
    /// LL-HLS part target in milliseconds: every part is signed and served as soon as it is
    /// complete. 0 turns LL-HLS off. Ignored with --ts. Default 200.
    #[arg(long)]
    pub part_ms: Option<u64>,
    /// Package MPEG-TS instead of fMP4/CMAF (for legacy players).
    #[arg(long)]
    pub ts: bool,
    /// Segments per rendition in the signed live window. Default 8.
    #[arg(long)]
    pub window: Option<usize>,
    /// Segments kept on disk for the archive (DVR); 0 keeps all. Default 1800.
    #[arg(long)]
    pub retain: Option<usize>,
    /// Seconds a dropped publisher (connection lost, no unpublish) has to come back before the
    /// stream is signed ended (EXT-X-ENDLIST). A clean stop ends it at once. Default 30.
    #[arg(long, env = "HLSWARM_END_GRACE_SECONDS")]
    pub end_grace_seconds: Option<u64>,
    /// ABR ladder transcoded by ffmpeg besides the untouched source, as presets: 1080p, 720p,
    /// 480p, 360p, 240p, 144p (comma-separated). Rungs not below the source are skipped.
    /// Needs ffmpeg with libx264 and aac. Default: none (no transcoding).
    #[arg(long, env = "HLSWARM_LADDER")]
    pub ladder: Option<String>,
    /// MoQ listen address: QUIC/WebTransport on UDP, WebSocket fallback on TCP. Default 0.0.0.0:4443.
    #[arg(long, env = "HLSWARM_MOQ")]
    pub moq: Option<std::net::SocketAddr>,
    /// Run without the MoQ server and relay link.
    #[arg(long)]
    pub no_moq: bool,
    /// A moq-relay to publish every stream to (https://, http://, moqt://).
    #[arg(long, env = "HLSWARM_MOQ_RELAY")]
    pub moq_relay: Option<String>,
    /// JWT for the moq-relay.
    #[arg(long, env = "HLSWARM_MOQ_RELAY_JWT")]
    pub moq_relay_jwt: Option<String>,
    /// Skip TLS verification of the moq-relay (what is published is signed either way).
    #[arg(long)]
    pub moq_relay_insecure: bool,
    /// libp2p listen multiaddr (repeatable). Default /ip4/0.0.0.0/tcp/4001 and
    /// /ip4/0.0.0.0/udp/4001/quic-v1.
    #[arg(long, value_name = "MULTIADDR")]
    pub p2p: Vec<String>,
    /// A swarm peer to dial at start (`/ip4/.../tcp/.../p2p/<peer id>`; repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub peer: Vec<String>,
    /// A libp2p relay to be reached through when this node cannot be dialled directly
    /// (`/ip4/.../tcp/.../p2p/<relay id>`; repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub relay: Vec<String>,
    /// Relay for swarm nodes that cannot be reached directly (costs this node's bandwidth).
    #[arg(long)]
    pub relay_server: bool,
    /// A public address of this node to advertise to the swarm, e.g. behind port forwarding
    /// (repeatable).
    #[arg(long, value_name = "MULTIADDR")]
    pub external: Vec<String>,
    /// Run without the libp2p swarm.
    #[arg(long)]
    pub no_swarm: bool,
    /// Do not look for nodes on the local network (mDNS).
    #[arg(long)]
    pub no_mdns: bool,
    /// Test only: make this node lie to its peers (`flip`, `forge`, `replay`; comma-separated).
    #[arg(long, hide = true)]
    pub misbehave: Option<String>,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// What to seed: a stream id, a watch URL (`https://node/watch/<id>`) or a share bundle
    /// (the JSON the watch page copies). Repeatable.
    #[arg(required = true, value_name = "STREAM")]
    pub sources: Vec<String>,
    /// Also run RTMP ingest (off by default for a seeder).
    #[arg(long)]
    pub with_rtmp: bool,
    /// Also take a stream from MoQ: a relay or node URL ending in the stream id
    /// (https://relay.example/anon/<stream id>). Every object is verified before it is stored
    /// and served. Repeatable.
    #[arg(long, value_name = "URL")]
    pub moq_source: Vec<String>,
    /// Skip TLS verification of MoQ sources (the content is verified either way).
    #[arg(long)]
    pub moq_source_insecure: bool,
    #[command(flatten)]
    pub run: RunArgs,
}
