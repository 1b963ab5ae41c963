//! Prometheus counters for what an operator asks first: viewers, bytes out by route and
//! transport, segments served and signed, and verification failures. Plain atomics rendered in
//! the text exposition format: no registry, no locks on the request path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

mod histogram;
pub use histogram::Histogram;

/// What an HTTP response carried; a label of the byte and request counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Playlist,
    Segment,
    Init,
    Manifest,
    Announce,
    Log,
    Api,
    Web,
    Other,
}

impl Route {
    const ALL: [Route; 9] = [
        Route::Playlist,
        Route::Segment,
        Route::Init,
        Route::Manifest,
        Route::Announce,
        Route::Log,
        Route::Api,
        Route::Web,
        Route::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Route::Playlist => "playlist",
            Route::Segment => "segment",
            Route::Init => "init",
            Route::Manifest => "manifest",
            Route::Announce => "announce",
            Route::Log => "log",
            Route::Api => "api",
            Route::Web => "web",
            Route::Other => "other",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Where a verification failure was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureSource {
    /// A manifest or announce read from the data directory at start-up.
    Disk,
    /// A manifest offered to the catalog at run time that broke the chain rules.
    Chain,
    /// A signed object or blob that a swarm peer sent and that failed verification.
    Peer,
    /// A signed object, blob or log that an HTTP source (an origin or mirror) sent and that
    /// failed verification.
    Http,
    /// An object received over MoQ (see also `hlswarm_moq_refused_total` by reason).
    Moq,
}

/// Reasons an object received over MoQ is refused (`moq::follow::Refusal::reason`).
const MOQ_REASONS: [&str; 6] = ["manifest", "announce", "hash", "shape", "unlisted", "malformed"];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; 5]; 9],
    bytes_http: [AtomicU64; 9],
    segments_served_http: AtomicU64,
    segments_signed: AtomicU64,
    manifests_signed: AtomicU64,
    ingest_dropped: AtomicU64,
    store_write_errors: AtomicU64,
    verify_fail_disk: AtomicU64,
    verify_fail_chain: AtomicU64,
    verify_fail_peer: AtomicU64,
    verify_fail_http: AtomicU64,
    pub swarm: SwarmMetrics,
    pub http_sources: HttpSourceMetrics,
    verify_fail_moq: AtomicU64,
    moq_refused: [AtomicU64; 6],
    moq_bytes_out: AtomicU64,
    moq_segments_out: AtomicU64,
    moq_sessions: std::sync::atomic::AtomicI64,
    moq_relay_up: AtomicU64,
    moq_relay_connects: AtomicU64,
    /// The RTMP ingest's counters (handed to `ingest::IngestConfig::stats`).
    pub ingest: std::sync::Arc<ingest::IngestStats>,
    /// From the RTMP message that completes a part to its PART signed and held for serving.
    pub part_signing: Histogram,
}

/// The libp2p swarm's counters.
#[derive(Debug, Default)]
pub struct SwarmMetrics {
    pub peers: AtomicU64,
    pub segments_served: AtomicU64,
    pub bytes_out: AtomicU64,
    pub bytes_in_peer: AtomicU64,
    pub bytes_in_http: AtomicU64,
    pub fetched_peer: AtomicU64,
    pub fetched_http: AtomicU64,
    pub busy_replies: AtomicU64,
    pub gossip_rejected: AtomicU64,
    pub peers_banned: AtomicU64,
    /// LL-HLS parts verified (statement and bytes) and stored from peers.
    pub parts_in: AtomicU64,
    /// Parts fetched and served to peers.
    pub parts_served: AtomicU64,
    /// Segments stored from the parts this node relayed instead of being fetched.
    pub segments_from_parts: AtomicU64,
    /// Parts whose statement was accepted but whose bytes were not obtained in time.
    pub parts_lost: AtomicU64,
}

/// The HTTP sources' health (node/src/sources): mirrors and the swarm's HTTP fallback.
#[derive(Debug, Default)]
pub struct HttpSourceMetrics {
    pub bans: AtomicU64,
    pub backoffs: AtomicU64,
    pub behind: AtomicU64,
    /// Manifest and playlist requests refused because this node's served manifest is stale.
    pub stale_refusals: AtomicU64,
}

impl HttpSourceMetrics {
    fn render(&self, o: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &AtomicU64); 4] = [
            (
                "hlswarm_http_source_bans_total",
                "HTTP sources banned for bytes that failed verification.",
                &self.bans,
            ),
            (
                "hlswarm_http_source_backoffs_total",
                "Fetches from HTTP sources that got no usable answer (the source is backed off).",
                &self.backoffs,
            ),
            (
                "hlswarm_http_source_behind_total",
                "Times an HTTP source served a manifest older than the freshest known.",
                &self.behind,
            ),
            (
                "hlswarm_http_stale_refusals_total",
                "Manifest and playlist requests answered 503 because this node has served an older manifest than one it knows exists for 10 s or more.",
                &self.stale_refusals,
            ),
        ];
        for (name, help, v) in rows {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", g(v));
        }
    }
}

impl SwarmMetrics {
    pub fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    fn render(&self, o: &mut String) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, &AtomicU64); 12] = [
            ("hlswarm_swarm_peers", "gauge", "Connected swarm peers.", &self.peers),
            (
                "hlswarm_swarm_bytes_in_total{source=\"peer\"}",
                "counter",
                "Verified blob bytes fetched, by source.",
                &self.bytes_in_peer,
            ),
            (
                "hlswarm_swarm_bytes_in_total{source=\"http\"}",
                "",
                "",
                &self.bytes_in_http,
            ),
            (
                "hlswarm_swarm_fetches_total{source=\"peer\"}",
                "counter",
                "Blobs fetched and verified, by source.",
                &self.fetched_peer,
            ),
            (
                "hlswarm_swarm_fetches_total{source=\"http\"}",
                "",
                "",
                &self.fetched_http,
            ),
            (
                "hlswarm_swarm_busy_replies_total",
                "counter",
                "Blob requests answered busy (upload slots full).",
                &self.busy_replies,
            ),
            (
                "hlswarm_swarm_gossip_rejected_total",
                "counter",
                "Gossip messages rejected by validation.",
                &self.gossip_rejected,
            ),
            (
                "hlswarm_swarm_peers_banned_total",
                "counter",
                "Peers banned for sending bytes that failed verification.",
                &self.peers_banned,
            ),
            (
                "hlswarm_swarm_parts_in_total",
                "counter",
                "LL-HLS parts from peers, verified against their signed statement and stored.",
                &self.parts_in,
            ),
            (
                "hlswarm_swarm_parts_served_total",
                "counter",
                "LL-HLS parts uploaded to peers.",
                &self.parts_served,
            ),
            (
                "hlswarm_swarm_segments_from_parts_total",
                "counter",
                "Segments stored from relayed parts (their hash checked) instead of fetched.",
                &self.segments_from_parts,
            ),
            (
                "hlswarm_swarm_parts_lost_total",
                "counter",
                "Parts heard of whose bytes did not arrive in time (their segment comes whole).",
                &self.parts_lost,
            ),
        ];
        for (name, kind, help, v) in rows {
            if !kind.is_empty() {
                let base = name.split('{').next().unwrap_or(name);
                let _ = writeln!(o, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let _ = writeln!(o, "{name} {}", g(v));
        }
    }
}

impl Metrics {
    /// One HTTP response with `bytes` of body.
    pub fn http_response(&self, route: Route, status: u16, bytes: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.requests[route as usize][class].fetch_add(1, Ordering::Relaxed);
        self.bytes_http[route as usize].fetch_add(bytes, Ordering::Relaxed);
        if route == Route::Segment && (200..300).contains(&status) {
            self.segments_served_http.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn signed(&self, segments: u64) {
        self.segments_signed.fetch_add(segments, Ordering::Relaxed);
        self.manifests_signed.fetch_add(1, Ordering::Relaxed);
    }

    /// A segment the ingest produced that could not be signed (and so is never served).
    pub fn ingest_dropped(&self) {
        self.ingest_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A write to the data directory failed (a full disk, an I/O error); the log says which.
    pub fn store_write_error(&self) {
        self.store_write_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn verification_failure(&self, source: FailureSource) {
        match source {
            FailureSource::Disk => &self.verify_fail_disk,
            FailureSource::Chain => &self.verify_fail_chain,
            FailureSource::Peer => &self.verify_fail_peer,
            FailureSource::Http => &self.verify_fail_http,
            FailureSource::Moq => &self.verify_fail_moq,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// An object received over MoQ was refused for `reason`.
    pub fn moq_refused(&self, reason: &str) {
        self.verification_failure(FailureSource::Moq);
        let i = MOQ_REASONS
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(MOQ_REASONS.len() - 1);
        self.moq_refused[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes (and segments) written into MoQ tracks.
    pub fn moq_published(&self, bytes: u64, segments: u64) {
        self.moq_bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.moq_segments_out.fetch_add(segments, Ordering::Relaxed);
    }

    pub fn moq_session(&self, delta: i64) {
        self.moq_sessions.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn moq_relay_connected(&self, up: bool) {
        self.moq_relay_up.store(u64::from(up), Ordering::Relaxed);
        if up {
            self.moq_relay_connects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Total body bytes sent over HTTP.
    pub fn http_bytes_total(&self) -> u64 {
        self.bytes_http.iter().map(|a| a.load(Ordering::Relaxed)).sum()
    }

    /// Bytes written into MoQ tracks (once per track, however many subscribers or relays).
    pub fn moq_bytes_published(&self) -> u64 {
        self.moq_bytes_out.load(Ordering::Relaxed)
    }

    /// The text exposition format. `viewers` is (stream id, current viewers).
    pub fn render(&self, viewers: &[(String, usize)], cache_bytes: u64, streams: usize) -> String {
        let mut o = String::with_capacity(4096);
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        o.push_str("# HELP hlswarm_http_requests_total HTTP responses by route and status class.\n");
        o.push_str("# TYPE hlswarm_http_requests_total counter\n");
        for r in Route::ALL {
            for (i, class) in STATUS_CLASSES.iter().enumerate() {
                let v = g(&self.requests[r as usize][i]);
                if v > 0 {
                    let _ = writeln!(
                        o,
                        "hlswarm_http_requests_total{{route=\"{}\",status=\"{class}\"}} {v}",
                        r.name()
                    );
                }
            }
        }
        o.push_str("# HELP hlswarm_bytes_out_total Body bytes sent, by transport and route.\n");
        o.push_str("# TYPE hlswarm_bytes_out_total counter\n");
        for r in Route::ALL {
            let _ = writeln!(
                o,
                "hlswarm_bytes_out_total{{transport=\"http\",route=\"{}\"}} {}",
                r.name(),
                g(&self.bytes_http[r as usize])
            );
        }
        let _ = writeln!(
            o,
            "hlswarm_bytes_out_total{{transport=\"libp2p\",route=\"segment\"}} {}",
            g(&self.swarm.bytes_out)
        );
        o.push_str("# HELP hlswarm_segments_served_total Media segments served, by transport.\n");
        o.push_str("# TYPE hlswarm_segments_served_total counter\n");
        let _ = writeln!(
            o,
            "hlswarm_segments_served_total{{transport=\"http\"}} {}",
            g(&self.segments_served_http)
        );
        let _ = writeln!(
            o,
            "hlswarm_segments_served_total{{transport=\"libp2p\"}} {}",
            g(&self.swarm.segments_served)
        );
        self.swarm.render(&mut o);
        o.push_str("# HELP hlswarm_segments_signed_total Segments this node signed.\n");
        o.push_str("# TYPE hlswarm_segments_signed_total counter\n");
        let _ = writeln!(o, "hlswarm_segments_signed_total {}", g(&self.segments_signed));
        o.push_str("# HELP hlswarm_manifests_signed_total MANIFEST_ROOTs this node signed.\n");
        o.push_str("# TYPE hlswarm_manifests_signed_total counter\n");
        let _ = writeln!(o, "hlswarm_manifests_signed_total {}", g(&self.manifests_signed));
        o.push_str("# HELP hlswarm_ingest_segments_dropped_total Ingested segments that could not be signed.\n");
        o.push_str("# TYPE hlswarm_ingest_segments_dropped_total counter\n");
        let _ = writeln!(o, "hlswarm_ingest_segments_dropped_total {}", g(&self.ingest_dropped));
        self.part_signing.render(
            &mut o,
            "hlswarm_part_signing_seconds",
            "From the RTMP message that completes an LL-HLS part to its PART statement signed and the part served.",
        );
        o.push_str(
            "# HELP hlswarm_store_write_errors_total Writes to the data directory that failed (full disk, I/O error).\n",
        );
        o.push_str("# TYPE hlswarm_store_write_errors_total counter\n");
        let _ = writeln!(o, "hlswarm_store_write_errors_total {}", g(&self.store_write_errors));
        o.push_str("# HELP hlswarm_verification_failures_total Signed objects refused, by where they came from.\n");
        o.push_str("# TYPE hlswarm_verification_failures_total counter\n");
        let _ = writeln!(
            o,
            "hlswarm_verification_failures_total{{source=\"disk\"}} {}",
            g(&self.verify_fail_disk)
        );
        let _ = writeln!(
            o,
            "hlswarm_verification_failures_total{{source=\"chain\"}} {}",
            g(&self.verify_fail_chain)
        );
        let _ = writeln!(
            o,
            "hlswarm_verification_failures_total{{source=\"peer\"}} {}",
            g(&self.verify_fail_peer)
        );
        let _ = writeln!(
            o,
            "hlswarm_verification_failures_total{{source=\"http\"}} {}",
            g(&self.verify_fail_http)
        );
        let _ = writeln!(
            o,
            "hlswarm_verification_failures_total{{source=\"moq\"}} {}",
            g(&self.verify_fail_moq)
        );
        self.http_sources.render(&mut o);
        o.push_str("# HELP hlswarm_moq_refused_total Objects received over MoQ and refused, by reason.\n");
        o.push_str("# TYPE hlswarm_moq_refused_total counter\n");
        for (i, r) in MOQ_REASONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "hlswarm_moq_refused_total{{reason=\"{r}\"}} {}",
                g(&self.moq_refused[i])
            );
        }
        o.push_str("# HELP hlswarm_moq_published_bytes_total Bytes written into MoQ tracks (before fan-out).\n");
        o.push_str("# TYPE hlswarm_moq_published_bytes_total counter\n");
        let _ = writeln!(o, "hlswarm_moq_published_bytes_total {}", g(&self.moq_bytes_out));
        o.push_str("# HELP hlswarm_moq_published_segments_total Segments written into MoQ tracks.\n");
        o.push_str("# TYPE hlswarm_moq_published_segments_total counter\n");
        let _ = writeln!(o, "hlswarm_moq_published_segments_total {}", g(&self.moq_segments_out));
        o.push_str("# HELP hlswarm_moq_sessions MoQ sessions served now.\n# TYPE hlswarm_moq_sessions gauge\n");
        let _ = writeln!(
            o,
            "hlswarm_moq_sessions {}",
            self.moq_sessions.load(Ordering::Relaxed).max(0)
        );
        o.push_str("# HELP hlswarm_moq_relay_up 1 while the node publishes to its moq-relay.\n");
        o.push_str("# TYPE hlswarm_moq_relay_up gauge\n");
        let _ = writeln!(o, "hlswarm_moq_relay_up {}", g(&self.moq_relay_up));
        o.push_str("# HELP hlswarm_moq_relay_connects_total Sessions established with the moq-relay.\n");
        o.push_str("# TYPE hlswarm_moq_relay_connects_total counter\n");
        let _ = writeln!(o, "hlswarm_moq_relay_connects_total {}", g(&self.moq_relay_connects));
        render_ingest(&self.ingest, &mut o);
        o.push_str("# HELP hlswarm_viewers Viewers seen in the last 30 s, by stream.\n");
        o.push_str("# TYPE hlswarm_viewers gauge\n");
        for (id, n) in viewers {
            let _ = writeln!(o, "hlswarm_viewers{{stream=\"{id}\"}} {n}");
        }
        o.push_str("# HELP hlswarm_streams Streams this node serves.\n# TYPE hlswarm_streams gauge\n");
        let _ = writeln!(o, "hlswarm_streams {streams}");
        o.push_str("# HELP hlswarm_segment_cache_bytes Bytes of segments held in memory.\n");
        o.push_str("# TYPE hlswarm_segment_cache_bytes gauge\n");
        let _ = writeln!(o, "hlswarm_segment_cache_bytes {cache_bytes}");
        o
    }
}

/// The RTMP ingest's publishes, takeovers, refusals and connections.
fn render_ingest(s: &ingest::IngestStats, o: &mut String) {
    o.push_str("# HELP hlswarm_rtmp_publishes_total RTMP/RTMPS publishes accepted.\n");
    o.push_str("# TYPE hlswarm_rtmp_publishes_total counter\n");
    let _ = writeln!(o, "hlswarm_rtmp_publishes_total {}", s.publishes());
    o.push_str("# HELP hlswarm_rtmp_takeovers_total Publishes that took a live stream over from another connection.\n");
    o.push_str("# TYPE hlswarm_rtmp_takeovers_total counter\n");
    let _ = writeln!(o, "hlswarm_rtmp_takeovers_total {}", s.takeovers());
    o.push_str("# HELP hlswarm_rtmp_refused_total RTMP/RTMPS connections or publishes turned away, by reason.\n");
    o.push_str("# TYPE hlswarm_rtmp_refused_total counter\n");
    for r in ingest::Refusal::ALL {
        let _ = writeln!(
            o,
            "hlswarm_rtmp_refused_total{{reason=\"{}\"}} {}",
            r.name(),
            s.refused(r)
        );
    }
    let (pending, publishing) = s.connections();
    o.push_str("# HELP hlswarm_rtmp_connections Open RTMP/RTMPS connections, by state.\n");
    o.push_str("# TYPE hlswarm_rtmp_connections gauge\n");
    let _ = writeln!(o, "hlswarm_rtmp_connections{{state=\"pending\"}} {pending}");
    let _ = writeln!(o, "hlswarm_rtmp_connections{{state=\"publishing\"}} {publishing}");
    o.push_str(
        "# HELP hlswarm_ladder_dropped_tags_total Source tags the ABR ladder dropped (ffmpeg not keeping up).\n",
    );
    o.push_str("# TYPE hlswarm_ladder_dropped_tags_total counter\n");
    let _ = writeln!(o, "hlswarm_ladder_dropped_tags_total {}", s.ladder_dropped_tags());
    o.push_str("# HELP hlswarm_ladder_ffmpeg_failures_total Times a ladder ffmpeg failed while its source was live.\n");
    o.push_str("# TYPE hlswarm_ladder_ffmpeg_failures_total counter\n");
    let _ = writeln!(o, "hlswarm_ladder_ffmpeg_failures_total {}", s.ladder_ffmpeg_failures());
}
