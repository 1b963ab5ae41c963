//! RTMP ingest, FLV demux and HLS muxing. Knows nothing about signing, HTTP or libp2p.
//!
//! A broadcaster publishes to `rtmp://HOST:PORT/<app>/<stream key>`. [`serve`] accepts the
//! publish when the key is listed in [`IngestConfig::keys`], demuxes the FLV tag bodies and
//! cuts the stream into HLS segments at video keyframes (audio-only streams: by duration).
//! Every finished segment goes to the caller as an [`IngestEvent::Segment`] on a bounded
//! `tokio::sync::mpsc` channel; the caller hashes, stores and signs it.
//!
//! ```text
//! OBS/ffmpeg --RTMP--> server (one task per connection, rml_rtmp isolated by catch_unwind)
//!               --> flv (tag bodies -> configs/frames) --> segmenter (timestamps, cuts)
//!               --> fmp4 | ts (bytes) --> IngestEvent::Segment on the channel
//! ```
//!
//! # Timeline
//! Timestamps are rebased per stream so the first publish starts at 0; RTMP's 32-bit
//! millisecond wrap is unwrapped, jumps (> 3 s forwards or > 1 s backwards) are rebased so the
//! output stays continuous, and decode times never go backwards. After a reconnect the new
//! publisher continues the stream's timeline where the previous one ended and its first
//! segment carries `discontinuity = true`.
//!
//! # Audio priming
//! AAC encoder priming samples are left as they are: no edit list is written, so the first
//! ~21 ms of audio (1024 priming samples at 48 kHz) play as encoded. Players handle this.
//!
//! # Containers
//! [`Container::Fmp4`] (default, CMAF): one track per rendition. The video is rendition
//! `source` (and the rungs), the audio rendition [`AUDIO_RENDITION`] (an audio-only stream's
//! audio is `source`); each has one init segment (ftyp+moov) shared by all its segments of a
//! publish, and media segments made of `styp` + one `moof` with one `traf` + one `mdat`. Both
//! are cut at the same instants and numbered alike. [`Container::Ts`]: MPEG-TS with PAT/PMT at the start of every segment, H.264 in
//! Annex B with AUD (and SPS/PPS on keyframes), AAC in ADTS; `init` is `None`.
//!
//! # ABR ladder (optional)
//! The source always passes through untouched: streaming never needs a transcoder. When
//! [`IngestConfig::ladder`] lists rungs (e.g. `720p,480p,360p`, see [`Rung`] and
//! [`parse_ladder`]), each source publish also gets one `ffmpeg` child that encodes every rung
//! whose height is below the source's real height (read from the SPS; rungs at or above it
//! are skipped) to H.264 (x264 `veryfast`, capped VBR) + AAC. Rung segments come out as
//! [`IngestEvent::Segment`] with `rendition` set to the rung name, for the caller to sign like
//! the source.
//!
//! ```text
//! source conn --try_send (never waits)--> bounded queue --FLV on stdin--> ffmpeg
//!   ffmpeg --FLV per rung over a Unix socket in a private 0700 directory--> rung reader
//!   rung reader --> segmenter (same code as the source) --> IngestEvent::Segment
//! ```
//!
//! - Alignment: the feed keeps the source timeline (`-copyts`) and ffmpeg forces a keyframe
//!   exactly where the source has one (`-force_key_frames source`, no scene-cut or periodic
//!   keyframes), so every rung is cut at the same instants as the source with the same
//!   timestamps: players can switch at any segment boundary.
//! - Isolation: if ffmpeg falls behind, the ladder's input is dropped up to the next source
//!   keyframe (logged, counted in [`IngestStats::ladder_dropped_tags`]); the source never waits.
//!   Rungs come back over Unix sockets, not RTMP: no internal keys, and no share of
//!   [`IngestConfig::max_connections`] for an outsider to take.
//! - Failure: ffmpeg dying mid-stream is logged with the tail of its stderr (the whole stderr
//!   goes to the log at debug) and restarted with backoff (1 s doubling to 16 s; the ladder
//!   gives up for the session after 5 failures in a row); the restarted rungs resume at the
//!   next keyframe with `discontinuity = true`. The source is never affected.
//! - End: on unpublish or shutdown, ffmpeg's stdin is closed, it gets 4 s to flush (then it
//!   is killed), every rung's partial segment is emitted, and only then the session's
//!   [`IngestEvent::Unpublished`]. A takeover waits for that drain (at most 5 s).
//! - Start-up: with a ladder configured, [`serve`] (and [`check_ladder`], for callers that
//!   want to fail before anything else) returns [`Error::Ffmpeg`] if `ffmpeg` is missing or
//!   lacks libx264, aac or the unix protocol. Unix only.
//! - Limits: the source must be H.264 (classic or Enhanced RTMP); HEVC/AV1 sources pass through
//!   without rungs. The rung set, and whether rungs carry audio, are fixed at the first keyframe
//!   of a publish (publishers send both sequence headers before it). A resync or restart resumes
//!   at a source keyframe, so with keyframes more often than the target duration the rung's
//!   later cuts can fall one keyframe off the source's until the next publish.
//!
//! # Bounds
//! Every byte after the handshake passes a chunk-stream pre-scan before rml_rtmp sees it
//! (rml_rtmp reassembles messages itself and applies Set Chunk Size silently): a chunk header
//! declaring a message above [`IngestConfig::max_message_size`], a Set Chunk Size of 0 or above
//! 10 MiB (nginx-rtmp's bound), an AMF command or data message above 1 MiB or nested deeper
//! than 32 levels (rml_amf0 decodes recursively: deep nesting would overflow the stack and
//! abort the process) close the connection at once. Memory per connection is thus about
//! twice `max_message_size` at most. A handshake (TLS included) + publish slower than
//! [`IngestConfig::handshake_timeout`] and no media for [`IngestConfig::idle_timeout`] close
//! it too; a segment growing past [`IngestConfig::max_segment_bytes`] is cut early.
//!
//! # Admission and takeover
//! Connections that have not published yet are bounded per address
//! ([`IngestConfig::max_connections_per_address`]) and in all
//! ([`IngestConfig::max_connections`]); at either bound the *oldest* such connection is closed
//! to admit the new one, so idle or slow connections never keep a publisher out. Publishing
//! connections are never evicted and are bounded by [`IngestConfig::max_publishers`]. The
//! stream key is the publish secret: a publish with the key of a live stream takes it over at
//! once. The old connection flushes its partial segment, reports
//! [`EndReason::TakenOver`] and is closed; the new one continues the timeline with a
//! discontinuity, as a reconnect does. Refusals, publishes and takeovers are counted in
//! [`IngestStats`]. RTMPS (RTMP over TLS) goes through the same connection code and the same
//! limits ([`serve_listeners`]).

#![warn(missing_docs)]

mod admission;
mod amf;
mod bits;
mod chunk_guard;
mod clock;
mod codec;
mod connection;
mod error;
mod flv;
mod flv_stream;
mod fmp4;
#[doc(hidden)]
pub mod fuzzing;
mod ladder;
mod rtmp;
mod segmenter;
mod server;
#[cfg(unix)]
mod transcoder;
mod ts;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use codec::VideoCodec;
pub use error::{Error, Result};
pub use ladder::{Rung, check_ffmpeg, check_ladder, parse_ladder};
pub use server::{Listeners, serve, serve_listeners};
/// The TLS types an RTMPS listener is configured with.
pub use tokio_rustls::{TlsAcceptor, rustls};

/// Segment container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Container {
    /// CMAF fragmented MP4: an init segment plus media segments (moof+mdat).
    #[default]
    Fmp4,
    /// MPEG-2 transport stream (H.264 + AAC only).
    Ts,
}

/// A publish secret and the stream name it publishes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamKey {
    /// The secret the broadcaster puts after `/<app>/` in the RTMP URL.
    pub key: String,
    /// The stream name used in events (never the secret).
    pub stream: String,
}

/// Configuration of [`serve`].
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// RTMP application name (the first path element), e.g. `live`.
    pub app: String,
    /// Accepted stream keys; a publish with any other key is refused.
    pub keys: Vec<StreamKey>,
    /// Target segment duration; segments are cut at the first keyframe at or after it.
    pub target_duration: Duration,
    /// Output container.
    pub container: Container,
    /// LL-HLS part target: fMP4 segments are built of CMAF chunks about this long, each
    /// reported as an [`IngestEvent::Part`] as soon as it is complete (a part closes at the
    /// first frame past the target minus half a frame, and never beyond 1.1 times the target).
    /// `None`: no parts. MPEG-TS never has parts.
    pub part_target: Option<Duration>,
    /// A connection that sends no media (or nothing at all) for this long is dropped.
    pub idle_timeout: Duration,
    /// Time allowed from TCP accept to a started publish (the TLS handshake included).
    pub handshake_timeout: Duration,
    /// Largest RTMP message accepted (checked on its chunk header, before it is buffered).
    pub max_message_size: usize,
    /// A segment is cut early (without waiting for a keyframe) past this size.
    pub max_segment_bytes: usize,
    /// Connections that have not started publishing, in all; at the bound the oldest of them
    /// is closed to admit a new one.
    pub max_connections: usize,
    /// Connections that have not started publishing, from one address (IPv6: one /64); at
    /// the bound the oldest of them is closed to admit a new one.
    pub max_connections_per_address: usize,
    /// Publishing connections (they need a stream key); a publish beyond it is refused.
    pub max_publishers: usize,
    /// ABR ladder: renditions transcoded from the source by ffmpeg. Empty (the default):
    /// no transcoding, the source only.
    pub ladder: Vec<Rung>,
    /// The ffmpeg the ladder runs (looked up in `PATH` unless it has a slash).
    pub ffmpeg: PathBuf,
    /// Where each stream's timeline resumes, milliseconds, by stream name: the media time a
    /// previous process already segmented (its signer knows it). The first publish continues
    /// from there, as a reconnect does, so that no segment repeats an earlier one's
    /// timestamps. Streams not listed start at 0.
    pub resume_ms: HashMap<String, u64>,
    /// Counters the caller may export as metrics; clone the `Arc` before passing the config.
    pub stats: Arc<IngestStats>,
}

/// Why the ingest turned a connection or a publish away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A publish with a stream key that is not configured.
    UnknownKey,
    /// A connect to an application other than [`IngestConfig::app`], or a play request.
    UnknownApp,
    /// Closed before publishing: its address opened one connection too many.
    PerAddress,
    /// Closed before publishing: the pool of not-yet-publishing connections was full.
    Evicted,
    /// No publish within [`IngestConfig::handshake_timeout`].
    HandshakeTimeout,
    /// [`IngestConfig::max_publishers`] connections were publishing.
    PublisherLimit,
    /// The RTMPS TLS handshake failed.
    Tls,
    /// A newer publish with the same key arrived while this one waited to take over.
    Superseded,
}

impl Refusal {
    /// Every reason, in a fixed order.
    pub const ALL: [Refusal; 8] = [
        Refusal::UnknownKey,
        Refusal::UnknownApp,
        Refusal::PerAddress,
        Refusal::Evicted,
        Refusal::HandshakeTimeout,
        Refusal::PublisherLimit,
        Refusal::Tls,
        Refusal::Superseded,
    ];

    /// A metric label.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnknownKey => "unknown_key",
            Refusal::UnknownApp => "unknown_app",
            Refusal::PerAddress => "per_address",
            Refusal::Evicted => "evicted",
            Refusal::HandshakeTimeout => "handshake_timeout",
            Refusal::PublisherLimit => "publisher_limit",
            Refusal::Tls => "tls",
            Refusal::Superseded => "superseded",
        }
    }
}

/// Counters for an operator's metrics.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub(crate) ladder_dropped: AtomicU64,
    pub(crate) ladder_failures: AtomicU64,
    pub(crate) publishes: AtomicU64,
    pub(crate) takeovers: AtomicU64,
    pub(crate) refused: [AtomicU64; Refusal::ALL.len()],
    pub(crate) pending: AtomicU64,
    pub(crate) publishing: AtomicU64,
}

impl IngestStats {
    /// Publishes accepted (a known key, a free publisher slot).
    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    /// Publishes that took a live stream over from another connection.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Ordering::Relaxed)
    }

    /// Connections or publishes turned away for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Ordering::Relaxed)
    }

    /// Open connections now: (not yet publishing, publishing).
    pub fn connections(&self) -> (u64, u64) {
        (
            self.pending.load(Ordering::Relaxed),
            self.publishing.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn refuse(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Source tags the ABR ladder dropped because ffmpeg was not keeping up.
    pub fn ladder_dropped_tags(&self) -> u64 {
        self.ladder_dropped.load(Ordering::Relaxed)
    }

    /// Times an ffmpeg of the ABR ladder failed while its source was live.
    pub fn ladder_ffmpeg_failures(&self) -> u64 {
        self.ladder_failures.load(Ordering::Relaxed)
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            app: "live".to_owned(),
            keys: Vec::new(),
            target_duration: Duration::from_secs(2),
            container: Container::Fmp4,
            part_target: Some(Duration::from_millis(200)),
            idle_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            max_message_size: 8 * 1024 * 1024,
            max_segment_bytes: 64 * 1024 * 1024,
            max_connections: 16,
            max_connections_per_address: 4,
            max_publishers: 8,
            ladder: Vec::new(),
            ffmpeg: PathBuf::from("ffmpeg"),
            resume_ms: HashMap::new(),
            stats: Arc::default(),
        }
    }
}

/// One CMAF chunk of a segment in progress, an LL-HLS part: one `moof` with one `traf`, and
/// its `mdat` (the first part of a segment begins with the segment's `styp`). A segment's
/// parts, concatenated in index order, are byte for byte its [`Segment::data`]; every part
/// comes before its segment.
#[derive(Debug, Clone)]
pub struct Part {
    /// Stream name.
    pub stream: String,
    /// Publish session that produced it.
    pub session: u64,
    /// Rendition name, as its segment's.
    pub rendition: String,
    /// As [`Segment::audio_group`].
    pub audio_group: bool,
    /// The [`Segment::sequence`] of the segment it belongs to.
    pub sequence: u64,
    /// Index of the part in its segment, from 0.
    pub index: u16,
    /// The init segment its rendition needs.
    pub init: Option<bytes::Bytes>,
    /// Exact bytes.
    pub data: bytes::Bytes,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// It begins with a keyframe (always, for audio): a player can start at it.
    pub independent: bool,
    /// Its segment will carry [`Segment::discontinuity`].
    pub discontinuity: bool,
    /// Earliest presentation time in the part on the stream's timeline, microseconds.
    pub start_pts_us: u64,
    /// When the RTMP message that completed it arrived (the next frame's, which closes the
    /// part); `None` where no connection stamps it (ladder rungs).
    pub received: Option<std::time::Instant>,
}

/// What [`serve`] reports to the caller.
#[derive(Debug, Clone)]
pub enum IngestEvent {
    /// A publisher started on `stream` (also after a reconnect, with a new `session`).
    Publishing {
        /// Stream name from [`StreamKey::stream`].
        stream: String,
        /// Unique per publish within this `serve` call.
        session: u64,
    },
    /// A finished part of a segment in progress (fMP4 with [`IngestConfig::part_target`]).
    Part(Part),
    /// A finished segment.
    Segment(Segment),
    /// The publisher stopped (clean unpublish, disconnect, timeout, error or shutdown).
    Unpublished {
        /// Stream name.
        stream: String,
        /// The session that ended.
        session: u64,
        /// Why: only [`EndReason::Finished`] says the broadcaster meant to end the stream.
        reason: EndReason,
    },
}

/// Why a publish session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The publisher said so (`FCUnpublish`/`deleteStream`, as OBS's "Stop Streaming" and
    /// ffmpeg's normal exit send): an explicit end of the stream.
    Finished,
    /// The connection closed, failed or timed out without an unpublish: the publisher may
    /// come back (OBS reconnects by itself within seconds).
    Disconnected,
    /// Another connection presented the stream key and took the stream over.
    TakenOver,
    /// This server is shutting down.
    Shutdown,
}

/// Codec and size description of a rendition, for the playlist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackInfo {
    /// RFC 6381 codecs string for `CODECS=`, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
    /// Video width in pixels (0 when audio-only or unknown).
    pub width: u32,
    /// Video height in pixels.
    pub height: u32,
    /// Video frame rate in frames per 1000 s (29.97 fps = 29970); 0 when unknown.
    pub frame_rate_milli: u32,
    /// Highest single-segment bit rate of this publish so far, bits per second: a rough
    /// figure (a short last segment inflates it). The signed BANDWIDTH is not this: the
    /// signer measures it per RFC 8216 §4.3.4.2 (`manifest_signer::bandwidth`).
    pub bandwidth: u64,
    /// Video codec, if there is a video track.
    pub video: Option<VideoCodec>,
    /// Audio sample rate in Hz (0 without audio).
    pub audio_sample_rate: u32,
    /// Audio channel count (0 without audio).
    pub audio_channels: u8,
}

/// The rendition of a stream's audio when the stream also has video and the container is fMP4
/// (CMAF: one track per rendition): an `EXT-X-MEDIA` audio rendition that every video rendition
/// plays with. Ladder rungs may not take this name.
pub const AUDIO_RENDITION: &str = "audio";

/// One finished HLS media segment.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Stream name.
    pub stream: String,
    /// Publish session that produced it.
    pub session: u64,
    /// Rendition name: `source`, [`AUDIO_RENDITION`], or the [`Rung::name`] of an ABR ladder
    /// rung.
    pub rendition: String,
    /// The segment belongs to the stream's audio rendition ([`AUDIO_RENDITION`]), played with
    /// every video rendition; false for video, muxed (MPEG-TS) and audio-only streams.
    pub audio_group: bool,
    /// Index of this segment within the stream, counted across reconnects.
    pub sequence: u64,
    /// Container of `data` (and `init`).
    pub container: Container,
    /// fMP4 init segment (ftyp+moov) this segment needs; the same `Bytes` while unchanged.
    pub init: Option<bytes::Bytes>,
    /// Exact segment bytes (styp+moof+mdat, or TS packets).
    pub data: bytes::Bytes,
    /// Duration in microseconds.
    pub duration_us: u64,
    /// First segment after a publisher (re)connect or a codec/config change.
    pub discontinuity: bool,
    /// It begins with a video keyframe (or has no video), so a player can start decoding at it.
    /// False only after a cut without a keyframe: a keyframe interval longer than the target
    /// plus half a second, or a segment over [`IngestConfig::max_segment_bytes`].
    pub independent: bool,
    /// Earliest presentation time in the segment on the stream's timeline, microseconds.
    pub start_pts_us: u64,
    /// Codecs, size, frame rate and bandwidth.
    pub info: TrackInfo,
    /// What the broadcaster should change (MP3 audio, a profile browsers cannot play, a long
    /// keyframe interval), each said once in the log; all of this publish's so far.
    pub advice: Vec<String>,
}
