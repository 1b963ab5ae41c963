//! Entry points for the fuzz targets under `fuzz/`: the real code paths, without sockets.
//! Not a stable API.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::clock::Timeline;
use crate::segmenter::Segmenter;
use crate::server::Shared;
use crate::{Container, IngestConfig, IngestEvent, Result, Segment};

pub use crate::chunk_guard::{ChunkGuard, Framed, MAX_AMF_MESSAGE, MAX_CHUNK_SIZE};

/// The configuration [`rtmp_connection`] uses by default: app `live`, stream key `key`
/// publishing to stream `s`, 200 ms segments (so short inputs still cut segments).
pub fn config(container: Container) -> IngestConfig {
    IngestConfig {
        keys: vec![crate::StreamKey {
            key: "key".into(),
            stream: "s".into(),
        }],
        target_duration: Duration::from_millis(200),
        container,
        ..IngestConfig::default()
    }
}

/// Serves one connection whose client sends exactly `input` and then closes its side, through
/// the same handshake, chunk guard, rml_rtmp session, FLV demuxer and segmenter as
/// [`serve`](crate::serve). Returns the events it produced. The server's replies are read and
/// discarded.
pub fn rtmp_connection(cfg: IngestConfig, input: &[u8]) -> Result<Vec<IngestEvent>> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    rt.block_on(async {
        let (tx, mut rx) = mpsc::channel(16);
        let shared = Arc::new(Shared::new(cfg, tx)?);
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (mut client_rx, mut client_tx) = tokio::io::split(client);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let send = async move {
            let _ = client_tx.write_all(input).await;
            let _ = client_tx.shutdown().await;
        };
        let drain = async move {
            let mut sink = vec![0u8; 16 * 1024];
            while matches!(client_rx.read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let events = async move {
            let mut all = Vec::new();
            while let Some(ev) = rx.recv().await {
                all.push(ev);
            }
            all
        };
        let (ticket, _kicked) = shared.admit(std::net::SocketAddr::from(([127, 0, 0, 1], 1)));
        let conn = async move {
            let id = ticket.id;
            let r = crate::connection::run(shared, server, stop_rx, tokio::time::Instant::now(), id).await;
            // The ticket holds the last handle on the event sender: drop it to end `events`.
            drop(ticket);
            r
        };
        let ((), (), _, events) = tokio::join!(send, drain, conn, events);
        Ok(events)
    })
}

/// Whether the AMF0 pre-check accepts `payload` (a whole command or data message).
pub fn amf0_depth_ok(payload: &[u8]) -> bool {
    crate::amf::depth_ok(payload)
}

/// Deepest AMF0 nesting the pre-check accepts.
pub const AMF0_MAX_DEPTH: usize = crate::amf::MAX_DEPTH;

/// The FLV demuxer and segmenter of one publish, fed tag bodies directly.
#[derive(Debug)]
pub struct FlvSegmenter(Segmenter);

impl FlvSegmenter {
    /// A segmenter for a fresh stream, with 200 ms parts.
    pub fn new(container: Container, target: Duration, max_segment_bytes: usize) -> Self {
        Self(
            Segmenter::new("s".into(), 1, container, target, max_segment_bytes, Timeline::default())
                .with_part_target(Some(Duration::from_millis(200))),
        )
    }

    /// The parts completed since the last call (each before its segment).
    pub fn parts(&mut self) -> Vec<crate::Part> {
        self.0.take_parts()
    }

    /// One video tag body (the RTMP message payload) at RTMP timestamp `ts_ms`.
    pub fn video(&mut self, ts_ms: u32, body: &[u8]) -> Result<Vec<Segment>> {
        self.0.video(ts_ms, &Bytes::copy_from_slice(body))
    }

    /// One audio tag body at RTMP timestamp `ts_ms`.
    pub fn audio(&mut self, ts_ms: u32, body: &[u8]) -> Result<Vec<Segment>> {
        self.0.audio(ts_ms, &Bytes::copy_from_slice(body))
    }

    /// `onMetaData` picture size.
    pub fn metadata_size(&mut self, width: u32, height: u32) {
        self.0.set_metadata_size(width, height);
    }

    /// The partial segment at the end of the publish.
    pub fn flush(&mut self) -> Result<Vec<Segment>> {
        self.0.flush()
    }
}
